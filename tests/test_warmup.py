"""Ahead-of-time compilation (``warmup``) and the lazy package namespace."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import sklearn_wlsc

_KERNELS = ("project_rows", "unrolled_encode", "unrolled_encode_far", "exact_encode")

_CACHE_STATS = textwrap.dedent(
    """
    import json, sys
    import sklearn_wlsc
    seconds = sklearn_wlsc.warmup()
    from sklearn_wlsc._backends import _numba
    stats = {{}}
    for name in {kernels!r}:
        s = getattr(_numba, name).stats
        stats[name] = [sum(s.cache_hits.values()), sum(s.cache_misses.values())]
    print(json.dumps({{"steps": sorted(seconds), "stats": stats}}))
    """
).format(kernels=_KERNELS)


def _run(code, cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_warmup_fills_the_cache_that_later_processes_load(tmp_path):
    first = _run(_CACHE_STATS, tmp_path)
    assert first["steps"] == [
        "exact encoder",
        "fit",
        "projection float32",
        "projection float64",
        "unrolled encoder float32",
        "unrolled encoder float64",
    ]
    # an empty cache: every kernel is compiled, once per dtype it was run on
    for name in _KERNELS:
        hits, misses = first["stats"][name]
        assert hits == 0 and misses >= 1, (name, first["stats"])
    assert any(f.endswith(".nbi") for _, _, fs in os.walk(tmp_path) for f in fs)
    # a new process finds every kernel on disk and compiles none
    second = _run(_CACHE_STATS, tmp_path)
    for name in _KERNELS:
        hits, misses = second["stats"][name]
        assert misses == 0 and hits == first["stats"][name][1], (name, second["stats"])


_CODES_DIGEST = textwrap.dedent(
    """
    import hashlib, json
    import numpy as np
    from sklearn_wlsc import sparse_encode
    from sklearn_wlsc._backends import _numba

    rng = np.random.default_rng(0)
    atoms = rng.standard_normal((32, 32))
    weights = rng.dirichlet(np.ones(3), 3000)
    picks = rng.integers(0, 32, (3000, 3))
    Y = np.einsum("ik,ikj->ij", weights, atoms[picks]) + 0.1 * rng.standard_normal((3000, 32))
    A = Y[rng.choice(3000, 32, replace=False)]
    digests = {}
    for dtype in ("float64", "float32"):
        for alpha in (0.0, 0.5):
            for algorithm in ("unrolled", "exact"):
                X = sparse_encode(
                    Y.astype(dtype), A.astype(dtype), alpha=alpha, algorithm=algorithm,
                    n_layers=30, backend="numba",
                )
                key = f"{algorithm} {dtype} {alpha}"
                digests[key] = hashlib.sha256(X.tobytes()).hexdigest()
        # alpha = 1e5 puts every row far from zero: the shifting kernel
        X = sparse_encode(
            Y.astype(dtype), A.astype(dtype), alpha=1e5, algorithm="unrolled",
            n_layers=30, backend="numba",
        )
        digests[f"unrolled {dtype} far"] = hashlib.sha256(X.tobytes()).hexdigest()
    stats = {
        k: [sum(getattr(_numba, k).stats.cache_hits.values()),
            sum(getattr(_numba, k).stats.cache_misses.values())]
        for k in ("unrolled_encode", "unrolled_encode_far", "exact_encode")
    }
    print(json.dumps({"digests": digests, "stats": stats}))
    """
)


def test_compiling_and_loading_processes_compute_the_same_bits(tmp_path):
    # the process that compiles the kernels and every process that loads
    # them from the cache (a dask worker, the next run) run the same
    # machine code; numba's parallel=True loops did not, and their codes
    # differed in the last bits (up to 4e-15 in float64 on this problem)
    first = _run(_CODES_DIGEST, tmp_path)
    second = _run(_CODES_DIGEST, tmp_path)
    # the first process compiled every kernel, the second loaded every one
    for name in ("unrolled_encode", "unrolled_encode_far", "exact_encode"):
        assert first["stats"][name][0] == 0 and first["stats"][name][1] > 0, first
        assert second["stats"][name][0] > 0 and second["stats"][name][1] == 0, second
    assert len(first["digests"]) == 10
    assert second["digests"] == first["digests"]


def test_warmup_in_process_returns_each_step():
    seconds = sklearn_wlsc.warmup(dtypes="float32")
    assert set(seconds) == {
        "projection float32",
        "unrolled encoder float32",
        "exact encoder",
        "fit",
    }
    assert all(s >= 0 for s in seconds.values())


@pytest.mark.parametrize("dtype", ["int64", "float16", "complex128"])
def test_warmup_rejects_other_dtypes(dtype):
    with pytest.raises(ValueError, match="float64 and float32"):
        sklearn_wlsc.warmup(dtypes=[dtype])


def test_import_loads_nothing_until_a_public_name_is_used():
    code = textwrap.dedent(
        """
        import sys
        import sklearn_wlsc
        before = sorted(m for m in ("sklearn", "scipy", "numba") if m in sys.modules)
        from sklearn_wlsc import WeightedL1SparseCoder
        after = sorted(m for m in ("sklearn", "numba") if m in sys.modules)
        print(before, after, WeightedL1SparseCoder.__module__)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "['sklearn']", "sklearn_wlsc._estimator"]


def test_lazy_namespace_lists_and_rejects_names():
    for name in sklearn_wlsc.__all__:
        assert name in dir(sklearn_wlsc)
        assert getattr(sklearn_wlsc, name) is not None
    with pytest.raises(AttributeError, match="has no attribute 'KMeans'"):
        sklearn_wlsc.KMeans  # noqa: B018
    with pytest.raises(ImportError):
        from sklearn_wlsc import KMeans  # noqa: F401


def test_warmup_arguments():
    import numpy as np

    assert "unrolled encoder float32" in sklearn_wlsc.warmup(np.dtype("float32"))
    with pytest.raises(ValueError, match="empty"):
        sklearn_wlsc.warmup([])
    with pytest.raises(TypeError, match="sequence"):
        sklearn_wlsc.warmup(None)
    with pytest.raises(ValueError, match="float64 and float32"):
        sklearn_wlsc.warmup("float16")
