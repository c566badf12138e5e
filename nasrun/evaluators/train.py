"""The training evaluator: build the architecture's network, train it for the budget's epochs, validate it.

The test split is measured by `test(model)`, which the runner calls only for a trial that becomes the best so
far by fitness: a 10,000-image test pass costs more than a low-fidelity trial's training, and selection never
looks at it. `test_every_trial=true` measures every trial, as before.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace

from nasrun.checks import check_bool
from nasrun.train import TrainConfig, evaluate, train, use_bf16


def trial_seed(run_seed: int, key: str) -> int:
    """A seed for one architecture in one run: the same network, order and dropout masks wherever it is trained
    (first run, resumed run, or the rebuild of best.pt), independent of the trial's position in the search."""
    digest = hashlib.sha256(f"{run_seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


class TrainingEvaluator:
    reports_cost = False  # no simulated clock: real training is budgeted by trials and wall-clock seconds

    def __init__(self, space, data, epochs: int, seed: int, optimizer: str = "adam", lr: float = 1e-3,
                 momentum: float = 0.9, weight_decay: float = 0.0, label_smoothing: float = 0.0,
                 precision: str = "auto", test_every_trial: bool = False):
        self.space = space
        self.test_every_trial = check_bool("test_every_trial", test_every_trial)
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
            **({"classes": list(self.data.classes)} if self.data.classes else {}),
        }

    def __call__(self, arch, deadline: float | None = None):
        """(metrics, trained model). deadline: a time.monotonic() value past which training stops with
        TrialCancelled (the run's wall-clock budget)."""
        import torch

        seed = trial_seed(self.seed, arch.key)
        cuda = [self.data.device] if self.data.device.type == "cuda" else []
        # Initialisation and dropout draw from torch's default generators: fork them, so a trial is seeded by
        # its architecture alone and neither reads nor leaves global RNG state.
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            model = self.space.build(arch, self.data.in_channels, self.data.image_size, self.data.num_classes)
            metrics = train(model, self.data, replace(self.config, seed=seed), deadline)
        if self.test_every_trial:
            metrics.update(self.test(model, deadline))
        return metrics, model

    def test(self, model, deadline: float | None = None) -> dict:
        """The trained model's test accuracy, loss and the pass's seconds."""
        began = time.perf_counter()
        acc, loss = evaluate(model, self.data, "test", use_bf16(self.data.device, self.config.precision), deadline)
        return {"test_acc": acc, "test_loss": loss, "test_seconds": time.perf_counter() - began}
