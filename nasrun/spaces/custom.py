"""The `custom` space of Matos (2023, "NAS with NNI" on Fashion-MNIST): five choices, 108 architectures.

The published network fixes its first linear layer at 4608 inputs, which only fits some choices on 28x28
inputs (num_block=3 gives 8192). Here the flattened size is worked out from the choices and the input size,
so every one of the 108 architectures builds for 28x28x1 and 32x32x3 images.

It is an instance of the generic choice space (`nasrun.spaces.generic`): a dict of choices and a `build`
function, exactly what a user writes for a space of their own.
"""

from __future__ import annotations

from nasrun.spaces.generic import GenericSpace

CHOICES = {
    "conv3": (0, 1),  # 0: two 3x3 convs 128->128->256; 1: one 3x3 conv 128->256
    "num_block": (1, 2, 3),  # how many 2x2 conv blocks at 256 channels
    "conv5": (0, 1),  # 0: plain 3x3 conv 256->512; 1: depthwise-separable 3x3
    "feature": (64, 128, 193),  # width of the hidden linear layer
    "dropout": (0.25, 0.5, 0.75),  # dropout before the hidden linear layer
}


def _flat_features(num_block: int, image_size: int) -> int:
    """Length of the flattened feature map entering the classifier, from the layer arithmetic below."""
    s = image_size // 2  # stage 2 max-pool
    s = s // 2  # stage 3 max-pool
    s = s + num_block  # each 2x2 conv with padding 1 grows the map by one
    s = s - 2  # 3x3 conv (or depthwise 3x3) without padding
    s = s // 2  # average pool
    if s < 1:
        raise ValueError(f"image_size={image_size} is too small for the custom space (needs at least 16)")
    return 512 * s * s


def build(choices: dict, in_channels: int, image_size: int, num_classes: int):
    """Matos's network for one set of choices (a `space.builder`, like any user's)."""
    from torch import nn

    def conv_bn_relu(cin, cout, k=3, pad=1):
        return [nn.Conv2d(cin, cout, k, padding=pad), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    layers = [
        *conv_bn_relu(in_channels, 32),
        *conv_bn_relu(32, 64),
        nn.Conv2d(64, 64, 3, padding=1, bias=False),
        nn.Conv2d(64, 64, 3, padding=1, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        *conv_bn_relu(64, 128),
    ]
    if choices["conv3"] == 0:
        layers += [nn.Conv2d(128, 128, 3, padding=1), nn.Conv2d(128, 256, 3, padding=1)]
    else:
        layers += [nn.Conv2d(128, 256, 3, padding=1)]
    layers += [nn.BatchNorm2d(256), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
    for _ in range(choices["num_block"]):
        layers += conv_bn_relu(256, 256, k=2, pad=1)
    if choices["conv5"] == 0:
        layers += [nn.Conv2d(256, 512, 3)]
    else:
        layers += [nn.Conv2d(256, 256, 3, groups=256), nn.Conv2d(256, 512, 1)]
    layers += [
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Dropout(choices["dropout"]),
        nn.Linear(_flat_features(choices["num_block"], image_size), choices["feature"]),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(choices["feature"], num_classes),
    ]
    return nn.Sequential(*layers)


class CustomSpace(GenericSpace):
    """Matos (2023)'s five-choice space: the generic choice space with these choices and this builder."""

    def __init__(self):
        super().__init__(CHOICES, build, name="custom")
