"""The morphisms of space=morph (Auto-Keras; Net2Net): deepen, widen, add or concatenate a skip connection.

Each returns a `Morph`: the child and where every child node comes from, which `morph_network.inherit` uses to
hand the parent's trained weights to the child so that it computes the parent's function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from nasrun.spaces.morph.graph import (
    MAX_WIDTH,
    MorphArch,
    Node,
    canonical,
    consumers,
    pools,
    validate,
    widths,
)


@dataclass(frozen=True)
class Morph:
    """A child and its provenance: `origin[i]` is the parent node child node i came from (None: new);
    `units[i]` the parent unit of each of its output units, for a widened node. Indices are the child's."""

    child: MorphArch
    origin: tuple
    units: dict
    op: str


def _insert_after(nodes, at: int, new_nodes: list[Node], reroute: bool = True):
    """Insert `new_nodes` after node `at` (their inputs in old numbering; -1 means the last inserted); every
    former consumer of `at` (and the head, if `at` was last) reads the last inserted node instead."""
    k = len(new_nodes)
    shift = lambda j: j if j <= at else j + k  # noqa: E731
    last = at + k
    out: list[Node] = []
    origin: list[int | None] = [0]  # the parent node of each child node (None: a new one)
    for i, n in enumerate(nodes, start=1):
        if i == at + 1:
            for m in new_nodes:
                out.append(Node(m.op, tuple(last - 1 if j == -1 else shift(j) for j in m.inputs), m.width, m.kernel))
                origin.append(None)
        out.append(Node(n.op, tuple(last if (j == at and reroute) else shift(j) for j in n.inputs), n.width, n.kernel))
        origin.append(i)
    if at == len(nodes):
        for m in new_nodes:
            out.append(Node(m.op, tuple(last - 1 if j == -1 else shift(j) for j in m.inputs), m.width, m.kernel))
            origin.append(None)
    return out, origin


def child_nodes(arch: MorphArch, move: tuple) -> tuple[list[Node], list]:
    """The child's nodes before validation and canonical ordering, and the parent node each comes from: cheap,
    so a caller can weigh a move (its cost) before making it. `move` as `moves` lists it, arguments unchecked."""
    name, at, *rest = move
    if name == "widen":
        nodes = list(arch.nodes)
        nodes[at - 1] = Node("conv", nodes[at - 1].inputs, rest[0], nodes[at - 1].kernel)
        return nodes, list(range(len(nodes) + 1))
    if name == "deepen":
        new = [Node("conv", (at,), widths(arch.nodes)[at], rest[0] if rest else 3)]
    elif name == "add_skip":  # `at` is the source, rest[0] the destination
        new = [Node("proj", (at,), widths(arch.nodes)[rest[0]]), Node("add", (rest[0], -1))]
    else:  # concat_skip
        new = [Node("concat", (rest[0], at))]
    return _insert_after(arch.nodes, at if name == "deepen" else rest[0], new)


def _finish(nodes, origin, units: dict, op: str) -> Morph:
    nodes = tuple(nodes)
    validate(nodes)
    canon, new = canonical(nodes)
    child_origin = [None] * (len(nodes) + 1)
    child_units = {}
    for old, parent in enumerate(origin):
        child_origin[new[old]] = parent
    for old, mapping in units.items():
        child_units[new[old]] = mapping
    return Morph(MorphArch(canon), tuple(child_origin), child_units, op)


def deepen(arch: MorphArch, at: int, kernel: int = 3) -> Morph:
    """An identity conv-BN-ReLU after node `at` (not the image, not a projection)."""
    if not 1 <= at <= len(arch.nodes) or arch.nodes[at - 1].op == "proj":
        raise ValueError(f"deepen: node {at} cannot be followed by an identity conv")
    nodes, origin = child_nodes(arch, ("deepen", at, kernel))
    return _finish(nodes, origin, {}, f"deepen {at} k{kernel}")


def carriers(arch: MorphArch, at: int) -> set[int]:
    """The nodes whose width moves with node `at`'s: it, and what reads it through poolings and concatenations."""
    users, nodes = consumers(arch.nodes), arch.nodes
    found, stack = {at}, [at]
    while stack:
        for u in users.get(stack.pop(), []):
            if nodes[u - 1].op in ("pool", "concat", "add") and u not in found:
                found.add(u)
                if nodes[u - 1].op != "add":
                    stack.append(u)
    return found


