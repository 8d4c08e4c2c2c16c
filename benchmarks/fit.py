"""How long do fitting, importing and the first call take, against scikit-learn?

Three questions, each answered by ratios to peers timed in the same run:

1. **Fit on digits.** ``WeightedL1SparseCoder(n_components=64).fit`` against
   scikit-learn's ``MiniBatchDictionaryLearning(n_components=64)`` and
   ``DictionaryLearning(n_components=64)``, all with their default settings
   and ``random_state=0``, on the 1797 × 64 digits (float64). Our first fit
   (the JIT compilation) is excluded by an untimed warm-up fit on a small
   subset. ``DictionaryLearning`` takes about half a minute per iteration
   here and would run for hours at its default ``max_iter=1000``, so it is
   capped (``--dl-max-iter``, default 2) and compared per pass over the
   data as well as in total. The three methods minimize different
   objectives, so the time ratios say what a default fit costs, not which
   is better.
2. **Import time** in a fresh interpreter, median of 5 interleaved
   subprocesses each: ``import sklearn_wlsc`` (public names load lazily),
   ``from sklearn_wlsc import WeightedL1SparseCoder`` (which needs
   scikit-learn's base classes), and, as the floor and the peer,
   ``import sklearn.base`` and ``import sklearn.decomposition``.
3. **First-call latency.** In a fresh interpreter, ``fit_transform`` on tiny
   data (60 × 8, 4 atoms): *cold* with ``NUMBA_CACHE_DIR`` pointing at a new
   empty folder (every kernel is compiled), *warm* with it pointing at a
   folder filled by an earlier run (kernels are loaded from the on-disk
   cache), and *hot*: the second call in the same process. The peer is the
   first ``MiniBatchDictionaryLearning(n_components=4).fit_transform`` in a
   fresh interpreter.

Run ``python -m benchmarks.fit --help`` for the options.
"""

import argparse
import json
import shutil
import statistics
import tempfile
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

try:
    from ._common import (
        machine_info,
        machine_table,
        markdown_table,
        run_python,
        time_interleaved,
        write_json,
    )
except ImportError:  # run as a script: python benchmarks/fit.py
    from _common import (
        machine_info,
        machine_table,
        markdown_table,
        run_python,
        time_interleaved,
        write_json,
    )


# -- 1. fit on digits ---------------------------------------------------------

OURS = "ours WeightedL1SparseCoder"
OURS_BLAS1 = "ours WeightedL1SparseCoder, numpy BLAS on 1 thread"


def bench_fit(args):
    from sklearn.datasets import load_digits
    from sklearn.decomposition import DictionaryLearning, MiniBatchDictionaryLearning

    from sklearn_wlsc import WeightedL1SparseCoder

    X, _ = load_digits(return_X_y=True)
    X = X.astype(np.float64)
    if args.n_samples:
        X = X[: args.n_samples]
    k = args.n_components

    # compile our kernels (untimed) on a small subset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        WeightedL1SparseCoder(n_components=k, random_state=0, max_iter=2).fit(X[:200])

    fitted = {}

    def make(name, factory):
        def fit():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning of capped fits
                fitted[name] = factory().fit(X)

        return fit

    def ours_blas1():
        # the same fit with numpy's BLAS on one thread: the fit's BLAS calls
        # are small (m × m), and multithreaded BLAS on a busy machine spins
        with threadpool_limits(limits=1, user_api="blas"):
            make(OURS_BLAS1, lambda: WeightedL1SparseCoder(n_components=k, random_state=0))()

    mb_kwargs = {} if args.mb_max_iter is None else {"max_iter": args.mb_max_iter}
    peers = {
        OURS: lambda: WeightedL1SparseCoder(n_components=k, random_state=0),
        "sklearn MiniBatchDictionaryLearning": lambda: MiniBatchDictionaryLearning(
            n_components=k, random_state=0, **mb_kwargs
        ),
        f"sklearn DictionaryLearning (max_iter={args.dl_max_iter})": lambda: DictionaryLearning(
            n_components=k, random_state=0, max_iter=args.dl_max_iter
        ),
    }
    funcs = {name: make(name, f) for name, f in peers.items()}
    funcs[OURS_BLAS1] = ours_blas1
    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        timings = time_interleaved(funcs, repeats=args.repeats, warmup=0)
    records = {}
    for name in funcs:
        est = fitted[name]
        n_iter = float(est.n_iter_)
        t = timings[name]["median"]
        records[name] = {
            "median_s": t,
            "min_s": timings[name]["min"],
            "max_s": timings[name]["max"],
            "n_iter": n_iter,
            "s_per_pass": t / n_iter if n_iter else None,
        }
    ours = records[OURS]
    for rec in records.values():
        rec["this_over_ours"] = rec["median_s"] / ours["median_s"]
        if rec["s_per_pass"] and ours["s_per_pass"]:
            rec["per_pass_this_over_ours"] = rec["s_per_pass"] / ours["s_per_pass"]
    ours["objective"] = float(fitted[OURS].objective_)
    return {
        "n_samples": X.shape[0],
        "n_features": X.shape[1],
        "n_components": k,
        "methods": records,
    }


