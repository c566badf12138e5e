import numpy as np
import pytest

from nasrun.search.budget import Budget
from nasrun.search.runner import run_search
from nasrun.spaces.custom import CHOICES, CustomSpace
from nasrun.spaces.generic import ChoiceArch
from nasrun.strategies.evolution import RegularizedEvolution
from nasrun.strategies.random import RandomSearch

SPACE = CustomSpace()


def toy_score(arch: ChoiceArch) -> float:
    """A smooth objective with one optimum: each choice's index counts, with different weights."""
    values = arch.to_json()
    return sum(w * CHOICES[k].index(values[k]) for w, k in zip((3, 2, 5, 1, 4), CHOICES))


OPTIMUM = max(SPACE, key=toy_score)


class ToyEvaluator:
    def __call__(self, arch, deadline=None):
        return {"val_acc": float(toy_score(arch)), "test_acc": float(toy_score(arch))}, None


def trials_to_optimum(strategy, tmp_path) -> int:
    result = run_search(SPACE, strategy, ToyEvaluator(), Budget(trials=108), tmp_path)
    return next(r["trial"] for r in result.records if r["key"] == OPTIMUM.key) + 1


def test_strategies_are_deterministic_for_a_seed():
    for cls in (RandomSearch, RegularizedEvolution):
        runs = []
        for _ in range(2):
            strategy = cls(SPACE, seed=7)
            proposals = []
            for _ in range(60):
                arch = strategy.ask()
                proposals.append(arch.key)
                strategy.tell(arch, toy_score(arch))
            runs.append(proposals)
        assert runs[0] == runs[1]


def test_evolution_fills_population_randomly_then_ages_out_the_oldest():
    strategy = RegularizedEvolution(SPACE, seed=0, population_size=5, sample_size=2)
    told = []
    for i in range(12):
        arch = strategy.ask()
        strategy.tell(arch, float(i))
        told.append(arch)
    assert len(strategy.population) == 5
    assert [a for a, _ in strategy.population] == told[-5:]  # the five youngest remain


def test_evolution_children_differ_from_their_parents():
    strategy = RegularizedEvolution(SPACE, seed=3, population_size=4, sample_size=2, crossover=False)
    for _ in range(4):
        arch = strategy.ask()
        strategy.tell(arch, toy_score(arch))
    parents = {a for a, _ in strategy.population}
    for _ in range(50):
        child = strategy._child(*sorted(parents, key=lambda a: a.key)[:2])
        assert child not in sorted(parents, key=lambda a: a.key)[:2]


def test_failed_trials_do_not_join_the_population_and_are_replaced_by_random_samples():
    strategy = RegularizedEvolution(SPACE, seed=0, population_size=3, sample_size=2)
    for _ in range(3):
        strategy.tell(strategy.ask(), None)
    assert len(strategy.population) == 0
    arch = strategy.ask()  # still the random phase
    assert isinstance(arch, ChoiceArch)


@pytest.mark.parametrize("kwargs,key", [({"population_size": 1}, "population_size"),
                                        ({"sample_size": 40}, "sample_size"),
                                        ({"mutation_prob": 0.0}, "mutation_prob"),
                                        ({"crossover": "yes"}, "crossover")])
def test_evolution_rejects_bad_parameters_naming_them(kwargs, key):
    with pytest.raises(ValueError, match=key):
        RegularizedEvolution(SPACE, seed=0, **kwargs)


def test_evolution_with_crossover_and_dedup_beats_random_search(tmp_path):
    # Random search without repeats needs (108+1)/2 = 54.5 trials on average to hit one optimum.
    seeds = range(12)
    evo = [trials_to_optimum(RegularizedEvolution(SPACE, seed=s, population_size=10, sample_size=3), tmp_path / f"e{s}")
           for s in seeds]
    rnd = [trials_to_optimum(RandomSearch(SPACE, seed=s), tmp_path / f"r{s}") for s in seeds]
    assert np.mean(evo) < 0.75 * np.mean(rnd), (np.mean(evo), np.mean(rnd))


def test_default_evolution_beats_random_search(tmp_path):
    seeds = range(12)
    evo = [trials_to_optimum(RegularizedEvolution(SPACE, seed=s), tmp_path / f"e{s}") for s in seeds]
    rnd = [trials_to_optimum(RandomSearch(SPACE, seed=s), tmp_path / f"r{s}") for s in seeds]
    assert np.mean(evo) < np.mean(rnd), (np.mean(evo), np.mean(rnd))


def every_strategy(space, seed=0):
    from nasrun.strategies.guided_evolution import GuidedEvolution

    scorer = lambda arch: float(sum(v if isinstance(v, (int, float)) else 0 for v in arch.to_json().values()))
    return [RandomSearch(space, seed), RegularizedEvolution(space, seed, population_size=4, sample_size=2),
            GuidedEvolution(space, seed, scorer, P=4, S=2, C=8)]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["random", "evolution", "guided_evolution"])
def test_every_strategy_takes_tells_out_of_order_and_tells_it_never_asked_for(index):
    space = CustomSpace()
    strategy = every_strategy(space)[index]
    for round in range(5):  # six asks outstanding, answered newest first, with a failure among them
        asked = [strategy.ask() for _ in range(6)]
        for number, arch in enumerate(reversed(asked)):
            strategy.tell(arch, None if number == 2 else float(round * 6 + number))
    stranger = space.sample(np.random.default_rng(99))
    for _ in range(3):  # results it never asked for: a resumed run's log, or asks of a previous process
        strategy.tell(stranger, 99.0)
    assert getattr(strategy, "outstanding", 0) == 0  # bookkeeping never below zero, never owed a stale answer
    if hasattr(strategy, "population"):
        assert any(arch == stranger for arch, _ in strategy.population)  # an unasked result is information
        assert len(strategy.population) <= 4
    for arch in [strategy.ask() for _ in range(6)]:  # and it goes on proposing valid architectures
        assert space.from_json(arch.to_json()) == arch


def test_evolution_compares_a_sample_at_the_highest_fidelity_it_reached():
    """Under a scheduler, members carry the epochs they were measured at: a tournament picks among the ones
    measured furthest (70 % after 9 epochs beats 90 % after 1), and a promoted trial replaces its own entry."""
    from nasrun.strategies.evolution import AgingPopulation, tournament

    population = AgingPopulation(5)
    archs = [SPACE.sample(np.random.default_rng(i)) for i in range(3)]
    population.told(archs[0], 90.0, 1)  # high accuracy after one epoch
    population.told(archs[1], 70.0, 9)  # lower, after all nine
    population.told(archs[2], 50.0, 3)
    rng = np.random.default_rng(0)
    assert all(tournament(population, 50, rng) == archs[1] for _ in range(10))  # 50 draws: every member in
    population.told(archs[0], 95.0, 9)  # promoted to 9 epochs: one entry, at its new fidelity, now the youngest
    assert [m[0] for m in population] == [archs[1], archs[2], archs[0]] and population[2][1:] == (95.0, 9)
