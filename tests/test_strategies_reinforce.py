"""REINFORCE and its controllers: probabilities, learning on a toy reward, parallel tells, exact resume."""

import math

import numpy as np
import pytest
import torch

from nasrun.search.budget import Budget
from nasrun.search.runner import run_search
from nasrun.spaces.custom import CustomSpace
from nasrun.spaces.macro import MacroSpace
from nasrun.spaces.nb201 import NB201Space
from nasrun.strategies.reinforce import Reinforce

CONTROLLERS = ["factorized", "lstm"]


def total_probability(strategy, space):
    return sum(strategy.probability(arch) for arch in space)


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_the_policy_is_a_distribution_over_the_whole_space(controller):
    space = CustomSpace()  # 108 architectures: small enough to sum over
    strategy = Reinforce(space, 0, controller=controller)
    assert total_probability(strategy, space) == pytest.approx(1.0, abs=1e-5)
    for _ in range(5):
        strategy.tell(strategy.ask(), 80.0)  # updates must keep it a distribution
    assert total_probability(strategy, space) == pytest.approx(1.0, abs=1e-5)


def toy_reward(arch):
    """Best when every choice is its dimension's last option."""
    values, space = arch.choices(), CustomSpace()
    return 100.0 * sum(values[d] == space.choices[d][-1] for d in space.choices) / len(space.choices)


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_reinforce_raises_the_probability_of_a_rewarded_architecture(controller):
    space = CustomSpace()
    best = space.make({d: options[-1] for d, options in space.choices.items()})
    strategy = Reinforce(space, 1, controller=controller, lr=0.05 if controller == "factorized" else 0.003,
                         baseline_decay=0.9)
    before = strategy.probability(best)
    for _ in range(150):
        arch = strategy.ask()
        strategy.tell(arch, toy_reward(arch))
    assert strategy.probability(best) > 5 * before


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_out_of_order_tells_failures_and_unasked_results(controller):
    space = NB201Space()
    strategy = Reinforce(space, 2, controller=controller, batch_size=3)
    asked = [strategy.ask() for _ in range(6)]
    for number, arch in enumerate(reversed(asked)):
        strategy.tell(arch, None if number == 1 else 70.0 + number)
    strategy.tell(space.sample(np.random.default_rng(5)), 90.0)  # never asked: scored under the current policy
    assert not strategy.asked and strategy._losses == []  # 6 rewards (5 + the stranger) = two updates of 3
    assert math.isfinite(strategy.baseline) and 70 < strategy.baseline < 90


def table_evaluator(arch, deadline=None):
    ops = arch.choices().values()
    return {"val_acc": 10.0 + 15 * sum(op == "nor_conv_3x3" for op in ops) - sum(op == "none" for op in ops)}, None


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_resume_reaches_the_uninterrupted_controller_state(tmp_path, controller):
    space = NB201Space()
    whole = Reinforce(space, 3, controller=controller, lr=0.01)
    run_search(space, whole, table_evaluator, Budget(trials=24), tmp_path / "whole")
    first = Reinforce(space, 3, controller=controller, lr=0.01)
    run_search(space, first, table_evaluator, Budget(trials=10), tmp_path / "part")
    resumed = Reinforce(space, 3, controller=controller, lr=0.01)
    result = run_search(space, resumed, table_evaluator, Budget(trials=24), tmp_path / "part", resume=True)
    assert result.replayed == 10
    for a, b in zip(whole.controller.parameters(), resumed.controller.parameters()):
        assert torch.equal(a, b)
    assert whole.baseline == resumed.baseline


def test_the_macro_space_is_searched_by_both_controllers():
    space = MacroSpace(4)
    for controller in CONTROLLERS:
        strategy = Reinforce(space, 4, controller=controller)
        arch = strategy.ask()
        assert space.from_key(arch.key) == arch
        strategy.tell(arch, 50.0)


def test_bad_settings_name_the_key():  # constructors raise ValueError; the command adds the group's name
    with pytest.raises(ValueError, match="controller='rnn'"):
        Reinforce(CustomSpace(), 0, controller="rnn")
    with pytest.raises(ValueError, match="baseline_decay=1"):
        Reinforce(CustomSpace(), 0, baseline_decay=1)


def test_anchor_attention_decides_every_skip_connection_and_learns():
    space = MacroSpace(4)
    strategy = Reinforce(space, 5, controller="lstm", lr=0.01)
    controller = strategy.controller
    arch = strategy.ask()
    actions = strategy._actions_of(arch)
    _, log_probs = controller._run(controller.plan, actions=actions)
    skips = [p.exp() for p, item in zip(log_probs, controller.plan) if isinstance(item, tuple)]
    assert len(skips) == len(space.skips) == 2 + 3 + 4  # layers 2, 3 and 4 read any earlier layer or the image
    assert all(p.shape == (2,) and 0 < p[1].item() < 1 for p in skips)
    before = [t.detach().clone() for t in (controller.v, controller.w_prev.weight, controller.w_curr.weight)]
    strategy.tell(arch, 90.0)
    strategy.tell(strategy.ask(), 10.0)
    after = (controller.v, controller.w_prev.weight, controller.w_curr.weight)
    assert all(not torch.equal(a, b) for a, b in zip(before, after))  # the attention's weights are trained


def test_progressive_depth_grows_the_networks_every_step_every_children():
    space = MacroSpace(5)
    strategy = Reinforce(space, 6, controller="lstm", start_layers=2, layers_step=1, step_every=3)
    depths = []
    for _ in range(13):
        arch = strategy.ask()
        depths.append(len(arch.key.split("|")))
        strategy.tell(arch, 60.0)
    assert depths == [2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 5]
    with pytest.raises(ValueError, match="start_layers=2: progressive depth needs a layered space"):
        Reinforce(CustomSpace(), 0, start_layers=2)


def test_a_space_without_named_choices_is_refused_in_one_line():
    from nasrun.spaces.morph.space import MorphSpace

    with pytest.raises(ValueError, match="controller=lstm: REINFORCE samples a space's named choices and space=morph"):
        Reinforce(MorphSpace(), seed=0)


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_a_confident_policy_keeps_finite_log_probabilities_and_gradients(controller):
    # At a high learning rate the policy grows confident: a probability that rounds to 0 in float32 once made
    # log(0) = -inf, NaN gradients and NaN parameters, and the next ask failed in numpy's sampler.
    space = MacroSpace(3)
    strategy = Reinforce(space, 0, controller=controller)
    with torch.no_grad():
        for p in strategy.controller.parameters():
            p.mul_(1e6)  # logits and attention scores in the thousands and more: a softmax of exact 0s and 1s
    arch = strategy.ask()
    log_p, entropy = strategy.controller.log_prob(strategy._actions_of(arch))
    assert math.isfinite(float(log_p)) and math.isfinite(float(entropy))
    for values in ({d: space.choices[d][0] for d in space.choices}, {d: space.choices[d][-1] for d in space.choices}):
        strategy.tell(space.make(values), 90.0)  # an unlikely network too: its log-probability is large, not -inf
    assert all(torch.isfinite(p).all() for p in strategy.controller.parameters())
    strategy.ask()