# -- 2. import time -----------------------------------------------------------

_IMPORT_CODE = """
import sys, time, json
t = time.perf_counter()
{statement}
dt = time.perf_counter() - t
print(json.dumps({{"s": dt, "numba": "numba" in sys.modules, "torch": "torch" in sys.modules}}))
"""

# the package alone (its names load lazily), our estimator (which needs
# scikit-learn's base classes), and scikit-learn's own floor and peer
IMPORTS = [
    "import sklearn_wlsc",
    "from sklearn_wlsc import WeightedL1SparseCoder",
    "import sklearn.base",
    "import sklearn.decomposition",
]


def bench_import(args):
    out = {m: [] for m in IMPORTS}
    for r in range(args.import_repeats):
        j = r % len(IMPORTS)
        for m in IMPORTS[j:] + IMPORTS[:j]:
            out[m].append(json.loads(run_python(_IMPORT_CODE.format(statement=m))))
    records = {}
    for m, runs in out.items():
        records[m] = {
            "median_s": statistics.median(x["s"] for x in runs),
            "imports_numba": runs[0]["numba"],
            "imports_torch": runs[0]["torch"],
        }
    ref = records["import sklearn.decomposition"]["median_s"]
    for rec in records.values():
        rec["over_sklearn_decomposition"] = rec["median_s"] / ref
    return records


# -- 3. first-call latency -----------------------------------------------------

_FIRST_CALL_CODE = """
import time, json
t0 = time.perf_counter()
import numpy as np
{import_line}
t1 = time.perf_counter()
X = np.random.default_rng(0).standard_normal((60, 8))
est = {estimator}
t = time.perf_counter(); est.fit_transform(X); first = time.perf_counter() - t
t = time.perf_counter(); est.fit_transform(X); second = time.perf_counter() - t
print(json.dumps({{"import": t1 - t0, "first": first, "second": second}}))
"""

_OURS = _FIRST_CALL_CODE.format(
    import_line="from sklearn_wlsc import WeightedL1SparseCoder",
    estimator="WeightedL1SparseCoder(n_components=4, random_state=0)",
)
_SKLEARN = _FIRST_CALL_CODE.format(
    import_line="from sklearn.decomposition import MiniBatchDictionaryLearning",
    estimator="MiniBatchDictionaryLearning(n_components=4, random_state=0)",
)


def bench_first_call(args):
    warm_dir = tempfile.mkdtemp(prefix="wlsc-numba-warm-")
    cold_dirs = []
    try:
        run_python(_OURS, env={"NUMBA_CACHE_DIR": warm_dir})  # fills the warm cache

        def cold():
            d = tempfile.mkdtemp(prefix="wlsc-numba-cold-")
            cold_dirs.append(d)
            return json.loads(run_python(_OURS, env={"NUMBA_CACHE_DIR": d}))

        kinds = {
            "ours cold (empty NUMBA_CACHE_DIR)": cold,
            "ours warm (filled NUMBA_CACHE_DIR)": lambda: json.loads(
                run_python(_OURS, env={"NUMBA_CACHE_DIR": warm_dir})
            ),
            "sklearn MiniBatchDictionaryLearning": lambda: json.loads(run_python(_SKLEARN)),
        }
        runs = {k: [] for k in kinds}
        names = list(kinds)
        for r in range(args.import_repeats):
            j = r % len(names)
            for name in names[j:] + names[:j]:
                runs[name].append(kinds[name]())
    finally:
        for d in [warm_dir, *cold_dirs]:
            shutil.rmtree(d, ignore_errors=True)
    records = {}
    for name, rs in runs.items():
        records[name] = {
            key + "_s": statistics.median(x[key] for x in rs)
            for key in ("import", "first", "second")
        }
    ref = records["sklearn MiniBatchDictionaryLearning"]["first_s"]
    for rec in records.values():
        rec["first_over_hot"] = rec["first_s"] / rec["second_s"]
        rec["first_over_sklearn_first"] = rec["first_s"] / ref
    return records


