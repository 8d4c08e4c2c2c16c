"""Helpers shared by the benchmark scripts: interleaved timing, machine
information, markdown tables and JSON output.

Timings on a shared machine are noisy, so every script reports ratios
against peers timed in the same process, and every figure is the median of
interleaved (round-robin) repeats taken after an untimed warm-up call.
"""

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata


def time_interleaved(funcs, repeats=5, warmup=1):
    """Time several callables round-robin and return the median of each.

    Each callable is first called ``warmup`` times untimed (so that JIT
    compilation, caches and worker pools are not timed). Then ``repeats``
    rounds call every callable once; the order is rotated between rounds so
    that no callable always runs first or right after the same neighbour.

    Parameters
    ----------
    funcs : dict of str to callable
        Callables taking no argument.
    repeats : int, default=5
    warmup : int, default=1

    Returns
    -------
    timings : dict of str to dict
        For each name: ``median``, ``min`` and ``max`` in seconds and the
        list of raw ``times``.
    """
    names = list(funcs)
    for name in names:
        for _ in range(warmup):
            funcs[name]()
    times = {name: [] for name in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            funcs[name]()
            times[name].append(time.perf_counter() - t0)
    return {
        name: {
            "median": statistics.median(ts),
            "min": min(ts),
            "max": max(ts),
            "times": ts,
        }
        for name, ts in times.items()
    }


def parse_sizes(parser, sizes):
    """``["20000x64", ...]`` as ``[(20000, 64), ...]``; anything else is a
    usage error of ``parser`` (an ``argparse.ArgumentParser``)."""
    try:
        pairs = [tuple(int(v) for v in size.lower().split("x")) for size in sizes]
    except ValueError:
        pairs = None
    if not pairs or any(len(pair) != 2 or min(pair) < 1 for pair in pairs):
        parser.error("--sizes takes positive NxM pairs, such as 20000x64")
    return pairs


def run_python(code, env=None, timeout=600):
    """Run ``code`` in a fresh interpreter; return its stripped stdout.

    ``env`` entries are added to (not substituted for) the current
    environment. Raises ``RuntimeError`` with the child's stderr on failure.
    """
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout.strip()


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _numpy_blas():
    """The BLAS that numpy links, as threadpoolctl reports it."""
    try:
        import numpy as np  # noqa: F401  (load numpy's BLAS before inspecting)
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    mine = [i for i in blas if "numpy" in i.get("filepath", "")] or blas
    if not mine:
        return None
    i = mine[0]
    return {
        "internal_api": i.get("internal_api"),
        "version": i.get("version"),
        "num_threads": i.get("num_threads"),
        "architecture": i.get("architecture"),
        "threading_layer": i.get("threading_layer"),
    }


def _package_source():
    """Where ``sklearn_wlsc`` is imported from, and its git revision if any."""
    try:
        import sklearn_wlsc
    except ImportError:
        return None, None
    folder = os.path.dirname(os.path.dirname(os.path.abspath(sklearn_wlsc.__file__)))
    try:
        rev = subprocess.run(
            ["git", "-C", folder, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", folder, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev, dirty = "", ""
    if rev and dirty:
        rev += " (modified)"
    return folder, rev or None


def machine_info():
    """CPU, cores, numpy's BLAS and the versions of the packages we time."""
    numba_threads = None
    try:
        import numba

        numba_threads = numba.config.NUMBA_NUM_THREADS
    except ImportError:
        pass
    source, revision = _package_source()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "numpy_blas": _numpy_blas(),
        "numba_threads": numba_threads,
        "versions": {
            name: _version(dist)
            for name, dist in [
                ("numpy", "numpy"),
                ("numba", "numba"),
                ("scikit-learn", "scikit-learn"),
                ("spams", "spams-bin"),
                ("sklearn-wlsc", "sklearn-wlsc"),
            ]
        },
        "sklearn_wlsc_source": source,
        "sklearn_wlsc_revision": revision,
    }


def machine_table(info):
    """The output of :func:`machine_info` as a two-column markdown table."""
    blas = info.get("numpy_blas") or {}
    blas_str = (
        f"{blas.get('internal_api')} {blas.get('version')} ({blas.get('architecture')}, "
        f"{blas.get('num_threads')} threads)"
        if blas
        else "unknown"
    )
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v)
    rows = [
        ("date (UTC)", info["date"]),
        ("CPU", info["cpu"]),
        ("cores (usable)", f"{info['cores']} ({info['affinity']})"),
        ("numpy BLAS", blas_str),
        ("numba threads", info["numba_threads"]),
        ("python", info["python"]),
        ("versions", versions),
        ("sklearn_wlsc from", f"{info['sklearn_wlsc_source']} @ {info['sklearn_wlsc_revision']}"),
    ]
    return markdown_table(["machine", ""], rows)


def _fmt(value):
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != value:  # nan
            return "–"
        a = abs(value)
        if a == 0.0:
            return "0"
        if a >= 100:
            return f"{value:.0f}"
        if a >= 1:
            return f"{value:.2f}"
        if a >= 1e-3:
            return f"{value:.3g}"
        return f"{value:.1e}"
    return str(value)


def markdown_table(headers, rows):
    """A github-flavoured markdown table; floats get a few significant digits."""
    cells = [[_fmt(v) for v in row] for row in rows]
    lines = [
        "| " + " | ".join(str(h) for h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def write_json(path, obj):
    """Write ``obj`` as indented JSON, creating the parent folder."""
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, default=_json_default)
        f.write("\n")


def _json_default(obj):
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        raise TypeError(type(obj)) from None
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj)}")
