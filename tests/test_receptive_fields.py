"""Tests of the Gabor fits: recovery of known parameters, canonical form,
exclusions, population statistics and two-sample tests.

Tolerances of the recovery test (16 x 16 patches, Gabors with amplitude 1,
``0.08 ≤ f ≤ 0.25`` cycles/pixel, ``1.5 ≤ σ ≤ 3.5`` pixels, centers within 2
pixels of the patch center, i.i.d. Gaussian pixel noise of standard
deviation 0.03): median ``|Δnx|`` and ``|Δny|`` at most 0.05, median
``|Δphase|`` (wrapped to ``(−π, π]``) at most 0.2 rad, every ``R² ≥ 0.9``.
"""

import math

import numpy as np
import pytest

from sklearn_wlsc import receptive_fields as rf
from sklearn_wlsc.receptive_fields import (
    canonical_gabor_params,
    compare_fits,
    compare_to_v1,
    fit_gabors,
    fold_phase,
    make_gabor,
    summarize_gabor_fits,
)

SHAPE = (16, 16)


def _wrapped(d):
    return np.abs((np.asarray(d) + np.pi) % (2 * np.pi) - np.pi)


def _random_gabors(rng, n):
    params = []
    for _ in range(n):
        params.append(
            {
                "x0": 7.5 + rng.uniform(-2, 2),
                "y0": 7.5 + rng.uniform(-2, 2),
                "theta": rng.uniform(0, 2 * np.pi),
                "frequency": rng.uniform(0.08, 0.25),
                "phase": rng.uniform(-np.pi, np.pi),
                "sigma_x": rng.uniform(1.5, 3.5),
                "sigma_y": rng.uniform(1.5, 3.5),
                "amplitude": rng.choice([-1.0, 1.0]),
            }
        )
    atoms = np.array([make_gabor(SHAPE, **p) for p in params])
    return params, atoms


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(0)
    params, atoms = _random_gabors(rng, 24)
    noisy = atoms + 0.03 * rng.standard_normal(atoms.shape)
    return params, noisy, fit_gabors(noisy, SHAPE, random_state=0)


def test_fit_recovers_synthetic_gabors(synthetic):
    params, _, fit = synthetic
    true = [canonical_gabor_params(**p) for p in params]
    get = lambda key: np.array([t[key] for t in true])  # noqa: E731
    assert np.median(np.abs(fit.nx - get("nx"))) <= 0.05
    assert np.median(np.abs(fit.ny - get("ny"))) <= 0.05
    assert np.median(_wrapped(fit.phase - get("phase"))) <= 0.2
    assert np.median(np.abs(fit.phase_folded - get("phase_folded"))) <= 0.2
    assert np.median(np.abs(fit.frequency / get("frequency") - 1)) <= 0.05
    # orientation is defined modulo pi
    d_theta = np.abs((fit.theta - get("theta") + np.pi / 2) % np.pi - np.pi / 2)
    assert np.median(d_theta) <= 0.05
    assert np.median(np.hypot(fit.x0 - get("x0"), fit.y0 - get("y0"))) <= 0.3
    assert fit.r2.min() >= 0.9
    assert fit.valid.all()


def test_fit_result_in_canonical_ranges(synthetic):
    _, atoms, fit = synthetic
    assert len(fit) == atoms.shape[0]
    assert np.all((fit.theta >= 0) & (fit.theta < np.pi))
    assert np.all((fit.phase > -np.pi) & (fit.phase <= np.pi))
    assert np.all((fit.phase_folded >= 0) & (fit.phase_folded <= np.pi / 2))
    assert np.all(fit.amplitude >= 0)
    assert np.all((fit.frequency >= 0) & (fit.frequency <= 0.5))
    np.testing.assert_allclose(fit.nx, fit.sigma_x * fit.frequency)
    np.testing.assert_allclose(fit.ny, fit.sigma_y * fit.frequency)
    # the stored models are the canonical parameters' Gabors
    for i in range(3):
        p = {k: getattr(fit, k)[i] for k in rf.PARAM_NAMES}
        np.testing.assert_allclose(fit.models[i], make_gabor(SHAPE, **p), atol=1e-10)
    cols = fit.as_dict()
    assert {"nx", "ny", "r2", "valid", "poor_fit", "envelope_outside"} <= set(cols)


