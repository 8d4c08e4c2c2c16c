"""Out-of-core fit and transform on dask, against the in-memory path.

Question: how fast is the distributed alternating fit and the blockwise
transform, and does a worker's memory stay bounded when the data set is
larger than what one worker may hold?

The data are a mixture of 16 Gaussian clusters in ``d`` dimensions,
generated lazily block by block on the workers (never in memory at once).
A LocalCluster of 2 single-threaded worker processes, each with a memory
limit, fits and transforms ``--n`` rows; the in-memory path (numba on 2
threads) and the dask path both run on ``--n-memory`` rows from the same
initial dictionary, so their objectives can be compared. A thread on each
worker samples its resident memory every 50 ms.

Usage::

    python benchmarks/dask_scaling.py --quick
    python benchmarks/dask_scaling.py --n 2000000 --json dask_scaling.json
"""

import argparse
import importlib.util
import os
import statistics
import sys
import threading
import time
import warnings

import numpy as np

try:
    from ._common import machine_info, machine_table, markdown_table, write_json
except ImportError:  # run as a script: python benchmarks/dask_scaling.py
    from _common import machine_info, machine_table, markdown_table, write_json

if importlib.util.find_spec("sklearn_wlsc") is None:  # a source checkout, not installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

N_CLUSTERS = 16


def _mixture_block(noise, centers, block_info=None):
    """Cluster centers plus noise for one block; labels seeded by the block."""
    seed = 1 + block_info[0]["chunk-location"][0]
    labels = np.random.default_rng(seed).integers(0, centers.shape[0], noise.shape[0])
    return centers[labels] + noise


def make_data(n, d, chunk, seed=0):
    """A lazy ``(n, d)`` float64 dask array of clustered samples."""
    import dask.array as da

    centers = 3.0 * np.random.default_rng(seed).standard_normal((N_CLUSTERS, d))
    noise = da.random.default_rng(seed).standard_normal((n, d), chunks=(chunk, d))
    return noise.map_blocks(_mixture_block, centers, dtype=np.float64)


def _rss_monitor(dask_worker, reset=False):
    """Start (once) a thread sampling this worker's RSS; return the peak
    since the last reset, in bytes."""
    import psutil

    state = getattr(dask_worker, "_wlsc_rss", None)
    if state is None:
        state = dask_worker._wlsc_rss = {"peak": 0, "stop": False}
        proc = psutil.Process()

        def sample():
            while not state["stop"]:
                state["peak"] = max(state["peak"], proc.memory_info().rss)
                time.sleep(0.05)

        threading.Thread(target=sample, daemon=True, name="wlsc-rss").start()
    peak = state["peak"] = max(state["peak"], psutil.Process().memory_info().rss)
    if reset:
        state["peak"] = 0
    return peak


def worker_peaks(client, reset=True):
    """Peak RSS of each worker in MiB since the last reset."""
    out = client.run(_rss_monitor, reset=reset)
    return {addr: round(v / 2**20, 1) for addr, v in out.items()}


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run_in_memory(Y, A0, args):
    from sklearn_wlsc import _dict_learning
    from sklearn_wlsc._backends import get_backend

    backend = get_backend("numba")
    n = Y.shape[0]
    rs = np.random.RandomState(0)
    _, t_init = timed(lambda: _dict_learning.init_dictionary(Y, args.m, "k-means++", rs))
    (A, hist, n_iter, _), t_fit = timed(
        lambda: _dict_learning.alternating_fit(
            Y,
            A0,
            args.alpha,
            backend,
            max_iter=args.max_iter,
            tol=0.0,
            encode_params={"tol": 1e-10, "max_iter": None},
            n_jobs=2,
        )
    )
    t_tr = statistics.median(
        timed(lambda: _dict_learning.encode_pass(Y, A, args.alpha, backend, n_jobs=2))[1]
        for _ in range(args.repeats)
    )
    return {
        "path": "in-memory",
        "n": n,
        "init_s": t_init,
        "fit_s": t_fit,
        "fit_samples_per_s": n * (n_iter + 1) / t_fit,
        "transform_s": t_tr,
        "transform_samples_per_s": n / t_tr,
        "objective": hist[-1],
        "n_iter": n_iter,
    }


