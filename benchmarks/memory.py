"""How much memory does ``transform`` take beyond its output?

``WeightedL1SparseCoder.transform`` of ``n × d`` samples (default
``10⁶ × 64``, 64 atoms, float64) with the exact and the unrolled encoder,
each in a fresh interpreter so that nothing else is on the heap. Two
measures of the memory the call needs, as a multiple of the output array
(``n × m × 8`` bytes):

- **traced peak**: the peak of :mod:`tracemalloc` during the call, which
  sees every numpy allocation (the output included) but not the small
  per-thread scratch of the numba kernels;
- **RSS growth**: the process's peak resident set size after the call minus
  its peak before (the input already resident), from ``getrusage``.

The floor is numpy's ``Y @ A.T``, which allocates exactly one output-sized
array. Goal: under 2× the output. The estimator is fitted beforehand on the
first 5,000 samples (3 alternating iterations); kernels are compiled by a
small untimed transform first.

Usage::

    python -m benchmarks.memory                 # n = 1,000,000
    python -m benchmarks.memory --n 200000 --json /tmp/memory.json
"""

import argparse
import json

try:
    from ._common import machine_info, machine_table, markdown_table, run_python, write_json
except ImportError:  # run as a script: python benchmarks/memory.py
    from _common import machine_info, machine_table, markdown_table, run_python, write_json

_CODE = """
import json, resource, time, tracemalloc, warnings
import numpy as np
n, d, m, method = {n}, {d}, {m}, {method!r}
Y = np.random.default_rng(0).standard_normal((n, d))
A = Y[:m].copy()
if method == "numpy Y @ A.T":
    call = lambda: Y @ A.T
else:
    from sklearn_wlsc import WeightedL1SparseCoder
    algorithm = method.split()[1]
    est = WeightedL1SparseCoder(
        m, max_iter=3, random_state=0, transform_algorithm=algorithm
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(Y[:5000])
    est.transform(Y[:100])
    call = lambda: est.transform(Y)
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
tracemalloc.start()
t = time.perf_counter()
out = call()
seconds = time.perf_counter() - t
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{
    "seconds": seconds, "output_bytes": out.nbytes, "traced_peak_bytes": peak,
    "rss_growth_bytes": max(0, rss_after - rss_before),
}}))
"""

METHODS = ["ours exact", "ours unrolled", "numpy Y @ A.T"]


def main(argv=None):
    """Run the benchmark, print markdown tables; return the results dict."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.memory", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--n", type=int, default=None, help="samples (default 1,000,000; quick 100,000)")
    p.add_argument("--d", type=int, default=64, help="features (default 64)")
    p.add_argument("--m", type=int, default=64, help="atoms (default 64)")
    p.add_argument("--quick", action="store_true", help="CI smoke run: n = 100,000")
    p.add_argument("--repeats", type=int, default=1, help="accepted for the runner; unused")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    args = p.parse_args(argv)
    n = args.n or (100_000 if args.quick else 1_000_000)
    info = machine_info()
    records = {}
    for method in METHODS:
        out = run_python(_CODE.format(n=n, d=args.d, m=args.m, method=method), timeout=3600)
        rec = json.loads(out.splitlines()[-1])
        rec["traced_peak_over_output"] = rec["traced_peak_bytes"] / rec["output_bytes"]
        rec["rss_growth_over_output"] = rec["rss_growth_bytes"] / rec["output_bytes"]
        records[method] = rec
    rows = [
        [
            method,
            f"{r['output_bytes'] / 2**20:.0f}",
            f"{r['traced_peak_bytes'] / 2**20:.0f}",
            f"{r['traced_peak_over_output']:.3f}",
            f"{r['rss_growth_bytes'] / 2**20:.0f}",
            f"{r['rss_growth_over_output']:.3f}",
            f"{r['seconds']:.2f}",
        ]
        for method, r in records.items()
    ]
    print(f"# Memory of transform: n={n:,}, d={args.d}, m={args.m}, float64\n")
    print(machine_table(info))
    print()
    print(
        markdown_table(
            [
                "method",
                "output MiB",
                "traced peak MiB",
                "÷ output",
                "RSS growth MiB",
                "÷ output",
                "seconds",
            ],
            rows,
        )
    )
    report = {"benchmark": "memory", "machine": info, "n": n, "d": args.d, "m": args.m}
    report["methods"] = records
    if args.json:
        write_json(args.json, report)
    return report


run = main

if __name__ == "__main__":
    main()
