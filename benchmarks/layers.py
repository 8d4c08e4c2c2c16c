"""Where does the unrolled encoder's time go, layer by layer?

The unrolled encoder's cost per layer is not constant: the first layers
project a step from zero that is nearly dense, so their products ``zG`` run
over most rows of ``G`` and their threshold searches take more passes; once
the codes are sparse, a layer costs a fraction of that. This benchmark
measures the profile. For each size ``(n, d = m)``, each ``α`` and each
dtype, ``sparse_encode(Y, A, alpha=α, algorithm="unrolled", n_layers=K,
backend="numba")`` is timed for every ``K`` of a grid (default
``1 2 3 5 10 20 30 50``), all ``K`` round-robin in the same process (medians
of interleaved repeats after an untimed warm-up, so JIT compilation is
excluded). Printed for each ``K``:

- µs per sample for ``K`` layers (every row includes the fixed costs of a
  call: validation, centering and the ``Y Aᵀ`` product);
- ns per sample per layer between the previous ``K`` and this one (the
  marginal cost of those layers);
- the mean number of nonzeros of the codes after ``K`` layers, and of the
  last layer's momentum point (what the next product would sweep), in the
  numpy reference network; and the nonzeros of the numba backend's codes,
  which should be the same (where they are more, they are rounding dust
  that the numba layers sweep as if it were support);
- once per configuration, numpy GEMM's ns per sample for one dense product
  ``Z @ G`` of shape ``(n, m) × (m, m)``: what one layer would cost as a
  dense product at the BLAS roofline, timed in the same rounds.

The data are those of ``benchmarks/encode.py`` (a mixture around random
atoms, the dictionary ``m`` random samples). Everything runs on
``--threads`` threads (default 1, where per-layer costs are clearest; numpy's
BLAS is limited to the same number).

Run ``python -m benchmarks.layers --help`` for the options.
"""

import argparse

import numpy as np
from threadpoolctl import threadpool_limits

try:
    from ._common import machine_info, machine_table, markdown_table, time_interleaved, write_json
    from .encode import make_data
except ImportError:  # run as a script: python benchmarks/layers.py
    from _common import machine_info, machine_table, markdown_table, time_interleaved, write_json
    from encode import make_data

DEFAULT_SIZES = ["20000x64", "4000x256"]
QUICK_SIZES = ["2000x64", "500x256"]
DEFAULT_LAYERS = [1, 2, 3, 5, 10, 20, 30, 50]


def momentum_support(Y, A, alpha, n_layers, dtype):
    """Mean nonzeros of the codes and of the momentum point after
    ``n_layers`` layers, from the numpy reference network on the centered
    rows, with its terms in ``dtype`` as the backends form them."""
    from sklearn_wlsc import _objective
    from sklearn_wlsc._backends._base import momentum_schedule
    from sklearn_wlsc._backends._numpy import unrolled_encode

    mean = A.mean(axis=0)
    G, C = _objective.encoder_terms(Y - mean, A - mean, alpha)
    G, C = G.astype(dtype), C.astype(dtype)
    L = _objective.lipschitz_constant(A)
    # the network is run from zero, so its first n_layers - 1 layers are
    # the shorter network's, and z = x + β (x − x_previous)
    X = unrolled_encode(G, C, L, n_layers)
    X_previous = unrolled_encode(G, C, L, n_layers - 1)
    Z = X + momentum_schedule(n_layers, dtype)[-1] * (X - X_previous)
    return np.count_nonzero(X) / len(X), np.count_nonzero(Z) / len(Z)


