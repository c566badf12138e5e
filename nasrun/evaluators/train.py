"""The training evaluator: build the architecture's network, train it for the budget's epochs, validate it.

The test split is measured by `test(model)`, which the runner calls only for a trial that becomes the best so
far by fitness: a 10,000-image test pass costs more than a low-fidelity trial's training, and selection never
looks at it. `test_every_trial=true` measures every trial, as before.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

from nasrun.checks import check_bool
from nasrun.training.checkpoint import (
    check_saved,
    checkpoint_payload,
    identity,
    load_checkpoint,
    save_checkpoint,
)
from nasrun.training.train import TrainConfig, evaluate, train, use_bf16

log = logging.getLogger(__name__)


def move_state(state, device):
    """A checkpoint's tensors on `device` (read back on the CPU; the training may run on a GPU)."""
    import torch

    if isinstance(state, torch.Tensor):
        return state if state.device == device or state.dtype == torch.uint8 else state.to(device)
    if isinstance(state, dict):
        return {k: move_state(v, device) for k, v in state.items()}
    if isinstance(state, list):
        return [move_state(v, device) for v in state]
    return state


def trial_seed(run_seed: int, key: str) -> int:
    """A seed for one architecture in one run: the same network, order and dropout masks wherever it is trained
    (first run, resumed run, or the rebuild of best.pt), independent of the trial's position in the search."""
    digest = hashlib.sha256(f"{run_seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


class TrainingEvaluator:
    reports_cost = False  # no simulated clock: real training is budgeted by trials and wall-clock seconds

    def __init__(self, space, data, epochs: int, seed: int, optimizer: str = "adam", lr: float = 1e-3,
                 momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 0.0,
                 label_smoothing: float = 0.0, schedule: str = "constant", warmup_epochs: int = 0,
                 step_epochs: int = 30, gamma: float = 0.1, patience: int | None = None, restore_best: bool = False,
                 precision: str = "auto", test_every_trial: bool = False, checkpoint: str | None = None):
        """checkpoint: a file (nasrun-train's last.pt) to save the training state to after every epoch and to
        go on from when it holds this architecture's state; None in a search."""
        self.space = space
        self.test_every_trial = check_bool("test_every_trial", test_every_trial)
        self.data = data
        self.seed = seed
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        # Validates every training option up front, so a typo fails before the first trial.
        self.config = TrainConfig(epochs=epochs, optimizer=optimizer, lr=lr, momentum=momentum, nesterov=nesterov,
                                  weight_decay=weight_decay, label_smoothing=label_smoothing, schedule=schedule,
                                  warmup_epochs=warmup_epochs, step_epochs=step_epochs, gamma=gamma,
                                  patience=patience, restore_best=restore_best, precision=precision, seed=seed)

    def describe(self) -> dict:
        """What best.json needs besides the trial to rebuild and feed the network (`nasrun.rundir.best.load_best`)."""
        return {
            "dataset": self.data.name,
            "in_channels": self.data.in_channels,
            "image_size": self.data.image_size,
            "num_classes": self.data.num_classes,
            "mean": self.data.mean.flatten().tolist(),
            "std": self.data.std.flatten().tolist(),
            **({"classes": list(self.data.classes)} if self.data.classes else {}),
        }

    def __call__(self, arch, deadline: float | None = None, inherit: tuple | None = None):
        """(metrics, trained model). deadline: a time.monotonic() value past which training stops with
        TrialCancelled (the run's wall-clock budget). inherit: (ancestor, its trained weights, the morphisms to
        `arch`): the network starts with the ancestor's function instead of its own initialisation."""
        metrics, model, _ = self.train_segment(arch, None, None, deadline, inherit)
        return metrics, model

    def train_segment(self, arch, until: int | None, resume: dict | None, deadline: float | None = None,
                      inherit: tuple | None = None):
        """(metrics, trained model, checkpoint) for training `arch` up to epoch `until` (None: all epochs) from
        `resume` (a checkpoint this method returned earlier, read back: None starts at epoch 0). The schedule
        spans all epochs whatever `until` is, so the segments of a scheduled trial end exactly where one
        uninterrupted training would. The checkpoint is on the CPU, for the runner to keep."""
        import torch

        seed = trial_seed(self.seed, arch.key)
        cuda = [self.data.device] if self.data.device.type == "cuda" else []
        # Initialisation and dropout draw from torch's default generators: fork them, so a trial is seeded by
        # its architecture alone and neither reads nor leaves global RNG state.
        config = replace(self.config, seed=seed)
        ident = identity(arch.key, config, self.data)
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            model = self.space.build(arch, self.data.in_channels, self.data.image_size, self.data.num_classes)
            if inherit is not None and resume is None:
                from nasrun.spaces.morph.network import inherit_chain  # torch-heavy: only for space=morph

                ancestor, weights, morphs = inherit
                inherit_chain(self.space, ancestor, weights, morphs, model, self.data.in_channels,
                              self.data.image_size, self.data.num_classes)
            save = None
            if resume is not None:
                resume = check_saved(resume, ident, f"the checkpoint of {arch.key}", "run the trial again from "
                                     "its first epoch", "delete it")
                resume = move_state(resume, self.data.device)
            elif self.checkpoint is not None:
                resume = load_checkpoint(self.checkpoint, ident, self.data.device)
                if resume is not None:
                    log.info("%s: going on after epoch %d of %d", self.checkpoint, resume["epoch"], config.epochs)
            if self.checkpoint is not None:
                save = partial(save_checkpoint, self.checkpoint, ident=ident)
            kept: list[dict] = []
            on_epoch = partial(self.epoch_done, save, config, kept if until is not None else None)
            metrics = train(model, self.data, config, deadline, on_epoch=on_epoch, resume=resume, until=until)
        if inherit is not None:
            metrics.update(inherited_from=inherit[0].key, morphs=[m.op for m in inherit[2]])
        if self.test_every_trial:
            metrics.update(self.test(model, deadline))
        payload = checkpoint_payload(move_state(kept[-1], torch.device("cpu")), ident) if kept else None
        return metrics, model, payload

    def epoch_done(self, save, config, kept: list | None, state: dict) -> None:
        """After each epoch: a log line (INFO when training one architecture, DEBUG in a search's many trials)
        and the checkpoint, where there is one (a file, or `kept` for a segment's caller)."""
        last = state["history"][-1]
        log.log(logging.INFO if save else logging.DEBUG, "epoch %d/%d: train_loss=%.4f val_acc=%.2f lr=%.3g%s",
                last["epoch"], config.epochs, last["train_loss"], last["val_acc"], last["lr"],
                " (early stop)" if state["stopped"] else "")
        if save is not None:
            save(state)
        if kept is not None:
            kept[:] = [state]

    def test(self, model, deadline: float | None = None) -> dict:
        """The trained model's test accuracy, loss and the pass's seconds."""
        began = time.perf_counter()
        acc, loss = evaluate(model, self.data, "test", use_bf16(self.data.device, self.config.precision), deadline)
        return {"test_acc": acc, "test_loss": loss, "test_seconds": time.perf_counter() - began}
