"""`space=macro`: the layer-wise macro space of Zoph & Le (ICLR 2017), a CNN written layer by layer.

Layer i (numbered from 1; input 0 is the image) chooses its filter height and width, each in {1, 3, 5, 7}, its
number of filters in {24, 36, 48, 64}, and which earlier layers (and the image) feed it through skip
connections. A layer is conv (stride 1, "same" padding, no bias) -> BN -> ReLU over the channel-concatenation
of its inputs; a layer with no input takes the image, and a layer that no later layer consumes is
concatenated into the last layer's input. Then global average pooling and a linear classifier.

The canonical string lists the layers in order, `FHxFW-N<inputs` with inputs joined by '.', layers by '|':

    3x3-36<0|3x3-48<1|3x3-36<1.2

A layer whose inputs were all switched off is stored as taking the image (input 0), so one network has one
string. `num_layers` is the space's parameter, so the choices (one per layer decision) vary per instance;
sampling, mutation and crossover make networks of exactly that many layers. A network may also be shallower
(REINFORCE's progressive depth writes its first children with fewer layers): `make` takes the decisions of
the first k layers, and the string then lists k layers.
The network lives in `macro_network` (imported on build: listing or sampling never imports torch).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from nasrun.checks import check_int
from nasrun.spaces import choices as dims
from nasrun.spaces.base import ChoiceSpace

SIZES = (1, 3, 5, 7)
FILTERS = (24, 36, 48, 64)
_LAYER = re.compile(r"(\d+)x(\d+)-(\d+)<(\d+(?:\.\d+)*)")


@dataclass(frozen=True)
class MacroLayer:
    height: int
    width: int
    filters: int
    inputs: tuple[int, ...]  # earlier layers feeding this one, ascending; 0 is the image


@dataclass(frozen=True)
class MacroArch:
    """A macro network: its layers in order. Build it through `MacroSpace` (which checks every value)."""

    layers: tuple[MacroLayer, ...]
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        text = "|".join(f"{l.height}x{l.width}-{l.filters}<{'.'.join(map(str, l.inputs))}" for l in self.layers)
        object.__setattr__(self, "key", text)

    def choices(self) -> dict:
        values = {}
        for i, layer in enumerate(self.layers, start=1):
            values.update({f"{i}.height": layer.height, f"{i}.width": layer.width, f"{i}.filters": layer.filters})
            values.update({f"{i}.from{j}": j in layer.inputs for j in range(i) if i > 1})
        return values

    def to_json(self) -> str:
        return self.key

    def __str__(self) -> str:
        return self.key


# The 15-layer network of Zoph & Le's Figure 7 (4,201,630 parameters on CIFAR-10): `space.num_layers=15` and
# this string, or the name `nascnn15` where an architecture is asked for.
NASCNN15 = ("3x3-36<0|3x3-48<1|3x3-36<1.2|5x5-36<1.2.3|3x7-48<3.4|7x7-48<2.3.4.5|7x7-48<2.3.4.5.6|7x3-36<1.6.7|"
            "7x1-36<1.5.6.8|7x7-36<1.3.4.5.6.7.8.9|5x7-36<1.2.5.6.7.8.9.10|7x7-48<1.2.3.4.6.11|"
            "7x5-48<1.3.6.7.8.9.10.11.12|7x5-48<3.7.12.13|7x5-48<6.7.11.12.13.14")


def _options(name: str, values, odd: bool) -> tuple[int, ...]:
    """A layer option's values from the config: distinct positive integers, ascending (odd for kernel sizes:
    "same" padding centres an odd kernel only)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name}={values!r}: must be a list of integers, e.g. [1, 3, 5, 7]")
    options = tuple(check_int(name, v, low=1, high=1024) for v in values)
    if not options or len(set(options)) != len(options):
        raise ValueError(f"{name}={list(options)}: must list at least one value, each once")
    if odd and any(v % 2 == 0 for v in options):
        raise ValueError(f"{name}={list(options)}: kernel sizes must be odd (e.g. 1, 3, 5, 7)")
    return tuple(sorted(options))


