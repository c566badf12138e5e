"""The torch network of a morph architecture, and weight inheritance from parent to child.

`inherit` gives a child (a `Morph` of the parent) the parent's trained weights such that, in eval mode, it
computes the parent's function. It follows every channel's *value*: a parent layer's output unit, or nothing
(a new, zero channel). An identity conv and a zero-skip add pass their input's values on; a widened conv
repeats some of its units, so a reader shares its weight on a repeated value among the copies (Net2Net); a
concatenated skip brings channels whose readers weigh them by zero (or, for a value they already read, share
the weight). Each child layer then takes, for each of its input channels, the parent's weight on that value.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import cast

import torch
from torch import nn

from nasrun.spaces.morph.graph import pools, widths


class MorphNetwork(nn.Module):
    def __init__(self, arch, in_channels: int, image_size: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        if image_size // 2 ** max(pools(arch.nodes)) < 1:
            raise ValueError(f"{arch.key}: {max(pools(arch.nodes))} poolings leave nothing of a {image_size}-pixel "
                             f"image")
        self.nodes = arch.nodes
        width = widths(arch.nodes, in_channels)
        blocks: dict[str, nn.Module] = {}
        for i, n in enumerate(arch.nodes, start=1):
            if n.op == "conv":
                blocks[str(i)] = nn.Sequential(
                    nn.Conv2d(width[n.inputs[0]], n.width, n.kernel, padding=n.kernel // 2, bias=False),
                    nn.BatchNorm2d(n.width), nn.ReLU())
            elif n.op == "proj":
                blocks[str(i)] = nn.Conv2d(width[n.inputs[0]], n.width, 1, bias=False)
            elif n.op == "pool":
                blocks[str(i)] = nn.MaxPool2d(2)
        self.blocks = nn.ModuleDict(blocks)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width[-1], num_classes)

    def forward(self, x):
        outs = [x]
        for i, n in enumerate(self.nodes, start=1):
            if n.op == "add":
                outs.append(torch.relu(sum(outs[j] for j in n.inputs)))
            elif n.op == "concat":
                outs.append(torch.cat([outs[j] for j in n.inputs], dim=1))
            else:
                outs.append(self.blocks[str(i)](outs[n.inputs[0]]))
        return self.classifier(self.dropout(torch.flatten(nn.functional.adaptive_avg_pool2d(outs[-1], 1), 1)))


def channel_values(nodes, origin, units: dict, in_channels: int) -> list[list]:
    """Per node, the value of each output channel: (parent node, unit), ("in", c) for the image, or None."""
    vals: list[list] = [[("in", c) for c in range(in_channels)]]
    for i, n in enumerate(nodes, start=1):
        o = origin[i]
        if n.op in ("conv", "proj", "add") and o is not None:
            width = len(vals[n.inputs[0]]) if n.op == "add" else n.width
            vals.append([(o, u) for u in units.get(i, range(width))])
        elif n.op == "conv":  # a new identity conv
            vals.append(list(vals[n.inputs[0]]))
        elif n.op == "proj":  # a new zero projection
            vals.append([None] * n.width)
        elif n.op == "add":  # a new skip: its projection adds zero to the main input
            main = next(j for j in n.inputs if nodes[j - 1].op != "proj")
            vals.append(list(vals[main]))
        elif n.op == "pool":
            vals.append(list(vals[n.inputs[0]]))
        else:  # concat
            vals.append([v for j in n.inputs for v in vals[j]])
    return vals


def _gather(parent_weight, parent_in: list, child_in: list, rows) -> torch.Tensor:
    """The child's weight: rows from the parent's `rows`; per input value, the parent's total weight on it (a
    value can reach a layer on several channels, through nested concatenations) shared equally by the child's
    channels of that value; channels of values the parent layer never read get zero."""
    columns: dict = {}
    for k, v in enumerate(parent_in):
        columns.setdefault(v, []).append(k)
    counts = Counter(child_in)
    picked = parent_weight[list(rows)]
    out = parent_weight.new_zeros((len(rows), len(child_in), *parent_weight.shape[2:]))
    for c, v in enumerate(child_in):
        if v is not None and v in columns:
            out[:, c] = picked[:, columns[v]].sum(dim=1) / counts[v]
    return out


def inherit(child_model: nn.Module, morph, parent_arch, parent_state: dict, in_channels: int) -> None:
    """Load into `child_model` (built for `morph.child`) the weights that make it compute the parent's
    function (`parent_state`: the parent network's state dict)."""
    child = morph.child
    parent_vals = channel_values(parent_arch.nodes, list(range(len(parent_arch.nodes) + 1)), {}, in_channels)
    child_vals = channel_values(child.nodes, morph.origin, morph.units, in_channels)
    state = child_model.state_dict()
    for i, n in enumerate(child.nodes, start=1):
        o = morph.origin[i]
        if n.op not in ("conv", "proj"):
            continue
        prefix = f"blocks.{i}." + ("0." if n.op == "conv" else "")
        if o is None:
            weight = state[prefix + "weight"].zero_()
            if n.op == "conv":  # the identity: each channel to itself, through an identity BN
                centre = n.kernel // 2
                weight[range(n.width), range(n.width), centre, centre] = 1.0
                bn = f"blocks.{i}.1."
                state[bn + "running_mean"].zero_()
                state[bn + "running_var"].fill_(1.0)
                norm = cast(nn.BatchNorm2d, cast(nn.Sequential, cast(nn.ModuleDict, child_model.blocks)[str(i)])[1])
                state[bn + "weight"].fill_(math.sqrt(1.0 + norm.eps))
                state[bn + "bias"].zero_()
            continue
        parent_node = parent_arch.nodes[o - 1]
        rows = morph.units.get(i, range(n.width))
        parent_prefix = f"blocks.{o}." + ("0." if n.op == "conv" else "")
        state[prefix + "weight"] = _gather(parent_state[parent_prefix + "weight"], parent_vals[parent_node.inputs[0]],
                                           child_vals[n.inputs[0]], rows)
        if n.op == "conv":
            for name in ("weight", "bias", "running_mean", "running_var"):
                state[f"blocks.{i}.1.{name}"] = parent_state[f"blocks.{o}.1.{name}"][list(rows)].clone()
            state[f"blocks.{i}.1.num_batches_tracked"] = parent_state[f"blocks.{o}.1.num_batches_tracked"].clone()
    state["classifier.weight"] = _gather(parent_state["classifier.weight"], parent_vals[-1], child_vals[-1],
                                         range(parent_state["classifier.weight"].shape[0]))
    state["classifier.bias"] = parent_state["classifier.bias"].clone()
    child_model.load_state_dict(state)


def inherit_chain(space, ancestor, weights: dict, morphs, model: nn.Module, in_channels: int, image_size: int,
                  num_classes: int) -> None:
    """Hand `weights` (the trained `ancestor`'s) through `morphs`, in order, into `model` (the last child's)."""
    parent, state = ancestor, weights
    for i, morph in enumerate(morphs):
        child = model if i == len(morphs) - 1 else space.build(morph.child, in_channels, image_size, num_classes)
        inherit(child, morph, parent, state, in_channels)
        parent, state = morph.child, child.state_dict()
