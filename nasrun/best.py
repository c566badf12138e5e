"""Rebuild the best trained model of a finished run from its directory."""

from __future__ import annotations

import json
from pathlib import Path


def load_best(run_dir, device: str = "cpu"):
    """Return `(model, info)` for the best trial of the run in `run_dir`.

    `model` is the trained network in eval mode, built from `best.json` (space config, architecture, input
    shape, classes) and loaded with `best.pt`. It expects images normalised as in training:
    `(x - mean) / std` per channel on the 0-255 pixel scale (`normalize` below); `info` is best.json's content
    (metrics included), so `info["metrics"]["test_acc"]` is what the run measured on the test set.
    """
    import torch
    from hydra.utils import instantiate

    run_dir = Path(run_dir)
    info = json.loads((run_dir / "best.json").read_text())
    space = instantiate(info["space"])
    arch = space.from_json(info["arch"])
    model = space.build(arch, info["in_channels"], info["image_size"], info["num_classes"])
    state = torch.load(run_dir / "best.pt", map_location=device, weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval(), info


def normalize(images, info: dict):
    """Normalise uint8 NCHW images the way the run's training did."""
    import torch

    mean = torch.tensor(info["mean"], device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(info["std"], device=images.device).view(1, -1, 1, 1)
    return (images.float() - mean) / std
