"""Are WLSC's receptive fields more like macaque V1 simple cells than sparse coding's?

Ringach (2002) fit 2D Gabors to simple cells of macaque V1 and reported:

(a) the spatial phases cluster into an even and an odd class;
(b) many cells are broadly tuned and low-pass: ``nx < 0.5`` and ``ny < 0.5``
    (``nx = σx f``, ``ny = σy f``: envelope width and length in carrier
    periods), which sparse coding and ICA do not produce;
(c) sparse coding and ICA predict receptive fields with more subfields
    (larger ``nx``) than observed.

The WLSC paper (Huml, Tasissa and Ba) reports that WLSC's phase histogram
matches (a) and that WLSC has more broadly tuned cells than sparse coding.

This script trains every model on the same whitened natural-image patches
(:func:`sklearn_wlsc.datasets.load_natural_image_patches`, train split) with
the same number of atoms, fits a Gabor to every atom
(:func:`sklearn_wlsc.receptive_fields.fit_gabors`) and reports, per model:
the fraction of atoms fit well, medians and IQRs of ``nx`` and ``ny``, the
fraction with ``nx < 0.5`` and ``ny < 0.5``, the phase bimodality, the
relative reconstruction error on the test split, and the mean number of
nonzero code entries. Models:

- ``WLSC α``: :class:`~sklearn_wlsc.WeightedL1SparseCoder`, alternating fit
  with exact encoding, swept over ``alpha``; test codes from ``transform``,
  reconstructions from ``inverse_transform``;
- ``WLSC-unrolled α`` (only with ``--unrolled-epochs N``, needs torch): the
  papers' training, Adam through a ``--unrolled-layers`` (15) deep unrolled
  encoder from random training patches, at the reference ``alpha``; test
  codes from the same unrolled encoder. At the papers' learning rate 1e-3,
  30 epochs on the default 6000 patches took 506 s on 2 cores and left the
  atoms close to their initial patches (3/64 valid fits): it needs far more
  steps (or a GPU) than the rest of this script;
- ``SC α``: classical l1 sparse coding, scikit-learn's
  ``MiniBatchDictionaryLearning`` with lasso codes (``transform_alpha =
  alpha``), swept over ``alpha``;
- ``ICA``: ``FastICA``; its atoms are the basis functions (columns of
  ``mixing_``), its reconstruction the projection on its subspace;
- ``KMeans``: centroids; reconstruction by the nearest centroid;
- ``random atoms`` (negative control: white-noise atoms) and ``random
  patches`` (training patches used as atoms, a control for how Gabor-like
  the whitened data are by themselves); reconstruction by least squares on
  the atoms, an upper bound for any code.

Then permutation tests between the reference WLSC model (``--reference``)
and every other model on ``(nx, ny)`` (energy distance), the medians of
``nx`` and ``ny``, and the folded-phase histogram (total variation), and a
pass/fail table of the three facts per model, with these operational rules
(thresholds are ours; the papers state the facts qualitatively):

(a) ``phase clusters``: each end band of the folded phase (``[0, π/8)``,
    ``(3π/8, π/2]``) holds more than its uniform share (1/4), and the two
    together more than half, one-sided binomial ``p < 0.05``;
(b) ``many low-pass``: at least ``--low-pass-min`` (default 0.25) of the
    valid fits have ``nx < 0.5`` and ``ny < 0.5``;
(c) ``more subfields``: the model's median ``nx`` exceeds the reference's
    (one-sided permutation ``p < 0.05``). Without V1 data this compares
    with the reference WLSC model, not with cells; with ``--v1 cells.csv``
    (columns ``nx``, ``ny``, ``phase``) it compares with the cells, and
    every model is also compared with them by
    :func:`~sklearn_wlsc.receptive_fields.compare_to_v1`.

Models with fewer than 10 valid fits are not assessed ("n/a").

Run ``python benchmarks/receptive_fields.py --help`` for the options;
``--quick`` is a smoke test of a minute or two.
"""

import argparse
import math
import sys
import time
import warnings

import numpy as np

try:
    from ._common import machine_info, machine_table, markdown_table, write_json
except ImportError:  # run as a script: python benchmarks/receptive_fields.py
    from _common import machine_info, machine_table, markdown_table, write_json

from sklearn_wlsc import WeightedL1SparseCoder
from sklearn_wlsc.datasets import load_natural_image_patches
from sklearn_wlsc.receptive_fields import (
    compare_fits,
    compare_to_v1,
    fit_gabors,
    summarize_gabor_fits,
)

