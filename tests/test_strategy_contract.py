"""The strategy contract, checked on every option of conf/strategy/ (in the style of optuna's
BasicSamplerTestCase): whatever the executor and the run's history do, a strategy asks valid architectures and
takes every tell without raising, and a resumed run replays to exactly the uninterrupted one.

Each option is composed from the shipped config group and built as the runner builds it, so a new strategy
is covered by adding its YAML file. Fitness is a cheap deterministic function of the architecture.
"""

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from nasrun.config.groups import build, parameters
from nasrun.contracts import Strategy
from nasrun.search.budget import Budget
from nasrun.search.runner import run_search
from nasrun.spaces.nb201 import NB201Space

from conftest import compose

STRATEGIES = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "strategy").glob("*.yaml"))
SPACE = NB201Space()
# Settings that keep each option's warm-up short enough for a unit test; everything else is the shipped config.
QUICK = {"bayesian": {"initial": 4}, "guided_evolution": {"P": 5, "S": 3, "C": 20},
         "evolution": {"population_size": 5, "sample_size": 2}, "nsga2": {"population_size": 5}}


def fitness(arch) -> float:
    """A deterministic objective with structure for a model to find: convolutions help, 1x1 more than 3x3."""
    ops = arch.key.split("|")
    return 10.0 * sum("conv_1x1" in op for op in ops) + 7.0 * sum("conv_3x3" in op for op in ops) + len(arch.key) / 100


class Scorer:
    """A zero-cost proxy stand-in, for the strategies that take one."""

    name, batch_size, evaluations = "toy", 1, 0

    def __call__(self, arch) -> float:
        return fitness(arch)


class Evaluator:
    reports_cost = False

    def __call__(self, arch, deadline=None):
        return {"val_acc": fitness(arch)}, None

    def describe(self) -> dict:
        return {"dataset": "toy"}


def make(name: str, seed: int = 0):
    """The strategy option `name` as the runner builds it: its config node, the runtime values it asks for."""
    node = OmegaConf.merge(compose(f"strategy={name}", "space=nb201").strategy, QUICK.get(name, {}))
    runtime = {"space": SPACE, "seed": seed, "scorer": Scorer()}
    wanted = parameters("strategy", node)
    return build("strategy", node, **{k: v for k, v in runtime.items() if k in wanted})


def valid(arch) -> bool:
    return SPACE.from_json(arch.to_json()) == arch and SPACE.from_json(arch.key).key == arch.key


def cycles(strategy, count: int) -> list:
    """`count` plain ask/tell rounds; the architectures asked."""
    asked = []
    for _ in range(count):
        arch = strategy.ask()
        assert valid(arch)
        strategy.tell(arch, fitness(arch))
        asked.append(arch)
    return asked


def test_every_strategy_option_is_covered():
    assert set(STRATEGIES) == {"bayesian", "evolution", "guided_evolution", "nsga2", "random", "reinforce"}


@pytest.mark.parametrize("name", STRATEGIES)
def test_fits_the_protocol_and_asks_valid_architectures(name):
    strategy = make(name)
    assert isinstance(strategy, Strategy)
    assert len(cycles(strategy, 12)) == 12


@pytest.mark.parametrize("name", STRATEGIES)
def test_several_outstanding_asks_told_in_reverse_order(name):
    strategy = make(name)
    cycles(strategy, 3)
    outstanding = [strategy.ask() for _ in range(6)]  # a parallel executor: six asks before any tell
    assert all(valid(a) for a in outstanding)
    for arch in reversed(outstanding):  # completion order is not the order asked
        strategy.tell(arch, fitness(arch))
    cycles(strategy, 8)


@pytest.mark.parametrize("name", STRATEGIES)
def test_tells_it_never_asked_for_are_information_not_errors(name):
    strategy = make(name)
    rng = np.random.default_rng(99)
    strangers = [SPACE.sample(rng) for _ in range(5)]
    for number, arch in enumerate(strangers):  # before any ask: a resumed log it no longer retraces
        strategy.tell(arch, None if number == 2 else fitness(arch))
    asked = [strategy.ask() for _ in range(3)]
    strategy.tell(SPACE.sample(rng), 1.0)  # between an ask and its answer
    for arch in asked:
        strategy.tell(arch, fitness(arch))
    cycles(strategy, 8)


