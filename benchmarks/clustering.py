"""How well do codes cluster, against scikit-learn's clusterers?

``SimplexSpectralClustering`` given only ``n_clusters`` and ``random_state``
against, with the same two settings:

- ``KMeans`` on the raw features (``n_init=10``);
- ``SpectralClustering(affinity="nearest_neighbors")`` on the raw features
  (its default 10 neighbours);
- ``GaussianMixture`` (full covariances);
- ``KMeans`` on the codes of scikit-learn's ``MiniBatchDictionaryLearning``
  with as many atoms as ours.

Data sets: digits (raw pixels), iris (raw), wine and breast cancer
(standardized, for every method), two moons (noise 0.05) and blobs of varied
spread (scikit-learn's clustering-comparison example); the synthetic sets
are redrawn for each seed. Every figure is a mean ± sd over the seeds of
accuracy (Hungarian matching, ``scipy.optimize.linear_sum_assignment``),
NMI, ARI and the wall time of ``fit``.

Options:

- ``--mnist PATH``: MNIST from files the user has (a folder with the idx
  files, gzipped or not, or an ``.npz`` with ``x_train, y_train[, x_test,
  y_test]``); nothing is downloaded. Ours and KMeans on the training set,
  and ours on the test set through ``predict``.
- ``--scale``: the time of ``SimplexSpectralClustering(n_clusters=10)`` on
  ``100,000 × 64`` synthetic blobs (after an untimed warm-up fit that
  compiles the kernels), against KMeans. Goal: under a minute on 2 cores.
- ``--tsne OUT.png``: t-SNE of digits' raw pixels, of their codes and of
  the spectral embedding of the codes, colored by digit (after the papers'
  Figure 1B); needs matplotlib.

Usage::

    python -m benchmarks.clustering                 # the table, 5 seeds
    python -m benchmarks.clustering --quick         # 2 seeds, small sets only
    python -m benchmarks.clustering --scale --tsne /tmp/tsne.png
    python -m benchmarks.clustering --mnist ~/data/mnist --no-table
"""

import argparse
import gzip
import os
import struct
import sys
import time
import warnings

import numpy as np

try:
    from ._common import machine_info, machine_table, markdown_table, write_json
except ImportError:  # run as a script: python benchmarks/clustering.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from _common import machine_info, machine_table, markdown_table, write_json

from sklearn_wlsc._clustering import SimplexSpectralClustering, default_n_atoms

# -- data ---------------------------------------------------------------------


def _standardized(X):
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit_transform(X)


def load_dataset(name, seed):
    """``(X, y)`` of one benchmark data set; synthetic ones depend on ``seed``."""
    from sklearn import datasets

    if name == "digits":
        return datasets.load_digits(return_X_y=True)
    if name == "iris":
        return datasets.load_iris(return_X_y=True)
    if name == "wine (std)":
        X, y = datasets.load_wine(return_X_y=True)
        return _standardized(X), y
    if name == "breast cancer (std)":
        X, y = datasets.load_breast_cancer(return_X_y=True)
        return _standardized(X), y
    if name == "moons":
        return datasets.make_moons(1500, noise=0.05, random_state=seed)
    if name == "blobs (varied)":
        return datasets.make_blobs(1500, cluster_std=[1.0, 2.5, 0.5], random_state=170 + seed)
    raise ValueError(f"unknown data set {name!r}")


DATASETS = ["digits", "iris", "wine (std)", "breast cancer (std)", "moons", "blobs (varied)"]
QUICK_DATASETS = ["iris", "wine (std)", "moons"]


# -- methods --------------------------------------------------------------------


def _kmeans(X, k, seed):
    from sklearn.cluster import KMeans

    return KMeans(k, n_init=10, random_state=seed).fit(X).labels_


def _spectral(X, k, seed):
    from sklearn.cluster import SpectralClustering

    return SpectralClustering(k, affinity="nearest_neighbors", random_state=seed).fit(X).labels_


def _gmm(X, k, seed):
    from sklearn.mixture import GaussianMixture

    return GaussianMixture(k, random_state=seed).fit(X).predict(X)


def _mbdl_kmeans(X, k, seed):
    from sklearn.cluster import KMeans
    from sklearn.decomposition import MiniBatchDictionaryLearning

    m = default_n_atoms(X.shape[0], k)
    codes = MiniBatchDictionaryLearning(n_components=m, random_state=seed).fit_transform(X)
    return KMeans(k, n_init=10, random_state=seed).fit(codes).labels_