def test_canonical_params_invariant_to_sign_and_half_turn():
    rng = np.random.default_rng(1)
    for _ in range(50):
        p = {
            "x0": 7.0,
            "y0": 8.0,
            "theta": rng.uniform(-10, 10),
            "frequency": rng.uniform(0.05, 0.4),
            "phase": rng.uniform(-10, 10),
            "sigma_x": rng.uniform(1, 4),
            "sigma_y": rng.uniform(1, 4),
            "amplitude": rng.uniform(0.5, 2),
        }
        ref = canonical_gabor_params(**p)
        flipped = canonical_gabor_params(
            **{**p, "amplitude": -p["amplitude"], "phase": p["phase"] + np.pi}
        )
        turned = canonical_gabor_params(**{**p, "theta": p["theta"] + np.pi, "phase": -p["phase"]})
        for other in (flipped, turned):
            for key, value in ref.items():
                if key in ("theta", "phase"):
                    assert _wrapped(other[key] - value) < 1e-9, key
                else:
                    assert other[key] == pytest.approx(value, abs=1e-9), key
        # and they all describe the same function
        q = {k: ref[k] for k in rf.PARAM_NAMES}
        np.testing.assert_allclose(make_gabor(SHAPE, **q), make_gabor(SHAPE, **p), atol=1e-12)


def test_canonical_blob_form():
    p = canonical_gabor_params(7.5, 7.5, 0.3, 0.0, 2.5, 4.0, 2.0, 1.0)
    # cos(2.5) < 0: an OFF blob, phase pi with a positive amplitude
    assert p["frequency"] == 0.0 and p["phase"] == np.pi and p["phase_folded"] < 1e-12
    assert p["nx"] == 0.0 and p["ny"] == 0.0
    assert p["sigma_x"] <= p["sigma_y"]
    assert p["amplitude"] == pytest.approx(-math.cos(2.5))
    q = {k: p[k] for k in rf.PARAM_NAMES}
    np.testing.assert_allclose(
        make_gabor(SHAPE, **q),
        make_gabor(SHAPE, **dict(zip(rf.PARAM_NAMES, (7.5, 7.5, 0.3, 0.0, 2.5, 4.0, 2.0, 1.0)))),
        atol=1e-12,
    )


def test_fit_invariant_to_sign_flip_and_rotation_by_pi(synthetic):
    # Gabors with less than about a third of a period under the envelope
    # (small nx) sit on a ridge of equally good fits trading frequency
    # against amplitude, where rounding decides; test the others.
    params, atoms, _ = synthetic
    nx = np.array([canonical_gabor_params(**p)["nx"] for p in params])
    atoms = atoms[nx > 0.3][:6]
    fit = fit_gabors(atoms, SHAPE, random_state=0)
    neg = fit_gabors(-atoms, SHAPE, random_state=0)
    rot = fit_gabors(atoms.reshape(-1, *SHAPE)[:, ::-1, ::-1].reshape(6, -1), SHAPE, random_state=0)
    same = [
        "theta",
        "frequency",
        "phase_folded",
        "sigma_x",
        "sigma_y",
        "nx",
        "ny",
        "amplitude",
        "r2",
    ]
    for other in (neg, rot):
        for key in same:
            np.testing.assert_allclose(
                getattr(other, key), getattr(fit, key), atol=1e-4, err_msg=key
            )
    # contrast inversion: phase + pi; half-turn: mirrored center, phase -> -phase
    assert np.all(_wrapped(neg.phase - fit.phase - np.pi) < 1e-4)
    np.testing.assert_allclose(neg.x0, fit.x0, atol=1e-4)
    assert np.all(_wrapped(rot.phase + fit.phase) < 1e-4)
    np.testing.assert_allclose(rot.x0, SHAPE[1] - 1 - fit.x0, atol=1e-4)
    np.testing.assert_allclose(rot.y0, SHAPE[0] - 1 - fit.y0, atol=1e-4)


def test_blob_is_fit_not_dropped():
    rng = np.random.default_rng(2)
    blobs = np.array(
        [
            make_gabor(SHAPE, frequency=0.0, sigma_x=2.0, sigma_y=3.0, theta=0.4),
            -make_gabor(SHAPE, frequency=0.0, sigma_x=2.5, sigma_y=2.5, x0=6.0, y0=9.0),
        ]
    )
    fit = fit_gabors(blobs + 0.02 * rng.standard_normal(blobs.shape), SHAPE, random_state=0)
    assert fit.valid.all()
    assert fit.r2.min() >= 0.95
    # a blob is the limit f -> 0 of a ridge of near-equivalent fits (a slow
    # carrier under a wider envelope), so noise can pick a small f > 0
    assert np.all(fit.nx < 0.25) and np.all(fit.ny < 0.25)
    assert np.all(fit.phase_folded < 0.3)
    assert summarize_gabor_fits(fit)["fraction_low_pass"] == 1.0


