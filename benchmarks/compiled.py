"""Would compiled code make the unrolled encoder faster than numba does?

The unrolled encoder's kernel is numba-compiled Python
(``sklearn_wlsc/_backends/_numba.py``). This benchmark times it against
two C versions of the same layer, compiled here with the system's C compiler
(``--cc``, default ``gcc``) when one is available:

- ``C``: the numba kernel translated line for line (``c/unrolled_impl.h``,
  float64 and float32), compiled with ``-O3 -march=native`` and the floating-
  point flags that match numba's fast-math set (reassociation, contraction,
  reciprocals, no signed zeros; infinities and NaNs kept);
- ``AVX-512``: the same algorithm hand-vectorized for float64 and
  ``m = 64`` only (``c/unrolled_avx512_m64.c``): ``v`` held in registers
  through the layer, bit-mask counts and support lists, two samples
  encoded side by side. It runs where the processor has AVX-512F.

Every kernel runs on one thread over all rows (numba's kernel is called
directly, without ``sparse_encode``'s validation, centering and ``Y Aᵀ``),
round-robin in one process, medians of interleaved repeats after an untimed
warm-up. The data are those of ``benchmarks/encode.py``; the kernels get the
same terms (``G_step``, ``C``, the step) that ``sparse_encode`` builds. Each
table row also gives the largest difference of each kernel's codes from the
numba kernel's, and of the numba kernel's from the numpy reference network
on a subsample, so a kernel that computed something else would show.

Run ``python -m benchmarks.compiled --help`` for the options.
"""

import argparse
import ctypes
import os
import shutil
import subprocess
import tempfile

import numpy as np

try:
    from ._common import (
        machine_info,
        machine_table,
        markdown_table,
        parse_sizes,
        time_interleaved,
        write_json,
    )
    from .encode import make_data
except ImportError:  # run as a script: python benchmarks/compiled.py
    from _common import (
        machine_info,
        machine_table,
        markdown_table,
        parse_sizes,
        time_interleaved,
        write_json,
    )
    from encode import make_data

SOURCES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c")
DEFAULT_SIZES = ["20000x64", "4000x256"]
QUICK_SIZES = ["2000x64", "500x256"]
# numba's fastmath={"reassoc", "contract", "arcp", "nsz"}, in gcc's words;
# no -ffinite-math-only: the threshold search starts from +inf
FAST_MATH = [
    "-fno-math-errno",
    "-fassociative-math",
    "-fno-signed-zeros",
    "-fno-trapping-math",
    "-freciprocal-math",
    "-ffp-contract=fast",
]


def has_avx512f():
    """Whether this processor runs AVX-512F code (as LLVM sees the host)."""
    import llvmlite.binding as llvm

    return bool(llvm.get_host_cpu_features().get("avx512f", False))


def compiler_version(cc="gcc"):
    """The first line of ``cc --version``, or None when ``cc`` is not found."""
    if shutil.which(cc) is None:
        return None
    out = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else cc


def _build(cc, source, directory):
    """Compile one source into a shared library in ``directory`` and load it;
    return the library, or the compiler's message when the build fails."""
    library = os.path.join(directory, os.path.basename(source).replace(".c", ".so"))
    command = [cc, "-O3", "-march=native", *FAST_MATH, "-fPIC", "-shared", "-o", library, source]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"{' '.join(command)} failed: {getattr(exc, 'stderr', None) or exc}"
    return ctypes.CDLL(library)


def compile_kernels(cc="gcc", directory=None):
    """Compile the C kernels with ``cc`` and load them.

    Each source is built on its own, so a failed AVX-512 build leaves the
    translation available. The shared libraries go to ``directory``, or to a
    temporary folder that is removed once they are loaded.

    Returns
    -------
    kernels : dict of (str, numpy.dtype) to ctypes function
        ``("C", float64)`` and ``("C", float32)``, and ``("AVX-512",
        float64)`` where the processor has AVX-512F; each is called through
        :func:`encode_c`. Empty when ``cc`` is not found.
    failures : list of str
        The compiler's messages for the sources that did not build.
    """
    if shutil.which(cc) is None:
        return {}, []
    if directory is None:
        with tempfile.TemporaryDirectory(prefix="wlsc-compiled-") as tmp:
            return compile_kernels(cc, tmp)
    ptr, long = ctypes.c_void_p, ctypes.c_long
    kernels, failures = {}, []
    lib = _build(cc, os.path.join(SOURCES, "unrolled.c"), directory)
    if isinstance(lib, str):
        failures.append(lib)
    else:
        for dtype, name, scalar in [
            (np.float64, "wlsc_unrolled_f64", ctypes.c_double),
            (np.float32, "wlsc_unrolled_f32", ctypes.c_float),
        ]:
            f = getattr(lib, name)
            f.restype = None
            f.argtypes = [ptr, ptr, scalar, ptr, long, ptr, long, ptr, long, long]
            kernels[("C", np.dtype(dtype))] = f
    if has_avx512f():
        lib = _build(cc, os.path.join(SOURCES, "unrolled_avx512_m64.c"), directory)
        if isinstance(lib, str):
            failures.append(lib)
        else:
            f = lib.wlsc_unrolled_avx512_m64
            f.restype = None
            f.argtypes = [ptr, ptr, ctypes.c_double, ptr, long, ptr, ptr, long, long]
            kernels[("AVX-512", np.dtype(np.float64))] = f
    return kernels, failures