MIN_VALID = 10


# -- models: each returns (atoms, test reconstruction, mean nonzeros per code) --


def _wlsc(alpha, args):
    def run(Y, Yt):
        coder = WeightedL1SparseCoder(
            args.n_components,
            alpha=alpha,
            max_iter=args.max_iter,
            tol=1e-4,
            random_state=args.random_state,
            n_jobs=args.n_jobs,
        ).fit(Y)
        codes = coder.transform(Yt)
        return coder.components_, coder.inverse_transform(codes), (codes > 0).sum(1).mean()

    return run


def _wlsc_unrolled(alpha, args):
    def run(Y, Yt):
        from sklearn_wlsc import sparse_encode
        from sklearn_wlsc.torch import train_unrolled

        rng = np.random.default_rng(args.random_state)
        A0 = Y[rng.choice(Y.shape[0], args.n_components, replace=False)]
        A, _, _ = train_unrolled(
            Y.astype(np.float32),
            A0,
            alpha=alpha,
            n_layers=args.unrolled_layers,
            learning_rate=args.unrolled_lr,
            max_epochs=args.unrolled_epochs,
            random_state=args.random_state,
        )
        codes = sparse_encode(
            Yt, A, alpha=alpha, algorithm="unrolled", n_layers=args.unrolled_layers
        )
        return A, codes @ A, (codes > 0).sum(1).mean()

    return run


def _sparse_coding(alpha, args):
    def run(Y, Yt):
        from sklearn.decomposition import MiniBatchDictionaryLearning

        sc = MiniBatchDictionaryLearning(
            args.n_components,
            alpha=alpha,
            max_iter=args.sc_epochs,
            batch_size=256,
            fit_algorithm="cd",
            tol=0.0,  # run every epoch: early stopping leaves noisy atoms
            max_no_improvement=None,
            transform_algorithm="lasso_cd",
            transform_alpha=alpha,
            random_state=args.random_state,
        ).fit(Y)
        codes = sc.transform(Yt)
        return sc.components_, codes @ sc.components_, (codes != 0).sum(1).mean()

    return run


def _ica(args):
    def run(Y, Yt):
        from sklearn.decomposition import FastICA

        ica = FastICA(
            args.n_components,
            whiten="unit-variance",
            max_iter=1000,
            tol=1e-4,
            random_state=args.random_state,
        ).fit(Y)
        codes = ica.transform(Yt)
        return ica.mixing_.T, ica.inverse_transform(codes), float(args.n_components)

    return run


def _kmeans(args):
    def run(Y, Yt):
        from sklearn.cluster import KMeans

        km = KMeans(args.n_components, n_init=3, random_state=args.random_state).fit(Y)
        return km.cluster_centers_, km.cluster_centers_[km.predict(Yt)], 1.0

    return run


def _least_squares_reconstruction(atoms, Yt):
    codes, *_ = np.linalg.lstsq(atoms.T, Yt.T, rcond=None)
    return codes.T @ atoms


def _random_atoms(args):
    def run(Y, Yt):
        rng = np.random.default_rng(args.random_state)
        atoms = rng.standard_normal((args.n_components, Y.shape[1]))
        return atoms, _least_squares_reconstruction(atoms, Yt), float(args.n_components)

    return run


def _random_patches(args):
    def run(Y, Yt):
        rng = np.random.default_rng(args.random_state)
        atoms = Y[rng.choice(Y.shape[0], args.n_components, replace=False)]
        return atoms, _least_squares_reconstruction(atoms, Yt), float(args.n_components)

    return run


def build_models(args):
    """(name, family, parameter, runner) of every model, in table order."""
    models = [(f"WLSC α={a:g}", "WLSC", a, _wlsc(a, args)) for a in args.wlsc_alphas]
    if args.unrolled_epochs:
        name = f"WLSC-unrolled α={args.reference:g}"
        models.append((name, "WLSC", args.reference, _wlsc_unrolled(args.reference, args)))
    models += [(f"SC α={a:g}", "SC", a, _sparse_coding(a, args)) for a in args.sc_alphas]
    models += [
        ("ICA", "ICA", None, _ica(args)),
        ("KMeans", "KMeans", None, _kmeans(args)),
        ("random atoms", "control", None, _random_atoms(args)),
        ("random patches", "control", None, _random_patches(args)),
    ]
    return models