class MacroSpace(ChoiceSpace):
    """num_layers: how many layers every network of the space has. sizes: the filter heights and widths a layer
    chooses from; filters: its numbers of filters (defaults: Zoph & Le's)."""

    name = "macro"
    NAMED = {"nascnn15": NASCNN15}  # architectures known by name (nasrun-train arch=nascnn15)

    def __init__(self, num_layers: int = 6, sizes=SIZES, filters=FILTERS):
        self.num_layers = check_int("num_layers", num_layers, low=1, high=64)
        self.sizes = _options("sizes", sizes, odd=True)
        self.filters = _options("filters", filters, odd=False)
        self.choices = {}
        self.skips = {}  # the skip-connection decisions: dimension -> (layer, earlier layer or 0 for the image)
        self.anchors = {}  # the decision that completes layer i's own choices -> i (an LSTM anchor follows it)
        for i in range(1, self.num_layers + 1):
            self.choices.update({f"{i}.height": self.sizes, f"{i}.width": self.sizes,
                                 f"{i}.filters": self.filters})
            self.anchors[f"{i}.filters"] = i
            # Layer 1 can only read the image, so it has no skip decision. (A later layer with every switch off
            # also reads the image, as does one with only the image's on: that network has two encodings.)
            self.skips.update({f"{i}.from{j}": (i, j) for j in range(i) if i > 1})
            self.choices.update({f"{i}.from{j}": (False, True) for j in range(i) if i > 1})

    def layer_dims(self, depth: int) -> list[str]:
        """The decisions of the first `depth` layers, in order (a prefix of `choices`)."""
        return [d for d in self.choices if int(d.split(".")[0]) <= depth]

    def make(self, values: dict) -> MacroArch:
        """A network from the decisions of its first k layers (k = the deepest layer `values` mentions)."""

        depth = max((int(str(k).split(".")[0]) for k in values if str(k).split(".")[0].isdigit()), default=0)
        if not 1 <= depth <= self.num_layers:
            raise ValueError(f"a macro network needs 1 to {self.num_layers} layers (space.num_layers); "
                             f"got decisions for {depth}")
        values = dims.validate({d: self.choices[d] for d in self.layer_dims(depth)}, values)
        layers = []
        for i in range(1, depth + 1):
            inputs = tuple(j for j in range(i) if i > 1 and values[f"{i}.from{j}"]) or (0,)
            layers.append(MacroLayer(values[f"{i}.height"], values[f"{i}.width"], values[f"{i}.filters"], inputs))
        return MacroArch(tuple(layers))

    def from_key(self, text: str) -> MacroArch:
        """Parse the canonical string; a malformed one raises ValueError naming the layer and what is wrong."""
        if not isinstance(text, str):
            raise ValueError(f"a macro architecture must be a string, got {type(text).__name__}")
        parts = text.split("|")
        if len(parts) > self.num_layers:
            raise ValueError(f"{len(parts)} layers; this space (space.num_layers={self.num_layers}) "
                             f"has at most {self.num_layers}")
        values = {}
        for i, part in enumerate(parts, start=1):
            match = _LAYER.fullmatch(part)
            if not match:
                raise ValueError(f"layer {i}: {part!r} is not FHxFW-N<inputs (e.g. 3x5-36<0.2)")
            height, width, filters = (int(g) for g in match.groups()[:3])
            inputs = [int(j) for j in match.group(4).split(".")]
            for name, value, allowed in (("height", height, self.sizes), ("width", width, self.sizes),
                                         ("filters", filters, self.filters)):
                if value not in allowed:
                    key = "filters" if name == "filters" else "sizes"
                    raise ValueError(f"layer {i}: {name}={value}; choose one of: {', '.join(map(str, allowed))} "
                                     f"(space.{key})")
            if inputs != sorted(set(inputs)) or inputs[-1] >= i:
                raise ValueError(f"layer {i}: inputs {match.group(4)} must be distinct earlier layers (0 to {i - 1}), "
                                 f"ascending")
            values.update({f"{i}.height": height, f"{i}.width": width, f"{i}.filters": filters})
            values.update({f"{i}.from{j}": j in inputs for j in range(i) if i > 1})
        return self.make(values)

    def build(self, arch: MacroArch, in_channels: int, image_size: int, num_classes: int):
        from nasrun.spaces.macro_network import MacroNetwork  # torch: only when a network is built

        return MacroNetwork(arch.layers, in_channels, num_classes)

    def __repr__(self) -> str:
        return f"MacroSpace(num_layers={self.num_layers}, sizes={list(self.sizes)}, filters={list(self.filters)})"