def encoder_inputs(Y, A, alpha, n_layers, dtype):
    """The kernels' arguments as ``sparse_encode`` builds them: ``G_step``
    (on a 64-byte boundary), ``C``, the step ``inv_L`` and the momentum
    schedule, in ``dtype``; and ``G`` and ``L`` for the numpy reference."""
    from sklearn_wlsc import _objective
    from sklearn_wlsc._backends._base import momentum_schedule
    from sklearn_wlsc._backends._numba import aligned_empty

    dtype = np.dtype(dtype)
    mean = A.mean(axis=0)
    G, C = _objective.encoder_terms(Y - mean, A - mean, alpha)
    G, C = G.astype(dtype), np.ascontiguousarray(C, dtype=dtype)
    L = _objective.lipschitz_constant(A)
    inv_L = dtype.type(1.0 / L)
    G_step = aligned_empty(G.shape, dtype)
    np.multiply(G, inv_L, out=G_step)
    return G_step, C, inv_L, momentum_schedule(n_layers, dtype), G, L


def encode_numba(G_step, C, inv_L, betas, X):
    """The library's numba kernels on every row of ``C``, on this thread, as
    the backend runs them; returns the mask of the rows far from zero."""
    from sklearn_wlsc._backends._numba import _constants, unrolled_encode, unrolled_encode_far

    zero, one, inf = _constants(C.dtype)
    unit = one if C.dtype == np.float32 else np.int64(1)
    far_rows = np.zeros(C.shape[0], dtype=np.uint8)
    unrolled_encode(G_step, C, inv_L, betas, X, zero, one, inf, unit, far_rows, 0, C.shape[0])
    far = np.flatnonzero(far_rows)
    if far.size:  # rows far from zero, as the backend encodes them
        C_far = np.ascontiguousarray(C[far])
        X_far = np.empty_like(C_far)
        unrolled_encode_far(G_step, C_far, inv_L, betas, X_far, zero, one, inf, unit, 0, far.size)
        X[far] = X_far
    return far_rows.astype(bool)


def encode_c(kernel, name, G_step, C, inv_L, betas, X, start=0, stop=None):
    """A compiled kernel on the rows ``start:stop`` of ``C``, into ``X``;
    returns the mask of the rows it left alone, those with
    ``max |C_i·inv_L| >= 1`` (the numba backend encodes them with its
    kernel for values far from zero, which the C files do not have).

    The kernels trust their arguments, so they are checked here: C-contiguous
    arrays of one dtype and matching shapes, and for the AVX-512 kernel
    float64, ``m = 64`` and ``G_step`` on a 64-byte boundary (its loads are
    aligned).
    """
    n, m = C.shape
    stop = n if stop is None else stop
    arrays = (G_step, C, betas, X)
    if any(a.dtype != C.dtype or not a.flags.c_contiguous for a in arrays):
        raise ValueError("the kernels need C-contiguous arrays of one dtype")
    if G_step.shape != (m, m) or X.shape != C.shape or not 0 <= start <= stop <= n:
        raise ValueError("shapes or the row range do not match")
    if name == "AVX-512" and (C.dtype != np.float64 or m != 64 or G_step.ctypes.data % 64):
        raise ValueError("the AVX-512 kernel needs float64, m = 64 and an aligned G_step")
    args = [G_step.ctypes.data, C.ctypes.data, inv_L, betas.ctypes.data, len(betas), X.ctypes.data]
    if name == "C":
        args.append(m)
    # rows far from zero are flagged and left alone, as by the numba kernel
    # (the backend encodes them with its other kernel)
    far_rows = np.zeros(n, dtype=np.uint8)
    kernel(*args, far_rows.ctypes.data, start, stop)
    return far_rows.astype(bool)