def test_exclusion_rules():
    rng = np.random.default_rng(3)
    atoms = np.array(
        [
            make_gabor(SHAPE, frequency=0.15, sigma_x=2.0, sigma_y=2.5),  # fine
            rng.standard_normal(SHAPE[0] * SHAPE[1]),  # noise: poor fit
            make_gabor(SHAPE, frequency=0.15, sigma_x=2.0, sigma_y=2.5, x0=0.0, y0=15.0),
            make_gabor(SHAPE, frequency=0.15, sigma_x=2.0, sigma_y=2.5, x0=18.0, y0=7.0),
        ]
    )
    fit = fit_gabors(atoms, SHAPE, random_state=0)
    assert fit.valid.tolist() == [True, False, False, False]
    assert fit.reasons(0) == []
    assert "poor_fit" in fit.reasons(1)
    assert fit.reasons(2) == ["envelope_outside"]
    assert fit.exclusions["center_outside"][3]
    # stricter criteria exclude more
    strict = fit_gabors(atoms[:1], SHAPE, r2_min=1.01, random_state=0)
    assert strict.reasons(0) == ["poor_fit"]
    assert fit.criteria == {"r2_min": 0.8, "min_inside": 0.7}


def test_fit_gabors_edge_cases():
    fit = fit_gabors(np.zeros((1, 64)), (8, 8), random_state=0)
    assert fit.r2[0] == 0.0 and not fit.valid[0]
    with pytest.raises(ValueError, match="shape"):
        fit_gabors(np.zeros((2, 10)), (3, 3))
    with pytest.raises(ValueError, match="n_starts"):
        fit_gabors(np.zeros((2, 9)), (3, 3), n_starts=0)
    with pytest.raises(ValueError, match="NaN"):
        fit_gabors(np.full((1, 9), np.nan), (3, 3))


def test_fit_gabors_parallel_equals_sequential(synthetic):
    from joblib import parallel_config

    _, atoms, _ = synthetic
    seq = fit_gabors(atoms[:4], SHAPE, random_state=5)
    # threads: the same code path as processes, without their start-up cost
    with parallel_config(backend="threading"):
        par = fit_gabors(atoms[:4], SHAPE, random_state=5, n_jobs=2)
    np.testing.assert_allclose(par.models, seq.models)


def test_jacobian_matches_finite_differences():
    rng = np.random.default_rng(4)
    x, y = rf._grid(SHAPE)
    problem = rf._Problem(np.zeros(x.size), x, y)
    p = np.array([7.2, 8.1, 0.7, 0.12, 0.4, 2.2, 3.1, 1.3])
    jac = problem.jacobian(p)
    eps = 1e-6
    for k in range(p.size):
        dp = np.zeros_like(p)
        dp[k] = eps
        fd = (problem.residuals(p + dp) - problem.residuals(p - dp)) / (2 * eps)
        np.testing.assert_allclose(jac[:, k], fd, atol=1e-6, err_msg=rf.PARAM_NAMES[k])
    q = rng.standard_normal(8)
    np.testing.assert_allclose(
        rf._to_free(rf._from_free(q))[[3, 5, 6]], [np.arccos(np.cos(q[3])), q[5], q[6]], atol=1e-9
    )


def test_fold_phase():
    phases = np.linspace(-7, 7, 101)
    folded = fold_phase(phases)
    assert np.all((folded >= 0) & (folded <= np.pi / 2))
    np.testing.assert_allclose(fold_phase(folded), folded)
    np.testing.assert_allclose(fold_phase(-phases), folded, atol=1e-12)
    np.testing.assert_allclose(fold_phase(phases + np.pi), folded, atol=1e-12)
    np.testing.assert_allclose(fold_phase(np.pi - phases), folded, atol=1e-12)


