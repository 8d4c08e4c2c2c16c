"""How fast are our encoders, against SPAMS, scikit-learn and the GEMM roofline?

For each size ``(n, d = m)`` and each ``α``, all of the following are timed in
the same process, round-robin, after an untimed warm-up call (so numba's JIT
compilation and joblib's worker start-up are excluded). Every peer gets the
same number of threads (``--threads``, default all cores; numpy's BLAS is
limited to it too):

- ours: ``sparse_encode(Y, A, alpha=α, algorithm="exact")`` (float64) and
  ``algorithm="unrolled", n_layers=50`` (float64 and float32), numba backend;
  the exact encoder once more with numpy's BLAS on one thread (its ``Y Aᵀ``
  and the centering are BLAS/numpy calls around the numba kernel);
- SPAMS ``decompSimplex`` (α = 0 only: it solves ``min ‖y − Aᵀx‖²`` over the
  simplex, the same problem), on Fortran-ordered float64 arrays with samples
  in columns, converted once outside the timed call;
- scikit-learn ``sparse_encode(algorithm="lasso_cd", positive=True)`` on a
  subsample (it is roughly 100x slower): a non-negative lasso, not the same
  problem, but the nearest scikit-learn encoder;
- numpy GEMM: ``n_layers`` products ``Z @ G`` (into a preallocated output)
  with ``Z`` of shape (n, m) and ``G`` (m, m), float64 and float32: the
  roofline for the unrolled encoder, whose every layer is, densely counted,
  one such product (``2 n m²`` flops). Its µs/sample is for all
  ``n_layers`` products, so it compares directly with the unrolled rows.
  It is timed with ``--threads`` BLAS threads and with one (on a busy
  machine a multithreaded BLAS can be much slower); the faster of the two is
  the roofline that "÷ GEMM" refers to.

Data. ``m`` "true" atoms are drawn from a standard normal in ``R^d``; each
sample is a Dirichlet(1) mixture of 3 random true atoms plus Gaussian noise
(σ = 0.1). The dictionary ``A`` is a fixed random subset of ``m`` samples
(as a data-driven initialization would pick it), so codes are sparse but not
one-hot. Everything is drawn from a local ``numpy.random.default_rng(seed)``.

Accuracy is checked alongside: at α = 0 the mean objective of our exact codes
must match SPAMS's to a relative 1e-8; at α > 0 the numba exact encoder is
compared with the numpy reference (``backend="numpy"``) on a subsample. The
relative excess objective of the unrolled encoder over the exact one is also
reported.

Run ``python -m benchmarks.encode --help`` for the options.
"""

import argparse
import os
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

try:
    from ._common import machine_info, machine_table, markdown_table, time_interleaved, write_json
except ImportError:  # run as a script: python benchmarks/encode.py
    from _common import machine_info, machine_table, markdown_table, time_interleaved, write_json

DEFAULT_SIZES = ["20000x64", "4000x256"]
QUICK_SIZES = ["2000x64", "500x256"]


def make_data(n, d, m, rng, n_mix=3, noise=0.1):
    """Samples from a mixture around random atoms, and a dictionary of samples.

    Returns
    -------
    Y : ndarray of shape (n, d), float64
    A : ndarray of shape (m, d), float64
        ``m`` distinct rows of ``Y``, chosen at random.
    """
    true_atoms = rng.standard_normal((m, d))
    idx = rng.integers(0, m, size=(n, n_mix))
    weights = rng.dirichlet(np.ones(n_mix), size=n)
    Y = np.einsum("nk,nkd->nd", weights, true_atoms[idx])
    Y += noise * rng.standard_normal((n, d))
    A = Y[rng.choice(n, size=m, replace=False)].copy()
    return Y, A