def _ours(X, k, seed):
    return SimplexSpectralClustering(n_clusters=k, random_state=seed).fit(X).labels_


METHODS = {
    "KMeans (raw)": _kmeans,
    "SpectralClustering kNN (raw)": _spectral,
    "GaussianMixture": _gmm,
    "KMeans on MiniBatchDictionaryLearning codes": _mbdl_kmeans,
    "SimplexSpectralClustering (ours)": _ours,
}
OURS = "SimplexSpectralClustering (ours)"


# -- metrics ----------------------------------------------------------------------


def clustering_accuracy(y, labels):
    """Accuracy of the best one-to-one matching of clusters to classes."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics.cluster import contingency_matrix

    C = contingency_matrix(y, labels)
    rows, cols = linear_sum_assignment(-C)
    return C[rows, cols].sum() / C.sum()


def scores(y, labels):
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {
        "ACC": float(clustering_accuracy(y, labels)),
        "NMI": float(normalized_mutual_info_score(y, labels)),
        "ARI": float(adjusted_rand_score(y, labels)),
    }


def _pm(values, digits=3):
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"


# -- the table ---------------------------------------------------------------------


def warm_up():
    """Compile the numba kernels before anything is timed."""
    X = np.random.default_rng(0).standard_normal((200, 4))
    SimplexSpectralClustering(2, random_state=0).fit(X)


def run_table(datasets, seeds):
    """Every method on every data set and seed; returns the raw results."""
    results = {}
    for name in datasets:
        for seed in seeds:
            X, y = load_dataset(name, seed)
            k = len(np.unique(y))
            for method, fn in METHODS.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t0 = time.perf_counter()
                    labels = fn(X, k, seed)
                    elapsed = time.perf_counter() - t0
                row = scores(y, labels)
                row["time"] = elapsed
                results.setdefault(name, {}).setdefault(method, []).append(row)
            print(f"<!-- {name}, seed {seed} done -->", file=sys.stderr, flush=True)
    return results


def table_rows(results):
    rows = []
    for name, by_method in results.items():
        for method, runs in by_method.items():
            rows.append(
                [name, method]
                + [_pm([r[key] for r in runs]) for key in ("ACC", "NMI", "ARI")]
                + [_pm([r["time"] for r in runs], 2)]
            )
    return rows


def mean_ari(results):
    """Mean ARI over data sets (each averaged over seeds), per method."""
    out = {}
    for method in METHODS:
        out[method] = float(
            np.mean([np.mean([r["ARI"] for r in results[d][method]]) for d in results])
        )
    return out


def goals(results):
    """The goals of the clustering issue, checked against ``results``."""
    lines = []
    ari = {
        d: {m: float(np.mean([r["ARI"] for r in runs])) for m, runs in by.items()}
        for d, by in results.items()
    }
    worse = [d for d in ari if ari[d][OURS] <= ari[d]["KMeans (raw)"]]
    lines.append(
        "- beats KMeans (raw) on ARI on every data set: "
        + ("yes" if not worse else "no, not on " + ", ".join(worse))
    )
    means = mean_ari(results)
    spec = "SpectralClustering kNN (raw)"
    lines.append(
        f"- mean ARI over data sets: ours {means[OURS]:.3f}, kNN spectral "
        f"{means[spec]:.3f}, KMeans {means['KMeans (raw)']:.3f}, GMM "
        f"{means['GaussianMixture']:.3f}"
    )
    if "digits" in ari:
        lines.append(f"- digits ARI ≥ 0.85: {ari['digits'][OURS]:.3f}")
    return lines


# -- held-out digits -------------------------------------------------------------------


def held_out_digits(seeds):
    """In-sample ARI on 75% of digits against ARI of ``predict`` on the rest."""
    from sklearn.datasets import load_digits
    from sklearn.metrics import adjusted_rand_score
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    rows = []
    for seed in seeds:
        X_tr, X_te, y_tr, y_te = train_test_split(
            X, y, test_size=0.25, stratify=y, random_state=seed
        )
        model = SimplexSpectralClustering(10, random_state=seed).fit(X_tr)
        rows.append(
            (
                adjusted_rand_score(y_tr, model.labels_),
                adjusted_rand_score(y_te, model.predict(X_te)),
            )
        )
    return np.array(rows)


# -- MNIST from the user's files ---------------------------------------------------------


def _read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        zero, dtype, ndim = struct.unpack(">HBB", f.read(4))
        if zero != 0 or dtype != 0x08:
            raise ValueError(f"{path} is not an idx file of unsigned bytes")
        shape = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(shape)


def _find(folder, stem):
    for suffix in ("", ".gz"):
        for name in (stem, stem.replace("-idx", ".idx")):
            path = os.path.join(folder, name + suffix)
            if os.path.exists(path):
                return path
    return None


def load_mnist(path):
    """``(X_train, y_train, X_test, y_test)`` from the user's MNIST files.

    ``path`` is an ``.npz`` (keys ``x_train, y_train`` and optionally
    ``x_test, y_test``; or ``X, y``) or a folder holding the idx files
    ``train-images-idx3-ubyte[.gz]`` etc. Pixels are scaled to ``[0, 1]``.
    Nothing is downloaded. Test arrays are ``None`` when absent.
    """
    path = os.path.expanduser(path)
    if path.endswith(".npz"):
        with np.load(path) as data:
            keys = set(data.files)
            if {"x_train", "y_train"} <= keys:
                Xtr, ytr = data["x_train"], data["y_train"]
                Xte = data["x_test"] if "x_test" in keys else None
                yte = data["y_test"] if "y_test" in keys else None
            else:
                Xtr, ytr, Xte, yte = data["X"], data["y"], None, None
    else:
        tri = _find(path, "train-images-idx3-ubyte")
        trl = _find(path, "train-labels-idx1-ubyte")
        if tri is None or trl is None:
            raise FileNotFoundError(f"no MNIST idx training files in {path}")
        Xtr, ytr = _read_idx(tri), _read_idx(trl)
        tei = _find(path, "t10k-images-idx3-ubyte")
        tel = _find(path, "t10k-labels-idx1-ubyte")
        Xte = _read_idx(tei) if tei and tel else None
        yte = _read_idx(tel) if tei and tel else None

    def prep(X):
        return None if X is None else X.reshape(len(X), -1).astype(np.float32) / 255.0

    return (
        prep(Xtr),
        np.asarray(ytr).ravel(),
        prep(Xte),
        None if yte is None else np.asarray(yte).ravel(),
    )


def run_mnist(path, seed=0):
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    X, y, X_te, y_te = load_mnist(path)
    rows = []
    t0 = time.perf_counter()
    model = SimplexSpectralClustering(10, random_state=seed).fit(X)
    t_ours = time.perf_counter() - t0
    rows.append(["SimplexSpectralClustering (ours)", *scores(y, model.labels_).values(), t_ours])
    t0 = time.perf_counter()
    km = KMeans(10, n_init=10, random_state=seed).fit(X)
    rows.append(["KMeans (raw)", *scores(y, km.labels_).values(), time.perf_counter() - t0])
    held_out = None
    if X_te is not None:
        held_out = adjusted_rand_score(y_te, model.predict(X_te))
    return {"shape": X.shape, "rows": rows, "held_out_ari": held_out}


# -- scale ---------------------------------------------------------------------------------


def run_scale(n=100_000, d=64, k=10, seed=0):
    from sklearn.cluster import KMeans
    from sklearn.datasets import make_blobs
    from sklearn.metrics import adjusted_rand_score

    X, y = make_blobs(n, n_features=d, centers=k, cluster_std=4.0, random_state=seed)
    warm_up()
    t0 = time.perf_counter()
    model = SimplexSpectralClustering(k, random_state=seed).fit(X)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    km = KMeans(k, n_init=10, random_state=seed).fit(X)
    t_km = time.perf_counter() - t0
    return {
        "shape": [n, d],
        "n_atoms": model.n_atoms_,
        "ours_s": t_ours,
        "ours_ari": adjusted_rand_score(y, model.labels_),
        "kmeans_s": t_km,
        "kmeans_ari": adjusted_rand_score(y, km.labels_),
    }


# -- t-SNE figure --------------------------------------------------------------------------


def tsne_figure(out, seed=0):
    """t-SNE of digits: raw pixels, codes, and the spectral embedding of the
    codes, colored by digit (after the papers' Figure 1B).

    Codes are those of the coders fitted by
    ``SimplexSpectralClustering(n_clusters=10)`` (:meth:`encode`, the
    dictionaries side by side); the third panel is the
    embedding that its k-means clusters. Needs matplotlib, imported here only.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.datasets import load_digits
    from sklearn.manifold import TSNE

    X, y = load_digits(return_X_y=True)
    model = SimplexSpectralClustering(10, random_state=seed).fit(X)
    codes = model.encode(X)
    codes = codes.toarray() if hasattr(codes, "toarray") else codes
    panels = [
        ("raw pixels", X),
        (
            f"codes ({len(model.coders_)} × {model.n_atoms_} atoms, α={model.alpha_})",
            codes,
        ),
        ("spectral embedding of codes", model.embedding_.transform(codes)),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(16, 5.2))
    for ax, (title, Z) in zip(axes, panels):
        E = TSNE(2, random_state=seed, init="pca").fit_transform(Z)
        sc = ax.scatter(E[:, 0], E[:, 1], c=y, cmap="tab10", s=4)
        ax.set_title(title, fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("t-SNE of digits, colored by digit")
    fig.colorbar(sc, ax=axes, ticks=range(10), label="digit")
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


# -- main ------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.clustering", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--quick", action="store_true", help="2 seeds, small data sets only")
    p.add_argument("--seeds", type=int, default=5, help="number of seeds (default 5)")
    p.add_argument("--repeats", type=int, help="alias of --seeds (from benchmarks.run)")
    p.add_argument("--datasets", nargs="+", choices=DATASETS, help="subset of the data sets")
    p.add_argument("--no-table", action="store_true", help="skip the main table")
    p.add_argument("--mnist", metavar="PATH", help="MNIST idx folder or .npz the user has")
    p.add_argument("--scale", action="store_true", help="time 100,000 × 64 synthetic blobs")
    p.add_argument("--tsne", metavar="OUT.png", help="write the t-SNE figure of digits")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    return p.parse_args(argv)


def main(argv=None):
    """Run the benchmark, print markdown tables; return the results dict."""
    args = parse_args(argv)
    n_seeds = args.repeats or (2 if args.quick else args.seeds)
    seeds = list(range(n_seeds))
    datasets = args.datasets or (QUICK_DATASETS if args.quick else DATASETS)
    info = machine_info()
    report = {"benchmark": "clustering", "machine": info, "args": vars(args)}
    print("# Clustering: SimplexSpectralClustering against scikit-learn\n")
    print(machine_table(info))
    print()
    warm_up()
    if not args.no_table:
        results = run_table(datasets, seeds)
        report["table"] = results
        print(f"Mean ± sd over seeds {seeds}; only n_clusters and random_state given.\n")
        print(
            markdown_table(
                ["data set", "method", "ACC", "NMI", "ARI", "fit time (s)"], table_rows(results)
            )
        )
        print()
        print("\n".join(goals(results)))
        if "digits" in datasets:
            ho = held_out_digits(seeds)
            report["held_out_digits"] = ho.tolist()
            print(
                f"- digits, 75/25 split: in-sample ARI {_pm(ho[:, 0])}, held-out "
                f"predict ARI {_pm(ho[:, 1])}, largest gap {np.abs(ho[:, 0] - ho[:, 1]).max():.3f}"
            )
    if args.scale:
        sc = run_scale()
        report["scale"] = sc
        print(
            f"\n- scale, {sc['shape'][0]:,} × {sc['shape'][1]} blobs ({sc['n_atoms']} atoms): "
            f"ours {sc['ours_s']:.1f} s (ARI {sc['ours_ari']:.3f}), KMeans n_init=10 "
            f"{sc['kmeans_s']:.1f} s (ARI {sc['kmeans_ari']:.3f})"
        )
    if args.mnist:
        mn = run_mnist(args.mnist)
        report["mnist"] = mn
        print(f"\nMNIST training set {mn['shape'][0]} × {mn['shape'][1]}:\n")
        print(markdown_table(["method", "ACC", "NMI", "ARI", "fit time (s)"], mn["rows"]))
        if mn["held_out_ari"] is not None:
            print(f"\n- ours on the test set through predict: ARI {mn['held_out_ari']:.3f}")
    if args.tsne:
        report["tsne"] = tsne_figure(args.tsne)
        print(f"\n- t-SNE figure written to {args.tsne}")
    if args.json:
        write_json(args.json, report)
    return report


run = main

if __name__ == "__main__":
    main()
