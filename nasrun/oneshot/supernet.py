"""The NAS-Bench-201 supernet: the benchmark's skeleton (stem, N cells, residual reduction, N cells, reduction,
N cells, BN-ReLU-pool, linear) with the modules of `nasrun.spaces.nb201_network`, where every edge of the cell
holds all five operations.

`forward(x, weights, active)`: `weights` is a (6, 5) tensor, one row per edge (in `EDGE_NAMES` order) and one
column per operation (`OPERATIONS` order), shared by every cell as in DARTS and GDAS. Without `active` every
edge is the weighted sum of its operations (DARTS's mixed operation); with `active` (one operation index per
edge) only that operation runs, scaled by its weight (GDAS's straight-through one-hot, RSPS's path): a weight
of exactly 1.0 leaves its output bit for bit what the operation gives.

`discretise(supernet, arch, space)` builds `space.build(arch)`'s network and copies the supernet's weights for
that cell into it, so a cell read out of the supernet is the very network `space=nb201` trains.
"""

from __future__ import annotations

import torch
from torch import nn

from nasrun.spaces.nb201 import EDGES, OPERATIONS
from nasrun.spaces.nb201_network import ReLUConvBN, build_skeleton, make_operation

NONE = OPERATIONS.index("none")


class MixedCell(nn.Module):
    """A cell whose every edge holds the five operations (`none` holds no module: its output is zero)."""

    def __init__(self, channels: int, affine: bool = True):
        super().__init__()
        # edges[e][str(o)]: operation o of edge e; keys are indices so the state dict maps to OPERATIONS order
        self.edges = nn.ModuleList(
            nn.ModuleDict({str(o): _operation(name, channels) for o, name in enumerate(OPERATIONS)
                           if o != NONE}) for _ in EDGES)
        if not affine:  # the reference's search cells: no learned scale and shift after the convolutions
            for op in self.modules():
                if isinstance(op, ReLUConvBN):
                    op[2] = nn.BatchNorm2d(channels, affine=False)

    def forward(self, x, weights, active=None):
        nodes = [x]
        for node in (1, 2, 3):
            total = None
            for e, (to, source) in enumerate(EDGES):
                if to != node:
                    continue
                for o in range(len(OPERATIONS)) if active is None else (int(active[e]),):
                    if o == NONE:  # zero times anything: nothing to add (and no gradient to carry)
                        continue
                    term = weights[e, o] * self.edges[e][str(o)](nodes[source])
                    total = term if total is None else total + term
            # A node whose edges are all `none` is a real zero tensor, as in the benchmark's network (a conv edge
            # leaving it still adds its BatchNorm shift).
            nodes.append(total if total is not None else torch.zeros_like(x))
        return nodes[3]


def _operation(name: str, channels: int) -> nn.Module:
    module = make_operation(name, channels)
    assert module is not None, "every operation but `none` is a module"
    return module


class Supernet(nn.Module):
    """NAS-Bench-201's network with `MixedCell`s; parameter names outside the cells are `NB201Network`'s."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 16, cells_per_stage: int = 5,
                 affine: bool = True):
        super().__init__()
        build_skeleton(self, in_channels, num_classes, channels, cells_per_stage,
                       lambda width: MixedCell(width, affine))

    def forward(self, x, weights, active=None):
        x = self.stem(x)
        for layer in self.cells:
            x = layer(x, weights, active) if isinstance(layer, MixedCell) else layer(x)
        return self.classifier(self.head(x))


def edge_count() -> tuple[int, int]:
    """The shape of the architecture parameters: (edges, operations)."""
    return len(EDGES), len(OPERATIONS)


def one_hot(arch, device=None) -> torch.Tensor:
    """The (6, 5) weights that select `arch`'s operation on every edge."""
    weights = torch.zeros(edge_count(), device=device)
    for e, op in enumerate(arch.ops):
        weights[e, OPERATIONS.index(op)] = 1.0
    return weights


def indices(arch) -> list[int]:
    """`arch`'s operation index per edge: the `active` argument that runs its path alone."""
    return [OPERATIONS.index(op) for op in arch.ops]


def discretise(supernet: Supernet, arch, space, in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    """`space.build(arch, ...)` with the supernet's weights of that cell: the stem, reductions, head and
    classifier as they are, and in every cell the chosen operation's module of each edge. A supernet without
    affine BatchNorm in its cells leaves those scales at 1 and shifts at 0: the same function."""
    network = space.build(arch, in_channels, image_size, num_classes)
    source = supernet.state_dict()
    mapped = {}
    for name in network.state_dict():
        parts = name.split(".")
        layer = network.cells[int(parts[1])] if parts[0] == "cells" else None
        if layer is None or not hasattr(layer, "wiring"):
            mapped[name] = source[name]
            continue
        # cells.<i>.edges.<k>.<rest>: the k-th kept edge of the cell is edge e (in EDGES order) with arch's op
        k = int(parts[3])
        to, origin, _ = next(w for w in layer.wiring if w[2] == k)
        e = EDGES.index((to, origin))
        o = OPERATIONS.index(arch.ops[e])
        key = ".".join(["cells", parts[1], "edges", str(e), str(o), *parts[4:]])
        if key in source:
            mapped[name] = source[key]
    network.load_state_dict(mapped, strict=False)
    return network