@pytest.mark.parametrize("name", STRATEGIES)
def test_failed_trials_are_taken_and_the_search_goes_on(name):
    strategy = make(name)
    for _ in range(6):  # the first trials all fail
        arch = strategy.ask()
        assert valid(arch)
        strategy.tell(arch, None)
    for number in range(12):  # then every third fails
        arch = strategy.ask()
        assert valid(arch)
        strategy.tell(arch, None if number % 3 == 0 else fitness(arch))


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_resumed_run_replays_to_exactly_the_uninterrupted_one(name, tmp_path):
    whole = run_search(SPACE, make(name, seed=3), Evaluator(), Budget(trials=18), tmp_path / "whole")
    run_search(SPACE, make(name, seed=3), Evaluator(), Budget(trials=7), tmp_path / "part")
    resumed = run_search(SPACE, make(name, seed=3), Evaluator(), Budget(trials=18), tmp_path / "part", resume=True)
    assert resumed.replayed == 7 and resumed.evaluated == 11
    assert [r["key"] for r in resumed.records] == [r["key"] for r in whole.records]


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_seed_decides_every_proposal(name):
    first, second, other = make(name, seed=5), make(name, seed=5), make(name, seed=6)
    keys = [a.key for a in cycles(first, 10)]
    assert keys == [a.key for a in cycles(second, 10)]
    assert keys != [a.key for a in cycles(other, 10)]


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("scheduler", ["asha", "hyperband"])
def test_every_strategy_searches_under_a_scheduler_and_resumes_exactly(name, scheduler, tmp_path):
    """Every strategy proposes and the scheduler decides how far each trains: tells come at pauses and ends,
    again at a higher fidelity after a promotion; a resume replays to the uninterrupted run."""
    from nasrun.bench.worker_faults import SegmentToy
    from nasrun.search.asha import ASHA, Hyperband

    def run(run_dir, trials, resume=False):
        return run_search(SPACE, make(name, seed=2), SegmentToy()(), Budget(trials=trials), run_dir,
                          scheduler=ASHA(9, 1, 3) if scheduler == "asha" else Hyperband(9, 1, 3), resume=resume)

    whole = run(tmp_path / "whole", 14)
    assert len(whole.records) == 14 and max(r["epochs"] for r in whole.records) == 9
    run(tmp_path / "part", 8)
    resumed = run(tmp_path / "part", 14, resume=True)
    assert [(r["trial"], r["key"], r["epochs"]) for r in resumed.records] == \
        [(r["trial"], r["key"], r["epochs"]) for r in whole.records]


def toy_latency(arch) -> float:
    """A deterministic second objective that conflicts with `fitness`: convolutions are slow."""
    return 1.0 + 2.0 * arch.key.count("conv_3x3") + 1.5 * arch.key.count("conv_1x1")


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("constrained", [False, True], ids=["two objectives", "and a latency bound"])
def test_two_objectives_and_a_constraint_search_and_resume_exactly(name, constrained, tmp_path):
    """Under [val_acc, latency_ms] (and latency_ms <= 6): every strategy searches, the runner keeps the Pareto
    set, an architecture over the bound is recorded as infeasible without being evaluated or counted, and a
    resume replays to exactly the uninterrupted run."""
    import json

    from nasrun.objectives import Objectives
    from nasrun.pareto import nondominated
    from nasrun.search.goals import Goals

    bounds = (("latency_ms", 6.0),) if constrained else ()
    goals = Goals(Objectives(("val_acc", "latency_ms"), bounds), None, toy_latency)

    def run(run_dir, trials, resume=False):
        return run_search(SPACE, make(name, seed=4), Evaluator(), Budget(trials=trials), run_dir, goals=goals,
                          resume=resume)

    whole = run(tmp_path / "whole", 18)
    evaluated = [r for r in whole.records if r["status"] == "ok"]
    assert len(evaluated) == 18
    infeasible = [r for r in whole.records if r["status"] == "infeasible"]
    assert all(r["metrics"]["latency_ms"] > 6.0 and "val_acc" not in r["metrics"] for r in infeasible)
    assert constrained or not infeasible
    assert all(r["metrics"]["latency_ms"] <= 6.0 for r in evaluated) or not constrained
    front = json.loads((tmp_path / "whole" / "pareto.json").read_text())
    points = [(r["metrics"]["val_acc"], -r["metrics"]["latency_ms"]) for r in evaluated]
    expected = {r["key"] for r, keep in zip(evaluated, nondominated(points)) if keep}
    assert {t["key"] for t in front["trials"]} == expected
    run(tmp_path / "part", 7)
    resumed = run(tmp_path / "part", 18, resume=True)
    assert [(r["key"], r["status"]) for r in resumed.records] == [(r["key"], r["status"]) for r in whole.records]
    assert json.loads((tmp_path / "part" / "pareto.json").read_text())["trials"] == front["trials"]
