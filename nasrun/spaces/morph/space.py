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
downstream). Each returns the child and where every child node comes from, which `morph_network.inherit`
uses to hand the parent's trained weights to the child.
"""

from __future__ import annotations

import hashlib
import heapq
import re
from dataclasses import dataclass, field

import numpy as np

from nasrun.checks import check_choice, check_float, check_int

KERNELS = (1, 3, 5, 7)
MAX_WIDTH = 1024
_NODE = re.compile(r"(?:c(\d)-(\d+)|p|a|k|x-(\d+))<([\d.]+)")


@dataclass(frozen=True)
class Node:
    op: str  # conv | pool | add | concat | proj
    inputs: tuple[int, ...]
    width: int | None = None  # conv, proj
    kernel: int | None = None  # conv

    def token(self) -> str:
        head = {"conv": f"c{self.kernel}-{self.width}", "pool": "p", "add": "a", "concat": "k",
                "proj": f"x-{self.width}"}[self.op]
        return f"{head}<{'.'.join(map(str, self.inputs))}"


@dataclass(frozen=True)
class MorphArch:
    """Immutable, canonical (`canonical` orders the nodes): equal graphs are equal values with one key."""

    nodes: tuple[Node, ...]
    key: str = field(init=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "key", "|".join(n.token() for n in self.nodes))

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other) -> bool:
        return isinstance(other, MorphArch) and other.key == self.key

    def to_json(self) -> str:
        return self.key

    def __str__(self) -> str:
        return self.key


# ----- structure ------------------------------------------------------------------------------------------

def widths(nodes, in_channels: int = 3) -> list[int]:
    """Output channels of node 0..n."""
    out = [in_channels]
    for n in nodes:
        if n.op in ("conv", "proj"):
            out.append(n.width)
        elif n.op == "concat":
            out.append(sum(out[i] for i in n.inputs))
        else:
            out.append(out[n.inputs[0]])
    return out


def pools(nodes) -> list[int]:
    """How many poolings lie before each node's output (its resolution is the image's / 2**that)."""
    out = [0]
    for n in nodes:
        out.append(out[n.inputs[0]] + (n.op == "pool"))
    return out


def cost(nodes, in_channels: int = 3) -> float:
    """Multiply-adds per input pixel of the convolutions and projections (a layer after k poolings sees 4^-k
    of the pixels): what a network costs to train and run, up to the image's area."""
    width, res = widths(nodes, in_channels), pools(nodes)
    return sum((n.kernel or 1) ** 2 * width[n.inputs[0]] * n.width / 4 ** res[i]
               for i, n in enumerate(nodes, start=1) if n.op in ("conv", "proj"))


def consumers(nodes) -> dict[int, list[int]]:
    users: dict[int, list[int]] = {}
    for i, n in enumerate(nodes, start=1):
        for j in n.inputs:
            users.setdefault(j, []).append(i)
    return users


def validate(nodes) -> None:
    """ValueError naming the node and what is wrong."""
    if not nodes:
        raise ValueError("a morph network needs at least one node")
    res, wid = [0], [3]
    for i, n in enumerate(nodes, start=1):
        where = f"node {i} ({n.op})"
        if not n.inputs or any(not 0 <= j < i for j in n.inputs) or len(set(n.inputs)) != len(n.inputs):
            raise ValueError(f"{where}: inputs {n.inputs} must be distinct earlier nodes (0 to {i - 1})")
        single = n.op in ("conv", "pool", "proj")
        if single != (len(n.inputs) == 1):
            raise ValueError(f"{where}: takes {'one input' if single else 'two or more inputs'}, got {len(n.inputs)}")
        if n.op == "conv":
            check_choice(f"node {i} kernel", n.kernel, KERNELS)
        if n.op in ("conv", "proj"):
            check_int(f"node {i} width", n.width, low=1, high=MAX_WIDTH)
        if len({res[j] for j in n.inputs}) > 1:
            raise ValueError(f"{where}: inputs {n.inputs} have different resolutions (a pooling on one path)")
        if n.op == "add" and len({wid[j] for j in n.inputs}) > 1:
            raise ValueError(f"{where}: inputs {n.inputs} have different widths {[wid[j] for j in n.inputs]}")
        res.append(res[n.inputs[0]] + (n.op == "pool"))
        wid.append(n.width if n.op in ("conv", "proj") else
                   sum(wid[j] for j in n.inputs) if n.op == "concat" else wid[n.inputs[0]])
    used = consumers(nodes)
    for i, n in enumerate(nodes[:-1], start=1):
        if i not in used:
            raise ValueError(f"node {i} ({n.op}): nothing reads it; every node but the last must feed another")
        if n.op == "proj" and any(nodes[u - 1].op != "add" for u in used[i]):
            raise ValueError(f"node {i} (proj): a projection only feeds an add")
    if nodes[-1].op == "proj":
        raise ValueError(f"node {len(nodes)} (proj): the last node feeds the classifier; it cannot be a projection")


