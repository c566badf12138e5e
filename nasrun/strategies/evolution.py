"""Regularized (aging) evolution, Real et al. 2019, "Regularized Evolution for Image Classifier Architecture Search".

The population is a queue: every child joins at the young end and the oldest member leaves, whatever its
fitness. Ageing out good-but-old members is the regularisation: an architecture survives only by being
re-discovered through its descendants, which favours architectures that retrain well.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from nasrun.checks import check_bool, check_float, check_int
from nasrun.objectives import Scores
from nasrun.pareto import order_keys


class AgingPopulation:
    """The population of aging evolution (Real et al.'s queue): (arch, fitness) members, oldest first, at most
    `size`; a result joins at the young end and pushes the oldest out. It also counts the asks still owed
    an answer, so parallel asks do not overfill the random phase. Both evolutions keep one (their `tell`).

    Under a scheduler a member is (arch, fitness, epochs): the fidelity it was measured at. A trial told again at
    a higher fidelity (promoted from a rung) replaces its own earlier entry and rejoins at the young end."""

    def __init__(self, size: int):
        self.size = size
        self.members: deque = deque()
        self.outstanding = 0  # asked but not yet told

    def asked(self) -> None:
        self.outstanding += 1

    def told(self, arch, fitness: float | None, epochs: int | None = None) -> None:
        """A result, asked for or not (an unasked one is information too); a failed trial (None) never joins."""
        self.outstanding = max(0, self.outstanding - 1)
        if fitness is None:
            return
        if epochs is not None:  # a scheduled trial: one entry per architecture, at its latest fidelity
            for member in [m for m in self.members if m[0] == arch]:
                self.members.remove(member)
        self.members.append((arch, float(fitness)) if epochs is None else (arch, float(fitness), epochs))
        if len(self.members) > self.size:
            self.members.popleft()

    def filling(self) -> bool:
        """Whether the population, counting the answers still to come for the other asks, is not yet full."""
        return len(self.members) + self.outstanding - 1 < self.size

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, index: int):
        return self.members[index]

    def __iter__(self):
        return iter(self.members)


def tournament(population, size: int, rng):
    """The fittest of `size` members of a (arch, fitness[, epochs]) population drawn uniformly *with*
    replacement, as in Real et al.'s Algorithm 1 and NAS-Bench-201's implementation (ties: the younger wins).

    Under a scheduler members were measured at different epochs, and accuracies after 1 and 9 epochs are not
    comparable: the sample is compared at the highest fidelity any of its members reached, among the members
    measured there. A member a scheduler stopped earlier has already lost a comparison at its rung, so it can
    only win a sample in which no member went further."""
    picks = rng.integers(len(population), size=size)
    best = max(picks, key=lambda i: (population[i][2] if len(population[i]) > 2 else 0, population[i][1], i))
    return population[best][0]


def pareto_tournament(population, size: int, rng, judged: dict):
    """`tournament` under several objectives or constraints: the sample member ranked best in the population at
    its fidelity, by Deb's rules (feasible first, then non-dominated rank, then the larger crowding distance in
    its front; infeasible ones by the smaller violation), as Syne Tune's multi-objective regularized evolution
    ranks its population; ties go to the younger. `judged`: arch -> its `Scores`. The draw is the same as
    `tournament`'s, so the random stream does not depend on the objectives."""
    picks = rng.integers(len(population), size=size)
    fidelity = max(population[i][2] if len(population[i]) > 2 else 0 for i in picks)
    peers = [i for i in range(len(population)) if (population[i][2] if len(population[i]) > 2 else 0) == fidelity]
    keys = dict(zip(peers, order_keys([judged[population[i][0]] for i in peers])))
    best = min((i for i in picks if i in keys), key=lambda i: (keys[i], -i))
    return population[best][0]


class RegularizedEvolution:
    """ask/tell aging evolution.

    population_size: members kept (P). sample_size: tournament size (S). mutation_prob: chance that each
    choice changes (null: exactly one choice changes). crossover: when true, two tournament winners are
    crossed uniformly before mutation; when false, the child mutates a copy of one winner.
    """

    def __init__(self, space, seed: int, population_size: int = 30, sample_size: int = 10,
                 mutation_prob: float | None = 0.05, crossover: bool = True):
        self.space = space
        self.population_size = check_int("population_size", population_size, low=2)
        self.sample_size = check_int("sample_size", sample_size, low=1, high=population_size)
        self.mutation_prob = None if mutation_prob is None else check_float(
            "mutation_prob", mutation_prob, low=0.0, high=1.0, low_open=True)
        self.crossover = check_bool("crossover", crossover)
        self.rng = np.random.default_rng(seed)
        self.population = AgingPopulation(self.population_size)
        self.judged: dict = {}  # arch -> Scores, under several objectives or constraints (the runner's `scores`)

    @property
    def outstanding(self) -> int:
        return self.population.outstanding

    def ask(self):
        self.population.asked()
        # Random initialisation until the population (counting answers still to come) is full. Failed trials
        # never join, so they are replaced by further random samples. With more trials in flight than the
        # population holds, asks beyond it are random too until the first result arrives.
        if self.population.filling() or not self.population:
            return self.space.sample(self.rng)
        pick = tournament if not self.judged else (
            lambda population, size, rng: pareto_tournament(population, size, rng, self.judged))
        first = pick(self.population, self.sample_size, self.rng)
        second = pick(self.population, self.sample_size, self.rng) if self.crossover else first
        return self._child(first, second)

    def tell(self, arch, fitness: float | None, rungs: dict[int, float] | None = None,
             scores: Scores | None = None) -> None:
        """rungs: under a scheduler, epochs -> fitness at each decision point the trial reached. scores: under
        several objectives or constraints, the trial's objective vector and violation (the runner gives them):
        an infeasible member joins the population too, and loses every tournament to a feasible one."""
        if scores is not None:
            if scores.values is None and scores.feasible:
                fitness = None  # failed: never joins
            else:
                self.judged[arch] = scores
                fitness = 0.0 if fitness is None else fitness  # infeasible: ranked by `judged`, not by fitness
        self.population.told(arch, fitness, max(rungs) if rungs else None)
        if self.judged and len(self.judged) > 4 * self.population_size:  # forget the members aged out
            alive = {m[0] for m in self.population}
            self.judged = {a: s for a, s in self.judged.items() if a in alive}

    def _child(self, first, second):
        parents = {first, second}
        base = self.space.crossover(first, second, self.rng) if first != second else first
        # The mutation always changes something; redraw the rare child that lands back on a parent.
        for _ in range(100):
            child = self.space.mutate(base, self.rng, self.mutation_prob)
            if child not in parents:
                return child
        return self.space.mutate(first, self.rng, None)
