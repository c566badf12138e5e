"""space=morph's networks as graphs: the nodes, the canonical (isomorphism-invariant) order that gives each
network one key, validation, cost, and parsing the key back. Everything here is plain data; the morphisms
(`ops`), the torch network (`network`) and the edit distance (`distance`) build on it."""

from __future__ import annotations

import hashlib
import heapq
import re
from dataclasses import dataclass, field

from nasrun.checks import check_choice, check_int

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
    """(the nodes in canonical order with sorted inputs, new index of each old node 0..n).

    The order is Kahn's topological order, taking among the ready nodes the least (structural hash, new indices
    of its inputs); a node's hash covers its op and both what feeds it and what it feeds. Ready nodes that still
    tie are told apart by colour refinement (Weisfeiler-Lehman, over inputs and readers, to a stable
    partition); nodes that refinement cannot tell apart are each tried in turn, individualised and refined
    again, and the order giving the least key wins (individualisation-refinement, as graph canonisers do). So
    nothing depends on how the graph was numbered: two graphs share a key exactly when they are isomorphic
    (tests/test_spaces_morph_graph.py checks this against a brute-force isomorphism test). A graph without
    ties, the usual case, never refines and keeps the key it always had."""
    readers = consumers(nodes)
    up = ["in"]
    for n in nodes:  # the op and the multiset of its inputs' hashes
        up.append(_digest(n.token().split("<")[0], (up[j] for j in n.inputs)))
    down = [""] * (len(nodes) + 1)
    for i in range(len(nodes), 0, -1):  # the op and the multiset of its readers' hashes
        down[i] = _digest(nodes[i - 1].token().split("<")[0], (down[r] for r in readers.get(i, ())))
    sig = [a + b for a, b in zip(up, down)]

    def refine(colours: list[str]) -> list[str]:
        """Colour refinement to a stable partition: each node's colour, its inputs' and its readers' colours."""
        count = len(set(colours))
        while True:
            colours = [colours[0]] + [_digest(colours[i], (colours[j] for j in n.inputs)) + "/" +
                                      _digest("", (colours[r] for r in readers.get(i, ())))
                                      for i, n in enumerate(nodes, start=1)]
            if len(set(colours)) == count:
                return colours
            count = len(set(colours))

    def take(pick: int, new: dict, waiting: list, ready: list) -> None:
        # Kahn's algorithm with the ready nodes in a heap: a node's sort key is fixed once it is ready, because
        # all its inputs have their new indices by then.
        if ready[0][2] == pick:  # the usual case: the least ready node
            heapq.heappop(ready)
        else:  # one of several tied nodes, picked by refinement or a branch
            ready.remove(next(entry for entry in ready if entry[2] == pick))
            heapq.heapify(ready)
        new[pick] = len(new)
        for reader in sorted(set(readers.get(pick, ()))):
            waiting[reader - 1] -= 1
            if waiting[reader - 1] == 0:
                heapq.heappush(ready, (sig[reader], sorted(new[j] for j in nodes[reader - 1].inputs), reader))

    def order_from(new: dict, waiting: list, ready: list, colours: list[str] | None) -> tuple[list[int], str]:
        while ready:
            tied = [entry[2] for entry in ready if entry[:2] == ready[0][:2]]
            if len(tied) > 1:
                colours = colours if colours is not None else refine(sig)
                known = colours
                least = min(known[i] for i in tied)
                tied = [i for i in tied if known[i] == least]
            if len(tied) > 1:  # refinement cannot tell them apart: try each, individualised
                branches = []
                for pick in tied:
                    marked = list(known)
                    marked[pick] = _digest(marked[pick], ("*",))
                    branch_new, branch_waiting, branch_ready = dict(new), list(waiting), list(ready)
                    take(pick, branch_new, branch_waiting, branch_ready)
                    branches.append(order_from(branch_new, branch_waiting, branch_ready, refine(marked)))
                return min(branches, key=lambda branch: branch[1])
            take(tied[0], new, waiting, ready)
        mapping = [new[i] for i in range(len(nodes) + 1)]
        return mapping, "|".join(renamed(mapping)[k].token() for k in range(len(nodes)))

    def renamed(mapping: list[int]) -> tuple[Node, ...]:
        order = sorted(range(1, len(nodes) + 1), key=mapping.__getitem__)
        return tuple(Node(nodes[i - 1].op, tuple(sorted(mapping[j] for j in nodes[i - 1].inputs)),
                          nodes[i - 1].width, nodes[i - 1].kernel) for i in order)

    waiting = [len(set(n.inputs) - {0}) for n in nodes]
    ready = [(sig[i], [0], i) for i, count in enumerate(waiting, start=1) if count == 0]
    heapq.heapify(ready)
    mapping, _ = order_from({0: 0}, waiting, ready, None)
    return renamed(mapping), mapping


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
