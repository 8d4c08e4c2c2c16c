"""The ``wlsc`` command (also ``python -m sklearn_wlsc``)."""

import argparse
import sys
import time


def _demo(args):
    """Fit on the digits that ship with scikit-learn and report what the
    codes capture."""
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_digits
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from ._estimator import WeightedL1SparseCoder

    X, y = load_digits(return_X_y=True)
    print(f"digits: {X.shape[0]} samples x {X.shape[1]} pixels, 10 classes")
    t0 = time.perf_counter()
    coder = WeightedL1SparseCoder(
        n_components=args.n_components, alpha=args.alpha, random_state=args.random_state
    )
    codes = coder.fit_transform(X)
    elapsed = time.perf_counter() - t0
    nnz = (codes > 0).sum(axis=1)
    rel_err = np.linalg.norm(X - coder.inverse_transform(codes)) / np.linalg.norm(X)
    print(
        f"fit + transform: {elapsed:.2f} s, {coder.n_iter_} alternating iterations, "
        f"objective {coder.objective_:.4g}"
    )
    print(
        f"codes: {nnz.mean():.2f} nonzeros per sample (of {codes.shape[1]}), "
        f"relative reconstruction error {rel_err:.3f}"
    )
    # each atom votes for the label of the samples that use it most
    atom_label = np.array(
        [np.bincount(y, weights=codes[:, j], minlength=10).argmax() for j in range(codes.shape[1])]
    )
    pred = atom_label[codes.argmax(axis=1)]
    print(f"atom-vote accuracy of the codes: {np.mean(pred == y):.3f}")
    km_raw = KMeans(10, n_init=10, random_state=args.random_state).fit_predict(X)
    print(
        f"KMeans on raw pixels: ARI {adjusted_rand_score(y, km_raw):.3f}, "
        f"NMI {normalized_mutual_info_score(y, km_raw):.3f}"
    )
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="wlsc",
        description="Weighted-l1 sparse coding on the simplex (sklearn-wlsc).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="fit on the bundled digits and report what the codes capture",
        description="Fit WeightedL1SparseCoder on scikit-learn's digits (no download).",
    )
    demo.add_argument("--n-components", type=int, default=64, help="number of atoms (default 64)")
    demo.add_argument("--alpha", type=float, default=0.5, help="locality penalty (default 0.5)")
    demo.add_argument("--random-state", type=int, default=0, help="seed (default 0)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"wlsc {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