def bench_config(n, m, alpha, dtype, kernels, args):
    """Time numba and the compiled kernels that apply to one configuration."""
    from sklearn_wlsc._backends._numpy import unrolled_encode as reference

    rng = np.random.default_rng(args.seed)
    Y, A = make_data(n, m, m, rng)
    G_step, C, inv_L, betas, G, L = encoder_inputs(Y, A, alpha, args.layers, dtype)
    outputs = {"numba": np.empty_like(C)}
    funcs = {"numba": lambda: encode_numba(G_step, C, inv_L, betas, outputs["numba"])}
    for (name, kernel_dtype), kernel in kernels.items():
        if kernel_dtype != C.dtype or (name == "AVX-512" and m != 64):
            continue
        outputs[name] = np.empty_like(C)
        funcs[name] = lambda kernel=kernel, name=name: encode_c(
            kernel, name, G_step, C, inv_L, betas, outputs[name]
        )
    timings = time_interleaved(funcs, repeats=args.repeats)
    # rows far from zero (none on this data at the default sizes) are
    # encoded by numba's other kernel only: compare the others
    near = ~encode_numba(G_step, C, inv_L, betas, outputs["numba"])
    n_ref = min(n, args.reference_samples)
    X_ref = reference(G, C[:n_ref], L, args.layers)
    rows = []
    for name in funcs:
        t = timings[name]
        X = outputs[name]
        rows.append(
            {
                "kernel": name,
                "us_per_sample": t["median"] / n * 1e6,
                "speedup_over_numba": timings["numba"]["median"] / t["median"],
                "max_diff_from_numba": float(np.abs(X - outputs["numba"])[near].max(initial=0)),
                "max_diff_from_reference": float(
                    np.abs(X[:n_ref] - X_ref)[near[:n_ref]].max(initial=0)
                ),
                "nnz": np.count_nonzero(X[near]) / max(1, near.sum()),
                "spread": (t["max"] - t["min"]) / t["median"],
            }
        )
    return {
        "n": n,
        "m": m,
        "alpha": alpha,
        "dtype": np.dtype(dtype).name,
        "far_rows": int(n - near.sum()),
        "rows": rows,
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.compiled", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--sizes", nargs="+", metavar="NxM", help="n samples x (d = m)")
    p.add_argument("--alphas", nargs="+", type=float, default=[0.0, 0.5])
    p.add_argument(
        "--dtypes", nargs="+", choices=["float64", "float32"], default=["float64", "float32"]
    )
    p.add_argument("--layers", type=int, default=50, help="layers of the unrolled encoder")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--cc", default="gcc", help="C compiler (default: gcc)")
    p.add_argument(
        "--reference-samples",
        type=int,
        default=500,
        help="rows of the numpy reference run that the codes are compared with",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    args = p.parse_args(argv)
    if args.sizes is None:
        args.sizes = QUICK_SIZES if args.quick else DEFAULT_SIZES
    if args.repeats is None:
        args.repeats = 3 if args.quick else 7
    if args.layers < 1 or args.repeats < 1 or args.reference_samples < 1:
        p.error("--layers, --repeats and --reference-samples must be positive")
    args.sizes = parse_sizes(p, args.sizes)
    return args


def main(argv=None):
    """Run the benchmark, print a markdown table; return the results dict."""
    args = parse_args(argv)
    info = machine_info()
    compiler = compiler_version(args.cc)
    kernels, failures = compile_kernels(args.cc)
    print("# The unrolled encoder: numba against compiled C\n")
    print(machine_table(info))
    if compiler is None:
        print(f"\nNo C compiler {args.cc!r} found: only the numba kernel runs.")
    for failure in failures:
        print(f"\nNot built: {failure}")
    if ("AVX-512", np.dtype(np.float64)) in kernels:
        avx512 = "run"
    elif compiler is None:
        avx512 = "not run (no compiler)"
    elif has_avx512f():
        avx512 = "not built"
    else:
        avx512 = "not run (no AVX-512F)"
    print(
        f"\none thread; {args.layers} layers; medians of {args.repeats} interleaved rounds; "
        f"compiler: {compiler}; AVX-512 kernel {avx512}\n"
    )
    results = []
    for n, m in args.sizes:
        for dtype in args.dtypes:
            for alpha in args.alphas:
                results.append(bench_config(n, m, float(alpha), dtype, kernels, args))
    rows = [
        (
            f"{r['n']}, d=m={r['m']}, α={r['alpha']:g}, {r['dtype']}",
            row["kernel"],
            row["us_per_sample"],
            row["speedup_over_numba"],
            row["max_diff_from_numba"],
            row["max_diff_from_reference"],
            row["nnz"],
            row["spread"],
        )
        for r in results
        for row in r["rows"]
    ]
    print(
        markdown_table(
            [
                "config",
                "kernel",
                "µs/sample",
                "numba ÷ kernel",
                "max |Δ| from numba",
                "max |Δ| from reference",
                "nonzeros",
                "spread",
            ],
            rows,
        )
    )
    report = {
        "benchmark": "compiled",
        "machine": info,
        "compiler": compiler,
        "args": vars(args),
        "results": results,
    }
    if args.json:
        write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
