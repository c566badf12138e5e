"""The network of a macro-space architecture (`nasrun.spaces.macro`): layers over concatenated inputs."""

from __future__ import annotations

import torch
from torch import nn


class MacroNetwork(nn.Module):
    def __init__(self, layers, in_channels: int, num_classes: int):
        super().__init__()
        consumed = {j for layer in layers for j in layer.inputs}
        last = len(layers)
        # A layer no later layer reads would be computed for nothing: it joins the last layer's input.
        self.inputs = [layer.inputs + (tuple(j for j in range(1, last) if j not in consumed)
                                       if i == last else ()) for i, layer in enumerate(layers, start=1)]
        channels = [in_channels]
        self.layers = nn.ModuleList()
        for layer, inputs in zip(layers, self.inputs):
            width = sum(channels[j] for j in inputs)
            self.layers.append(nn.Sequential(
                nn.Conv2d(width, layer.filters, (layer.height, layer.width), padding="same", bias=False),
                nn.BatchNorm2d(layer.filters), nn.ReLU(inplace=True)))
            channels.append(layer.filters)
        self.classifier = nn.Linear(channels[-1], num_classes)

    def forward(self, x):
        outputs = [x]
        for layer, inputs in zip(self.layers, self.inputs):
            joined = outputs[inputs[0]] if len(inputs) == 1 else torch.cat([outputs[j] for j in inputs], dim=1)
            outputs.append(layer(joined))
        return self.classifier(outputs[-1].mean(dim=(2, 3)))