def test_summary_statistics_on_known_population():
    nx = np.array([0.1, 0.2, 0.3, 0.6, 0.8, 1.0, 0.4, 0.2])
    ny = np.array([0.1, 0.3, 0.2, 0.9, 0.4, 1.2, 0.6, 0.1])
    phase = np.array([0.0, 0.1, -0.1, np.pi / 2, 1.5, np.pi, 0.8, 0.7])
    s = summarize_gabor_fits({"nx": nx, "ny": ny, "phase": phase})
    assert s["n"] == 8
    assert s["nx_median"] == pytest.approx(np.median(nx))
    assert s["ny_q75"] == pytest.approx(np.percentile(ny, 75))
    assert s["fraction_low_pass"] == pytest.approx(4 / 8)
    assert s["phase_even"] == pytest.approx(4 / 8)  # 0, 0.1, -0.1, pi
    assert s["phase_odd"] == pytest.approx(2 / 8)
    assert s["phase_middle"] == pytest.approx(2 / 8)
    assert s["phase_bimodality"] == pytest.approx(0.5)
    assert 0 < s["phase_bimodality_pvalue"] < 1


def test_summary_of_fit_counts_valid_atoms(synthetic):
    _, _, fit = synthetic
    s = summarize_gabor_fits(fit)
    assert s["n_atoms"] == len(fit) and s["n_valid"] == s["n"] == int(fit.valid.sum())
    assert s["fraction_valid"] == pytest.approx(fit.valid.mean())


def test_compare_fits_detects_differences():
    rng = np.random.default_rng(5)

    def pop(n, scale, odd):
        ph = np.where(rng.random(n) < odd, np.pi / 2, 0.0) + 0.1 * rng.standard_normal(n)
        return {
            "nx": scale * rng.gamma(4, 0.1, n),
            "ny": scale * rng.gamma(4, 0.12, n),
            "phase": ph,
        }

    a = pop(80, 1.0, 0.5)
    b = {k: v[::-1] for k, v in a.items()}  # the same sample, reordered
    c = {"nx": 2.5 * a["nx"], "ny": 2.5 * a["ny"], "phase": rng.uniform(0, np.pi / 2, 80)}
    same = compare_fits(a, b, n_permutations=199, random_state=0)
    diff = compare_fits(a, c, n_permutations=199, random_state=0)
    assert same["energy_nxny"] == pytest.approx(0, abs=1e-12) and same["phase_tv"] == 0
    assert same["energy_nxny_pvalue"] == same["phase_tv_pvalue"] == 1.0
    assert diff["energy_nxny_pvalue"] < 0.01 and diff["phase_tv_pvalue"] < 0.01
    assert diff["median_nx_diff"] < 0 and diff["median_nx_diff_pvalue"] < 0.01
    assert 0 <= diff["phase_tv"] <= 1
    assert diff["low_pass_diff"] > 0.2 and diff["low_pass_diff_pvalue"] < 0.01
    v1 = compare_to_v1(a, c["nx"], c["ny"], c["phase"], n_permutations=99, random_state=0)
    assert v1["energy_nxny_pvalue"] < 0.05
    assert v1["v1_summary"]["n"] == 80
    empty = compare_fits({"nx": [], "ny": [], "phase": []}, a)
    assert math.isnan(empty["energy_nxny_pvalue"])


def test_plots_smoke(synthetic):
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    _, atoms, fit = synthetic
    fig, axes = plt.subplots(1, 3)
    assert rf.plot_atoms(atoms, SHAPE, fit=fit, ax=axes[0]) is axes[0]
    assert rf.plot_nx_ny(fit, ax=axes[1], label="model", v1={"nx": [0.2], "ny": [0.3]}) is axes[1]
    assert rf.plot_phase_histogram(fit, ax=axes[2], v1_phase=[0.1, 1.5]) is axes[2]
    plt.close(fig)


@pytest.mark.parametrize(
    ("atoms", "match"),
    [
        (np.zeros((0, 64)), "0 sample"),
        (np.ones((1, 64)) + 1j, "Complex data not supported"),
        (np.full(64, np.inf), "infinity"),
        (np.ones((2, 63)), "shape"),
    ],
)
def test_fit_gabors_refuses_bad_atoms(atoms, match):
    with pytest.raises(ValueError, match=match):
        rf.fit_gabors(atoms, (8, 8))


