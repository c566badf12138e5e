"""space=morph: networks as graphs of layers, grown from a seed network by function-preserving morphisms
(Auto-Keras, Jin, Song & Hu, KDD 2019; Net2Net, Chen et al. 2016).

A network is a list of nodes in topological order; node 0 is the image, the last node feeds the head (global
average pooling, dropout, a linear classifier). Node kinds:
- `c{k}-{w}`: conv k x k with w filters, BN, ReLU;
- `p`: 2 x 2 max pooling;
- `a`: the sum of its inputs (equal widths and resolution), then ReLU;
- `k`: the concatenation of its inputs on channels (equal resolution);
- `x-{w}`: a 1 x 1 convolution without BN or ReLU, the projection on an added skip connection.
Every node but node 0 and the projections outputs non-negative values, which is what makes an identity conv
(ReLU of a non-negative input) and a zero-initialised skip exactly function-preserving.

The canonical string (the key) lists the nodes in a canonical topological order with sorted inputs, e.g.
`c3-32<0|p<1|c3-64<2`, so isomorphic graphs (parallel branches listed in another order) share one key.

Morphisms: deepen (an identity conv after a node), widen (more filters, units replicated), add a skip
connection (a zero projection added in), concatenate a skip connection (its channels get zero weights
downstream). Each returns the child and where every child node comes from, which `network.inherit`
uses to hand the parent's trained weights to the child.
"""

from __future__ import annotations

import hashlib
from types import MappingProxyType
from typing import Mapping

import numpy as np

from nasrun.checks import check_choice, check_float, check_int
from nasrun.spaces.morph.distance import distance_matrix
from nasrun.spaces.morph.graph import MAX_WIDTH, MorphArch, cost, parse
from nasrun.spaces.morph.ops import apply, child_nodes, moves

SEEDS = {
    # three conv-BN-ReLU blocks, each followed by a pooling
    "plain": "c3-32<0|p<1|c3-64<2|p<3|c3-64<4|p<5",
    # a stem and two residual blocks of a small ResNet (identity shortcuts), as Auto-Keras' ResNet search
    "resnet": "c3-32<0|c3-32<1|c3-32<2|a<1.3|p<4|c3-64<5|c3-64<6|x-64<5|a<7.8",
}


