"""nasrun.pareto: hypervolume on hand-worked cases, non-dominated sorting against brute force, crowding distance
on a hand example, and Deb's feasibility-first order."""

import numpy as np
import pytest

from nasrun.objectives import Scores
from nasrun.pareto import (
    crowding_distance,
    hypervolume,
    hypervolume_contributions,
    igd,
    knee,
    nondominated,
    nondominated_ranks,
    order_keys,
)


def test_hypervolume_2d_by_hand():
    # Three staircase points over the reference (0, 0): rectangles of widths 1, 1, 1 and heights 3, 2, 1.
    assert hypervolume([(1, 3), (2, 2), (3, 1)], (0, 0)) == pytest.approx(6.0)
    # A dominated point and a point that does not beat the reference add nothing.
    assert hypervolume([(1, 3), (2, 2), (3, 1), (1, 1), (5, -1)], (0, 0)) == pytest.approx(6.0)
    assert hypervolume([(1, 3)], (0, 1)) == pytest.approx(2.0)  # the reference shifts the box
    assert hypervolume([], (0, 0)) == 0.0


def test_hypervolume_3d_by_hand():
    assert hypervolume([(1, 1, 1)], (0, 0, 0)) == pytest.approx(1.0)
    assert hypervolume([(2, 1, 1), (1, 2, 1)], (0, 0, 0)) == pytest.approx(3.0)  # 2 + 2 - the shared unit cube
    # Inclusion-exclusion: three boxes of 2, pairwise overlaps of 1, a triple overlap of 1.
    assert hypervolume([(2, 1, 1), (1, 2, 1), (1, 1, 2)], (0, 0, 0)) == pytest.approx(4.0)
    assert hypervolume([(2, 3, 4)], (1, 1, 1)) == pytest.approx(1 * 2 * 3)


def test_hypervolume_contributions_by_hand():
    got = hypervolume_contributions([(1, 3), (2, 2), (3, 1), (1, 1)], (0, 0))
    assert got.tolist() == pytest.approx([1.0, 1.0, 1.0, 0.0])


def brute_force_ranks(points: np.ndarray) -> np.ndarray:
    """Peel fronts by checking every pair (maximisation)."""
    ranks = np.full(len(points), -1)
    rank = 0
    while (ranks < 0).any():
        left = np.flatnonzero(ranks < 0)
        for i in left:
            others = points[left]
            dominated = np.any(np.all(others >= points[i], axis=1) & np.any(others > points[i], axis=1))
            if not dominated:
                ranks[i] = rank
        rank += 1
        # points given a rank this round must not count as dominators in the same round
        ranks[(ranks == rank - 1)] = rank - 1
    return ranks


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("m", [2, 3])
def test_nondominated_sorting_matches_brute_force(seed, m):
    rng = np.random.default_rng(seed)
    points = rng.integers(0, 6, size=(60, m)).astype(float)  # small integers: ties and duplicates on purpose
    assert nondominated_ranks(points).tolist() == brute_force_ranks(points).tolist()
    mask = nondominated(points)
    for i in range(len(points)):
        dominated = np.any(np.all(points >= points[i], axis=1) & np.any(points > points[i], axis=1))
        assert mask[i] == (not dominated)


def test_crowding_distance_by_hand():
    # Objective 1: 0, 1, 2, 4 (range 4); objective 2: 4, 3, 2.5, 0 (range 4).
    got = crowding_distance([(0, 4), (1, 3), (2, 2.5), (4, 0)])
    assert got[0] == got[3] == np.inf
    assert got[1] == pytest.approx((2 - 0) / 4 + (4 - 2.5) / 4)
    assert got[2] == pytest.approx((4 - 1) / 4 + (3 - 0) / 4)
    assert crowding_distance([(1, 1), (2, 2)]).tolist() == [np.inf, np.inf]


def test_deb_order_feasible_first_then_smaller_violation_failed_last():
    scores = [Scores(None, 0.5), Scores((90.0, -5.0), 0.0), Scores(None, 0.1), Scores(None, 0.0),
              Scores((80.0, -2.0), 0.0), Scores((70.0, -6.0), 0.0)]
    keys = order_keys(scores)
    order = sorted(range(len(scores)), key=lambda i: keys[i])
    # The two non-dominated feasible ones, then the dominated feasible one, then violations 0.1 and 0.5, then
    # the failed trial.
    assert set(order[:2]) == {1, 4} and order[2:] == [5, 2, 0, 3]


def test_one_objective_orders_by_value():
    scores = [Scores((v,), 0.0) for v in (3.0, 9.0, 1.0, 5.0)]
    keys = order_keys(scores)
    assert sorted(range(4), key=lambda i: keys[i]) == [1, 3, 0, 2]


def test_igd_and_knee():
    front = [(0, 4), (2, 2), (4, 0)]
    assert igd(front, front) == 0.0
    assert igd([(2, 2)], front) == pytest.approx((np.hypot(2, 2) * 2) / 3)
    assert knee([(0, 4), (3, 3), (4, 0)]) == 1