POPULATION = {"nx": [0.2, 0.4, 0.8], "ny": [0.3, 0.9, 1.2], "phase": [0.1, 1.2, 0.7]}


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: compare_fits(POPULATION, POPULATION, n_permutations=0),
            ValueError,
            "n_permutations",
        ),
        (
            lambda: compare_fits(POPULATION, POPULATION, n_permutations=9.5),
            TypeError,
            "n_permutations",
        ),
        (lambda: compare_fits(POPULATION, POPULATION, phase_bins=0), ValueError, "phase_bins"),
        (lambda: compare_fits(POPULATION, POPULATION, phase_bins=True), TypeError, "phase_bins"),
        (
            lambda: compare_to_v1(POPULATION, [0.1, np.nan], [0.2, 0.3], [0.0, 1.0]),
            ValueError,
            "nx contains NaN",
        ),
        (lambda: compare_to_v1(POPULATION, [0.1, -1.0], [0.2, 0.3], [0.0, 1.0]), ValueError, "nx"),
        (lambda: compare_to_v1(POPULATION, [0.1], [0.2], ["even"]), TypeError, "phase"),
        (lambda: summarize_gabor_fits({**POPULATION, "ny": [0.1, np.inf, 0.2]}), ValueError, "ny"),
        (lambda: fit_gabors(np.zeros((1, 9)), (3, 3), max_nfev=0), ValueError, "max_nfev"),
        (lambda: fit_gabors(np.zeros((1, 9)), (3, 3), r2_min=np.nan), ValueError, "r2_min"),
        (lambda: fit_gabors(np.zeros((1, 9)), (3, 3), min_inside=2.0), ValueError, "min_inside"),
        (lambda: fit_gabors(np.zeros((1, 9)), (3, 3), n_jobs=0), ValueError, "n_jobs"),
        (lambda: fit_gabors(np.zeros((1, 9)), (3, 0)), ValueError, r"patch_shape\[1\]"),
        (lambda: fit_gabors(np.zeros((1, 9)), 9), TypeError, "patch_shape"),
        (lambda: make_gabor((8, 8), sigma_x=0.0), ValueError, "sigma_x"),
        (lambda: make_gabor((8, 8), frequency=-0.1), ValueError, "frequency"),
        (lambda: make_gabor((8, 8), phase=np.nan), ValueError, "phase"),
        (lambda: make_gabor((8.5, 8)), TypeError, "patch_shape"),
    ],
)
def test_analysis_functions_refuse_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_plots_refuse_bad_arguments(synthetic):
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    _, atoms, fit = synthetic
    n_figures = len(plt.get_fignums())
    with pytest.raises(ValueError, match="n_cols"):
        rf.plot_atoms(atoms, SHAPE, n_cols=0)
    with pytest.raises(ValueError, match="0 sample"):
        rf.plot_atoms(atoms[:0], SHAPE)
    with pytest.raises(ValueError, match="fit holds 24 atoms"):
        rf.plot_atoms(atoms[:5], SHAPE, fit=fit)
    with pytest.raises(TypeError, match="GaborFit"):
        rf.plot_atoms(atoms, SHAPE, fit=POPULATION)
    with pytest.raises(ValueError, match="shape"):
        rf.plot_atoms(atoms, (8, 8))
    with pytest.raises(ValueError, match="bins"):
        rf.plot_phase_histogram(fit, bins=0)
    with pytest.raises(ValueError, match="v1_phase"):
        rf.plot_phase_histogram(fit, v1_phase=[0.1, np.nan])
    # refused before any figure is made
    assert len(plt.get_fignums()) == n_figures


def test_analysis_functions_take_the_values_users_pass():
    # -inf keeps every fit; 0-d arrays are numbers; a wrong kind of n_jobs
    # is a TypeError and a negative V1 width names the V1 argument
    atoms = make_gabor((8, 8), frequency=0.2)[None]
    fit = fit_gabors(atoms, (8, 8), r2_min=-np.inf, random_state=0)
    assert fit.valid[0] and fit.criteria["r2_min"] == -np.inf
    np.testing.assert_array_equal(
        make_gabor((8, 8), theta=np.array(0.3)), make_gabor((8, 8), theta=0.3)
    )
    with pytest.raises(TypeError, match="n_jobs must be an integer"):
        fit_gabors(atoms, (8, 8), n_jobs=1.0)
    with pytest.raises(TypeError, match="n_jobs must be an integer"):
        fit_gabors(atoms, (8, 8), n_jobs=True)
    with pytest.raises(ValueError, match="v1_nx must be non-negative"):
        compare_to_v1(POPULATION, [0.1, -1.0], [0.2, 0.3], [0.0, 1.0])
