"""The ``wlsc`` command (also ``python -m sklearn_wlsc``).

Every subcommand reports errors as one line on stderr with exit status 1,
never a traceback, and each distinct warning as one line on stderr;
``--help`` works on each.
"""

import argparse
import contextlib
import os
import sys
import time
import warnings
import zipfile


class CLIError(Exception):
    """An error reported to the user as one line."""


# -- input and output -------------------------------------------------------


def load_data(path, key=None):
    """Load a 2-D float array from ``.npy``, ``.npz`` or ``.csv``.

    float32 data stay float32 (the estimators fit and encode them in
    float32, as they do in Python); every other type becomes float64.
    """
    import numpy as np

    if not os.path.exists(path):
        raise CLIError(f"no such file: {path}")
    ext = os.path.splitext(path)[1].lower()
    if key is not None and ext != ".npz":
        raise CLIError(f"--key names an array of an .npz file; {path} is not one")
    try:
        if ext == ".npy":
            data = np.load(path, allow_pickle=False)
        elif ext == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                names = list(archive.files)
                if not names:
                    raise CLIError(f"{path} holds no arrays")
                if key is None:
                    key = "X" if "X" in names else names[0]
                if key not in names:
                    raise CLIError(f"{path} has no array {key!r}; it has {names}")
                data = archive[key]
        elif ext == ".csv":
            data = _load_csv(path)
        else:
            raise CLIError(f"cannot read {path}: expected a .npy, .npz or .csv file")
    except CLIError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        # EOFError: an empty or cut-off .npy; BadZipFile: a broken .npz
        raise CLIError(f"cannot read {path}: {exc or type(exc).__name__}") from None
    if data.ndim != 2:
        raise CLIError(
            f"{path} holds an array of shape {data.shape}; expected 2-D (n_samples, n_features)"
        )
    if data.size == 0:
        raise CLIError(f"{path} holds no data (shape {data.shape})")
    if data.dtype != bool and (not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data)):
        raise CLIError(f"{path} holds {data.dtype} data; expected real numbers")
    if data.dtype != np.float32:
        data = data.astype(np.float64, copy=False)
    if not np.all(np.isfinite(data)):
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise CLIError(f"{path} contains {bad} NaN or infinite values")
    return data


def _load_csv(path):
    import numpy as np

    # utf-8-sig: a byte-order mark (as spreadsheets write) is not data
    with open(path, encoding="utf-8-sig") as f:
        first = f.readline()

    def is_number(field):
        try:
            float(field)
        except ValueError:
            return False
        return True

    fields = [v.strip() for v in first.strip().split(",") if v.strip()]
    # a header names columns: no field of it is a number (a first row with
    # one bad value is data, and its error is reported as any row's is)
    skip = 1 if fields and not any(is_number(v) for v in fields) else 0
    with warnings.catch_warnings():
        # an empty file: said once, as "holds no data", by load_data
        warnings.filterwarnings("ignore", message=".*input contained no data")
        return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, encoding="utf-8-sig")


