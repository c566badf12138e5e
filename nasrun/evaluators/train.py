"""The training evaluator: build the architecture's network, train it for the budget's epochs, measure it."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from nasrun.train import TrainConfig, train


def trial_seed(run_seed: int, key: str) -> int:
    """A seed for one architecture in one run: the same network, order and dropout masks wherever it is trained
    (first run, resumed run, or the rebuild of best.pt), independent of the trial's position in the search."""
    digest = hashlib.sha256(f"{run_seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


class TrainingEvaluator:
    reports_cost = False  # no simulated clock: real training is budgeted by trials and wall-clock seconds

    def __init__(self, space, data, epochs: int, seed: int, optimizer: str = "adam", lr: float = 1e-3,
                 momentum: float = 0.9, weight_decay: float = 0.0, label_smoothing: float = 0.0,
                 precision: str = "auto"):
        self.space = space
        self.data = data
        self.seed = seed
        # Validates every training option up front, so a typo fails before the first trial.
        self.config = TrainConfig(epochs=epochs, optimizer=optimizer, lr=lr, momentum=momentum,
                                  weight_decay=weight_decay, label_smoothing=label_smoothing, precision=precision,
                                  seed=seed)

    def describe(self) -> dict:
        """What best.json needs besides the trial to rebuild and feed the network (`nasrun.best.load_best`)."""
        return {
            "dataset": self.data.name,
            "in_channels": self.data.in_channels,
            "image_size": self.data.image_size,
            "num_classes": self.data.num_classes,
            "mean": self.data.mean.flatten().tolist(),
            "std": self.data.std.flatten().tolist(),
        }

    def __call__(self, arch):
        import torch

        seed = trial_seed(self.seed, arch.key)
        cuda = [self.data.device] if self.data.device.type == "cuda" else []
        # Initialisation and dropout draw from torch's default generators: fork them, so a trial is seeded by
        # its architecture alone and neither reads nor leaves global RNG state.
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            model = self.space.build(arch, self.data.in_channels, self.data.image_size, self.data.num_classes)
            metrics = train(model, self.data, replace(self.config, seed=seed))
        return metrics, model
