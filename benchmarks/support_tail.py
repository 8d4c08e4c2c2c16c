"""How early is the unrolled encoder's support final, and could its last
layers be skipped exactly?

Once a row's support stops changing, the remaining layers of the network
are an affine recursion on that face of the simplex, which could run on the
support alone if every unused coordinate were certified to stay below the
projection's threshold until the last layer. Whether such a certificate can
hold depends on two sizes: how far the momentum point still moves, and how
far below the threshold the nearest unused coordinate sits. This script
measures both on the numpy reference network (no timing), on the data of
``benchmarks/encode.py``. For each size ``(n, d = m)`` and each ``α``:

- the layer after which the support of the codes no longer changes
  (median and 90th percentile over rows);
- the margin ``τ − max_{j unused} v_j`` of the last layer (10th percentile
  and median over rows; zero where an unused coordinate ties);
- for each layer ``k`` of a grid: the median and 90th percentile over rows
  of the largest entry of ``|z_k − x_K|``, the momentum point after ``k``
  layers against the final codes; the share of rows whose final support
  is already the support after ``k`` layers; and the share whose margin
  exceeds twice that movement (a generous stand-in for a certificate,
  which needs the movement of every later layer too);
- the share of rows that reach a fixed point bit for bit (two layers in a
  row leave the codes unchanged: the numba kernel stops those rows), and
  the share of those whose code is a vertex.

Run ``python -m benchmarks.support_tail --help`` for the options.
"""

import argparse

import numpy as np

try:
    from ._common import machine_info, machine_table, markdown_table, parse_sizes, write_json
    from .encode import make_data
except ImportError:  # run as a script: python benchmarks/support_tail.py
    from _common import machine_info, machine_table, markdown_table, parse_sizes, write_json
    from encode import make_data

DEFAULT_SIZES = ["2000x64", "1000x256"]
QUICK_SIZES = ["300x64", "200x256"]
DEFAULT_CHECKPOINTS = [10, 15, 20, 25, 30, 40]


def trace_network(G, C, L, n_layers):
    """Run the reference network and keep what the analysis needs.

    Returns
    -------
    codes : list of ndarray
        The codes after each layer, ``x_1 … x_K``.
    momentum : list of ndarray
        The momentum point after each layer, ``z_1 … z_K``.
    v_last : ndarray
        The last layer's point before projection.
    """
    from sklearn_wlsc._backends._base import momentum_schedule
    from sklearn_wlsc._simplex import project_simplex

    betas = momentum_schedule(n_layers, C.dtype)
    inv_L = C.dtype.type(1.0 / L)
    X = np.zeros_like(C)
    Z = np.zeros_like(C)
    codes, momentum = [], []
    for k in range(n_layers):
        V = Z - (Z @ G - C) * inv_L
        X_new = project_simplex(V)
        Z = X_new + betas[k] * (X_new - X)
        X = X_new
        codes.append(X)
        momentum.append(Z)
    return codes, momentum, V