def check_folder(path):
    """Refuse, before any work, an output path whose folder does not exist."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CLIError(f"cannot write {path}: no folder {folder}")


def check_output(path):
    """Refuse an output name that :func:`save_array` cannot write as named,
    before any work is done."""
    if os.path.splitext(path)[1].lower() not in (".npy", ".csv"):
        raise CLIError(f"cannot write {path}: the output must be a .npy or .csv file")
    check_folder(path)


def check_figure_output(path):
    """Refuse, before any work, a figure path whose folder does not exist
    or whose extension matplotlib cannot write (``none`` skips the
    figure; without matplotlib there is no figure to check)."""
    if path == "none":
        return
    check_folder(path)
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return
    kinds = Figure().canvas.get_supported_filetypes()
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in kinds:
        raise CLIError(
            f"cannot write {path}: the figure needs one of the extensions "
            + ", ".join(f".{k}" for k in sorted(kinds))
        )


def save_array(path, array):
    """Write ``array`` to the ``.npy`` or ``.csv`` file ``path``; integers as
    integers in CSV."""
    import numpy as np

    check_output(path)
    try:
        if path.lower().endswith(".csv"):
            fmt = "%d" if np.issubdtype(array.dtype, np.integer) else "%.18e"
            np.savetxt(path, array, delimiter=",", fmt=fmt)
        else:
            with open(path, "wb") as f:  # np.save would append .npy to other names
                np.save(f, array)
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc}") from None


def load_model(path):
    import joblib

    from ._estimator import WeightedL1SparseCoder

    if not os.path.exists(path):
        raise CLIError(f"no such file: {path}")
    try:
        model = joblib.load(path)
    except Exception as exc:  # unpickling reports many exception types
        raise CLIError(
            f"cannot load a model from {path}: not a file written by `wlsc fit` ({exc})"
        ) from None
    if not isinstance(model, WeightedL1SparseCoder):
        raise CLIError(f"{path} holds a {type(model).__name__}, not a WeightedL1SparseCoder")
    if not hasattr(model, "components_"):
        raise CLIError(f"{path} holds a WeightedL1SparseCoder that was never fitted")
    return model


class Progress:
    """A scikit-learn fit callback that shows the alternating iterations: a
    bar on a terminal, plain lines when the output is piped."""

    #: the bar whose line is open on a terminal (a warning ends it first)
    open_bar = None

    def __init__(self, total, stream=None, label="fit"):
        self.total = total
        self.stream = sys.stderr if stream is None else stream
        self.label = label
        self.tty = self.stream.isatty()
        self.t0 = time.perf_counter()

    @classmethod
    def end_open_line(cls):
        """End the open bar's line, so that the next output starts a line."""
        bar, cls.open_bar = cls.open_bar, None
        if bar is not None:
            bar.stream.write("\n")
            bar.stream.flush()

    def setup(self, estimator, context):
        self.t0 = time.perf_counter()

    def on_fit_task_begin(self, estimator, context):
        pass

    def on_fit_task_end(self, estimator, context, *, metadata=None):
        if context.task_name != "iteration" or not metadata:
            return False
        k = context.task_id
        elapsed = time.perf_counter() - self.t0
        text = f"{self.label}: iteration {k}/{self.total} objective {metadata['objective']:.6g} ({elapsed:.1f} s)"
        if self.tty:
            width = 24
            done = int(width * min(k, self.total) / max(self.total, 1))
            bar = "#" * done + "-" * (width - done)
            self.stream.write(f"\r[{bar}] {text}")
            Progress.open_bar = self
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        return False

    def teardown(self, estimator, context):
        if Progress.open_bar is self:
            Progress.end_open_line()


@contextlib.contextmanager
def one_line_warnings(command, stream=None):
    """Show each warning raised inside as one line on ``stream`` (stderr),
    ``wlsc COMMAND: warning: MESSAGE``, and each distinct message once.

    Which warnings are shown is left to Python's warning filters, so
    ``python -W ignore -m sklearn_wlsc ...`` or ``PYTHONWARNINGS=ignore``
    silence them; only their display changes (no source path or line).
    """
    seen = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        if (category, text) in seen:
            return
        seen.add((category, text))
        Progress.end_open_line()
        out = sys.stderr if stream is None else stream
        out.write(f"wlsc {command}: warning: {text}\n")
        out.flush()

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _with_progress(estimator, label):
    if hasattr(estimator, "set_callbacks"):
        estimator.set_callbacks(Progress(estimator.max_iter, label=label))
    return estimator


# -- subcommands --------------------------------------------------------------


def _scores(y, labels):
    import numpy as np
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics import adjusted_rand_score, confusion_matrix, normalized_mutual_info_score

    cm = confusion_matrix(y, labels)
    rows, cols = linear_sum_assignment(-cm)
    acc = cm[rows, cols].sum() / np.sum(cm)
    return acc, normalized_mutual_info_score(y, labels), adjusted_rand_score(y, labels)


def cmd_demo(args):
    """Fit on the bundled digits, cluster, and compare with KMeans."""
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_digits

    from ._clustering import SimplexSpectralClustering

    check_figure_output(args.output)
    X, y = load_digits(return_X_y=True)
    print(
        f"digits: {X.shape[0]} samples of {X.shape[1]} pixels, 10 classes (bundled with scikit-learn)"
    )
    t0 = time.perf_counter()
    model = SimplexSpectralClustering(n_clusters=10, random_state=args.random_state)
    labels = model.fit_predict(X)
    t_ours = time.perf_counter() - t0
    coder = model.coder_
    codes = coder.transform(X)
    t0 = time.perf_counter()
    km = KMeans(10, n_init=10, random_state=args.random_state).fit_predict(X)
    t_km = time.perf_counter() - t0
    print(
        f"WLSC coder: {coder.n_components_} atoms, alpha={coder.alpha:g}, "
        f"{(codes > 0).sum(axis=1).mean():.2f} nonzeros per code"
    )
    print(f"{'method':<34} {'ACC':>6} {'NMI':>6} {'ARI':>6} {'time':>7}")
    for name, lab, t in (
        ("WLSC + bipartite spectral (ours)", labels, t_ours),
        ("KMeans on raw pixels", km, t_km),
    ):
        acc, nmi, ari = _scores(y, lab)
        print(f"{name:<34} {acc:6.3f} {nmi:6.3f} {ari:6.3f} {t:6.1f}s")
    if args.output != "none":
        try:
            _demo_figure(args.output, X, y, coder, codes, args.random_state)
            print(f"figure saved to {os.path.abspath(args.output)}")
        except ImportError:
            print("matplotlib is not installed: no figure (pip install 'sklearn-wlsc[plot]')")
    return 0


