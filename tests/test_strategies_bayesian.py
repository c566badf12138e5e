"""Bayesian optimisation with the edit-distance kernel: distances, the embedded kernel and GP, the acquisition
search, learning on a toy objective, parallel asks and exact resume."""

import numpy as np
import pytest

from nasrun.bench.reinforce import toy_reward
from nasrun.search.budget import Budget
from nasrun.search.runner import run_search
from nasrun.spaces.custom import CustomSpace
from nasrun.spaces.nb201 import NB201Space
from nasrun.strategies.bayesian import (
    BayesianOptimization,
    EmbeddedGP,
    bourgain_subsets,
)
from nasrun.strategies.random import RandomSearch

NB201 = NB201Space()
CUSTOM = CustomSpace()


def cell(*ops):
    a, b, c, d, e, f = ops
    return NB201.from_key(f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|")


def test_edit_distances_worked_out_by_hand():
    x = cell("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "none")
    y = cell("none", "skip_connect", "nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect")
    assert NB201.distances([x, y], [x, y]).tolist() == [[0, 2], [2, 0]]  # two edges differ
    base = dict(conv3=1, num_block=2, conv5=1, feature=64, dropout=0.25)
    a, b = CUSTOM.make(base), CUSTOM.make({**base, "feature": 128, "conv5": 0})
    assert CUSTOM.distances([a], [b])[0, 0] == pytest.approx(0.5 + 1.0)  # widths 64 vs 128: |64-128|/128
    neighbours = NB201.neighbours(x)
    assert len(neighbours) == 24 and len({n.key for n in neighbours}) == 24
    assert set(NB201.distances([x], neighbours)[0]) == {1.0}


def test_the_embedded_kernel_is_positive_semidefinite():
    rng = np.random.default_rng(0)
    archs = [NB201.sample(rng) for _ in range(60)]
    costs = np.array([toy_cost(a) for a in archs])
    model = EmbeddedGP(NB201, archs, bourgain_subsets(len(archs), rng), beta=2.576)
    model.fit(costs)
    gram = model.gp.kernel_(model.embed(archs + [NB201.sample(rng) for _ in range(40)]))
    assert np.linalg.eigvalsh(gram).min() >= -1e-8
    assert model.embed(archs).shape == (60, 36)  # ⌈log2 60⌉² coordinates


def toy_cost(arch):
    return sum(op == "nor_conv_3x3" for op in arch.choices().values()) / 6


class Line:
    """A 1-D toy space: the integers 0..20, distance |x - y|."""

    def distances(self, a, b):
        return np.abs(np.array(a, float)[:, None] - np.array(b, float)[None, :])


def test_the_gp_posterior_on_a_toy_1d_problem():
    xs = [0, 3, 6, 9, 12, 15, 18]
    ys = np.sin(np.array(xs) / 3.0)
    model = EmbeddedGP(Line(), xs, [np.array([i]) for i in range(len(xs))], beta=2.576)  # exact coordinates
    model.fit(ys)
    mean, std = model.predict(xs)
    assert np.allclose(mean, ys, atol=0.05) and std.max() < 0.1  # it interpolates what it saw
    # The posterior by hand from the fitted kernel: mu = k*^T (K + noise)^-1 (y - mean) + mean, normalised.
    x_all = model.embed(xs)
    y_mean, y_std = ys.mean(), ys.std()
    k = model.gp.kernel_(x_all)
    between = model.gp.kernel_(model.embed([4, 10]), x_all)
    by_hand = between @ np.linalg.solve(k, (ys - y_mean) / y_std) * y_std + y_mean
    assert np.allclose(model.predict([4, 10])[0], by_hand, atol=1e-6)
    assert model.predict([30])[1][0] > 5 * std.max()  # far from the data, the posterior is unsure


def best_found(strategy, space, samples):
    best = -1.0
    for _ in range(samples):
        arch = strategy.ask()
        reward = toy_reward(arch, space)
        strategy.tell(arch, reward)
        best = max(best, reward)
    return best


def test_bayesian_optimisation_beats_random_search_on_a_toy_objective():
    bo = [best_found(BayesianOptimization(CUSTOM, seed, initial=4), CUSTOM, 12) for seed in range(6)]
    rs = [best_found(RandomSearch(CUSTOM, seed), CUSTOM, 12) for seed in range(6)]
    assert np.mean(bo) > np.mean(rs) + 5, (bo, rs)


def test_parallel_asks_differ_and_tells_come_in_any_order():
    strategy = BayesianOptimization(NB201, 0, initial=4)
    for _ in range(6):
        arch = strategy.ask()
        strategy.tell(arch, 100 * (1 - toy_cost(arch)))
    asked = [strategy.ask() for _ in range(4)]  # the kriging believer spreads them out
    assert len({a.key for a in asked}) == 4
    for arch in reversed(asked):
        strategy.tell(arch, 90.0)
    strategy.tell(NB201.sample(np.random.default_rng(5)), 50.0)  # never asked: information, not an error
    strategy.tell(strategy.ask(), None)  # a failed trial is never asked again
    assert not strategy.pending and len(strategy.observed) == 11 and len(strategy.failed) == 1


class TableCost:
    def __call__(self, arch, deadline=None):
        return {"val_acc": 100 * (1 - toy_cost(arch)), "test_acc": 0.0}, None


def test_resume_reaches_the_uninterrupted_state(tmp_path):
    whole = run_search(NB201, BayesianOptimization(NB201, 3, initial=4), TableCost(), Budget(trials=12),
                       tmp_path / "whole")
    run_search(NB201, BayesianOptimization(NB201, 3, initial=4), TableCost(), Budget(trials=7), tmp_path / "cut")
    resumed = run_search(NB201, BayesianOptimization(NB201, 3, initial=4), TableCost(), Budget(trials=12),
                         tmp_path / "cut", resume=True)
    assert [r["key"] for r in resumed.records] == [r["key"] for r in whole.records]
    assert resumed.replayed == 7


@pytest.mark.parametrize("kwargs,key", [({"initial": 0}, "initial"), ({"cooling": 1.0}, "cooling"),
                                        ({"t_min": 2.0}, "t_min"), ({"beta": -1}, "beta")])
def test_bad_options_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=f"^{key}="):
        BayesianOptimization(NB201, 0, **kwargs)


def test_under_hyperband_the_model_is_fitted_on_the_highest_rung_with_enough_observations():
    """BOHB's rule (Falkner et al. 2018): every rung's results are kept apart, and the GP models the highest
    fidelity holding at least `initial` observations, else the lowest."""
    space = CustomSpace()
    strategy = BayesianOptimization(space, seed=0, initial=3)
    archs = [space.sample(np.random.default_rng(i)) for i in range(5)]
    for i, arch in enumerate(archs):
        rungs = {1: 40.0 + i} if i < 3 else {1: 40.0 + i, 3: 60.0 + i}
        strategy.tell(arch, rungs[max(rungs)], rungs=rungs)
    assert set(strategy.modelled()) == {a.key for a in archs}  # 2 results at 3 epochs: too few, the lowest rung
    extra = space.sample(np.random.default_rng(9))
    strategy.tell(extra, 70.0, rungs={1: 45.0, 3: 70.0})
    assert set(strategy.modelled()) == {archs[3].key, archs[4].key, extra.key}  # 3 at 3 epochs: modelled there
    assert strategy.modelled()[extra.key][1] == pytest.approx(0.3)  # cost = 1 - accuracy
    assert strategy.ask().key not in strategy.observed  # the model proposes an unseen architecture
