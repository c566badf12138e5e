"""`train(model, data, cfg) -> metrics`: minibatch training on in-memory tensors, validated after each epoch;
`evaluate(model, data, split)` for the validation and test splits.

Accuracies are percentages, like the published tables we compare with. The model is trained in
channels_last (faster convolutions on oneDNN and cuDNN: 1.1-1.5x here) under bf16 autocast where the
hardware does bf16 natively: on CUDA, and on CPUs with AVX512-BF16 or AMX, where it doubles throughput
(`make bench`). Elsewhere emulated bf16 would be slower than fp32, so `precision=auto` keeps fp32 there.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from nasrun.checks import check_choice, check_float, check_int
from nasrun.deadline import check_deadline


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the trial fails, the search goes on."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 1
    optimizer: str = "adam"  # adam | sgd (with momentum)
    lr: float = 1e-3  # Matos (2023) uses Adam at 1e-3
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    precision: str = "auto"  # auto | bf16 | fp32: autocast to bf16 (weights stay fp32), see use_bf16()
    seed: int = 0  # model init, shuffling, dropout and augmentation all derive from it

    def __post_init__(self):
        check_int("epochs", self.epochs, low=1)
        check_choice("optimizer", self.optimizer, ("adam", "sgd"))
        check_float("lr", self.lr, low=0.0, low_open=True)
        check_float("momentum", self.momentum, low=0.0, high=1.0)
        check_float("weight_decay", self.weight_decay, low=0.0)
        check_float("label_smoothing", self.label_smoothing, low=0.0, high=1.0)
        check_choice("precision", self.precision, ("auto", "bf16", "fp32"))
        check_int("seed", self.seed)


def make_optimizer(model, cfg: TrainConfig):
    import torch

    # Fused kernels update all parameters in one pass: ~2x faster steps than the per-tensor loop on CPU.
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           fused=True)


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


def train(model, data, cfg: TrainConfig, deadline: float | None = None) -> dict:
    """Train `model` in place on `data` and return its metrics (validation after each epoch; the test split is
    the evaluator's business: `evaluate(model, data, "test")`).

    deadline: a `time.monotonic()` value; checked before every batch, so a trial overrunning the run's
    wall-clock budget stops within one batch (`TrialCancelled`).

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
    history = []
    start = time.perf_counter()
    val_seconds = 0.0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        loss_sum = torch.zeros((), device=device)
        seen = 0
        for step, (x, y) in enumerate(data.train_batches(generator)):
            check_deadline(deadline, f"training (epoch {epoch}, step {step})")
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
        began = time.perf_counter()
        val_acc, val_loss = evaluate(model, data, "val", bf16, deadline)
        val_seconds += time.perf_counter() - began
        history.append({"epoch": epoch, "train_loss": train_loss, "val_acc": val_acc, "val_loss": val_loss,
                        "seconds": time.perf_counter() - start})
    return {
        "val_acc": history[-1]["val_acc"],
        "val_loss": history[-1]["val_loss"],
        "params": sum(p.numel() for p in model.parameters()),
        "train_seconds": time.perf_counter() - start - val_seconds,  # the training steps alone
        "val_seconds": val_seconds,  # every epoch's validation pass
        "precision": "bf16" if bf16 else "fp32",
        "history": history,
    }