def _demo_figure(path, X, y, coder, codes, random_state):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.manifold import TSNE

    emb = TSNE(2, init="pca", random_state=random_state).fit_transform(codes)
    fig = plt.figure(figsize=(11, 5))
    m = coder.components_.shape[0]
    side = int(np.ceil(np.sqrt(m)))
    grid = fig.add_gridspec(side, 2 * side)
    for j in range(m):
        ax = fig.add_subplot(grid[j // side, j % side])
        ax.imshow(coder.components_[j].reshape(8, 8), cmap="gray_r")
        ax.set_axis_off()
    ax = fig.add_subplot(grid[:, side:])
    sc = ax.scatter(emb[:, 0], emb[:, 1], c=y, cmap="tab10", s=4)
    ax.legend(*sc.legend_elements(), fontsize=7, loc="best", title="digit")
    ax.set_title("t-SNE of the WLSC codes")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.suptitle("WLSC on digits: the atoms (left) and the codes (right)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cmd_fit(args):
    import joblib

    from ._estimator import WeightedL1SparseCoder

    check_folder(args.output)
    X = load_data(args.data, args.key)
    model = WeightedL1SparseCoder(
        n_components=args.n_components,
        alpha=args.alpha,
        max_iter=args.max_iter,
        random_state=args.random_state,
    )
    _with_progress(model, "fit").fit(X)
    if hasattr(model, "set_callbacks"):
        model.set_callbacks()  # the progress display is not part of the model
    try:
        joblib.dump(model, args.output)
    except OSError as exc:
        raise CLIError(f"cannot write {args.output}: {exc}") from None
    print(
        f"fitted {model.n_components_} atoms on {X.shape[0]} x {X.shape[1]} data: "
        f"objective {model.objective_:.6g} after {model.n_iter_} iterations; "
        f"saved to {args.output}"
    )
    return 0


def cmd_transform(args):
    check_output(args.output)
    model = load_model(args.model)
    X = load_data(args.data, args.key)
    if X.shape[1] != model.n_features_in_:
        raise CLIError(
            f"{args.data} has {X.shape[1]} features but the model was fitted on "
            f"{model.n_features_in_}"
        )
    if args.algorithm is not None:
        model.set_params(transform_algorithm=args.algorithm)
    codes = model.transform(X)
    save_array(args.output, codes)
    print(f"codes of shape {codes.shape} saved to {args.output}")
    return 0


def cmd_cluster(args):
    import numpy as np

    from ._clustering import SimplexSpectralClustering

    check_output(args.output)
    X = load_data(args.data, args.key)
    if X.shape[0] < args.n_clusters:
        raise CLIError(
            f"{args.data} has {X.shape[0]} samples, fewer than --n-clusters {args.n_clusters}"
        )
    model = SimplexSpectralClustering(n_clusters=args.n_clusters, random_state=args.random_state)
    labels = model.fit_predict(X)
    save_array(args.output, labels.astype(np.int64))
    sizes = np.bincount(labels, minlength=args.n_clusters)
    print(f"{args.n_clusters} clusters of sizes {sizes.tolist()} saved to {args.output}")
    return 0


def cmd_warmup(args):
    from ._warmup import warmup

    seconds = warmup(dtypes=args.dtypes)
    for step, sec in seconds.items():
        print(f"{step:<28} {sec:8.2f} s")
    print(f"{'total':<28} {sum(seconds.values()):8.2f} s")
    return 0


def cmd_receptive_fields(args):
    from . import receptive_fields
    from ._estimator import WeightedL1SparseCoder
    from .datasets import load_natural_image_patches

    check_figure_output(args.output)
    Y = load_natural_image_patches(
        patch_size=args.patch_size, n_patches=args.n_patches, random_state=args.random_state
    )
    print(
        f"{Y.shape[0]} whitened {args.patch_size}x{args.patch_size} patches from the bundled images"
    )
    coder = WeightedL1SparseCoder(
        n_components=args.n_components,
        alpha=args.alpha,
        max_iter=args.max_iter,
        random_state=args.random_state,
    )
    _with_progress(coder, "fit").fit(Y)
    fit = receptive_fields.fit_gabors(
        coder.components_, (args.patch_size, args.patch_size), random_state=args.random_state
    )
    stats = receptive_fields.summarize_gabor_fits(fit)
    for key, value in stats.items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    if args.output != "none":
        try:
            _receptive_fields_figure(args.output, fit, coder.components_, args.patch_size)
            print(f"figure saved to {os.path.abspath(args.output)}")
        except ImportError:
            print("matplotlib is not installed: no figure (pip install 'sklearn-wlsc[plot]')")
    return 0


def _receptive_fields_figure(path, fit, atoms, patch_size):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import receptive_fields

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.5))
    receptive_fields.plot_atoms(atoms, (patch_size, patch_size), fit=fit, ax=axes[0])
    receptive_fields.plot_nx_ny(fit, ax=axes[1], label="WLSC")
    receptive_fields.plot_phase_histogram(fit, ax=axes[2], label="WLSC")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="wlsc",
        description="Weighted-l1 sparse coding on the simplex (sklearn-wlsc).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add_data(p):
        p.add_argument("data", help="samples as rows: a .npy, .npz or .csv file")
        p.add_argument(
            "--key", default=None, help="array name inside a .npz (default: X or the first)"
        )

    p = sub.add_parser(
        "demo",
        help="fit and cluster the bundled digits, next to KMeans on raw pixels",
        description="Fit WLSC on scikit-learn's digits (no download), cluster the codes, "
        "print ACC, NMI and ARI next to KMeans on raw pixels, and save a figure.",
    )
    p.add_argument(
        "-o",
        "--output",
        default="wlsc-demo.png",
        help="figure file, or 'none' (default wlsc-demo.png)",
    )
    p.add_argument("--random-state", type=int, default=0, help="seed (default 0)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "fit",
        help="learn a dictionary and save the model",
        description="Fit WeightedL1SparseCoder on DATA and save it with joblib.",
    )
    add_data(p)
    p.add_argument(
        "--n-components", type=int, default=None, help="number of atoms (default: n_features)"
    )
    p.add_argument("--alpha", type=float, default=0.5, help="locality penalty (default 0.5)")
    p.add_argument(
        "--max-iter", type=int, default=100, help="maximum alternating iterations (default 100)"
    )
    p.add_argument("--random-state", type=int, default=0, help="seed (default 0)")
    p.add_argument("-o", "--output", required=True, help="model file to write (.joblib)")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser(
        "transform",
        help="encode data with a saved model",
        description="Encode DATA with a model saved by 'wlsc fit'.",
    )
    p.add_argument("model", help="model file written by 'wlsc fit'")
    add_data(p)
    p.add_argument(
        "--algorithm",
        choices=["exact", "unrolled"],
        default=None,
        help="encoder (default: the model's)",
    )
    p.add_argument("-o", "--output", required=True, help="codes file to write (.npy or .csv)")
    p.set_defaults(func=cmd_transform)

    p = sub.add_parser(
        "cluster",
        help="cluster data through its codes",
        description="Cluster DATA with SimplexSpectralClustering.",
    )
    add_data(p)
    p.add_argument("--n-clusters", type=int, required=True, help="number of clusters")
    p.add_argument("--random-state", type=int, default=0, help="seed (default 0)")
    p.add_argument("-o", "--output", required=True, help="labels file to write (.npy or .csv)")
    p.set_defaults(func=cmd_cluster)

    p = sub.add_parser(
        "warmup",
        help="compile the CPU kernels now (cached on disk for later processes)",
        description="Compile the numba kernels, or load them from numba's disk cache, "
        "and print how long each step took.",
    )
    p.add_argument(
        "--dtypes",
        nargs="+",
        choices=["float64", "float32"],
        default=["float64", "float32"],
        help="data types to compile for (default: both)",
    )
    p.set_defaults(func=cmd_warmup)

    p = sub.add_parser(
        "receptive-fields",
        help="learn atoms on natural image patches and fit Gabors (Figure 1A)",
        description="Train WLSC on whitened patches of the images bundled with the "
        "installed packages, fit 2-D Gabors to the atoms and summarize them.",
    )
    p.add_argument("--patch-size", type=int, default=12, help="patch side in pixels (default 12)")
    p.add_argument(
        "--n-patches", type=int, default=20000, help="number of training patches (default 20000)"
    )
    p.add_argument("--n-components", type=int, default=64, help="number of atoms (default 64)")
    p.add_argument(
        "--alpha", type=float, default=0.7, help="locality penalty (default 0.7, the paper's)"
    )
    p.add_argument(
        "--max-iter", type=int, default=50, help="maximum alternating iterations (default 50)"
    )
    p.add_argument("--random-state", type=int, default=0, help="seed (default 0)")
    p.add_argument(
        "-o", "--output", default="wlsc-receptive-fields.png", help="figure file, or 'none'"
    )
    p.set_defaults(func=cmd_receptive_fields)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        with one_line_warnings(args.command):
            return args.func(args)
    except (CLIError, ValueError, TypeError, OSError, MemoryError, ImportError) as exc:
        Progress.end_open_line()
        print(f"wlsc {args.command}: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        Progress.end_open_line()
        print(f"wlsc {args.command}: interrupted", file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