def canonical(nodes) -> tuple[tuple[Node, ...], list[int]]:
    """(the nodes in canonical order with sorted inputs, new index of each old node 0..n). The order is Kahn's
    topological order, taking among the ready nodes the least (structural hash, new indices of its inputs):
    isomorphic graphs come out identical. A node's hash covers its op and both what feeds it and what it feeds,
    so two nodes that tie are interchangeable in all but the rarest graphs."""
    readers = consumers(nodes)
    up = ["in"]
    for n in nodes:  # the op and the multiset of its inputs' hashes
        up.append(_digest(n.token().split("<")[0], (up[j] for j in n.inputs)))
    down = [""] * (len(nodes) + 1)
    for i in range(len(nodes), 0, -1):  # the op and the multiset of its readers' hashes
        down[i] = _digest(nodes[i - 1].token().split("<")[0], (down[r] for r in readers.get(i, ())))
    sig = [a + b for a, b in zip(up, down)]
    # Kahn's algorithm with the ready nodes in a heap: a node's sort key is fixed once it is ready, because
    # all its inputs have their new indices by then.
    waiting = [len(set(n.inputs) - {0}) for n in nodes]
    new = {0: 0}
    ready = []

    def push(i):
        heapq.heappush(ready, (sig[i], sorted(new[j] for j in nodes[i - 1].inputs), i))

    for i, count in enumerate(waiting, start=1):
        if count == 0:
            push(i)
    while ready:
        pick = heapq.heappop(ready)[2]
        new[pick] = len(new)
        for reader in sorted(set(readers.get(pick, ()))):
            waiting[reader - 1] -= 1
            if waiting[reader - 1] == 0:
                push(reader)
    order = sorted(new, key=new.get)[1:]
    renamed = tuple(Node(nodes[i - 1].op, tuple(sorted(new[j] for j in nodes[i - 1].inputs)), nodes[i - 1].width,
                         nodes[i - 1].kernel) for i in order)
    return renamed, [new[i] for i in range(len(nodes) + 1)]


def _digest(head: str, parts) -> str:
    return hashlib.sha1((head + "(" + ",".join(sorted(parts)) + ")").encode()).hexdigest()[:16]


def make(nodes) -> MorphArch:
    nodes = tuple(nodes)
    validate(nodes)
    return MorphArch(canonical(nodes)[0])


def parse(text: str) -> MorphArch:
    if not isinstance(text, str):
        raise ValueError(f"a morph architecture must be a string, got {type(text).__name__}")
    nodes = []
    for i, part in enumerate(text.split("|"), start=1):
        match = _NODE.fullmatch(part)
        if not match:
            raise ValueError(f"node {i}: {part!r} is not c{{k}}-{{w}}<in, p<in, a<in.in, k<in.in or x-{{w}}<in")
        kernel, conv_width, proj_width, inputs = match.groups()
        op = "conv" if kernel else "proj" if proj_width else {"p": "pool", "a": "add", "k": "concat"}[part[0]]
        width = int(conv_width or proj_width) if (conv_width or proj_width) else None
        nodes.append(Node(op, tuple(int(j) for j in inputs.split(".")), width, int(kernel) if kernel else None))
    return make(nodes)


# ----- the space ------------------------------------------------------------------------------------------

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
        from nasrun.spaces.morph.ops import apply

        options = self._moves(arch, 1, rng)
        return apply(arch, options[0], rng) if options else None

    def crossover(self, a: MorphArch, b: MorphArch, rng: np.random.Generator) -> MorphArch:
        """Graphs grown by morphisms have no shared layout to cross: the child morphs one parent."""
        return self.mutate(a if rng.random() < 0.5 else b, rng)

    def morphs(self, arch: MorphArch, limit: int | None = None) -> list:
        """The morphisms of `arch` with their provenance: all of them, or `limit` drawn at random (Auto-Keras'
        search also expands each network by a few random transformations, not all). The draw and widening's
        copied units are fixed per architecture, so the same parent always yields the same children."""
        from nasrun.spaces.morph.ops import apply

        rng = np.random.default_rng(int(hashlib.sha1(arch.key.encode()).hexdigest()[:8], 16))
        return [apply(arch, move, rng) for move in self._moves(arch, limit, rng)]

    def _moves(self, arch: MorphArch, limit: int | None, rng) -> list[tuple]:
        """Up to `limit` of the moves within max_width and max_cost, drawn at random, in `moves`' order. Only
        the drawn ones are costed: a costed move builds the child's node list, which takes time. A network
        whose every move got costed (one near the cap) keeps the verdicts, so drawing from it again is quick
        and gives the same: a saturated network is drawn from again and again (sample, mutate)."""
        from nasrun.spaces.morph.ops import child_nodes, moves

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
        from nasrun.spaces.morph.distance import distance_matrix

        return distance_matrix(list(a), list(b), self.skip_weight)

    def build(self, arch: MorphArch, in_channels: int, image_size: int, num_classes: int):
        from nasrun.spaces.morph.network import MorphNetwork

        return MorphNetwork(arch, in_channels, image_size, num_classes, self.dropout)

    def __repr__(self) -> str:
        return f"MorphSpace(seed={self.seed_name!r})"
