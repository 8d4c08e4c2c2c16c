"""The ``wlsc`` command, end to end through subprocesses."""

import subprocess
import sys

import numpy as np
import pytest


def wlsc(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "sklearn_wlsc", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def data_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    centers = 5 * rng.standard_normal((3, 4))
    Y = centers[rng.integers(0, 3, 90)] + rng.standard_normal((90, 4))
    np.save(d / "Y.npy", Y)
    np.savez(d / "Y.npz", X=Y)
    np.savetxt(d / "Y.csv", Y, delimiter=",", header="a,b,c,d", comments="")
    bad = Y.copy()
    bad[3, 1] = np.nan
    np.save(d / "nan.npy", bad)
    np.save(d / "vector.npy", Y[:, 0])
    np.save(d / "narrow.npy", Y[:, :3])
    return d


def _one_error_line(result, *fragments):
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_help_on_every_subcommand():
    for sub in ("", "demo", "fit", "transform", "cluster", "receptive-fields", "warmup"):
        result = wlsc(*([sub] if sub else []), "--help")
        assert result.returncode == 0, result.stderr
        assert "usage: wlsc" in result.stdout


def test_fit_then_transform(data_files, tmp_path):
    model = tmp_path / "model.joblib"
    for ext in ("npy", "npz", "csv"):
        result = wlsc("fit", data_files / f"Y.{ext}", "--n-components", 5, "-o", model)
        assert result.returncode == 0, result.stderr
        assert "fitted 5 atoms on 90 x 4 data" in result.stdout
    # piped output: progress as plain lines, one per iteration
    assert "iteration 0/" in result.stderr
    codes_path = tmp_path / "codes.npy"
    result = wlsc("transform", model, data_files / "Y.npy", "-o", codes_path)
    assert result.returncode == 0, result.stderr
    codes = np.load(codes_path)
    assert codes.shape == (90, 5)
    np.testing.assert_allclose(codes.sum(axis=1), 1.0)
    import joblib

    np.testing.assert_allclose(codes, joblib.load(model).transform(np.load(data_files / "Y.npy")))


class _InProcess:
    """The result of ``main(argv)`` run in this process, shaped like a
    CompletedProcess: the error paths need no interpreter start-up."""

    def __init__(self, argv, capsys):
        from sklearn_wlsc._cli import main

        self.returncode = main([str(a) for a in argv])
        captured = capsys.readouterr()
        self.stdout, self.stderr = captured.out, captured.err


def test_error_in_a_subprocess_is_one_line(data_files, tmp_path):
    _one_error_line(
        wlsc("fit", tmp_path / "missing.npy", "-o", tmp_path / "m.joblib"), "no such file"
    )


def test_errors_are_one_line(data_files, tmp_path, capsys):
    model = tmp_path / "model.joblib"

    def wlsc(*argv):
        return _InProcess(argv, capsys)

    assert wlsc("fit", data_files / "Y.npy", "--n-components", 3, "-o", model).returncode == 0
    _one_error_line(wlsc("fit", tmp_path / "missing.npy", "-o", model), "no such file")
    _one_error_line(wlsc("fit", data_files / "nan.npy", "-o", model), "NaN")
    _one_error_line(wlsc("fit", data_files / "vector.npy", "-o", model), "expected 2-D")
    _one_error_line(
        wlsc("transform", model, data_files / "narrow.npy", "-o", tmp_path / "c.npy"),
        "3 features",
        "fitted on 4",
    )
    _one_error_line(
        wlsc("transform", data_files / "Y.npy", data_files / "Y.npy", "-o", tmp_path / "c.npy"),
        "cannot load a model",
    )
    _one_error_line(wlsc("fit", data_files / "Y.npy", "--alpha", -1, "-o", model), "alpha")
    _one_error_line(
        wlsc("cluster", data_files / "Y.npy", "--n-clusters", 1000, "-o", tmp_path / "l.npy"),
        "fewer than --n-clusters",
    )
    (tmp_path / "empty.csv").write_text("")
    _one_error_line(wlsc("fit", tmp_path / "empty.csv", "-o", model), "holds no data")
    np.save(tmp_path / "rows0.npy", np.zeros((0, 4)))
    _one_error_line(wlsc("fit", tmp_path / "rows0.npy", "-o", model), "holds no data")
    _one_error_line(
        wlsc("transform", model, data_files / "Y.npy", "-o", tmp_path / "codes.txt"),
        "must be a .npy or .csv file",
    )
    assert not (tmp_path / "codes.txt").exists() and not (tmp_path / "codes.txt.npy").exists()
    _one_error_line(
        wlsc("cluster", data_files / "Y.npy", "--n-clusters", 2, "-o", tmp_path / "l.dat"),
        "must be a .npy or .csv file",
    )
    # figure paths are checked before the fit (nothing is printed), not after
    result = wlsc("demo", "-o", tmp_path / "missing" / "x.png")
    _one_error_line(result, "no folder")
    assert result.stdout == ""
    pytest.importorskip("matplotlib")
    result = wlsc("receptive-fields", "-o", tmp_path / "x.xyz")
    _one_error_line(result, "extensions")
    assert result.stdout == ""


def test_outputs_are_written_under_the_names_given(data_files, tmp_path):
    model = tmp_path / "m.joblib"
    assert wlsc("fit", data_files / "Y.npy", "--n-components", 3, "-o", model).returncode == 0
    for name in ("codes.NPY", "codes.csv"):
        result = wlsc("transform", model, data_files / "Y.npy", "-o", tmp_path / name)
        assert result.returncode == 0, result.stderr
        assert f"saved to {tmp_path / name}" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.NPY", "codes.csv", "m.joblib"]
    np.testing.assert_allclose(
        np.loadtxt(tmp_path / "codes.csv", delimiter=","), np.load(tmp_path / "codes.NPY")
    )
    result = wlsc("cluster", data_files / "Y.npy", "--n-clusters", 3, "-o", tmp_path / "l.csv")
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "l.csv").read_text().split()
    assert len(lines) == 90 and set(lines) <= {"0", "1", "2"}


