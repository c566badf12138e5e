"""`train(model, data, cfg) -> metrics`: minibatch training on in-memory tensors, validated after each epoch;
`evaluate(model, data, split)` for the validation and test splits.

The schedule (Adam, or SGD with optional Nesterov momentum; constant, cosine or step decay after a linear
warm-up; early stopping on validation) is all in `TrainConfig`. The learning rate is a pure function of how far
training has gone (`learning_rate`), so a checkpoint needs no scheduler state: `train(..., on_epoch=save)` hands
the caller everything to continue after each epoch, and `train(..., resume=state)` continues exactly there.

Accuracies are percentages, like the published tables we compare with. The model is trained in
channels_last (faster convolutions on oneDNN and cuDNN: 1.1-1.5x here) under bf16 autocast where the
hardware does bf16 natively: on CUDA, and on CPUs with AVX512-BF16 or AMX, where it doubles throughput
(`make bench`). Elsewhere emulated bf16 would be slower than fp32, so `precision=auto` keeps fp32 there.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields
from typing import Any

from nasrun.checks import check_bool, check_choice, check_float, check_int
from nasrun.deadline import check_deadline


@dataclass
class TrainingState:
    """Where one training stands after its latest epoch: what `train` goes on from (with the weights, the
    optimizer and the random streams, which `training_state` adds) and what last.pt holds."""

    epoch: int = 0  # epochs finished
    history: list[dict] = field(default_factory=list)  # one entry per finished epoch
    best_epoch: int = 0  # the epoch of the best validation accuracy so far (0: none yet)
    best_model: dict | None = None  # that epoch's weights, when restore_best keeps them
    stopped: bool = False  # early stopping has ended the training
    train_seconds: float = 0.0
    val_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Its fields by name, as last.pt stores them (shallow: the weights are not copied)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


# What last.pt holds besides the TrainingState's fields: the weights, the optimizer and the random streams.
MODEL_AND_RANDOMNESS = ("model", "optimizer", "generator", "torch_rng", "cuda_rng")
STATE_KEYS = tuple(f.name for f in fields(TrainingState)) + MODEL_AND_RANDOMNESS


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the trial fails, the search goes on."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 1
    optimizer: str = "adam"  # adam | sgd (with momentum)
    lr: float = 1e-3  # Matos (2023) uses Adam at 1e-3
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    schedule: str = "constant"  # constant | cosine (to 0 at the last epoch) | step (x gamma every step_epochs)
    warmup_epochs: int = 0  # linear warm-up from lr/steps to lr, before the schedule
    step_epochs: int = 30  # step only
    gamma: float = 0.1  # step only
    patience: int | None = None  # stop after this many epochs without a better validation accuracy
    restore_best: bool = False  # end with the best epoch's weights (by validation), not the last epoch's
    precision: str = "auto"  # auto | bf16 | fp32: autocast to bf16 (weights stay fp32), see use_bf16()
    seed: int = 0  # model init, shuffling, dropout and augmentation all derive from it

    def __post_init__(self):
        check_int("epochs", self.epochs, low=1)
        check_choice("optimizer", self.optimizer, ("adam", "sgd"))
        check_float("lr", self.lr, low=0.0, low_open=True)
        check_float("momentum", self.momentum, low=0.0, high=1.0)
        check_bool("nesterov", self.nesterov)
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ValueError(f"nesterov=true: needs optimizer=sgd with momentum > 0 (optimizer={self.optimizer}, "
                             f"momentum={self.momentum})")
        check_float("weight_decay", self.weight_decay, low=0.0)
        check_float("label_smoothing", self.label_smoothing, low=0.0, high=1.0)
        check_choice("schedule", self.schedule, ("constant", "cosine", "step"))
        check_int("warmup_epochs", self.warmup_epochs, low=0)
        if self.warmup_epochs and self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs={self.warmup_epochs}: must be below the epochs ({self.epochs}); "
                             f"lower it or raise budget.epochs")
        check_int("step_epochs", self.step_epochs, low=1)
        check_float("gamma", self.gamma, low=0.0, high=1.0, low_open=True)
        if self.patience is not None:
            check_int("patience", self.patience, low=1)
        check_bool("restore_best", self.restore_best)
        check_choice("precision", self.precision, ("auto", "bf16", "fp32"))
        check_int("seed", self.seed)


def learning_rate(cfg: TrainConfig, epoch: int, step: int, steps: int) -> float:
    """The learning rate of step `step` (of `steps`) in epoch `epoch` (from 0): a pure function of progress,
    so resuming at an epoch boundary needs no scheduler state."""
    t = epoch + step / steps  # epochs done so far
    if t < cfg.warmup_epochs:
        return cfg.lr * (t + 1 / steps) / cfg.warmup_epochs  # the first step already learns a little
    if cfg.schedule == "cosine":
        done = (t - cfg.warmup_epochs) / (cfg.epochs - cfg.warmup_epochs)
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * done))
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** ((epoch - cfg.warmup_epochs) // cfg.step_epochs)
    return cfg.lr


def make_optimizer(model, cfg: TrainConfig):
    import torch

    # Fused kernels update all parameters in one pass: ~2x faster steps than the per-tensor loop on CPU.
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay, fused=True)


def cpu_has_native_bf16() -> bool:
    import torch

    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe is not None and probe() for probe in probes)


def use_bf16(device, precision: str) -> bool:
    """Whether to autocast to bf16: as asked, or for `auto` where the device computes bf16 natively."""
    import torch

    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_native_bf16()


def autocast(device, bf16: bool):
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def evaluate(model, data, split: str, bf16: bool = False, deadline: float | None = None) -> tuple[float, float]:
    """(accuracy %, mean cross-entropy) of `model` on the `val` or `test` split.

    Batches of `data.eval_batch_size` under inference_mode, in channels_last. The batch size matters on CPU:
    activations of a 500-image batch exceed glibc's largest mmap threshold (32 MB), so every one of them was
    mapped and unmapped per layer: millions of page faults and seconds of system time per test pass
    (`make bench ARGS="--only eval"`). 128 keeps them in the reused heap."""
    import torch
    import torch.nn.functional as F

    model.eval()
    correct = torch.zeros((), device=data.device)
    loss_sum = torch.zeros((), device=data.device)
    count = 0
    with torch.inference_mode(), autocast(data.device, bf16):
        for x, y in data.eval_batches(split):
            check_deadline(deadline, f"{split} evaluation")
            out = model(x.contiguous(memory_format=torch.channels_last)).float()
            loss_sum += F.cross_entropy(out, y, reduction="sum")
            correct += (out.argmax(1) == y).sum()
            count += len(y)
    return 100.0 * correct.item() / count, loss_sum.item() / count


def train(model, data, cfg: TrainConfig, deadline: float | None = None, on_epoch=None, resume: dict | None = None,
          until: int | None = None) -> dict:
    """Train `model` in place on `data` and return its metrics (validation after each epoch; the test split is
    the evaluator's business: `evaluate(model, data, "test")`).

    deadline: a `time.monotonic()` value; checked before every batch, so a trial overrunning the run's
    wall-clock budget stops within one batch (`TrialCancelled`).
    on_epoch: called after each epoch with the training state (`training_state`), e.g. to save a checkpoint.
    resume: such a state; training goes on after its epoch, with the same weights, optimizer, data order and
    random streams, so it ends where an uninterrupted run would.
    until: stop after this epoch (a scheduler's segment); the schedule still spans `cfg.epochs`, so segments
    1-3, 4-9 end with exactly the weights and metrics of 9 epochs straight.

    The caller seeds the model's initialisation; the shuffling order and the augmentation come from
    `cfg.seed`. Dropout draws from torch's default generator, so callers that need exact repeats run this
    inside `torch.random.fork_rng` with a manual seed (the training evaluator does).
    """
    import torch
    import torch.nn.functional as F

    device = data.device
    bf16 = use_bf16(device, cfg.precision)
    model.to(device=device, memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg)
    generator = torch.Generator().manual_seed(cfg.seed)
    run = TrainingState() if resume is None else restore_state(resume, model, optimizer, generator, device)
    history = run.history
    steps = max(1, math.ceil(len(data.train_x) / data.batch_size))
    began = time.perf_counter() - run.train_seconds - run.val_seconds
    last = cfg.epochs if until is None else min(until, cfg.epochs)
    for epoch in range(run.epoch + 1, last + 1):
        if run.stopped:
            break
        model.train()
        loss_sum = torch.zeros((), device=device)
        seen = 0
        epoch_start = time.perf_counter()
        for step, (x, y) in enumerate(data.train_batches(generator)):
            check_deadline(deadline, f"training (epoch {epoch}, step {step})")
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(cfg, epoch - 1, step, steps)
            with autocast(device, bf16):
                loss = F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y,
                                       label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(y)
            seen += len(y)
            # Checking costs a device sync, so only now and then: enough to stop a diverged trial early.
            if step % 25 == 0 and not math.isfinite(loss.item()):
                raise TrainingDiverged(f"loss is {loss.item()} at epoch {epoch}, step {step}")
        train_loss = loss_sum.item() / seen
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"loss is {train_loss} at the end of epoch {epoch}")
        run.train_seconds += time.perf_counter() - epoch_start
        val_start = time.perf_counter()
        val_acc, val_loss = evaluate(model, data, "val", bf16, deadline)
        run.val_seconds += time.perf_counter() - val_start
        history.append({"epoch": epoch, "train_loss": train_loss, "val_acc": val_acc, "val_loss": val_loss,
                        "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - began})
        run.epoch = epoch
        if not run.best_epoch or val_acc > history[run.best_epoch - 1]["val_acc"]:
            run.best_epoch = epoch
            if cfg.restore_best:
                run.best_model = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif cfg.patience is not None and epoch - run.best_epoch >= cfg.patience:
            run.stopped = True  # early stopping: the best epoch is `patience` epochs behind
        if on_epoch is not None:
            on_epoch(training_state(run, model, optimizer, generator, device))
    final = history[-1]
    if cfg.restore_best and run.best_model is not None:
        model.load_state_dict(run.best_model)
        final = history[run.best_epoch - 1]
    return {
        "val_acc": final["val_acc"],
        "val_loss": final["val_loss"],
        "epoch": final["epoch"],  # the epoch whose weights the model ends with
        "best_epoch": run.best_epoch,
        "epochs_run": len(history),
        "stopped_early": run.stopped,
        "params": sum(p.numel() for p in model.parameters()),
        "train_seconds": run.train_seconds,  # the training steps alone
        "val_seconds": run.val_seconds,  # every epoch's validation pass
        "precision": "bf16" if bf16 else "fp32",
        "history": history,
    }


def training_state(run: TrainingState, model, optimizer, generator, device) -> dict:
    """Everything `train` needs to continue after the epoch just finished: weights, optimizer, the data-order
    generator and torch's random streams (dropout), the history and the early-stopping record."""
    import torch

    return {**run.as_dict(), "history": list(run.history), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def restore_state(state: dict, model, optimizer, generator, device) -> TrainingState:
    """Load a `training_state` into the model, optimizer and generators; the rest of it, to go on with."""
    import torch

    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if device.type == "cuda" and state["cuda_rng"] is not None:
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    run = TrainingState(**{f.name: state[f.name] for f in fields(TrainingState)})
    run.history = list(run.history)
    if run.best_model is not None:
        run.best_model = {k: v.to(device) for k, v in run.best_model.items()}
    return run