def run_dask(client, Yd, A0, args):
    from sklearn_wlsc import _dask

    n = Yd.shape[0]
    worker_peaks(client)  # reset
    C, t_init = timed(lambda: _dask.init_dictionary_dask(Yd, args.m, "k-means++", 0))
    peak_init = worker_peaks(client)
    A0 = C if A0 is None else A0
    (A, hist, n_iter, _), t_fit = timed(
        lambda: _dask.alternating_fit_dask(
            Yd,
            A0,
            args.alpha,
            max_iter=args.max_iter,
            tol=0.0,
            encode_params={"tol": 1e-10, "max_iter": None},
        )
    )
    peak_fit = worker_peaks(client)
    codes = _dask.encode_dask(Yd, A, args.alpha)
    # reduced on the workers: the codes never reach the client
    runs = [timed(lambda: codes.sum(axis=0).compute()) for _ in range(args.repeats)]
    usage, t_tr = runs[0][0], statistics.median(t for _, t in runs)
    peak_tr = worker_peaks(client)
    assert abs(usage.sum() - n) < 1e-6 * n
    return {
        "path": "dask",
        "n": n,
        "init_s": t_init,
        "fit_s": t_fit,
        "fit_samples_per_s": n * (n_iter + 1) / t_fit,
        "transform_s": t_tr,
        "transform_samples_per_s": n / t_tr,
        "objective": hist[-1],
        "n_iter": n_iter,
        "peak_rss_mib": {
            "init": max(peak_init.values()),
            "fit": max(peak_fit.values()),
            "transform": max(peak_tr.values()),
        },
        "data_mib": round(Yd.nbytes / 2**20, 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000_000, help="rows of the dask run")
    parser.add_argument("--n-memory", type=int, default=200_000, help="rows of the comparison")
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--m", type=int, default=64)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--chunk", type=int, default=50_000)
    parser.add_argument("--max-iter", type=int, default=3)
    parser.add_argument("--memory-limit", default="1GiB", help="per worker")
    parser.add_argument("--repeats", type=int, default=1, help="timed transforms (median)")
    parser.add_argument("--quick", action="store_true", help="100k rows, 2 iterations")
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.n_memory, args.max_iter, args.chunk = 100_000, 50_000, 2, 25_000
    if any(importlib.util.find_spec(mod) is None for mod in ("dask", "distributed", "psutil")):
        print("dask_scaling: skipped (needs dask, distributed and psutil)")
        return {}

    import distributed

    from sklearn_wlsc import _dict_learning

    warnings.simplefilter("ignore")  # max_iter is fixed on purpose (tol=0)
    info = machine_info()
    report = {"benchmark": "dask_scaling", "machine": info, "args": vars(args), "runs": []}
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
            memory_limit=args.memory_limit,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        workers = set(client.scheduler_info()["workers"])
        client.run(lambda: __import__("sklearn_wlsc._dask") and None)
        worker_peaks(client)
        report["worker_baseline_rss_mib"] = max(worker_peaks(client).values())

        # same data, same initial atoms: in memory and on dask
        Y_small = make_data(args.n_memory, args.d, args.chunk)
        Y_mem = Y_small.compute(scheduler="sync")
        A0 = _dict_learning.init_dictionary(Y_mem, args.m, "random", np.random.RandomState(0))
        mem = run_in_memory(Y_mem, A0, args)
        del Y_mem
        small = run_dask(client, Y_small, A0, args)
        small["objective_rel_diff_vs_in_memory"] = abs(small["objective"] - mem["objective"]) / abs(
            mem["objective"]
        )
        report["runs"] += [mem, small]
        if args.n != args.n_memory:
            report["runs"].append(
                run_dask(client, make_data(args.n, args.d, args.chunk), None, args)
            )
        report["dead_workers"] = len(workers - set(client.scheduler_info()["workers"]))

    print(machine_table(info))
    print()
    rows = []
    for r in report["runs"]:
        peak = r.get("peak_rss_mib") or {}
        rows.append(
            [
                r["path"], r["n"], r["init_s"], r["fit_s"], r["fit_samples_per_s"],
                r["transform_s"], r["transform_samples_per_s"], r["objective"],
                peak.get("init", "-"), peak.get("fit", "-"), peak.get("transform", "-"),
            ]
        )  # fmt: skip
    headers = [
        "path", "rows", "init s", "fit s", "fit samples/s", "transform s",
        "transform samples/s", "F", "peak MiB init", "peak MiB fit", "peak MiB transform",
    ]  # fmt: skip
    print(markdown_table(headers, rows))
    print()
    print(
        f"dask / in-memory on {small['n']} rows: fit throughput "
        f"{small['fit_samples_per_s'] / mem['fit_samples_per_s']:.2f}, transform "
        f"{small['transform_samples_per_s'] / mem['transform_samples_per_s']:.2f}; "
        f"relative difference of F {small['objective_rel_diff_vs_in_memory']:.1e} "
        f"(same initial atoms). Fit throughput counts the {args.max_iter + 1} encoding "
        "passes of the fit."
    )
    print(
        f"2 workers x 1 thread, memory limit {args.memory_limit} each; worker RSS at rest "
        f"{report['worker_baseline_rss_mib']:.0f} MiB; data set of the largest run "
        f"{report['runs'][-1]['data_mib']:.0f} MiB; dead workers: {report['dead_workers']}."
    )
    if args.json:
        write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
