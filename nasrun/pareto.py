"""Pareto ranking, crowding and hypervolume over objective vectors, and Deb's feasibility-first order.

Every function here takes points oriented so that higher is better in every coordinate (`Scores.values`:
minimised metrics negated), as an (n, m) array-like. Non-dominated sorting, hypervolume, its per-point
contributions and IGD come from moocore (the C library behind pymoo's and the EAF tools' indicators, exact
algorithms: WFG/HV3D for the hypervolume); crowding distance is Deb et al. 2002's, a few lines.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from nasrun.objectives import Scores


def _array(points) -> np.ndarray:
    array = np.asarray(points, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"points: expected an (n, m) array of objective vectors, got shape {array.shape}")
    return array


def nondominated_ranks(points) -> np.ndarray:
    """Per point, its front in non-dominated sorting: 0 for the points no other point dominates, 1 for those
    only front 0 dominates, and so on. Equal points share a rank."""
    import moocore

    array = _array(points)
    if len(array) == 0:
        return np.zeros(0, dtype=int)
    return np.asarray(moocore.pareto_rank(array, maximise=True), dtype=int)


def nondominated(points) -> np.ndarray:
    """A boolean mask of the points no other point dominates (duplicates of a non-dominated point all kept)."""
    return nondominated_ranks(points) == 0


def crowding_distance(points) -> np.ndarray:
    """Deb et al. 2002's crowding distance of each point within its set (call it per front): per objective the
    points are sorted, the two extremes get infinity, and each other point adds the gap between its two
    neighbours divided by the objective's range. An objective on which all points agree adds nothing."""
    array = _array(points)
    n, m = array.shape
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(array[:, j], kind="stable")
        column = array[order, j]
        span = column[-1] - column[0]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (column[2:] - column[:-2]) / span
    return distance


def hypervolume(points, reference) -> float:
    """The volume the points dominate and that dominates `reference` (higher is better everywhere). Points that
    do not strictly beat the reference in every coordinate add nothing."""
    import moocore

    if len(points) == 0:
        return 0.0
    array = _array(points)
    ref = np.asarray(reference, dtype=float)
    if ref.shape != (array.shape[1],):
        raise ValueError(f"reference: {ref.tolist()} has {ref.size} coordinates, the points {array.shape[1]}")
    inside = np.all(array > ref, axis=1)
    if not inside.any():
        return 0.0
    return float(moocore.hypervolume(array[inside], ref=ref, maximise=True))


def hypervolume_contributions(points, reference) -> np.ndarray:
    """Per point, the hypervolume lost without it (0 for dominated and duplicated points)."""
    import moocore

    array = _array(points)
    ref = np.asarray(reference, dtype=float)
    out = np.zeros(len(array))
    inside = np.all(array > ref, axis=1)
    if inside.any():
        out[inside] = moocore.hv_contributions(array[inside], ref=ref, maximise=True)
    return out


def igd(points, front) -> float:
    """Inverted generational distance: the mean Euclidean distance from each point of the true `front` to the
    nearest of `points` (0 when the points cover the front); scale the objectives first if their units differ."""
    import moocore

    return float(moocore.igd(_array(points), ref=_array(front), maximise=True))


def order_keys(scores: Sequence[Scores]) -> list[tuple]:
    """A sort key per trial (smaller = better) under Deb's rules: feasible trials first, by non-dominated rank
    among the feasible ones, then the larger crowding distance within their front; then the infeasible ones, the
    smaller violation first. A trial without values that breaks nothing (failed) sorts last. With one objective
    the ranks are the order of the values, so the key orders by the value itself."""
    feasible = [i for i, s in enumerate(scores) if s.feasible and s.values is not None]
    keys: list[tuple] = [(2, 0.0, 0.0)] * len(scores)
    if feasible:
        points = np.array([scores[i].values for i in feasible], dtype=float)
        ranks = nondominated_ranks(points)
        crowding = np.zeros(len(feasible))
        for rank in np.unique(ranks):
            members = np.flatnonzero(ranks == rank)
            crowding[members] = crowding_distance(points[members])
        for position, i in enumerate(feasible):
            keys[i] = (0, float(ranks[position]), -float(crowding[position]))
    for i, s in enumerate(scores):
        if not s.feasible:
            keys[i] = (1, s.violation, 0.0)
    return keys


def knee(points) -> int:
    """The knee of a front: after scaling each objective to [0, 1] over the points, the point farthest from the
    straight line (2-D) or hyperplane through the extremes, i.e. with the largest sum of scaled values (the
    point where giving up one objective buys least of the others). Index into `points`."""
    array = _array(points)
    low, high = array.min(axis=0), array.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    return int(np.argmax(((array - low) / span).sum(axis=1)))
