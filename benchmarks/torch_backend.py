"""How fast is the torch backend (CPU, and CUDA when present) against numba?

For each ``n`` and ``m`` (``d`` fixed), timed in the same process:

- **transform**: the unrolled encoder (``--n-layers``, default 50) with
  numba, ``sparse_encode(..., backend="numba", algorithm="unrolled")``, the
  reference; with the torch backend, numpy in and out
  (``sparse_encode(..., backend="torch", device=...)``, what the estimator
  does, transfers included); and on tensors already on the device
  (``TorchBackend.encode_tensor``, compute only);
- with ``--sorted``, the network alone on terms already on the device,
  centered at the atoms' mean as ``sparse_encode`` centers them
  (``unrolled_encode``, no gradients), with its sort-free thresholds and
  with every projection sorted (``sorted_unrolled_encode``, how the torch
  backend encoded before the sort-free search);
- **training**: one epoch of unrolled training (Adam on minibatches,
  backpropagation through the encoder, gradient clipping: the loop of
  ``sklearn_wlsc.torch.train_unrolled`` without its per-epoch evaluation),
  against one alternating-minimization iteration with numba (exact encoding
  of every sample and the closed-form dictionary update), the other way to
  make one pass over the data.

Figures are µs per sample, medians of interleaved repeats after an untimed
warm-up (which also compiles the numba kernels); CUDA calls synchronize
before the clock stops. Speed-ups are numba time over torch time (above 1:
torch is faster). The numba runs, and CPU training, use at most
``--max-n-reference`` and ``--max-n-train-cpu`` samples (a prefix of the
data); per-sample figures make them comparable.

Data: samples are Dirichlet mixtures of 3 of ``m`` random Gaussian atoms
plus noise (σ = 0.1); the dictionary is the atoms, perturbed.

Usage::

    python benchmarks/torch_backend.py --n 20000 --m 64 256 --json out.json
    python benchmarks/torch_backend.py --n 1000000 --m 256 1024 --devices cuda
"""

import argparse

import numpy as np

try:
    from ._common import machine_info, machine_table, markdown_table, time_interleaved, write_json
except ImportError:  # run as a script: python benchmarks/torch_backend.py
    from _common import machine_info, machine_table, markdown_table, time_interleaved, write_json


def make_data(n, d, m, dtype, seed=0):
    """Samples near sparse convex combinations of random atoms, and a
    perturbed copy of the atoms."""
    rng = np.random.default_rng(seed)
    atoms = rng.standard_normal((m, d))
    k = min(3, m)
    idx = rng.integers(0, m, size=(n, k))
    w = rng.dirichlet(np.ones(k), size=n)
    Y = np.einsum("nk,nkd->nd", w, atoms[idx]) + 0.1 * rng.standard_normal((n, d))
    A = atoms + 0.05 * rng.standard_normal((m, d))
    return Y.astype(dtype), A.astype(dtype)


def _synced(fn, torch, device):
    """``fn`` followed by a CUDA synchronization when ``device`` is CUDA."""
    if device.type != "cuda":
        return fn

    def call():
        fn()
        torch.cuda.synchronize(device)

    return call


def sorted_unrolled_encode(torch, G, C, step, n_layers):
    """The torch unrolled encoder as it ran before the sort-free search:
    every projection sorted (``project_simplex``), no gradients. The
    baseline of ``--sorted``."""
    from sklearn_wlsc._backends import _torch as tb
    from sklearn_wlsc._backends._base import momentum_schedule

    betas = momentum_schedule(n_layers, tb._numpy_dtype(C.dtype)).tolist()
    step = float(tb._numpy_dtype(C.dtype).type(step))
    X = torch.zeros_like(C)
    Z = X
    with torch.no_grad():
        for k in range(n_layers):
            V = torch.addmm(C, Z, G, alpha=-1.0) if k else C.clone()
            V.mul_(step).add_(Z)
            X_new = tb.project_simplex(V)
            Z = torch.sub(X_new, X).mul_(betas[k]).add_(X_new)
            X = X_new
    return X


