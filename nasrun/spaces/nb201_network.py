"""The NAS-Bench-201 network, layer for layer as the benchmark's reference (so parameter counts match):

    stem: conv 3x3 (in -> C) + BN
    N cells at C,  residual reduction C -> 2C,  N cells at 2C,  residual reduction 2C -> 4C,  N cells at 4C
    BN, ReLU, global average pooling, linear classifier

Each cell applies one operation per edge and sums them into its nodes; the last node is the cell's output.
The cell comes in as (operation, to node, from node) triples, so this module needs nothing from the space's
module (`nb201` imports this one when it builds a network, never the other way round).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ReLUConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout))


def make_operation(name: str, channels: int) -> nn.Module | None:
    """The module for one edge inside a cell (stride 1, channels unchanged); None for `none`, whose output is
    zero and is simply left out of the sum."""
    if name == "none":
        return None
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return BorderAvgPool3x3()
    raise ValueError(f"unknown NAS-Bench-201 operation {name!r}")


class BorderAvgPool3x3(nn.Module):
    """The benchmark's 3x3 average pooling (stride 1, padding 1, averaging over the valid pixels only at the
    border: `nn.AvgPool2d(3, 1, 1, count_include_pad=False)`), computed as a depthwise convolution with a
    kernel of ones divided by each pixel's count of valid neighbours. Same values (the same sums divided by
    the same counts), but PyTorch's CPU kernel for that pooling and its backward take 3 ms per call on a
    64-image batch where the convolution takes 0.3 ms: it was a third of a zero-cost proxy's time per cell.
    No parameters and no buffers, so state dicts are those of the pooling layer it replaces."""

    counts_as_pooling = True  # a pooling for FLOP counts (nasrun.hardware.cost), though computed as a convolution

    def forward(self, x):
        channels, height, width = x.shape[-3:]
        kernel = x.new_ones((channels, 1, 3, 3))
        return F.conv2d(x, kernel, padding=1, groups=channels) / (_valid(height, x)[:, None] * _valid(width, x))


def _valid(size: int, x) -> torch.Tensor:
    """Per position along one axis, how many of the 3 window positions centred on it fall inside [0, size)."""
    index = torch.arange(size, device=x.device)
    return ((index + 1).clamp(max=size - 1) - (index - 1).clamp(min=0) + 1).to(x.dtype)


class Cell(nn.Module):
    def __init__(self, edges: tuple[tuple[str, int, int], ...], channels: int):
        super().__init__()
        self.edges = nn.ModuleList()
        self.wiring = []  # (to node, from node, index into self.edges) for every edge that is not `none`
        for op, to, source in edges:
            module = make_operation(op, channels)
            if module is not None:
                self.wiring.append((to, source, len(self.edges)))
                self.edges.append(module)

    def forward(self, x):
        nodes = [x]
        for node in (1, 2, 3):
            incoming = [self.edges[k](nodes[source]) for to, source, k in self.wiring if to == node]
            # A node whose edges are all `none` is zero. It is kept as a real zero tensor: a conv edge leaving it
            # still adds its BatchNorm shift, exactly as in the benchmark's network.
            nodes.append(sum(incoming[1:], incoming[0]) if incoming else torch.zeros_like(x))
        return nodes[3]


class ResidualReduction(nn.Module):
    """NAS-Bench-201's block between stages: halves the resolution and doubles the channels."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv_a = ReLUConvBN(cin, cout, 3, stride=2)
        self.conv_b = ReLUConvBN(cout, cout, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x):
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


def build_skeleton(network: nn.Module, in_channels: int, num_classes: int, channels: int, cells_per_stage: int,
                   make_cell) -> None:
    """Give `network` the benchmark's skeleton as `stem`, `cells`, `head` and `classifier`, with
    `make_cell(width)` for each cell: shared by `NB201Network` and the one-shot supernet, so their parameter
    names outside the cells are the same."""
    network.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(channels))
    layers: list[nn.Module] = []
    for stage in range(3):
        width = channels * 2 ** stage
        if stage:
            layers.append(ResidualReduction(width // 2, width))
        layers += [make_cell(width) for _ in range(cells_per_stage)]
    network.cells = nn.Sequential(*layers)
    network.head = nn.Sequential(nn.BatchNorm2d(4 * channels), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten())
    network.classifier = nn.Linear(4 * channels, num_classes)


class NB201Network(nn.Module):
    def __init__(self, edges: tuple[tuple[str, int, int], ...], in_channels: int, num_classes: int,
                 channels: int = 16, cells_per_stage: int = 5):
        super().__init__()
        build_skeleton(self, in_channels, num_classes, channels, cells_per_stage, lambda width: Cell(edges, width))

    def forward(self, x):
        return self.classifier(self.head(self.cells(self.stem(x))))