def test_warmup_end_to_end():
    result = wlsc("warmup", "--dtypes", "float64")
    assert result.returncode == 0, result.stderr
    steps = [line.rsplit(None, 2)[0] for line in result.stdout.strip().splitlines()]
    assert steps == [
        "projection float64",
        "unrolled encoder float64",
        "exact encoder",
        "fit",
        "total",
    ]


def test_cluster_end_to_end(data_files, tmp_path):
    out = tmp_path / "labels.npy"
    result = wlsc("cluster", data_files / "Y.csv", "--n-clusters", 3, "-o", out)
    assert result.returncode == 0, result.stderr
    labels = np.load(out)
    assert labels.shape == (90,)
    assert set(np.unique(labels)) <= {0, 1, 2}
    assert "3 clusters of sizes" in result.stdout


def test_demo_end_to_end(tmp_path):
    pytest.importorskip("matplotlib")
    result = wlsc("demo", "-o", tmp_path / "demo.png")
    assert result.returncode == 0, result.stderr
    assert "WLSC + bipartite spectral (ours)" in result.stdout
    assert "KMeans on raw pixels" in result.stdout
    # ACC, NMI and ARI are printed for both methods
    rows = [
        line.split()
        for line in result.stdout.splitlines()
        if "raw pixels" in line or "(ours)" in line
    ]
    assert all(len(r) >= 4 for r in rows) and len(rows) == 2
    assert (tmp_path / "demo.png").stat().st_size > 10_000


def test_receptive_fields_end_to_end(tmp_path):
    pytest.importorskip("matplotlib")
    fig = tmp_path / "rf.png"
    result = wlsc(
        "receptive-fields",
        "--patch-size",
        8,
        "--n-patches",
        1500,
        "--n-components",
        16,
        "--max-iter",
        5,
        "-o",
        fig,
    )
    assert result.returncode == 0, result.stderr
    assert "whitened 8x8 patches" in result.stdout
    assert "n_valid" in result.stdout
    assert fig.stat().st_size > 10_000


def test_broken_files_and_outputs_are_one_line(data_files, tmp_path, capsys):
    def wlsc(*argv):
        return _InProcess(argv, capsys)

    model = tmp_path / "model.joblib"
    (tmp_path / "zero.npy").write_bytes(b"")
    _one_error_line(wlsc("fit", tmp_path / "zero.npy", "-o", model), "cannot read")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not a zip archive")
    _one_error_line(wlsc("fit", tmp_path / "broken.npz", "-o", model), "cannot read")
    import joblib

    from sklearn_wlsc import WeightedL1SparseCoder

    joblib.dump(WeightedL1SparseCoder(3), tmp_path / "unfitted.joblib")
    _one_error_line(
        wlsc(
            "transform",
            tmp_path / "unfitted.joblib",
            data_files / "Y.npy",
            "-o",
            tmp_path / "c.npy",
        ),
        "never fitted",
    )
    # a missing output folder is refused before the work (nothing printed)
    for argv in (
        ("fit", data_files / "Y.npy", "-o", tmp_path / "none" / "m.joblib"),
        ("cluster", data_files / "Y.npy", "--n-clusters", 2, "-o", tmp_path / "none" / "l.npy"),
    ):
        result = wlsc(*argv)
        _one_error_line(result, "no folder")
        assert result.stdout == ""


def test_key_only_for_npz_and_boolean_data(data_files, tmp_path, capsys):
    def wlsc(*argv):
        return _InProcess(argv, capsys)

    model = tmp_path / "m.joblib"
    _one_error_line(
        wlsc("fit", data_files / "Y.npy", "--key", "X", "-o", model), "--key names an array"
    )
    np.save(tmp_path / "flags.npy", np.eye(6, 4, dtype=bool))
    result = wlsc("fit", tmp_path / "flags.npy", "--n-components", 2, "-o", model)
    assert result.returncode == 0 and "on 6 x 4 data" in result.stdout


