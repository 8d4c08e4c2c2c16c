"""Run every benchmark in this folder, print its tables, save its JSON.

A benchmark is a module ``benchmarks/<name>.py`` (not starting with ``_``)
that defines ``main(argv)``; ``run()`` alone is accepted too. Each gets
``--quick`` and ``--repeats`` when given here, and writes its results to
``benchmarks/results/<name>.json`` (a git-ignored folder).

Usage::

    python -m benchmarks                 # everything, default sizes
    python -m benchmarks --quick         # CI smoke run
    python -m benchmarks --only encode --repeats 7
    python benchmarks/run.py --list
"""

import argparse
import importlib
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def discover():
    """Names of the benchmark modules in this folder, sorted."""
    return sorted(
        f[:-3]
        for f in os.listdir(HERE)
        if f.endswith(".py") and not f.startswith("_") and f != "run.py"
    )


def _load(name):
    if __package__:
        return importlib.import_module(f"{__package__}.{name}")
    if HERE not in sys.path:  # run as a script: python benchmarks/run.py
        sys.path.insert(0, HERE)
    return importlib.import_module(name)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a CI smoke run")
    p.add_argument("--repeats", type=int, help="timed rounds, passed to every benchmark")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run these benchmarks only")
    p.add_argument("--results", default=RESULTS, help=f"folder of the JSON files ({RESULTS})")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = p.parse_args(argv)

    benchmarks = []
    for name in discover():
        module = _load(name)
        entry = getattr(module, "main", None) or getattr(module, "run", None)
        if callable(entry):
            benchmarks.append((name, entry))
    if args.list:
        for name, _ in benchmarks:
            print(name)
        return {}
    if args.only:
        unknown = set(args.only) - {name for name, _ in benchmarks}
        if unknown:
            p.error(f"unknown benchmarks {sorted(unknown)}; have {[n for n, _ in benchmarks]}")
        benchmarks = [(n, e) for n, e in benchmarks if n in args.only]

    results, failed = {}, []
    for name, entry in benchmarks:
        sub_argv = ["--json", os.path.join(args.results, f"{name}.json")]
        if args.quick:
            sub_argv.append("--quick")
        if args.repeats is not None:
            sub_argv += ["--repeats", str(args.repeats)]
        print(f"\n<!-- benchmarks.{name} {' '.join(sub_argv)} -->\n", flush=True)
        t0 = time.perf_counter()
        try:
            results[name] = entry(sub_argv)
        except Exception as exc:  # keep going; fail at the end
            failed.append(name)
            print(f"**benchmarks.{name} failed:** {type(exc).__name__}: {exc}", flush=True)
        print(f"\n<!-- {name}: {time.perf_counter() - t0:.0f} s -->", flush=True)
    if failed:
        sys.exit(f"failed benchmarks: {', '.join(failed)}")
    return results


if __name__ == "__main__":
    main()
