"""What the benchmarks share: the architectures they time, seeded models, and where results go."""

from __future__ import annotations

import time
from pathlib import Path

from nasrun.config.validate import compose_config
from nasrun.spaces.custom import CustomSpace
from nasrun.spaces.macro import NASCNN15, MacroSpace
from nasrun.spaces.nb201 import NB201Space

ARCH = {"conv3": 1, "num_block": 2, "conv5": 0, "feature": 128, "dropout": 0.5}  # the custom space's bench network
NB201_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def model(case: str, seed: int = 0):
    """The bench network, initialised from `seed` without touching torch's global generator (forked)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if case == "nb201":
            cells = NB201Space(16, 5)
            return cells.build(cells.from_key(NB201_CELL), 3, 32, 10)
        if case == "nascnn15":
            macro = MacroSpace(15)
            return macro.build(macro.from_key(NASCNN15), 3, 32, 10)
        custom = CustomSpace()
        return custom.build(custom.make(ARCH), 1, 28, 10)


def output_dir() -> Path:
    """outputs/bench-DATE-TIME under the working directory (the repository, from `make bench`)."""
    out = Path("outputs") / f"bench-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True)
    return out.resolve()


def preset(*overrides: str):
    """The composed config of `nasrun OVERRIDES` (e.g. "+experiment=nb201_rea"): benchmarks take their settings
    from the presets rather than repeating them."""

    return compose_config(list(overrides))