# -- facts ----------------------------------------------------------------------


def _fact_a(s):
    if s["n"] < MIN_VALID:
        return None
    return bool(
        s["phase_even"] > 0.25 and s["phase_odd"] > 0.25 and s["phase_bimodality_pvalue"] < 0.05
    )


def _fact_b(s, low_pass_min):
    if s["n"] < MIN_VALID:
        return None
    return bool(s["fraction_low_pass"] >= low_pass_min)


def _fact_c(cmp):
    """Median nx of the model (a) above the comparison population (b)."""
    if cmp is None or min(cmp["n_a"], cmp["n_b"]) < MIN_VALID:
        return None
    # one-sided from the two-sided permutation p-value of the median difference
    p = cmp["median_nx_diff_pvalue"]
    return bool(cmp["median_nx_diff"] > 0 and p / 2 < 0.05)


def _mark(v):
    return "n/a" if v is None else ("PASS" if v else "fail")


# -- main -------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )

    def floats(text):
        return [float(v) for v in text.split(",") if v]

    parser.add_argument("--patch-size", type=int, default=12)
    parser.add_argument("--n-components", type=int, default=64)
    parser.add_argument("--n-train", type=int, default=6000, help="training patches")
    parser.add_argument("--n-test", type=int, default=2000, help="test patches")
    parser.add_argument(
        "--images", default="auto", help="'auto', 'sklearn' or comma-separated names"
    )
    parser.add_argument("--split-by", choices=["image", "region"], default="image")
    parser.add_argument("--wlsc-alphas", type=floats, default=floats("0,0.1,0.3,0.7,1.5,3"))
    parser.add_argument("--sc-alphas", type=floats, default=floats("1,3,6"))
    parser.add_argument("--reference", type=float, default=0.7, help="alpha of the reference WLSC")
    parser.add_argument("--max-iter", type=int, default=20, help="WLSC alternating iterations")
    parser.add_argument(
        "--unrolled-epochs",
        type=int,
        default=0,
        help="also train the papers' unrolled network (needs torch) for this many epochs",
    )
    parser.add_argument("--unrolled-layers", type=int, default=15)
    parser.add_argument("--unrolled-lr", type=float, default=1e-3)
    parser.add_argument("--sc-epochs", type=int, default=10, help="sparse coding epochs")
    parser.add_argument("--n-starts", type=int, default=6, help="Gabor fit starts per atom")
    parser.add_argument("--r2-min", type=float, default=0.8)
    parser.add_argument("--min-inside", type=float, default=0.7, help="energy on the patch")
    parser.add_argument("--low-pass-min", type=float, default=0.25)
    parser.add_argument("--n-permutations", type=int, default=999)
    parser.add_argument("--n-jobs", type=int, default=None, help="threads / processes")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--v1", default=None, help="CSV of V1 cells with columns nx,ny,phase")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--figure", default=None, help="save a Figure 1A-like plot here")
    parser.add_argument("--quick", action="store_true", help="tiny smoke-test settings")
    parser.add_argument(
        "--repeats", type=int, default=None, help="ignored: nothing here is timed in rounds"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.patch_size, args.n_components = 8, 16
        args.n_train, args.n_test = 1500, 500
        args.wlsc_alphas, args.sc_alphas = [0.0, 0.7], [1.0]
        args.reference = 0.7
        args.max_iter, args.sc_epochs, args.n_starts = 5, 2, 3
        args.n_permutations = 199
    if args.reference not in args.wlsc_alphas:
        parser.error(f"--reference {args.reference} is not among --wlsc-alphas")
    if args.images not in ("auto", "sklearn"):
        args.images = args.images.split(",")
    return args


def _load_v1(path):
    data = np.genfromtxt(path, delimiter=",", names=True)
    return {k: np.asarray(data[k], dtype=float) for k in ("nx", "ny", "phase")}


def run(args):
    p = args.patch_size
    data_kw = {"images": args.images, "split_by": args.split_by}
    Y, info = load_natural_image_patches(
        p,
        args.n_train,
        split="train",
        random_state=args.random_state,
        return_images=True,
        **data_kw,
    )
    Yt, info_t = load_natural_image_patches(
        p,
        args.n_test,
        split="test",
        random_state=args.random_state + 1,
        return_images=True,
        **data_kw,
    )
    v1 = _load_v1(args.v1) if args.v1 else None
    results, fits = [], {}
    for name, family, param, runner in build_models(args):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings of capped fits
            atoms, recon, nnz = runner(Y, Yt)
        t_model = time.perf_counter() - t0
        t0 = time.perf_counter()
        fit = fit_gabors(
            atoms,
            (p, p),
            n_starts=args.n_starts,
            r2_min=args.r2_min,
            min_inside=args.min_inside,
            random_state=args.random_state,
            n_jobs=args.n_jobs,
        )
        t_gabor = time.perf_counter() - t0
        s = summarize_gabor_fits(fit)
        rel_err = float(np.sum((Yt - recon) ** 2) / np.sum(Yt**2))
        fits[name] = (fit, atoms)
        row = {
            "model": name,
            "family": family,
            "alpha": param,
            **s,
            "test_relative_error": rel_err,
            "mean_nonzeros": float(nnz),
            "fit_seconds": t_model,
            "gabor_seconds": t_gabor,
            "exclusions": {k: int(v.sum()) for k, v in fit.exclusions.items()},
        }
        if v1 is not None:
            row["v1"] = compare_to_v1(
                fit,
                **{f"v1_{k}": v for k, v in v1.items()},
                n_permutations=args.n_permutations,
                random_state=args.random_state,
            )
        results.append(row)
        print(
            f"  {name}: {t_model:.1f} s fit, {t_gabor:.1f} s Gabor fits, "
            f"{s['n_valid']}/{s['n_atoms']} valid",
            file=sys.stderr,
            flush=True,
        )

    ref_name = f"WLSC α={args.reference:g}"
    ref_fit = fits[ref_name][0]
    comparisons = []
    for row in results:
        if row["model"] == ref_name:
            continue
        cmp = compare_fits(
            fits[row["model"]][0],
            ref_fit,
            n_permutations=args.n_permutations,
            random_state=args.random_state,
        )
        comparisons.append({"model": row["model"], "reference": ref_name, **cmp})
    by_model = {c["model"]: c for c in comparisons}
    facts = []
    for row in results:
        c_cmp = row["v1"] if v1 is not None else by_model.get(row["model"])
        facts.append(
            {
                "model": row["model"],
                "a_phase_clusters": _fact_a(row),
                "b_many_low_pass": _fact_b(row, args.low_pass_min),
                "c_more_subfields": _fact_c(c_cmp),
            }
        )
    return {
        "config": {k: v for k, v in vars(args).items() if k not in ("json", "figure", "repeats")},
        "data": {
            "train_images": info.names,
            "test_images": info_t.names,
            "train_shape": Y.shape,
            "test_shape": Yt.shape,
        },
        "machine": machine_info(),
        "models": results,
        "comparisons": comparisons,
        "facts": facts,
    }, fits


def _median_iqr(r, name):
    if not r["n"]:
        return "–"
    return f"{r[name + '_median']:.2f} [{r[name + '_q25']:.2f}, {r[name + '_q75']:.2f}]"


def _low_pass(r):
    if not r["n"]:
        return "–"
    even, odd = r["fraction_low_pass_even"], r["fraction_low_pass_odd"]
    return f"{r['fraction_low_pass']:.2f} ({even:.2f}/{odd:.2f})"


def print_tables(out):
    cfg, data = out["config"], out["data"]
    print("## Receptive fields of models trained on whitened natural-image patches\n")
    print(
        f"{cfg['patch_size']}x{cfg['patch_size']} patches, {cfg['n_components']} atoms; "
        f"train {data['train_shape'][0]} patches from {data['train_images']}, "
        f"test {data['test_shape'][0]} patches from {data['test_images']} "
        f"(split by {cfg['split_by']}). Gabor fits: {cfg['n_starts']} starts, "
        f"valid = R² ≥ {cfg['r2_min']:g}, center on the patch and ≥ {cfg['min_inside']:g} "
        "of the Gabor's energy on the patch.\n"
    )
    rows = [
        (
            r["model"],
            f"{r['n_valid']}/{r['n_atoms']}",
            r["median_r2"],
            _median_iqr(r, "nx"),
            _median_iqr(r, "ny"),
            _low_pass(r),
            f"{r['phase_even']:.2f}/{r['phase_middle']:.2f}/{r['phase_odd']:.2f}",
            r["phase_bimodality"],
            r["phase_bimodality_pvalue"],
            r["test_relative_error"],
            r["mean_nonzeros"],
            r["fit_seconds"],
        )
        for r in out["models"]
    ]
    print(
        markdown_table(
            [
                "model",
                "valid",
                "median R²",
                "nx median [IQR]",
                "ny median [IQR]",
                "nx,ny<0.5 (even/odd)",
                "phase even/mid/odd",
                "bimodality",
                "p (bimodal)",
                "test rel. error",
                "nonzeros",
                "fit s",
            ],
            rows,
        )
    )
    ref = out["comparisons"][0]["reference"] if out["comparisons"] else "?"
    print(
        f"\n### Tests against {ref}: permutation tests ({cfg['n_permutations']} "
        "permutations) of the median differences, the energy distance and the phase "
        f"histogram's total variation; Fisher exact test of the low-pass fractions "
        f"(n/a: fewer than {MIN_VALID} valid fits)\n"
    )

    def cell(c, key, fmt):
        if min(c["n_a"], c["n_b"]) < MIN_VALID:
            return "n/a"
        return f"{c[key]:{fmt}} (p={c[key + '_pvalue']:.3g})"

    rows = [
        (
            c["model"],
            f"{c['n_a']} vs {c['n_b']}",
            cell(c, "median_nx_diff", "+.2f"),
            cell(c, "median_ny_diff", "+.2f"),
            cell(c, "energy_nxny", ".3f"),
            cell(c, "phase_tv", ".2f"),
            cell(c, "low_pass_diff", "+.2f"),
        )
        for c in out["comparisons"]
    ]
    print(
        markdown_table(
            [
                "model",
                "n valid",
                "Δ median nx",
                "Δ median ny",
                "energy (nx,ny)",
                "phase TV",
                "Δ low-pass fraction",
            ],
            rows,
        )
    )
    versus = "V1 cells" if cfg.get("v1") else ref
    print(f"\n### Published facts, per model (c: median nx above {versus})\n")
    rows = [
        (
            f["model"],
            _mark(f["a_phase_clusters"]),
            _mark(f["b_many_low_pass"]),
            _mark(f["c_more_subfields"]),
        )
        for f in out["facts"]
    ]
    print(
        markdown_table(
            [
                "model",
                "(a) even/odd phase clusters",
                f"(b) ≥{cfg['low_pass_min']:g} low-pass (nx,ny<0.5)",
                "(c) more subfields",
            ],
            rows,
        )
    )
    print("\n" + machine_table(out["machine"]))


def save_figure(path, out, fits, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sklearn_wlsc.receptive_fields import plot_atoms, plot_nx_ny

    ref = f"WLSC α={args.reference:g}"
    sc = [r["model"] for r in out["models"] if r["family"] == "SC"]
    sc_ref = sc[len(sc) // 2] if sc else None
    shown = [m for m in (ref, sc_ref, "ICA") if m is not None]
    fig, axes = plt.subplots(2, 2, figsize=(11, 9))
    edges = np.linspace(0, math.pi / 2, 9)
    width = (edges[1] - edges[0]) / (len(shown) + 1)
    for k, name in enumerate(shown):
        fit = fits[name][0]
        ph = fit.phase_folded[fit.valid]
        h = np.histogram(ph, edges)[0] / max(ph.size, 1)
        axes[0, 0].bar(edges[:-1] + (k + 0.5) * width, h, width, align="edge", label=name)
        plot_nx_ny(fit, ax=axes[0, 1], label=name)
    axes[0, 0].set_xticks([0, math.pi / 4, math.pi / 2], ["0 (even)", "π/4", "π/2 (odd)"])
    axes[0, 0].set_xlabel("spatial phase (folded)")
    axes[0, 0].set_ylabel("fraction of valid fits")
    axes[0, 0].set_title("(cf. WLSC paper, Figure 1A)")
    axes[0, 0].legend()
    for ax, name in ((axes[1, 0], ref), (axes[1, 1], sc_ref)):
        if name is None:
            ax.set_axis_off()
            continue
        fit, atoms = fits[name]
        plot_atoms(atoms, (args.patch_size,) * 2, fit=fit, ax=ax)
        ax.set_title(f"{name} atoms (red: excluded)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    out, fits = run(args)
    if args.json:
        write_json(args.json, out)
    print_tables(out)
    if args.figure:
        save_figure(args.figure, out, fits, args)
    return out


if __name__ == "__main__":
    main()