def objective(Y, A, X, alpha):
    """Mean of ``½‖y − xA‖² + α Σ_j x_j ‖y − a_j‖²``, in float64.

    Written here independently of the library, as a cross-check.
    """
    Y = np.asarray(Y, dtype=np.float64)
    A = np.asarray(A, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    R = Y - X @ A
    f = 0.5 * np.einsum("ij,ij->i", R, R)
    if alpha:
        D = (Y * Y).sum(1)[:, None] - 2.0 * (Y @ A.T) + (A * A).sum(1)[None, :]
        f += alpha * np.einsum("ij,ij->i", X, np.maximum(D, 0.0))
    return float(f.mean())


def _rel(a, b):
    return (a - b) / abs(b) if b else float("nan")


def bench_config(n, d, m, alpha, args, rng):
    """Time every method on one configuration; return a result record."""
    from sklearn.decomposition import sparse_encode as sk_sparse_encode

    from sklearn_wlsc import sparse_encode

    Y, A = make_data(n, d, m, rng)
    Y32, A32 = Y.astype(np.float32), A.astype(np.float32)
    n_sk = min(n, args.sklearn_samples)
    Y_sk = Y[:n_sk]
    Z64 = rng.random((n, m))
    G64 = A @ A.T
    Z32, G32 = Z64.astype(np.float32), G64.astype(np.float32)
    L, threads = args.n_layers, args.threads

    out = {}

    def ours_exact():
        out["exact"] = sparse_encode(
            Y, A, alpha=alpha, algorithm="exact", backend="numba", n_jobs=threads
        )

    def ours_unrolled64():
        out["unrolled64"] = sparse_encode(
            Y, A, alpha=alpha, algorithm="unrolled", n_layers=L, backend="numba", n_jobs=threads
        )

    def ours_unrolled32():
        out["unrolled32"] = sparse_encode(
            Y32,
            A32,
            alpha=alpha,
            algorithm="unrolled",
            n_layers=L,
            backend="numba",
            n_jobs=threads,
        )

    def sklearn_cd():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning of the lasso
            out["sklearn"] = sk_sparse_encode(
                Y_sk,
                A,
                algorithm="lasso_cd",
                positive=True,
                alpha=args.sklearn_alpha,
                n_jobs=args.sklearn_jobs,
            )

    def ours_exact_blas1():
        with threadpool_limits(limits=1, user_api="blas"):
            ours_exact()

    funcs = {
        "ours exact f64": (ours_exact, n, "float64"),
        "ours exact f64, BLAS 1 thread": (ours_exact_blas1, n, "float64"),
        f"ours unrolled L={L} f64": (ours_unrolled64, n, "float64"),
        f"ours unrolled L={L} f32": (ours_unrolled32, n, "float32"),
    }
    has_spams = False
    if alpha == 0.0 and not args.no_spams:
        try:
            import spams
        except ImportError:
            spams = None
        if spams is not None:
            has_spams = True
            Yf = np.asfortranarray(Y.T)  # (d, n): samples in columns
            Af = np.asfortranarray(A.T)  # (d, m): atoms in columns

            def spams_simplex():
                out["spams"] = spams.decompSimplex(Yf, Af, numThreads=threads or -1)

            funcs["SPAMS decompSimplex f64"] = (spams_simplex, n, "float64")
    if n_sk > 0:
        funcs[f"sklearn lasso_cd+ (n={n_sk})"] = (sklearn_cd, n_sk, "float64")

    def gemm(Z, G, out, blas_threads):
        def run():
            with threadpool_limits(limits=blas_threads, user_api="blas"):
                for _ in range(L):
                    np.matmul(Z, G, out=out)

        return run

    for Z, G, tag in [(Z64, G64, "f64"), (Z32, G32, "f32")]:
        dtype = str(Z.dtype)
        funcs[f"numpy GEMM ×{L} {tag}"] = (gemm(Z, G, np.empty_like(Z), threads), n, dtype)
        if threads != 1:
            funcs[f"numpy GEMM ×{L} {tag}, BLAS 1 thread"] = (
                gemm(Z, G, np.empty_like(Z), 1),
                n,
                dtype,
            )

    # numpy's BLAS gets the same number of threads as the other peers
    with threadpool_limits(limits=threads, user_api="blas"):
        timings = time_interleaved({k: v[0] for k, v in funcs.items()}, repeats=args.repeats)

    methods = {}
    for name, (_, n_i, dtype) in funcs.items():
        t = timings[name]["median"]
        methods[name] = {
            "dtype": dtype,
            "n_samples": n_i,
            "median_s": t,
            "min_s": timings[name]["min"],
            "max_s": timings[name]["max"],
            "us_per_sample": 1e6 * t / n_i,
            "spread": (timings[name]["max"] - timings[name]["min"]) / t,
        }
    flops = 2.0 * n * m * m * L  # dense-equivalent work of the unrolled encoder
    roof = {}  # the faster GEMM (threads or 1 thread) of each dtype
    for name, rec in methods.items():
        if name.startswith("numpy GEMM"):
            best = roof.get(rec["dtype"])
            if best is None or rec["median_s"] < best["median_s"]:
                roof[rec["dtype"]] = rec
    for name, rec in methods.items():
        if name.startswith("numpy GEMM") or "unrolled" in name:
            rec["gflops"] = flops / rec["median_s"] / 1e9
        if "unrolled" in name:
            rec["gflops_over_gemm"] = roof[rec["dtype"]]["median_s"] / rec["median_s"]

    # sparsity of the codes
    nnz = {
        "ours exact f64": out["exact"],
        f"ours unrolled L={L} f64": out["unrolled64"],
        f"ours unrolled L={L} f32": out["unrolled32"],
    }
    if has_spams:
        nnz["SPAMS decompSimplex f64"] = out["spams"].T.toarray()
    if n_sk > 0:
        nnz[f"sklearn lasso_cd+ (n={n_sk})"] = out["sklearn"]
    for name, codes in nnz.items():
        methods[name]["nnz_per_sample"] = float(np.count_nonzero(codes) / codes.shape[0])

    # ratios against peers
    spams_us = methods["SPAMS decompSimplex f64"]["us_per_sample"] if has_spams else None
    sk_name = f"sklearn lasso_cd+ (n={n_sk})"
    sk_us = methods[sk_name]["us_per_sample"] if n_sk > 0 else None
    for name, rec in methods.items():
        if name.startswith("numpy GEMM"):
            continue
        if spams_us:
            rec["over_spams"] = rec["us_per_sample"] / spams_us
        if sk_us:
            rec["sklearn_over_this"] = sk_us / rec["us_per_sample"]

    # accuracy
    F_exact = objective(Y, A, out["exact"], alpha)
    checks = []
    if has_spams:
        F_spams = objective(Y, A, nnz["SPAMS decompSimplex f64"], alpha)
        checks.append(
            {
                "what": "ours exact vs SPAMS (all samples)",
                "F_ours": F_exact,
                "F_ref": F_spams,
                "rel_diff": _rel(F_exact, F_spams),
                "ratio": F_exact / F_spams,
                "ok": abs(_rel(F_exact, F_spams)) <= 1e-8,
            }
        )
    if alpha != 0.0 or not has_spams:
        n_ref = min(n, args.reference_samples)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            X_ref = sparse_encode(Y[:n_ref], A, alpha=alpha, algorithm="exact", backend="numpy")
        F_sub = objective(Y[:n_ref], A, out["exact"][:n_ref], alpha)
        F_ref = objective(Y[:n_ref], A, X_ref, alpha)
        checks.append(
            {
                "what": f"ours exact vs numpy reference (n={n_ref})",
                "F_ours": F_sub,
                "F_ref": F_ref,
                "rel_diff": _rel(F_sub, F_ref),
                "ratio": F_sub / F_ref,
                "ok": abs(_rel(F_sub, F_ref)) <= 1e-8,
            }
        )
    for key, label in [("unrolled64", "f64"), ("unrolled32", "f32")]:
        F_u = objective(Y, A, out[key], alpha)
        checks.append(
            {
                "what": f"ours unrolled L={L} {label} vs ours exact (all samples)",
                "F_ours": F_u,
                "F_ref": F_exact,
                "rel_diff": _rel(F_u, F_exact),
                "ratio": F_u / F_exact,
                "ok": None,
            }
        )
    return {
        "n": n,
        "d": d,
        "m": m,
        "alpha": alpha,
        "n_layers": L,
        "methods": methods,
        "objective_checks": checks,
    }


def _tables(results):
    timing_rows, summary_rows, check_rows = [], [], []
    for res in results:
        cfg = f"n={res['n']}, d=m={res['m']}, α={res['alpha']:g}"
        for name, rec in res["methods"].items():
            timing_rows.append(
                [
                    cfg,
                    name,
                    rec["us_per_sample"],
                    rec.get("over_spams"),
                    rec.get("sklearn_over_this"),
                    rec.get("gflops"),
                    rec.get("gflops_over_gemm"),
                    rec.get("nnz_per_sample"),
                    rec["spread"],
                ]
            )
        ms = res["methods"]
        L = res["n_layers"]
        exact = ms["ours exact f64"]
        exact1 = ms["ours exact f64, BLAS 1 thread"]
        u64 = ms[f"ours unrolled L={L} f64"]
        u32 = ms[f"ours unrolled L={L} f32"]
        summary_rows.append(
            [
                cfg,
                exact.get("over_spams"),
                exact1.get("over_spams"),
                u64.get("over_spams"),
                u32.get("over_spams"),
                exact.get("sklearn_over_this"),
                u64.get("sklearn_over_this"),
                u64.get("gflops_over_gemm"),
                u32.get("gflops_over_gemm"),
            ]
        )
        for c in res["objective_checks"]:
            check_rows.append(
                [
                    cfg,
                    c["what"],
                    c["F_ours"],
                    c["F_ref"],
                    c["rel_diff"],
                    {True: "yes", False: "NO", None: "–"}[c["ok"]],
                ]
            )
    return "\n\n".join(
        [
            "Timings (medians of interleaved repeats; µs per sample)\n\n"
            + markdown_table(
                [
                    "config",
                    "method",
                    "µs/sample",
                    "÷ SPAMS",
                    "sklearn ÷ this",
                    "GFLOP/s",
                    "÷ GEMM",
                    "nnz/sample",
                    "(max−min)/median",
                ],
                timing_rows,
            ),
            "Summary ratios (time ratios < 1: ours faster; ÷ GEMM: dense-equivalent "
            "GFLOP/s of the unrolled encoder over the faster numpy GEMM of the same dtype)\n\n"
            + markdown_table(
                [
                    "config",
                    "exact ÷ SPAMS",
                    "exact (BLAS 1 thread) ÷ SPAMS",
                    "unrolled f64 ÷ SPAMS",
                    "unrolled f32 ÷ SPAMS",
                    "sklearn ÷ exact",
                    "sklearn ÷ unrolled f64",
                    "unrolled f64 ÷ GEMM",
                    "unrolled f32 ÷ GEMM",
                ],
                summary_rows,
            ),
            "Objective agreement (mean objective F)\n\n"
            + markdown_table(
                ["config", "comparison", "F ours", "F ref", "relative diff", "≤ 1e-8"],
                check_rows,
            ),
        ]
    )


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.encode", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"small sizes for a CI smoke run ({' '.join(QUICK_SIZES)}), 3 repeats",
    )
    p.add_argument(
        "--sizes",
        nargs="+",
        metavar="NxM",
        help=f"sizes n x (d = m) (default: {' '.join(DEFAULT_SIZES)})",
    )
    p.add_argument("--alphas", nargs="+", type=float, default=[0.0, 0.5])
    p.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5, quick 3)")
    p.add_argument("--n-layers", type=int, default=50)
    p.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="threads of ours, SPAMS, scikit-learn and numpy's BLAS (default: all cores)",
    )
    p.add_argument(
        "--sklearn-samples",
        type=int,
        default=None,
        help="subsample timed for scikit-learn (default 1000, quick 200; 0 skips)",
    )
    p.add_argument(
        "--sklearn-alpha", type=float, default=0.1, help="lasso penalty of scikit-learn's encoder"
    )
    p.add_argument(
        "--sklearn-jobs",
        type=int,
        default=None,
        help="n_jobs of scikit-learn's encoder (default: --threads)",
    )
    p.add_argument(
        "--reference-samples",
        type=int,
        default=None,
        help="subsample for the numpy reference at α > 0 (default 500, quick 100)",
    )
    p.add_argument("--no-spams", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    args = p.parse_args(argv)
    if args.sizes is None:
        args.sizes = QUICK_SIZES if args.quick else DEFAULT_SIZES
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.sklearn_samples is None:
        args.sklearn_samples = 200 if args.quick else 1000
    if args.reference_samples is None:
        args.reference_samples = 100 if args.quick else 500
    if args.sklearn_jobs is None:
        args.sklearn_jobs = args.threads
    return args


def _parse_size(s):
    n, m = s.lower().split("x")
    return int(n), int(m)


def main(argv=None):
    """Run the benchmark, print markdown tables; return the results dict."""
    args = parse_args(argv)
    info = machine_info()
    results = []
    for size in args.sizes:
        n, m = _parse_size(size)
        for alpha in args.alphas:
            rng = np.random.default_rng(args.seed)  # same data for every α
            results.append(bench_config(n, m, m, float(alpha), args, rng))
    report = {"benchmark": "encode", "machine": info, "args": vars(args), "results": results}
    print("# Encoders: ours vs SPAMS, scikit-learn and the GEMM roofline\n")
    print(machine_table(info))
    print()
    print(_tables(results))
    if args.json:
        write_json(args.json, report)
    return report


run = main

if __name__ == "__main__":
    main()
