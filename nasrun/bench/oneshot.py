"""One-shot supernet benchmarks (part of `make bench`; `--only oneshot`; see `nasrun.bench`).

- `epoch_seconds`: seconds per supernet step of DARTS (first and second order), GDAS and RSPS on real CIFAR-10
  batches of 64, at the benchmark's size (C=16, N=5; 391 steps an epoch on 25,000 images) and at the reduced
  presets' (C=8, N=1; 157 steps on 10,000), timed in interleaved rounds so the ratios are side by side; an
  epoch's seconds are the median step times the steps (a whole benchmark-size DARTS epoch takes a quarter of an
  hour here).
- `darts_memory`: what a DARTS step at the benchmark's size holds at its peak, counted tensor by tensor: the
  activations the backward pass keeps (every operation of every edge: the reason DARTS needs more memory than
  GDAS), the weights, their gradients and SGD's momentum. On a GPU add the CUDA context and cuDNN workspace.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from types import SimpleNamespace

from nasrun.data.builtin import read_cifar10_binary
from nasrun.oneshot.methods import DARTS, GDAS, RSPS, gumbel_straight_through
from nasrun.oneshot.training import start
from nasrun.spaces.nb201 import NB201Space

SIZES = {"benchmark (C=16, N=5, 391 steps/epoch)": (16, 5, 391), "reduced (C=8, N=1, 157 steps/epoch)": (8, 1, 157)}
METHODS = {"darts (1st order)": lambda: DARTS(), "darts (2nd order)": lambda: DARTS(order=2), "gdas": lambda: GDAS(),
           "rsps": lambda: RSPS()}


def _batches(root, count: int = 4):
    import torch

    train_x, train_y, _, _ = read_cifar10_binary(Path(root) / "cifar-10-batches-bin")
    x = torch.as_tensor(train_x[:64 * count]).float()
    x = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / x.std(dim=(0, 2, 3), keepdim=True)
    y = torch.as_tensor(train_y[:64 * count]).long()
    return [(x[i * 64:(i + 1) * 64], y[i * 64:(i + 1) * 64]) for i in range(count)]


def epoch_seconds(root, rounds: int = 3) -> dict:
    import torch

    batches = _batches(root)
    data = SimpleNamespace(in_channels=3, num_classes=10, device=torch.device("cpu"))
    runs = {(size, name): (start(make(), NB201Space(c, n), data, 0), make()) for size, (c, n, _) in SIZES.items()
            for name, make in METHODS.items()}
    times: dict = {key: [] for key in runs}
    generator = torch.Generator().manual_seed(0)
    for r in range(rounds + 1):  # round 0 warms up
        for key, (run, method) in runs.items():
            train, arch = batches[r % len(batches)], batches[(r + 1) % len(batches)]
            began = time.perf_counter()
            method.step(run.supernet, run.alpha, run.w_opt, run.a_opt, train, arch, method.lr, 0, generator)
            if r:
                times[key].append(time.perf_counter() - began)
    out: dict = {}
    for (size, name), seconds in times.items():
        step = statistics.median(seconds)
        out.setdefault(size, {})[name] = {"seconds_per_step": round(step, 3),
                                          "seconds_per_epoch": round(step * SIZES[size][2], 1)}
    for row in out.values():
        gdas = row["gdas"]["seconds_per_step"]
        for name in row:
            row[name]["x_gdas"] = round(row[name]["seconds_per_step"] / gdas, 2)
    return out


def darts_memory(root) -> dict:
    import torch
    import torch.nn.functional as F

    [(x, y)] = _batches(root, 1)
    saved: dict = {}

    def pack(tensor):
        saved[(tensor.untyped_storage().data_ptr(), tensor.dtype)] = tensor.untyped_storage().nbytes()
        return tensor

    out = {}
    for name, make in (("darts", DARTS), ("gdas", GDAS)):
        method = make()
        data = SimpleNamespace(in_channels=3, num_classes=10, device=torch.device("cpu"))
        run = start(method, NB201Space(16, 5), data, 0)
        saved.clear()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            assert run.alpha is not None
            if name == "darts":
                logits = run.supernet(x, F.softmax(run.alpha, dim=1))
            else:
                hard, active = gumbel_straight_through(run.alpha, 10.0, torch.Generator().manual_seed(0))
                logits = run.supernet(x, hard, active)
        F.cross_entropy(logits, y).backward()
        weights = sum(p.numel() * p.element_size() for p in run.supernet.parameters())
        activations = sum(saved.values())
        out[name] = {"activations_MiB": round(activations / 2**20, 1), "weights_MiB": round(weights / 2**20, 2),
                     "total_MiB": round((activations + 3 * weights) / 2**20, 1)}  # weights, gradients, momentum
    return out


def print_results(results: dict, console) -> None:
    from rich.table import Table

    if "oneshot_epoch_seconds" in results:
        table = Table(title="one-shot supernet: seconds per step (batch 64) and per epoch, side by side")
        for column in ("size", "method", "s / step", "s / epoch", "x GDAS"):
            table.add_column(column, justify="left" if column in ("size", "method") else "right")
        for size, row in results["oneshot_epoch_seconds"].items():
            for name, r in row.items():
                table.add_row(size, name, f"{r['seconds_per_step']:.3f}", f"{r['seconds_per_epoch']:.0f}",
                              f"{r['x_gdas']:.2f}")
        console.print(table)
    if "oneshot_memory" in results:
        for name, m in results["oneshot_memory"].items():
            console.print(f"{name} step at C=16, N=5, batch 64: {m['activations_MiB']} MiB of activations kept for "
                          f"the backward pass + weights, gradients and momentum = {m['total_MiB']} MiB",
                          highlight=False)
