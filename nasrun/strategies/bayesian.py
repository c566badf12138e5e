"""Bayesian optimisation over architectures with an edit-distance kernel (Auto-Keras, Jin, Song & Hu, KDD 2019).

A Gaussian process models the cost (1 - validation accuracy) of the architectures observed so far. Its kernel
is κ(a, b) = exp(-ρ²(d(a, b))): d is the space's edit distance (`space.distances`), and ρ is a Bourgain
embedding that maps the architectures into a Euclidean space where distances approximate d. An RBF kernel on
embedded vectors is positive semi-definite by construction, which the raw edit distance does not guarantee.
Each architecture's coordinates are its distances to random subsets of the observed ones, so candidates never
evaluated are embedded the same way. The GP itself is scikit-learn's, with amplitude, length scale and noise
fitted by maximum likelihood.

The next architecture minimises the lower confidence bound α = μ - β σ (β = 2.576, Auto-Keras' constant),
found by the paper's Algorithm 1: a simulated-annealing tree search from the observed architectures through
their neighbours (one choice changed), with the temperature cooling from `t_start` by `cooling` per step down
to `t_min`. Architectures asked but not yet told are believed at their posterior mean (kriging believer), so
parallel asks spread out instead of repeating.
"""

from __future__ import annotations

import heapq
import math
import warnings

import numpy as np

from nasrun.checks import check_float, check_int
from nasrun.contracts import morphisms

BETA = 2.576  # Auto-Keras' constant: the 99 % two-sided normal quantile


class BayesianOptimization:
    """initial: random architectures before the first model (counting asks still out). beta: the exploration
    weight. t_start, t_min, cooling: the annealing schedule of the acquisition search (Auto-Keras: 1, 1e-4, 0.9).
    restarts: extra random starts of the GP's likelihood optimisation. max_neighbours: on a morphism space,
    the morphisms the tree search tries per expanded network (drawn at random, as Auto-Keras does; null: all)."""

    def __init__(self, space, seed: int, initial: int = 10, beta: float = BETA, t_start: float = 1.0,
                 t_min: float = 1e-4, cooling: float = 0.9, restarts: int = 1, max_neighbours: int | None = 16):
        self.space = space
        self.initial = check_int("initial", initial, low=1)
        self.beta = check_float("beta", beta, low=0.0)
        self.t_start = check_float("t_start", t_start, low=0.0, low_open=True)
        self.t_min = check_float("t_min", t_min, low=0.0, high=t_start, low_open=True, high_open=True)
        self.cooling = check_float("cooling", cooling, low=0.0, high=1.0, low_open=True, high_open=True)
        self.restarts = check_int("restarts", restarts, low=0)
        self.max_neighbours = None if max_neighbours is None else check_int("max_neighbours", max_neighbours, low=1)
        self.rng = np.random.default_rng(seed)
        self.observed: dict = {}  # key -> (arch, cost)
        self.levels: dict[int, dict] = {}  # under a scheduler: epochs -> key -> (arch, cost) measured there
        self.pending: dict = {}  # key -> arch, asked and not yet told
        self.failed: set = set()  # keys whose trial failed: never asked again
        self.lineages: dict = {}  # key -> (observed ancestor, [Morph, ...]) for proposals on a morphism space

    # ----- ask / tell ---------------------------------------------------------------------------------------

    def ask(self):
        if len(self.observed) + len(self.pending) < self.initial or not self.observed:
            arch = self._random_unseen()
        elif len(self.observed) < 2:  # one point fits no GP: a neighbour of it (Auto-Keras grows its seed)
            arch = self._neighbour_unseen()
        else:
            arch = self.propose()
        self.pending[arch.key] = arch
        return arch

    def tell(self, arch, fitness: float | None, rungs: dict[int, float] | None = None) -> None:
        """rungs: under a scheduler, epochs -> fitness at each decision point the trial reached."""
        self.pending.pop(arch.key, None)
        if fitness is None:
            self.failed.add(arch.key)
        else:
            self.observed[arch.key] = (arch, 1.0 - float(fitness) / 100.0)
            for epochs, value in (rungs or {}).items():
                self.levels.setdefault(epochs, {})[arch.key] = (arch, 1.0 - float(value) / 100.0)

    def modelled(self) -> dict:
        """The observations the GP is fitted on. Under a scheduler, as BOHB does (Falkner et al. 2018): those of
        the highest fidelity with at least `initial` of them, where the ranking is the one a full training
        would give, else of the lowest (which every trial reached). Otherwise every observation."""
        if not self.levels:
            return self.observed
        for epochs in sorted(self.levels, reverse=True):
            if len(self.levels[epochs]) >= self.initial:
                return self.levels[epochs]
        return self.levels[min(self.levels)]

    # ----- the model ----------------------------------------------------------------------------------------

    def lineage(self, arch):
        """(the nearest observed ancestor, the morphisms from it to `arch`, in order) for an architecture this
        strategy proposed on a morphism space (`space.morphs`); None otherwise. A child trained from its
        ancestor's weights through these morphisms starts with the ancestor's function."""
        return self.lineages.get(arch.key)

    def propose(self):
        """The unseen architecture of least α found by the annealing tree search (a random unseen one if the
        search found none)."""
        model = self.fit()
        history = [arch for arch, _ in self.modelled().values()]
        morphs = morphisms(self.space)
        came_from = {}  # on a morphism space: key -> (parent, the Morph that made it)
        queue = [(a, i, arch) for i, (a, arch) in enumerate(zip(model.acquisition(history), history))]
        heapq.heapify(queue)
        c_min = queue[0][0]
        best, best_alpha = None, math.inf
        visited = set(self.observed) | set(self.pending) | self.failed
        temperature, counter = self.t_start, len(queue)
        while queue and temperature > self.t_min:
            _, _, arch = heapq.heappop(queue)
            if morphs is not None:
                moves = [m for m in morphs(arch, self.max_neighbours) if m.child.key not in visited]
                came_from.update((m.child.key, (arch, m)) for m in moves)
                fresh = [m.child for m in moves]
            else:
                fresh = [n for n in self.space.neighbours(arch) if n.key not in visited]
            visited.update(n.key for n in fresh)
            if fresh:
                alphas = model.acquisition(fresh)
                accept = np.exp(np.minimum((c_min - alphas) / temperature, 0.0)) > self.rng.random(len(fresh))
                for alpha, neighbour, take in zip(alphas, fresh, accept):
                    if alpha < best_alpha:
                        best, best_alpha = neighbour, alpha
                    c_min = min(c_min, alpha)
                    if take:
                        heapq.heappush(queue, (alpha, counter, neighbour))
                        counter += 1
            temperature *= self.cooling
        if best is None:
            return self._random_unseen()
        if morphs is not None:
            self.lineages[best.key] = self._path(best, came_from)
        return best

    def _path(self, arch, came_from: dict):
        """Walk back from `arch` to the observed architecture the tree search started from."""
        steps = []
        while arch.key not in self.observed:
            arch, morph = came_from[arch.key]
            steps.append(morph)
        return arch, steps[::-1]

    def fit(self) -> "EmbeddedGP":
        """The GP on the observed costs, then on those plus the pending architectures believed at its mean."""
        archs = [arch for arch, _ in self.modelled().values()]
        costs = np.array([cost for _, cost in self.modelled().values()])
        anchors = bourgain_subsets(len(archs), self.rng)
        model = EmbeddedGP(self.space, archs, anchors, self.beta)
        model.fit(costs, restarts=self.restarts, seed=int(self.rng.integers(2**31)))
        if self.pending:
            pending = list(self.pending.values())
            believed = model.predict(pending)[0]
            model = EmbeddedGP(self.space, archs + pending, anchors, self.beta, kernel=model.gp.kernel_)
            model.fit(np.concatenate([costs, believed]))
        return model

    def _neighbour_unseen(self):
        """A random unseen neighbour of an observed architecture (on a morphism space, with its lineage)."""
        seen = set(self.observed) | set(self.pending) | self.failed
        parent = next(iter(self.observed.values()))[0]
        morphs = morphisms(self.space)
        if morphs is not None:
            options = [m for m in morphs(parent, self.max_neighbours) if m.child.key not in seen]
            if options:
                pick = options[int(self.rng.integers(len(options)))]
                self.lineages[pick.child.key] = (parent, [pick])
                return pick.child
        options = [n for n in self.space.neighbours(parent) if n.key not in seen]
        return options[int(self.rng.integers(len(options)))] if options else self._random_unseen()

    def _random_unseen(self):
        seen = set(self.observed) | set(self.pending) | self.failed
        for _ in range(1000):
            arch = self.space.sample(self.rng)
            if arch.key not in seen:
                return arch
        return arch  # a space all but exhausted: the runner answers a repeat from its records