def widenable(arch: MorphArch, at: int) -> bool:
    """Whether node `at`'s width may change: no add reads it, directly or through poolings and concatenations."""
    return not any(arch.nodes[i - 1].op == "add" for i in carriers(arch, at))


def widen(arch: MorphArch, at: int, width: int, rng) -> Morph:
    """Node `at` (a conv) gets `width` filters; the new ones copy random existing ones (Net2Net)."""
    node = arch.nodes[at - 1] if 1 <= at <= len(arch.nodes) else None
    if node is None or node.op != "conv" or node.width is None or width <= node.width or not widenable(arch, at):
        raise ValueError(f"widen: node {at} cannot be widened to {width}")
    mapping = list(range(node.width)) + [int(u) for u in rng.integers(node.width, size=width - node.width)]
    nodes, origin = child_nodes(arch, ("widen", at, width))
    return _finish(nodes, origin, {at: mapping}, f"widen {at} to {width}")


def skip_pairs(arch: MorphArch, concat: bool) -> list[tuple[int, int]]:
    """(source, destination) pairs a skip connection may join: both past the image, the source earlier, the
    same resolution, the destination no projection (and widenable, for a concatenation)."""
    res, nodes = pools(arch.nodes), arch.nodes
    pairs = []
    for b in range(2, len(nodes) + 1):
        if nodes[b - 1].op == "proj" or (concat and not widenable(arch, b)):
            continue
        pairs += [(a, b) for a in range(1, b) if res[a] == res[b] and nodes[a - 1].op != "proj"
                  and a not in nodes[b - 1].inputs]
    return pairs


def add_skip(arch: MorphArch, source: int, dest: int) -> Morph:
    """dest's output plus a zero-initialised 1 x 1 projection of source's: the sum (then ReLU) equals dest's."""
    if (source, dest) not in skip_pairs(arch, concat=False):
        raise ValueError(f"add_skip: cannot join node {source} to node {dest}")
    nodes, origin = child_nodes(arch, ("add_skip", source, dest))
    return _finish(nodes, origin, {}, f"add skip {source}->{dest}")


def concat_skip(arch: MorphArch, source: int, dest: int) -> Morph:
    """dest's channels followed by source's, which every reader of dest weighs by zero at first."""
    if (source, dest) not in skip_pairs(arch, concat=True):
        raise ValueError(f"concat_skip: cannot join node {source} to node {dest}")
    nodes, origin = child_nodes(arch, ("concat_skip", source, dest))
    return _finish(nodes, origin, {}, f"concat skip {source}->{dest}")


def moves(arch: MorphArch, max_width: int = MAX_WIDTH) -> list[tuple]:
    """Every morphism of `arch` as (name, args), cheap to list (one widening per conv: doubling; one kernel
    for deepening: 3); `apply` makes one. Building a child costs a validation and a canonical ordering, so
    callers that need a few draw them from this list first."""
    # No move makes a layer wider than max_width: an identity conv or a projection is as wide as what it follows
    # or joins, and a concatenation as wide as its inputs together.
    width = widths(arch.nodes)
    out: list[tuple] = [("deepen", i) for i in range(1, len(arch.nodes) + 1)
                        if arch.nodes[i - 1].op != "proj" and width[i] <= max_width]
    for i, n in enumerate(arch.nodes, start=1):
        if n.op == "conv" and n.width is not None and n.width < max_width and widenable(arch, i):
            grow = min(2 * n.width, max_width) - n.width
            if max(width[j] for j in carriers(arch, i)) + grow <= max_width:
                out.append(("widen", i, n.width + grow))
    out += [("add_skip", a, b) for a, b in skip_pairs(arch, concat=False) if width[b] <= max_width]
    out += [("concat_skip", a, b) for a, b in skip_pairs(arch, concat=True)
            if max(width[j] for j in carriers(arch, b)) + width[a] <= max_width]
    return out


def apply(arch: MorphArch, move: tuple, rng) -> Morph:
    name, *args = move
    if name == "widen":
        return widen(arch, args[0], args[1], rng)
    made: dict[str, Callable[..., Morph]] = {"deepen": deepen, "add_skip": add_skip, "concat_skip": concat_skip}
    return made[name](arch, *args)