def _transform_funcs(torch, Y, A, device, args):
    """Callables timing the torch transforms on ``device``."""
    from sklearn_wlsc import sparse_encode
    from sklearn_wlsc._backends import _torch as tb
    from sklearn_wlsc._backends import get_backend

    backend = get_backend("torch", device=str(device))
    Yt, At = torch.from_numpy(Y).to(device), torch.from_numpy(A).to(device)
    kw = dict(alpha=args.alpha, algorithm="unrolled", n_layers=args.n_layers)
    funcs = {
        "numpy_io": _synced(
            lambda: sparse_encode(Y, A, backend="torch", device=str(device), **kw), torch, device
        ),
        "tensor": _synced(lambda: backend.encode_tensor(Yt, At, **kw), torch, device),
    }
    if args.sorted:
        # the network alone on the same terms, with each projection's
        # threshold found by the sort-free search and by sorting; centered
        # at the atoms' mean, as every encoding pass centers its data
        with torch.no_grad():
            shift = At.mean(dim=0)
            G, C = tb.encoder_terms(Yt - shift, At - shift, args.alpha)
        step = 1.0 / tb.lipschitz_constant(At)

        def sort_free():
            with torch.no_grad():
                tb.unrolled_encode(G, C, step, args.n_layers)

        funcs["network"] = _synced(sort_free, torch, device)
        funcs["network_sorted"] = _synced(
            lambda: sorted_unrolled_encode(torch, G, C, step, args.n_layers), torch, device
        )
    return funcs


def _train_epoch_func(torch, Y, A, device, args, seed=0):
    """A callable running one training epoch on ``device``."""
    from sklearn_wlsc.torch import UnrolledWLSC

    Yt = torch.from_numpy(Y).to(device)
    model = UnrolledWLSC(
        A.shape[0],
        A.shape[1],
        alpha=args.alpha,
        n_layers=args.n_layers,
        dictionary=A,
        device=device,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    n = Yt.shape[0]

    def epoch():
        perm = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n, args.batch_size):
            yb = Yt[perm[start : start + args.batch_size]]
            optimizer.zero_grad(set_to_none=True)
            model.loss(yb, model.encode(yb)).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()

    return _synced(epoch, torch, device)


def _alternating_iteration_func(Y, A, alpha):
    """A callable running one alternating iteration with numba."""
    from sklearn_wlsc import _dict_learning
    from sklearn_wlsc._backends import get_backend

    backend = get_backend("numba")
    A64 = A.astype(np.float64)

    def iteration():
        res = _dict_learning.encode_pass(
            Y, A, alpha, backend, algorithm="exact", keep_codes=False, statistics=True
        )
        _dict_learning.update_dictionary(*res.statistics, alpha, A64)

    return iteration


def bench_config(torch, n, m, devices, args):
    """Time one ``(n, m)`` on every device; returns one result dict per device."""
    from sklearn_wlsc import sparse_encode

    Y, A = make_data(n, args.d, m, args.dtype, seed=args.seed)
    n_ref = min(n, args.max_n_reference)
    kw = dict(alpha=args.alpha, algorithm="unrolled", n_layers=args.n_layers)
    ref = {"numba": lambda: sparse_encode(Y[:n_ref], A, backend="numba", **kw)}
    if not args.no_train:
        ref["alternating"] = _alternating_iteration_func(Y[:n_ref], A, args.alpha)
    t_ref = time_interleaved(ref, repeats=args.repeats)
    results = []
    for name in devices:
        device = torch.device(name)
        funcs = _transform_funcs(torch, Y, A, device, args)
        n_train = n if device.type != "cpu" else min(n, args.max_n_train_cpu)
        if not args.no_train:
            funcs["train"] = _train_epoch_func(torch, Y[:n_train], A, device, args)
        t = time_interleaved(funcs, repeats=args.repeats)
        us = {k: 1e6 * v["median"] for k, v in t.items()}
        nb = 1e6 * t_ref["numba"]["median"] / n_ref
        row = {
            "device": str(device),
            "n": n,
            "m": m,
            "d": args.d,
            "dtype": args.dtype,
            "numba_unrolled_us": nb,
            "torch_numpy_io_us": us["numpy_io"] / n,
            "torch_tensor_us": us["tensor"] / n,
            "speedup_numpy_io": nb / (us["numpy_io"] / n),
            "speedup_tensor": nb / (us["tensor"] / n),
            "network_us": us["network"] / n if args.sorted else None,
            "network_sorted_us": us["network_sorted"] / n if args.sorted else None,
            "numba_alternating_iter_us": None,
            "torch_train_epoch_us": None,
            "epoch_over_alternating": None,
            "n_reference": n_ref,
            "n_train": None,
        }
        if not args.no_train:
            alt = 1e6 * t_ref["alternating"]["median"] / n_ref
            epoch = us["train"] / n_train
            row.update(
                numba_alternating_iter_us=alt,
                torch_train_epoch_us=epoch,
                epoch_over_alternating=epoch / alt,
                n_train=n_train,
            )
        results.append(row)
    return results