class MorphSpace:
    """seed: the network every search starts from (plain | resnet). max_morphs: morphisms applied to the seed
    by `sample` (0 to max_morphs). dropout: before the classifier. skip_weight: λ in d = D_l + λ D_s.
    max_width: the widest layer a morphism may make (a conv, a projection or a concatenation). max_cost: the
    most multiply-adds per image a network may take, as a multiple of the seed's (`cost`); no morphism passes
    it, so trials stay within max_cost times the seed's time. keep_weights: trained networks kept in the run's
    weights/ folder for children to inherit (the fittest; 0: every child trains from scratch)."""

    name = "morph"
    choices: Mapping[str, tuple] = MappingProxyType({})  # no named choices: its networks grow by morphisms

    def __init__(self, seed: str = "resnet", max_morphs: int = 3, dropout: float = 0.25, skip_weight: float = 1.0,
                 max_width: int = 512, max_cost: float = 8.0, keep_weights: int = 10):
        self.seed_name = check_choice("seed", seed, tuple(SEEDS))
        self.seed = parse(SEEDS[seed])
        self.max_morphs = check_int("max_morphs", max_morphs, low=0, high=20)
        self.dropout = check_float("dropout", dropout, low=0.0, high=1.0, high_open=True)
        self.skip_weight = check_float("skip_weight", skip_weight, low=0.0)
        self.max_width = check_int("max_width", max_width, low=8, high=MAX_WIDTH)
        self.max_cost = check_float("max_cost", max_cost, low=1.0)
        self.keep_weights = check_int("keep_weights", keep_weights, low=0)
        self._budget = self.max_cost * cost(self.seed.nodes)
        self._costed: dict = {}  # key -> (its moves, the indices of those within max_cost), see _moves

    def from_key(self, text: str) -> MorphArch:
        return parse(text)

    def from_json(self, data) -> MorphArch:
        return parse(data)

    def sample(self, rng: np.random.Generator) -> MorphArch:
        arch = self.seed
        for _ in range(int(rng.integers(self.max_morphs + 1))):
            arch = self.mutate(arch, rng)
        return arch

    def mutate(self, arch: MorphArch, rng: np.random.Generator, prob=None) -> MorphArch:
        """One random morphism (`prob` is for choice spaces and is ignored here); `arch` itself when none fits
        within max_cost."""
        morph = self.random_morph(arch, rng)
        return arch if morph is None else morph.child

    def random_morph(self, arch: MorphArch, rng: np.random.Generator):
        options = self._moves(arch, 1, rng)
        return apply(arch, options[0], rng) if options else None

    def crossover(self, a: MorphArch, b: MorphArch, rng: np.random.Generator) -> MorphArch:
        """Graphs grown by morphisms have no shared layout to cross: the child morphs one parent."""
        return self.mutate(a if rng.random() < 0.5 else b, rng)

    def morphs(self, arch: MorphArch, limit: int | None = None) -> list:
        """The morphisms of `arch` with their provenance: all of them, or `limit` drawn at random (Auto-Keras'
        search also expands each network by a few random transformations, not all). The draw and widening's
        copied units are fixed per architecture, so the same parent always yields the same children."""

        rng = np.random.default_rng(int(hashlib.sha1(arch.key.encode()).hexdigest()[:8], 16))
        return [apply(arch, move, rng) for move in self._moves(arch, limit, rng)]

    def _moves(self, arch: MorphArch, limit: int | None, rng) -> list[tuple]:
        """Up to `limit` of the moves within max_width and max_cost, drawn at random, in `moves`' order. Only
        the drawn ones are costed: a costed move builds the child's node list, which takes time. A network
        whose every move got costed (one near the cap) keeps the verdicts, so drawing from it again is quick
        and gives the same: a saturated network is drawn from again and again (sample, mutate)."""

        known = self._costed.get(arch.key)
        if known is not None:
            options, fitting = known
            fits = fitting.__contains__
        else:
            options, verdicts = moves(arch, self.max_width), {}

            def fits(i: int) -> bool:
                if i not in verdicts:
                    verdicts[i] = cost(child_nodes(arch, options[i])[0]) <= self._budget
                return verdicts[i]

        if limit is None or len(options) <= limit:
            chosen = [i for i in range(len(options)) if fits(i)]
        else:
            drawn = [int(i) for i in rng.choice(len(options), size=limit, replace=False)]
            chosen = [i for i in drawn if fits(i)]
            if len(chosen) < limit:  # top up from the rest, in random order
                for i in (int(i) for i in rng.permutation(len(options))):
                    if len(chosen) == limit:
                        break
                    if i not in drawn and fits(i):
                        chosen.append(i)
        if known is None and len(verdicts) == len(options):
            if len(self._costed) >= 4096:  # bounded: a long search meets many networks
                self._costed.clear()
            self._costed[arch.key] = (options, {i for i, ok in verdicts.items() if ok})
        return [options[i] for i in sorted(chosen)]

    def neighbours(self, arch: MorphArch) -> list[MorphArch]:
        return [m.child for m in self.morphs(arch)]

    def distances(self, a: list, b: list) -> np.ndarray:
        return distance_matrix(list(a), list(b), self.skip_weight)

    def build(self, arch: MorphArch, in_channels: int, image_size: int, num_classes: int):
        from nasrun.spaces.morph.network import MorphNetwork  # torch: only when a network is built

        return MorphNetwork(arch, in_channels, image_size, num_classes, self.dropout)

    def __repr__(self) -> str:
        return f"MorphSpace(seed={self.seed_name!r})"
