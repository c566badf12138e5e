"""NSGA-II (Deb, Pratap, Agarwal & Meyarivan 2002, "A fast and elitist multiobjective genetic algorithm").

Generational: a population of N parents makes N children (binary tournaments on rank and crowding, the space's
own crossover and mutation); once the N children are told, the next parents are the best N of parents and
children together: whole non-dominated fronts first, the last front cut by crowding distance. Constraints by
Deb's constrained domination: feasible before infeasible, infeasible ones by the smaller violation.

The first generation is N random architectures. With one objective and no constraints it is a plain
(mu + lambda) genetic algorithm on the fitness.
"""

from __future__ import annotations

import numpy as np

from nasrun.checks import check_float, check_int
from nasrun.objectives import Scores
from nasrun.pareto import order_keys


class NSGA2:
    """ask/tell NSGA-II.

    population_size: parents per generation (N), and children per generation. crossover_prob: the chance a
    child crosses its two tournament winners before mutating (else it mutates a copy of the first).
    mutation_prob: the chance each choice changes (null: exactly one choice changes)."""

    def __init__(self, space, seed: int, population_size: int = 20, crossover_prob: float = 0.9,
                 mutation_prob: float | None = None):
        self.space = space
        self.population_size = check_int("population_size", population_size, low=2)
        self.crossover_prob = check_float("crossover_prob", crossover_prob, low=0.0, high=1.0)
        self.mutation_prob = None if mutation_prob is None else check_float(
            "mutation_prob", mutation_prob, low=0.0, high=1.0, low_open=True)
        self.rng = np.random.default_rng(seed)
        self.parents: list[tuple] = []  # (arch, Scores), the current generation's survivors
        self.keys: list[tuple] = []  # their Deb keys (smaller is better), for the mating tournaments
        self.children: list[tuple] = []  # (arch, Scores) told since the last survival
        self.outstanding = 0  # asked, not yet told
        self.generation = 0

    def ask(self):
        self.outstanding += 1
        if not self.parents:  # the first generation (and after every trial of it failed): random
            return self.space.sample(self.rng)
        first, second = self._winner(), self._winner()
        base = first
        if first != second and self.rng.random() < self.crossover_prob:
            base = self.space.crossover(first, second, self.rng)
        for _ in range(100):  # a child that lands back on a parent is drawn again
            child = self.space.mutate(base, self.rng, self.mutation_prob)
            if child not in (first, second):
                return child
        return self.space.mutate(first, self.rng, None)

    def tell(self, arch, fitness: float | None, scores: Scores | None = None) -> None:
        """A result, asked for or not. `scores`: the objective vector and violation (the runner gives them under
        several objectives or constraints); without them the fitness is the one objective."""
        self.outstanding = max(0, self.outstanding - 1)
        if scores is None:
            scores = Scores(None if fitness is None else (float(fitness),), 0.0)
        if scores.values is None and scores.feasible:
            return  # a failed trial: no information to select on
        self.children.append((arch, scores))
        if len(self.children) >= self.population_size:
            self._survive()

    def _survive(self) -> None:
        """The next parents: the best N of parents and children by Deb's rules, rank and crowding."""
        pool, seen = [], set()  # an architecture told twice (a repeat the runner answered) survives once
        for member in self.parents + self.children:
            if member[0] not in seen:
                seen.add(member[0])
                pool.append(member)
        keys = order_keys([s for _, s in pool])
        order = sorted(range(len(pool)), key=lambda i: keys[i])[:self.population_size]
        survivors = [pool[i] for i in order]
        self.keys = order_keys([s for _, s in survivors])  # rank and crowding among the survivors themselves
        self.parents, self.children = survivors, []
        self.generation += 1

    def _winner(self):
        """Binary tournament: of two parents drawn uniformly, the one with the better key (ties: the first)."""
        i, j = self.rng.integers(len(self.parents), size=2)
        return self.parents[i if self.keys[i] <= self.keys[j] else j][0]
