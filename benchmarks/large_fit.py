"""Does ``fit`` scale to MNIST-sized data with many atoms?

``WeightedL1SparseCoder(n_components=500, random_state=0)``, default
settings otherwise, fitted on ``70,000 × 784`` synthetic data of MNIST's
shape: non-negative sparse mixtures (Dirichlet weights, concentration 0.05)
of 100 random smooth elongated blobs on a 28 × 28 grid, plus Gaussian noise
(σ = 0.05). The fit runs in a fresh interpreter, after an untimed fit on
2,000 samples that compiles the kernels; reported: wall time (and how much of it
the k-means++ initialization took), iterations, time per iteration, final
objective, the peak of the fit's numpy allocations (:mod:`tracemalloc`)
against the size of the data, and the process's peak resident memory
(which includes generating the data). Goal: under 10 minutes on 2 cores
with memory bounded by a small multiple of the data.

``--sklearn`` adds scikit-learn's ``MiniBatchDictionaryLearning`` with the
same ``n_components`` for one epoch (``max_iter=1``), in its own fresh
interpreter, as a per-pass reference.

Usage::

    python -m benchmarks.large_fit                    # 70,000 × 784, m = 500
    python -m benchmarks.large_fit --quick            # 7,000 × 784, m = 100
    python -m benchmarks.large_fit --sklearn --json /tmp/large_fit.json
"""

import argparse
import json

try:
    from ._common import machine_info, machine_table, markdown_table, run_python, write_json
except ImportError:  # run as a script: python benchmarks/large_fit.py
    from _common import machine_info, machine_table, markdown_table, run_python, write_json

_DATA = """
import numpy as np
def make_data(n, side=28, n_prototypes=100, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    P = np.empty((n_prototypes, side * side))
    for i in range(n_prototypes):
        cy, cx = rng.uniform(0.2 * side, 0.8 * side, 2)
        sy, sx = rng.uniform(side / 14, side / 4.5, 2)
        th = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
        v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
        P[i] = np.exp(-0.5 * (u / sx) ** 2 - 0.5 * (v / sy) ** 2).ravel()
    W = rng.dirichlet(np.full(n_prototypes, 0.05), size=n)
    return W @ P + 0.05 * rng.standard_normal((n, side * side))
"""

_OURS = (
    _DATA
    + """
import json, resource, time, tracemalloc, warnings
from sklearn_wlsc import WeightedL1SparseCoder
Y = make_data({n})
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    WeightedL1SparseCoder({m}, max_iter=2, random_state=0).fit(Y[:2000])
from sklearn_wlsc import _dict_learning
init_dictionary, init_seconds = _dict_learning.init_dictionary, []
def timed_init(*args, **kwargs):  # time the k-means++ initialization
    t = time.perf_counter()
    A = init_dictionary(*args, **kwargs)
    init_seconds.append(time.perf_counter() - t)
    return A
_dict_learning.init_dictionary = timed_init
tracemalloc.start()
t = time.perf_counter()
est = WeightedL1SparseCoder({m}, random_state=0).fit(Y)
seconds = time.perf_counter() - t
_, traced_peak = tracemalloc.get_traced_memory()
print(json.dumps({{
    "seconds": seconds, "n_iter": int(est.n_iter_), "objective": float(est.objective_),
    "init_seconds": init_seconds[0],
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "traced_peak_bytes": traced_peak, "data_bytes": Y.nbytes,
}}))
"""
)

_SKLEARN = (
    _DATA
    + """
import json, resource, time, tracemalloc, warnings
from sklearn.decomposition import MiniBatchDictionaryLearning
Y = make_data({n})
tracemalloc.start()
t = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    est = MiniBatchDictionaryLearning({m}, max_iter=1, random_state=0).fit(Y)
seconds = time.perf_counter() - t
_, traced_peak = tracemalloc.get_traced_memory()
print(json.dumps({{
    "seconds": seconds, "n_iter": int(est.n_iter_), "objective": None, "init_seconds": None,
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "traced_peak_bytes": traced_peak, "data_bytes": Y.nbytes,
}}))
"""
)


def main(argv=None):
    """Run the benchmark, print markdown tables; return the results dict."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.large_fit", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--n", type=int, default=None, help="samples (default 70,000; quick 7,000)")
    p.add_argument("--m", type=int, default=None, help="atoms (default 500; quick 100)")
    p.add_argument("--quick", action="store_true", help="CI smoke run: 7,000 samples, 100 atoms")
    p.add_argument("--sklearn", action="store_true", help="also one epoch of scikit-learn's MBDL")
    p.add_argument("--repeats", type=int, default=1, help="accepted for the runner; unused")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    args = p.parse_args(argv)
    n = args.n or (7_000 if args.quick else 70_000)
    m = args.m or (100 if args.quick else 500)
    info = machine_info()
    cases = {"ours WeightedL1SparseCoder (default fit)": _OURS}
    if args.sklearn:
        cases["sklearn MiniBatchDictionaryLearning (max_iter=1)"] = _SKLEARN
    records = {}
    for name, code in cases.items():
        rec = json.loads(run_python(code.format(n=n, m=m), timeout=7200).splitlines()[-1])
        rec["s_per_iter"] = rec["seconds"] / max(rec["n_iter"], 1)
        rec["traced_peak_over_data"] = rec["traced_peak_bytes"] / rec["data_bytes"]
        records[name] = rec
    print(f"# Fit at scale: n={n:,}, d=784, n_components={m}, float64\n")
    print(machine_table(info))
    print()
    print(
        markdown_table(
            [
                "estimator",
                "fit s",
                "iterations",
                "s / iteration",
                "of which init s",
                "objective",
                "data MiB",
                "fit's traced peak MiB",
                "÷ data",
                "process peak RSS MiB",
            ],
            [
                [
                    name,
                    r["seconds"],
                    r["n_iter"],
                    r["s_per_iter"],
                    r["init_seconds"] if r["init_seconds"] is not None else "–",
                    r["objective"] if r["objective"] is not None else "–",
                    r["data_bytes"] / 2**20,
                    r["traced_peak_bytes"] / 2**20,
                    r["traced_peak_over_data"],
                    r["peak_rss_bytes"] / 2**20,
                ]
                for name, r in records.items()
            ],
        )
    )
    report = {"benchmark": "large_fit", "machine": info, "n": n, "d": 784, "m": m}
    report["methods"] = records
    if args.json:
        write_json(args.json, report)
    return report


run = main

if __name__ == "__main__":
    main()