# -- driver -------------------------------------------------------------------


def _fit_table(fit):
    rows = [
        [
            name,
            r["median_s"],
            r["n_iter"],
            r["s_per_pass"],
            r["this_over_ours"],
            r.get("per_pass_this_over_ours"),
            (r["max_s"] - r["min_s"]) / r["median_s"],
        ]
        for name, r in fit["methods"].items()
    ]
    return (
        f"Fit on digits (n={fit['n_samples']}, d={fit['n_features']}, "
        f"n_components={fit['n_components']}; medians of interleaved repeats)\n\n"
        + markdown_table(
            [
                "estimator",
                "fit s",
                "n_iter_ (passes)",
                "s / pass",
                "÷ ours (total)",
                "÷ ours (per pass)",
                "(max−min)/median",
            ],
            rows,
        )
    )


def _import_table(imp):
    return "Import time in a fresh interpreter (median of subprocesses)\n\n" + markdown_table(
        ["statement", "import s", "÷ sklearn.decomposition", "imports numba", "imports torch"],
        [
            [
                m,
                r["median_s"],
                r["over_sklearn_decomposition"],
                r["imports_numba"],
                r["imports_torch"],
            ]
            for m, r in imp.items()
        ],
    )


def _first_call_table(fc):
    return (
        "First fit_transform on 60 × 8 data, 4 atoms, in a fresh interpreter "
        "(median of subprocesses)\n\n"
        + markdown_table(
            [
                "case",
                "import s",
                "first call s",
                "hot (2nd call) s",
                "first ÷ hot",
                "first ÷ sklearn first",
            ],
            [
                [
                    k,
                    r["import_s"],
                    r["first_s"],
                    r["second_s"],
                    r["first_over_hot"],
                    r["first_over_sklearn_first"],
                ]
                for k, r in fc.items()
            ],
        )
    )


_SECTIONS = {
    "fit": (bench_fit, _fit_table),
    "import": (bench_import, _import_table),
    "first_call": (bench_first_call, _first_call_table),
}


def _tables(report):
    parts = []
    for key, (_, table) in _SECTIONS.items():
        if "error" in report[key]:
            parts.append(f"**{key} failed:**\n\n```\n{report[key]['error']}\n```")
        else:
            parts.append(table(report[key]))
    return "\n\n".join(parts)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.fit", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="CI smoke run: 300 digits, capped scikit-learn fits, 1 repeat",
    )
    p.add_argument(
        "--repeats", type=int, default=None, help="timed rounds of the fits (default 3, quick 1)"
    )
    p.add_argument(
        "--import-repeats",
        type=int,
        default=None,
        help="subprocesses per case for import and first-call times (default 5, quick 3)",
    )
    p.add_argument("--n-components", type=int, default=64)
    p.add_argument(
        "--n-samples",
        type=int,
        default=None,
        help="use the first N digits (default all 1797, quick 300)",
    )
    p.add_argument(
        "--dl-max-iter",
        type=int,
        default=None,
        help="max_iter of DictionaryLearning (default 2, quick 1)",
    )
    p.add_argument(
        "--mb-max-iter",
        type=int,
        default=None,
        help="max_iter of MiniBatchDictionaryLearning (default: its own; quick 1)",
    )
    p.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="limit numpy's BLAS threads for every fit (default: unchanged)",
    )
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    args = p.parse_args(argv)
    q = args.quick
    if args.repeats is None:
        args.repeats = 1 if q else 3
    if args.import_repeats is None:
        args.import_repeats = 3 if q else 5
    if args.n_samples is None and q:
        args.n_samples = 300
    if args.dl_max_iter is None:
        args.dl_max_iter = 1 if q else 2
    if args.mb_max_iter is None and q:
        args.mb_max_iter = 1
    return args


def main(argv=None):
    """Run the benchmark, print markdown tables; return the results dict."""
    args = parse_args(argv)
    info = machine_info()
    report = {"benchmark": "fit", "machine": info, "args": vars(args)}
    for key, (bench, _) in _SECTIONS.items():
        try:
            report[key] = bench(args)
        except Exception as exc:  # report the failure, run the other sections
            report[key] = {"error": f"{type(exc).__name__}: {exc}"}
    print("# Fitting, import and first-call latency: ours vs scikit-learn\n")
    print(machine_table(info))
    print()
    print(_tables(report))
    if args.json:
        write_json(args.json, report)
    return report


run = main

if __name__ == "__main__":
    main()