def test_csv_first_rows_are_data(tmp_path, capsys):
    def wlsc(*argv):
        return _InProcess(argv, capsys)

    rows = np.arange(12.0).reshape(4, 3) + 1
    body = "\n".join(",".join(f"{v:g}" for v in row) for row in rows)
    # a spreadsheet's byte-order mark is not a header: all four rows count
    (tmp_path / "bom.csv").write_bytes(("\ufeff" + body + "\n").encode("utf-8"))
    result = wlsc("fit", tmp_path / "bom.csv", "--n-components", 2, "-o", tmp_path / "m.joblib")
    assert result.returncode == 0 and "on 4 x 3 data" in result.stdout
    # a first row with one bad value is a row, reported like any other
    (tmp_path / "na.csv").write_text("1,NA,3\n" + body + "\n")
    _one_error_line(wlsc("fit", tmp_path / "na.csv", "-o", tmp_path / "m.joblib"), "NA")
    # a header of names is skipped
    (tmp_path / "header.csv").write_text("a,b,c\n" + body + "\n")
    result = wlsc("fit", tmp_path / "header.csv", "--n-components", 2, "-o", tmp_path / "m.joblib")
    assert result.returncode == 0 and "on 4 x 3 data" in result.stdout


def test_float32_data_are_fitted_and_encoded_in_float32(data_files, tmp_path, capsys):
    import joblib

    Y32 = np.load(data_files / "Y.npy").astype(np.float32)
    np.save(tmp_path / "Y32.npy", Y32)
    model = tmp_path / "m.joblib"
    result = _InProcess(["fit", tmp_path / "Y32.npy", "--n-components", 4, "-o", model], capsys)
    assert result.returncode == 0, result.stderr
    fitted = joblib.load(model)
    assert fitted.components_.dtype == np.float32
    codes_path = tmp_path / "codes.npy"
    result = _InProcess(["transform", model, tmp_path / "Y32.npy", "-o", codes_path], capsys)
    assert result.returncode == 0, result.stderr
    codes = np.load(codes_path)
    assert codes.dtype == np.float32
    np.testing.assert_array_equal(codes, fitted.transform(Y32))
    # other types are read as float64, as before
    np.save(tmp_path / "Y16.npy", Y32.astype(np.float16))
    result = _InProcess(["fit", tmp_path / "Y16.npy", "--n-components", 4, "-o", model], capsys)
    assert result.returncode == 0, result.stderr
    assert joblib.load(model).components_.dtype == np.float64


def test_warnings_are_one_line_each_and_follow_the_filters(tmp_path, capsys):
    model = tmp_path / "m.joblib"
    np.save(tmp_path / "normal.npy", np.random.default_rng(0).standard_normal((200, 5)))
    # two alternating iterations do not converge on this data
    args = ("fit", tmp_path / "normal.npy", "--n-components", 5, "--max-iter", 2, "-o", model)
    result = wlsc(*args)
    assert result.returncode == 0, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if "warning" in ln.lower()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("wlsc fit: warning: Alternating minimization did not converge")
    assert ".py:" not in result.stderr  # no source path and line
    # the warning filters still decide what is shown
    quiet = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "sklearn_wlsc", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert quiet.returncode == 0, quiet.stderr
    assert "warning" not in quiet.stderr.lower(), quiet.stderr
    # in this process too (pytest records warnings through the same hook)
    more_atoms = ("fit", tmp_path / "normal.npy", "--n-components", 250, "-o", model)
    result = _InProcess(more_atoms, capsys)
    assert result.returncode == 0, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if "warning" in ln.lower()]
    assert lines == [
        "wlsc fit: warning: n_samples=200 is smaller than n_components=250: the extra "
        "atoms start as mixtures of samples and may stay unused."
    ], result.stderr


def test_a_warning_ends_an_open_progress_bar():
    import io
    import warnings

    from sklearn_wlsc._cli import Progress, one_line_warnings

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    class Context:
        task_name, task_id = "iteration", 1

    out = Terminal()
    bar = Progress(4, stream=out)
    with one_line_warnings("fit", stream=out):
        bar.on_fit_task_end(None, Context(), metadata={"objective": 1.5})
        warnings.warn("first", UserWarning, stacklevel=1)
        warnings.warn("first", UserWarning, stacklevel=1)  # the same message: shown once
        bar.on_fit_task_end(None, Context(), metadata={"objective": 1.25})
        bar.teardown(None, None)
    lines = out.getvalue().split("\n")
    assert lines[0].startswith("\r[") and "objective 1.5" in lines[0]
    assert lines[1] == "wlsc fit: warning: first"
    assert lines[2].startswith("\r[") and "objective 1.25" in lines[2]
    assert lines[3:] == [""]