def bourgain_subsets(n: int, rng) -> list[np.ndarray]:
    """Bourgain's random subsets of n points: for each scale i = 1..⌈log2 n⌉, ⌈log2 n⌉ subsets that keep each
    point with probability 2^-i (never empty). An architecture's coordinates are its distances to them."""
    scales = max(1, math.ceil(math.log2(max(n, 2))))
    subsets = []
    for i in range(1, scales + 1):
        for _ in range(scales):
            keep = np.flatnonzero(rng.random(n) < 2.0 ** -i)
            subsets.append(keep if len(keep) else rng.integers(n, size=1))
    return subsets


class EmbeddedGP:
    """A GP on Bourgain coordinates relative to `reference` architectures (the first of `archs`)."""

    def __init__(self, space, archs: list, subsets: list[np.ndarray], beta: float, kernel=None):
        self.space = space
        self.reference = archs[:max(max(s) for s in subsets) + 1]
        self.subsets = subsets
        self.beta = beta
        self.archs = archs
        self.kernel = kernel

    def embed(self, archs: list) -> np.ndarray:
        """Coordinates: the distance to each subset (its nearest member), scaled by the number of coordinates
        so the embedded distances stay on the edit distance's scale."""
        d = self.space.distances(archs, self.reference)
        return np.stack([d[:, s].min(axis=1) for s in self.subsets], axis=1) / math.sqrt(len(self.subsets))

    def fit(self, costs: np.ndarray, restarts: int = 0, seed: int = 0) -> None:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        x = self.embed(self.archs)
        if self.kernel is None:  # amplitude, length scale and noise by maximum likelihood
            kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(1.0, (1e-2, 1e3)) + WhiteKernel(1e-2, (1e-6, 1.0))
            self.gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=restarts,
                                               random_state=seed)
        else:  # the kriging believer's refit keeps the hyper-parameters
            self.gp = GaussianProcessRegressor(self.kernel, normalize_y=True, optimizer=None)
        with warnings.catch_warnings():
            # A hyper-parameter at its bound is normal with few, noisy observations, and nothing a user can act on.
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.gp.fit(x, costs)

    def predict(self, archs: list) -> tuple[np.ndarray, np.ndarray]:
        return self.gp.predict(self.embed(archs), return_std=True)

    def acquisition(self, archs: list) -> np.ndarray:
        mean, std = self.predict(archs)
        return mean - self.beta * std