def support_tail(G, C, L, n_layers, checkpoints):
    """The statistics of the module docstring for one set of encoder terms."""
    codes, momentum, V = trace_network(G, C, L, n_layers)
    n = C.shape[0]
    supports = np.array([X > 0 for X in codes])  # (K, n, m)
    # changed[t]: the supports after layers t + 1 and t + 2 differ
    changed = np.any(supports[1:] != supports[:-1], axis=2)
    t_last = n_layers - 2 - np.argmax(changed[::-1], axis=0)
    # the support after `final_layer` layers is the final one for good
    final_layer = np.where(changed.any(axis=0), t_last + 2, 1)
    X_K = codes[-1]
    used = X_K > 0
    tau = (np.where(used, V, 0.0).sum(axis=1) - 1.0) / used.sum(axis=1)
    unused_max = np.where(used, -np.inf, V).max(axis=1)
    margin = np.where(np.isfinite(unused_max), tau - unused_max, np.inf)
    at = []
    for k in checkpoints:
        if not 1 <= k <= n_layers:
            continue
        movement = np.abs(momentum[k - 1] - X_K).max(axis=1)
        at.append(
            {
                "layer": k,
                "movement_median": float(np.median(movement)),
                "movement_p90": float(np.quantile(movement, 0.9)),
                "support_final": float(np.mean(final_layer <= k)),
                "margin_exceeds_twice_movement": float(np.mean(margin > 2 * movement)),
            }
        )
    same = np.array([np.all(codes[k] == codes[k - 1], axis=1) for k in range(1, n_layers)])
    # two layers in a row that leave the codes unchanged
    fixed = np.any(same[1:] & same[:-1], axis=0) if n_layers > 2 else np.zeros(n, bool)
    vertex = used.sum(axis=1) == 1
    finite = np.isfinite(margin)
    return {
        "support_final_median": float(np.median(final_layer)),
        "support_final_p90": float(np.quantile(final_layer, 0.9)),
        "margin_p10": float(np.quantile(margin[finite], 0.1)) if finite.any() else None,
        "margin_median": float(np.median(margin[finite])) if finite.any() else None,
        "nnz_codes": float(used.sum(axis=1).mean()),
        "fixed_point": float(fixed.mean()),
        "vertex_among_fixed": float(vertex[fixed].mean()) if fixed.any() else None,
        "vertex": float(vertex.mean()),
        "checkpoints": at,
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.support_tail", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--sizes", nargs="+", metavar="NxM", help="n samples x (d = m)")
    p.add_argument("--alphas", nargs="+", type=float, default=[0.0, 0.5])
    p.add_argument("--layers", type=int, default=50, help="layers of the unrolled encoder")
    p.add_argument("--checkpoints", nargs="+", type=int, default=DEFAULT_CHECKPOINTS)
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--repeats", type=int, default=None, help="ignored: nothing is timed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    args = p.parse_args(argv)
    if args.sizes is None:
        args.sizes = QUICK_SIZES if args.quick else DEFAULT_SIZES
    if args.layers < 3:
        p.error("--layers must be at least 3")
    args.sizes = parse_sizes(p, args.sizes)
    return args


def main(argv=None):
    """Run the analysis, print markdown tables; return the results dict."""
    from sklearn_wlsc import _objective

    args = parse_args(argv)
    info = machine_info()
    results = []
    for n, m in args.sizes:
        for alpha in args.alphas:
            Y, A = make_data(n, m, m, np.random.default_rng(args.seed))
            G, C = _objective.encoder_terms(Y, A, alpha)
            L = _objective.lipschitz_constant(A)
            r = support_tail(G, C, L, args.layers, args.checkpoints)
            results.append({"n": n, "m": m, "alpha": alpha, **r})
    print("# When is the unrolled encoder's support final?\n")
    print(machine_table(info))
    print(f"\nnumpy reference network, {args.layers} layers, float64, seed {args.seed}\n")

    def fmt(x):
        return "–" if x is None else x

    print(
        markdown_table(
            [
                "config",
                "support final after layer (median / p90)",
                "margin (p10 / median)",
                "nonzeros",
                "rows at a bitwise fixed point",
                "of which vertices",
            ],
            [
                (
                    f"{r['n']}, d=m={r['m']}, α={r['alpha']:g}",
                    f"{r['support_final_median']:g} / {r['support_final_p90']:g}",
                    f"{fmt(r['margin_p10']):.2g} / {fmt(r['margin_median']):.2g}"
                    if r["margin_median"] is not None
                    else "–",
                    r["nnz_codes"],
                    r["fixed_point"],
                    fmt(r["vertex_among_fixed"]),
                )
                for r in results
            ],
        )
    )
    print()
    print(
        markdown_table(
            [
                "config",
                "layer k",
                "max |z_k − x_K| (median / p90)",
                "support final by k",
                "margin > 2 × movement",
            ],
            [
                (
                    f"{r['n']}, d=m={r['m']}, α={r['alpha']:g}",
                    c["layer"],
                    f"{c['movement_median']:.2g} / {c['movement_p90']:.2g}",
                    c["support_final"],
                    c["margin_exceeds_twice_movement"],
                )
                for r in results
                for c in r["checkpoints"]
            ],
        )
    )
    report = {"benchmark": "support_tail", "machine": info, "args": vars(args), "results": results}
    if args.json:
        write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
