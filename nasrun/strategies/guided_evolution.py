"""Proxy-guided evolution: Algorithm 1 of Centurión Funes, Colbes & Pinto-Roa (Guided Evolution, Lopes et al. 2022).

Aging evolution in which a zero-cost proxy decides which candidates are worth training:
1. score C random architectures with the proxy and train the P best; they form the population;
2. each cycle, draw S members, take the best by trained fitness as parent, make P mutated children, score
   them with the proxy and train only the best-scoring child, which joins the population as the oldest leaves.
The runner stops the search (Algorithm 1 stops at C trained architectures: `budget.trials`, as the
zeroshot_ga presets set it). Proxy scores are cheap and cached by the scorer; trainings are what count.
"""

from __future__ import annotations

import logging
from collections import deque

import numpy as np

from nasrun.checks import check_float, check_int
from nasrun.strategies.evolution import AgingPopulation, tournament

log = logging.getLogger(__name__)


class GuidedEvolution:
    """ask/tell proxy-guided aging evolution.

    scorer: arch -> proxy score (higher = better), raising ValueError when the proxy has no score for an
    architecture; the CLI passes the `proxy=` option's scorer. A scorer with `prefetch(archs)` (the CLI's) is
    handed each batch of candidates first, so concurrent searches sharing its cache split the batch's scoring.
    P: population size and children per cycle.
    S: tournament size. C: random architectures scored to seed the population. mutation_prob: chance that each
    choice changes (null: exactly one choice changes, as in the paper's NAS-Bench-201 mutation).
    """

    def __init__(self, space, seed: int, scorer, P: int = 10, S: int = 5, C: int = 200,
                 mutation_prob: float | None = None):
        self.space = space
        self.scorer = scorer
        self.P = check_int("P", P, low=1)
        self.S = check_int("S", S, low=1, high=P)
        self.C = check_int("C", C, low=P)
        self.mutation_prob = None if mutation_prob is None else check_float(
            "mutation_prob", mutation_prob, low=0.0, high=1.0, low_open=True)
        self.rng = np.random.default_rng(seed)
        self.population = AgingPopulation(self.P)
        self.ranked_initial: deque | None = None  # the C scored samples, best first; built on the first ask

    def ask(self):
        self.population.asked()
        if self.ranked_initial is None:
            self.ranked_initial = deque(self._rank(self._distinct(lambda: self.space.sample(self.rng), self.C)))
        # Fill the population with the best-scoring initial samples; a failed training is replaced by the next.
        if self.population.filling() and self.ranked_initial:
            return self.ranked_initial.popleft()
        if not self.population:  # every initial candidate failed to train or score: keep sampling at random
            return self.space.sample(self.rng)
        parent = tournament(self.population, self.S, self.rng)
        children = self._distinct(lambda: self.space.mutate(parent, self.rng, self.mutation_prob), self.P)
        ranked = self._rank(children)
        return ranked[0] if ranked else children[0]

    def tell(self, arch, fitness: float | None) -> None:
        self.population.told(arch, fitness)

    def _distinct(self, draw, count: int) -> list:
        """`count` distinct results of draw() (fewer only if it cannot give that many): scoring a duplicate would
        waste one of the candidates a step is allowed."""
        found: dict = {}
        for _ in range(100 * count):
            found.setdefault(draw(), None)
            if len(found) == count:
                break
        return list(found)

    def _rank(self, candidates: list) -> list:
        """Candidates by proxy score, best first (ties keep the earlier); unscorable ones are dropped."""
        prefetch = getattr(self.scorer, "prefetch", None)
        if prefetch is not None:
            prefetch(candidates)
        scored = {}
        for arch in candidates:
            try:
                scored[arch] = self.scorer(arch)
            except ValueError as err:
                log.debug("candidate %s has no proxy score (%s); not considered", arch.key, err)
        return sorted(scored, key=lambda a: -scored[a])