def bench_config(n, m, alpha, dtype, args, rng):
    """Time every depth of the grid for one configuration."""
    from sklearn_wlsc import sparse_encode

    Y, A = make_data(n, m, m, rng)
    Y, A = Y.astype(dtype), A.astype(dtype)

    def encoder(k):
        def run():
            return sparse_encode(
                Y,
                A,
                alpha=alpha,
                algorithm="unrolled",
                n_layers=k,
                backend="numba",
                n_jobs=args.threads,
            )

        return run

    funcs = {f"K={k}": encoder(k) for k in args.layers}
    Z = np.ascontiguousarray(rng.random((n, m)).astype(dtype))
    G = np.ascontiguousarray((A @ A.T).astype(dtype))
    out = np.empty_like(Z)
    funcs["gemm"] = lambda: np.matmul(Z, G, out=out)
    with threadpool_limits(limits=args.threads):
        timings = time_interleaved(funcs, repeats=args.repeats)

    sub = Y[: args.support_samples]
    rows = []
    previous = (0, None)
    for k in args.layers:
        t = timings[f"K={k}"]
        us = t["median"] / n * 1e6
        k0, us0 = previous
        marginal = None if us0 is None else (us - us0) * 1e3 / (k - k0)
        nnz_x, nnz_z = momentum_support(sub, A, alpha, k, np.dtype(dtype))
        X_numba = sparse_encode(
            sub, A, alpha=alpha, algorithm="unrolled", n_layers=k, backend="numba"
        )
        spread = (t["max"] - t["min"]) / t["median"]
        rows.append(
            {
                "n_layers": k,
                "us_per_sample": us,
                "ns_per_layer_since_previous": marginal,
                "spread": spread,
                "nnz_codes": nnz_x,
                "nnz_momentum": nnz_z,
                "nnz_codes_numba": np.count_nonzero(X_numba) / len(X_numba),
            }
        )
        previous = (k, us)
    return {
        "n": n,
        "m": m,
        "alpha": alpha,
        "dtype": np.dtype(dtype).name,
        "gemm_ns_per_sample": timings["gemm"]["median"] / n * 1e9,
        "rows": rows,
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.layers", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"small sizes for a CI smoke run ({' '.join(QUICK_SIZES)}), 3 repeats",
    )
    p.add_argument("--sizes", nargs="+", metavar="NxM", help="sizes n x (d = m)")
    p.add_argument("--alphas", nargs="+", type=float, default=[0.0, 0.5])
    p.add_argument("--dtypes", nargs="+", default=["float64"], choices=["float64", "float32"])
    p.add_argument("--layers", nargs="+", type=int, default=DEFAULT_LAYERS, help="depths K to time")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5, quick 3)")
    p.add_argument("--threads", type=int, default=1, help="threads of the encoder and BLAS")
    p.add_argument(
        "--support-samples",
        type=int,
        default=1000,
        help="rows of the numpy reference run that counts the nonzeros",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    args = p.parse_args(argv)
    if args.sizes is None:
        args.sizes = QUICK_SIZES if args.quick else DEFAULT_SIZES
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if any(k < 1 for k in args.layers):
        p.error("--layers must be positive")
    args.layers = sorted(set(args.layers))
    return args


def main(argv=None):
    """Run the benchmark, print markdown tables; return the results dict."""
    args = parse_args(argv)
    info = machine_info()
    results = []
    for size in args.sizes:
        n, m = (int(s) for s in size.lower().split("x"))
        for dtype in args.dtypes:
            for alpha in args.alphas:
                rng = np.random.default_rng(args.seed)
                results.append(bench_config(n, m, float(alpha), dtype, args, rng))
    print("# The unrolled encoder's cost, layer by layer\n")
    print(machine_table(info))
    print(f"\nthreads: {args.threads}; medians of {args.repeats} interleaved rounds\n")
    for r in results:
        print(
            f"## n={r['n']}, d=m={r['m']}, α={r['alpha']:g}, {r['dtype']}: one dense "
            f"product Z @ G costs {r['gemm_ns_per_sample']:.0f} ns/sample\n"
        )
        rows = [
            (
                row["n_layers"],
                row["us_per_sample"],
                "–"
                if row["ns_per_layer_since_previous"] is None
                else row["ns_per_layer_since_previous"],
                row["nnz_codes"],
                row["nnz_momentum"],
                row["nnz_codes_numba"],
                row["spread"],
            )
            for row in r["rows"]
        ]
        print(
            markdown_table(
                [
                    "layers K",
                    "µs/sample",
                    "ns/sample per layer since previous K",
                    "nonzeros of codes",
                    "nonzeros of momentum point",
                    "nonzeros of numba's codes",
                    "spread",
                ],
                rows,
            )
        )
        print()
    report = {"benchmark": "layers", "machine": info, "args": vars(args), "results": results}
    if args.json:
        write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
