"""The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020): 6 edges x 5 operations = 15625 cells.

A cell is a DAG of 4 nodes; node i sums one operation applied to each earlier node j (edge j->i), so the
edges are 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2. The canonical string is the benchmark's own, listing node 1's
edge, then node 2's, then node 3's, each as `op~source`:

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

That string is the architecture's key (deduplication, table lookup) and its JSON form, so `trials.jsonl` can be
joined with the benchmark's table directly. The network itself lives in `nb201_network` (imported on build, so
listing or sampling cells never imports torch).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from nasrun.checks import check_int
from nasrun.spaces.base import ChoiceSpace

OPERATIONS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to node, from node), in canonical string order
EDGE_NAMES = tuple(f"{i}<-{j}" for i, j in EDGES)
TABLE_CHANNELS, TABLE_CELLS = 16, 5  # the network size NAS-Bench-201's results table was measured with
_OP = "(" + "|".join(OPERATIONS) + ")"
# A well-formed canonical string in one regex (the six operations as groups): reading a 10,000-trial log or the
# 15,625-row table parses that many cells, and the regex is a third of the cost of the step-by-step parse,
# which runs only to say what is wrong with a string that does not match.
CELL = re.compile(r"\|{0}~0\|\+\|{0}~0\|{0}~1\|\+\|{0}~0\|{0}~1\|{0}~2\|".format(_OP))


@dataclass(frozen=True)
class NB201Arch:
    """One NAS-Bench-201 cell: the operation on each of the six edges, in `EDGE_NAMES` order."""

    ops: tuple[str, ...]
    key: str = field(init=False, repr=False, compare=False)  # computed once: the runner reads it every trial

    CHOICES = {name: OPERATIONS for name in EDGE_NAMES}

    def __post_init__(self):
        ops = self.ops
        if isinstance(ops, str) or not hasattr(ops, "__len__") or len(ops) != len(EDGES):
            raise ValueError(f"ops must list {len(EDGES)} operations (edges {', '.join(EDGE_NAMES)}), got {ops!r}")
        for name, op in zip(EDGE_NAMES, ops):
            if op not in OPERATIONS:
                raise ValueError(f"edge {name}: {op!r} is not an operation; choose one of: {', '.join(OPERATIONS)}")
        object.__setattr__(self, "ops", tuple(ops))
        nodes = ["|".join(f"{op}~{j}" for op, (i, j) in zip(self.ops, EDGES) if i == node) for node in (1, 2, 3)]
        object.__setattr__(self, "key", "+".join(f"|{n}|" for n in nodes))

    @classmethod
    def from_choices(cls, values: dict) -> "NB201Arch":
        # Searches make cells by the ten thousand (a guided evolution run mutates 50,000 children): each of the
        # 15,625 valid cells is checked and keyed once, then reused; it is immutable, so sharing it is safe.
        ops = tuple(values[name] for name in EDGE_NAMES)
        cell = _MADE.get(ops)
        if cell is None:
            cell = _MADE[ops] = cls(ops)
        return cell

    def choices(self) -> dict:
        return dict(zip(EDGE_NAMES, self.ops))

    def to_json(self) -> str:
        return self.key

    @classmethod
    def from_key(cls, text: str) -> "NB201Arch":
        """Parse the canonical string; a malformed one raises ValueError saying what is wrong where."""
        match = CELL.fullmatch(text) if isinstance(text, str) else None
        if match:
            return cls(match.groups())
        if not isinstance(text, str):
            raise ValueError(f"a NAS-Bench-201 cell string must be a string, got {type(text).__name__}")
        nodes = text.split("+")
        if len(nodes) != 3:
            raise ValueError(f"malformed cell {text!r}: expected 3 nodes joined by '+', found {len(nodes)}")
        ops = []
        for node, part in enumerate(nodes, start=1):
            if len(part) < 2 or not (part.startswith("|") and part.endswith("|")):
                raise ValueError(f"malformed cell {text!r}: node {node} must be written |op~source|...|")
            edges = part[1:-1].split("|")
            if len(edges) != node:
                raise ValueError(f"malformed cell {text!r}: node {node} needs {node} incoming edges, "
                                 f"found {len(edges)}")
            for source, edge in enumerate(edges):
                op, sep, written = edge.partition("~")
                if not sep or written != str(source):
                    raise ValueError(f"malformed cell {text!r}: edge {node}<-{source} must be written "
                                     f"'op~{source}', found {edge!r}")
                ops.append(op)
        return cls(tuple(ops))

    def __str__(self) -> str:
        return self.key


_MADE: dict[tuple, NB201Arch] = {}  # ops -> the cell, for the valid cells made so far


class NB201Space(ChoiceSpace):
    """NAS-Bench-201's cell space. `channels` (C) and `cells_per_stage` (N) size the network: the benchmark's
    table was measured with C=16, N=5."""

    name = "nb201"
    choices = NB201Arch.CHOICES
    # A cell's size (params, flops) is the skeleton's plus each edge's operation's, the same in every cell of a
    # stage: nasrun.hardware.cost counts 25 networks once instead of every cell a search meets.
    cost_is_additive = True

    def __init__(self, channels: int = 16, cells_per_stage: int = 5):
        self.channels = check_int("channels", channels, low=1)
        self.cells_per_stage = check_int("cells_per_stage", cells_per_stage, low=1)

    def make(self, values: dict) -> NB201Arch:
        return NB201Arch.from_choices(values)

    def from_key(self, text: str) -> NB201Arch:
        return NB201Arch.from_key(text)

    def is_table_space(self) -> bool:
        """Whether the NAS-Bench-201 table describes this space's networks (it was measured at C=16, N=5)."""
        return (self.channels, self.cells_per_stage) == (TABLE_CHANNELS, TABLE_CELLS)

    def build(self, arch: NB201Arch, in_channels: int, image_size: int, num_classes: int):
        from nasrun.spaces.nb201_network import NB201Network  # torch: only when a network is built

        if image_size % 4:
            raise ValueError(f"image_size={image_size}: the NAS-Bench-201 network halves the image twice, so the "
                             f"size must be a multiple of 4")
        edges = tuple((op, to, source) for op, (to, source) in zip(arch.ops, EDGES))
        return NB201Network(edges, in_channels, num_classes, self.channels, self.cells_per_stage)

    def __repr__(self) -> str:
        return f"NB201Space(channels={self.channels}, cells_per_stage={self.cells_per_stage})"
