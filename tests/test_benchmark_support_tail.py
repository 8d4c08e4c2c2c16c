"""The analysis of ``benchmarks/support_tail.py`` measures the library's
network and counts what it says it counts."""

import numpy as np
import pytest

from benchmarks import support_tail
from sklearn_wlsc import _objective
from sklearn_wlsc._backends._numpy import unrolled_encode


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_traced_network_is_the_reference_network(rng, alpha):
    Y, A = support_tail.make_data(60, 7, 9, rng)
    G, C = _objective.encoder_terms(Y, A, alpha)
    L = _objective.lipschitz_constant(A)
    codes, momentum, _ = support_tail.trace_network(G, C, L, 12)
    for k in (1, 5, 12):
        np.testing.assert_array_equal(codes[k - 1], unrolled_encode(G, C, L, k))
    # the first momentum point is the first codes (β_0 = 0)
    np.testing.assert_array_equal(momentum[0], codes[0])


def test_counts_on_hand_made_supports(rng):
    Y, A = support_tail.make_data(80, 6, 8, rng)
    G, C = _objective.encoder_terms(Y, A, 0.0)
    L = _objective.lipschitz_constant(A)
    r = support_tail.support_tail(G, C, L, 30, [1, 5, 10, 30])
    codes, momentum, V = support_tail.trace_network(G, C, L, 30)
    supports = np.array([X > 0 for X in codes])
    # recount "support final after layer k" by brute force
    final = [
        min(
            k
            for k in range(1, 31)
            if all((supports[j - 1, i] == supports[-1, i]).all() for j in range(k, 31))
        )
        for i in range(80)
    ]
    assert r["support_final_median"] == np.median(final)
    shares = [c["support_final"] for c in r["checkpoints"]]
    assert shares == [np.mean(np.array(final) <= k) for k in (1, 5, 10, 30)]
    assert shares[-1] == 1.0
    movement = np.abs(momentum[-1] - codes[-1]).max(axis=1)
    assert r["checkpoints"][-1]["movement_median"] == np.median(movement)


def test_samples_equal_to_atoms_reach_fixed_points_at_vertices(rng):
    # rows of C equal to rows of G, with affinely independent atoms: every
    # code is a vertex, and every row reaches a fixed point
    A = rng.standard_normal((9, 12))
    A -= A.mean(axis=0)
    G = A @ A.T
    r = support_tail.support_tail(G, G.copy(), _objective.lipschitz_constant(A), 20, [20])
    assert r["vertex"] == 1.0 and r["fixed_point"] == 1.0 and r["vertex_among_fixed"] == 1.0
    assert r["nnz_codes"] == 1.0


def test_report_has_one_row_per_configuration(capsys):
    report = support_tail.main(["--sizes", "50x6", "--alphas", "0", "0.5", "--layers", "8"])
    assert [(r["n"], r["m"], r["alpha"]) for r in report["results"]] == [
        (50, 6, 0.0),
        (50, 6, 0.5),
    ]
    assert "| 50, d=m=6, α=0.5 |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        support_tail.parse_args(["--sizes", "50"])