def _table(results):
    headers = [
        "device",
        "n",
        "m",
        "numba unrolled",
        "torch (numpy I/O)",
        "speed-up",
        "torch (tensors)",
        "speed-up",
        "numba alternating iter",
        "torch train epoch",
        "epoch / alt. iter",
        "network, sort-free",
        "network, sorted",
    ]
    rows = [
        [
            r["device"],
            r["n"],
            r["m"],
            r["numba_unrolled_us"],
            r["torch_numpy_io_us"],
            r["speedup_numpy_io"],
            r["torch_tensor_us"],
            r["speedup_tensor"],
            r["numba_alternating_iter_us"],
            r["torch_train_epoch_us"],
            r["epoch_over_alternating"],
            r["network_us"],
            r["network_sorted_us"],
        ]
        for r in results
    ]
    return markdown_table(headers, rows)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.torch_backend", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--quick", action="store_true", help="n=2000, m=64: a CI smoke run")
    p.add_argument("--n", type=int, nargs="+", default=None, help="sample counts (default 20000)")
    p.add_argument("--m", type=int, nargs="+", default=None, help="atom counts (default 64 256)")
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--n-layers", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=1024, help="training minibatch size")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument(
        "--devices",
        nargs="+",
        default=None,
        help="torch devices (default: cpu, and cuda when available)",
    )
    p.add_argument("--repeats", type=int, default=None, help="timed rounds (default 3)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads of numba and of torch's CPU kernels (default: as configured)",
    )
    p.add_argument(
        "--max-n-reference",
        type=int,
        default=200_000,
        help="numba runs on at most this many samples",
    )
    p.add_argument(
        "--max-n-train-cpu",
        type=int,
        default=50_000,
        help="CPU training epochs run on at most this many samples",
    )
    p.add_argument("--no-train", action="store_true", help="time the transforms only")
    p.add_argument(
        "--sorted",
        action="store_true",
        help="also time the network alone with sort-free and with sorted projections",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    args = p.parse_args(argv)
    if args.n is None:
        args.n = [2000] if args.quick else [20000]
    if args.m is None:
        args.m = [64] if args.quick else [64, 256]
    if args.repeats is None:
        args.repeats = 3
    return args


def main(argv=None):
    """Run the benchmark, print a markdown table; return the results dict."""
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        print("torch is not installed: skipping the torch backend benchmark.")
        return {}
    from sklearn_wlsc._backends import _threads

    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    results = []
    # the numba kernels' threads are set per calling thread, for this block
    with _threads.limit_threads(args.threads or None):
        info = machine_info()
        info.update(
            torch=torch.__version__,
            torch_threads=torch.get_num_threads(),
            numba_threads_used=_threads.current_threads(),
            cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        )
        for n in args.n:
            for m in args.m:
                results.extend(bench_config(torch, n, m, devices, args))
    report = {"benchmark": "torch_backend", "machine": info, "args": vars(args), "results": results}
    print("# The torch backend against numba\n")
    print(machine_table(info))
    print(
        f"\nµs per sample, medians of {args.repeats}; {args.n_layers} layers, d={args.d}, "
        f"{args.dtype}, α={args.alpha}; numba {info['numba_threads_used']} threads, torch "
        f"{info['torch_threads']} threads"
        + (f"; {info['cuda']}" if info["cuda"] else "")
        + f"; training batch {args.batch_size}\n"
    )
    print(_table(results))
    if args.json:
        write_json(args.json, report)
    return report


run = main

if __name__ == "__main__":
    main()
