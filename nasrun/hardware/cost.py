"""An architecture's size, from its built network: `params` (trainable parameters) and `flops` (floating-point
operations of one forward pass of one image, as torch's own counter, `torch.utils.flop_counter`, counts them).

The FLOPs convention: 2 per multiply-add of every convolution and matrix product (convolutions, linear layers,
attention); normalisation, activations, pooling and additions are not counted, and neither are the bias adds.
NAS-Bench-201 and most NAS papers quote multiply-adds under the name FLOPs: halve `flops` to compare
(NAS-Bench-201's CIFAR-10 cells span 7.8 to 220 M multiply-adds, 15.6 to 440 M FLOPs here). A pooling layer
that a space computes as a depthwise convolution for speed (NAS-Bench-201's border-aware average pooling) says
so with `counts_as_pooling = True`, and is left out like any pooling.
"""

from __future__ import annotations


def network_cost(model, input_shape: tuple[int, ...]) -> dict[str, float]:
    """{"params": ..., "flops": ...} of `model` for one input of `input_shape` (channels, height, width). The
    forward pass runs on a copy in eval mode under no_grad on the CPU (the count does not depend on the device)."""
    import copy

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    net = copy.deepcopy(model).to("cpu").eval()
    root = type(net).__name__
    pooled = [f"{root}.{name}" if name else root for name, m in net.named_modules()
              if getattr(m, "counts_as_pooling", False)]
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(torch.zeros((1, *input_shape)))
    by_module = counter.get_flop_counts()
    flops = counter.get_total_flops() - sum(sum(by_module.get(name, {}).values()) for name in pooled)
    return {"params": float(params), "flops": float(flops)}


class CostOf:
    """`cost(arch) -> {"params", "flops"}` for a space's architectures on a dataset's image shape, remembered per
    architecture (a search meets the same cell many times; counting takes a forward pass, about 0.1 s).

    A space whose networks' size is a sum over its decisions (`cost_is_additive`: NAS-Bench-201, where each edge's
    operation adds its own layers in every cell and nothing else depends on it) is counted once per option
    instead: the network with every decision at its first option, and the change each other option makes on its
    own. Any cell's size is then that base plus its options' changes, exactly (tests check it against counting
    the whole network), so a tabular search of a thousand cells does not spend minutes building networks."""

    def __init__(self, space, in_channels: int, image_size: int, num_classes: int):
        self.space = space
        self.shape = (in_channels, image_size, image_size)
        self.num_classes = num_classes
        self._known: dict[str, dict[str, float]] = {}
        self._terms: tuple[dict, dict] | None = None

    def count(self, arch) -> dict[str, float]:
        """Build the network and count it (the definition; what the additive terms are made of)."""
        model = self.space.build(arch, self.shape[0], self.shape[1], self.num_classes)
        return network_cost(model, self.shape)

    def __call__(self, arch) -> dict[str, float]:
        known = self._known.get(arch.key)
        if known is None:
            if getattr(self.space, "cost_is_additive", False):
                known = self._additive(arch)
            else:
                known = self.count(arch)
            self._known[arch.key] = known
        return dict(known)

    def _additive(self, arch) -> dict[str, float]:
        if self._terms is None:
            self._terms = _additive_terms(self, repr(self.space), self.shape, self.num_classes)
        base, change = self._terms
        values = arch.choices()  # decision -> option
        return {name: base[name] + sum(change[(d, v)][name] for d, v in values.items()) for name in base}


_TERMS: dict[tuple, tuple] = {}  # (space, shape, classes) -> (base, change): a sweep's runs in one process share them


def _additive_terms(cost: CostOf, space_id: str, shape: tuple, num_classes: int) -> tuple:
    key = (space_id, shape, num_classes)
    if key not in _TERMS:
        choices = cost.space.choices
        first = {d: options[0] for d, options in choices.items()}
        base = cost.count(cost.space.make(first))
        change = {}
        for decision, options in choices.items():
            change[(decision, options[0])] = {n: 0.0 for n in base}
            for option in options[1:]:
                alone = cost.count(cost.space.make({**first, decision: option}))
                change[(decision, option)] = {n: alone[n] - base[n] for n in base}
        _TERMS[key] = (base, change)
    return _TERMS[key]
