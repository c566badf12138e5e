"""Trainer throughput against hand-written loops and Matos (2023)'s DataLoader pipeline, and the default search
(`make run`) timed as a user sees it (part of `make bench`; see `nasrun.bench`)."""


from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from nasrun.bench.common import ARCH, NB201_CELL
from nasrun.bench.common import model as _model
from nasrun.data.builtin import ImageData, cifar10, fashion_mnist
from nasrun.evaluators.train import TrainingEvaluator
from nasrun.rundir.trial_log import read_trials, split_log
from nasrun.spaces.macro import NASCNN15, MacroSpace
from nasrun.training.train import TrainConfig, train, use_bf16


def nasrun_train(data, images: int, case: str, augment: bool = False) -> float:
    metrics = train(_model(case), _subset(data, images, augment), TrainConfig(epochs=1))
    return images / metrics["train_seconds"]


def nasrun_train_command(data, images: int) -> float:
    """NASCNN15 as `nasrun-train +experiment=nascnn15` trains it: the training evaluator with the preset's schedule
    (Nesterov SGD, cosine after warm-up, best-epoch weights kept) and last.pt written after the epoch. Timed from
    the call to its return, less the validation pass: model building, the steps and the checkpoint."""
    import tempfile

    subset = _subset(data, images, augment=False)
    space = MacroSpace(15)
    with tempfile.TemporaryDirectory() as folder:
        evaluator = TrainingEvaluator(space, subset, epochs=2, seed=0, optimizer="sgd", lr=0.1, nesterov=True,
                                      weight_decay=1e-4, schedule="cosine", warmup_epochs=1, restore_best=True,
                                      checkpoint=str(Path(folder) / "last.pt"))
        start = time.perf_counter()
        metrics, _ = evaluator(space.from_key(NASCNN15))
        wall = time.perf_counter() - start - metrics["val_seconds"]
    return 2 * images / wall


def _subset(data, images: int, augment: bool):
    """The first `images` training images, and tiny val/test splits: timing is then the training loop's."""

    return ImageData(**{**data.__dict__, "train_x": data.train_x[:images], "train_y": data.train_y[:images],
                        "val_x": data.val_x[:64], "val_y": data.val_y[:64],
                        "test_x": data.test_x[:64], "test_y": data.test_y[:64], "augment": augment})


def minimal_loop(data, images: int, case: str, fast: bool) -> float:
    """What a user writes by hand: pre-normalised float tensors, a permutation, slices, Adam."""
    import torch
    import torch.nn.functional as F

    x_all = data.normalize(data.train_x[:images])
    y_all = data.train_y[:images]
    model = _model(case)
    bf16 = fast and use_bf16(data.device, "auto")
    if fast:
        model = model.to(memory_format=torch.channels_last)
        x_all = x_all.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    start = time.perf_counter()
    order = torch.randperm(images, generator=torch.Generator().manual_seed(0))
    for i in range(0, images, data.batch_size):
        idx = order[i:i + data.batch_size]
        with torch.autocast(data.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    loss.item()
    return images / (time.perf_counter() - start)


def matos_pipeline(root: str, images: int) -> float:
    """Matos (2023): torchvision FashionMNIST + ToTensor through a DataLoader, batch 64, fp32, Adam 1e-3."""
    import torch
    import torch.nn.functional as F
    import torchvision
    from torchvision import transforms

    dataset = torchvision.datasets.FashionMNIST(root, train=True, download=False, transform=transforms.ToTensor())
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    model = _model("custom")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    seen = 0
    start = time.perf_counter()
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(y)
        if seen >= images:
            break
    return seen / (time.perf_counter() - start)


def throughput(root: str, images: int, rounds: int, case: str = "custom") -> dict:
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if case in ("nb201", "nascnn15"):
        data = cifar10(root=root, download=False, batch_size=128, augment=False, seed=0, device=device)
    else:
        data = fashion_mnist(root=root, download=False, batch_size=64, seed=0, device=device)
    variants = {
        "nasrun train()": lambda: nasrun_train(data, images, case),
        "minimal loop, fp32 NCHW": lambda: minimal_loop(data, images, case, fast=False),
        "minimal loop, nasrun's precision + channels_last": lambda: minimal_loop(data, images, case, fast=True),
    }
    if case == "nb201":
        variants["nasrun train() with crop + flip"] = lambda: nasrun_train(data, images, case, augment=True)
    elif case == "nascnn15":
        variants["nasrun-train (nascnn15 preset's schedule, last.pt per epoch)"] = \
            lambda: nasrun_train_command(data, images)
    else:
        variants["Matos 2023 DataLoader + ToTensor"] = lambda: matos_pipeline(root, images)
    for run in variants.values():  # warm-up: oneDNN kernel selection, page cache
        run()
    samples: dict[str, list] = {name: [] for name in variants}
    for r in range(rounds):
        for name, run in variants.items():
            samples[name].append(run())
            print(f"{case} round {r + 1}/{rounds} {name}: {samples[name][-1]:.0f} img/s", flush=True)
    median = {name: statistics.median(v) for name, v in samples.items()}
    ours = median["nasrun train()"]
    result = {
        "case": case, "dataset": data.name, "device": str(device), "bf16": use_bf16(device, "auto"),
        "images_per_round": images, "rounds": rounds, "batch_size": data.batch_size,
        "architecture": {"nb201": NB201_CELL, "nascnn15": "NASCNN15"}.get(case, ARCH), "images_per_second": median,
        "samples": samples,
        "ratio_vs_minimal_fp32": ours / median["minimal loop, fp32 NCHW"],
        "ratio_vs_minimal_same_precision": ours / median["minimal loop, nasrun's precision + channels_last"],
    }
    if case == "nascnn15":
        result["nasrun_train_ratio_vs_minimal_same_precision"] = \
            median["nasrun-train (nascnn15 preset's schedule, last.pt per epoch)"] / \
            median["minimal loop, nasrun's precision + channels_last"]
    if case == "custom":
        result["ratio_vs_matos"] = ours / median["Matos 2023 DataLoader + ToTensor"]
    return result


def default_search(root: str, out: Path) -> dict:
    """`make run`'s search (the default config), timed from the command line as a user sees it: trials, how
    many were evolution's children (after the initial population), best accuracies, minutes."""
    run_dir = out / "default-search"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "nasrun", f"hydra.run.dir={run_dir}"],
                          env={**os.environ, "NASRUN_DATA": root}, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"default search failed:\n{proc.stderr[-2000:]}")
    from omegaconf import OmegaConf

    best = json.loads((run_dir / "best.json").read_text())
    trials, cancelled, end = split_log(read_trials(run_dir / "trials.jsonl", repair=False))
    population = OmegaConf.load(run_dir / ".hydra" / "config.yaml").strategy.population_size
    return {"wall_seconds": wall, "trials": len(trials), "children": max(0, len(trials) - population),
            "cancelled": len(cancelled), "stop_reason": end["stop_reason"] if end else None,
            "best_key": best["key"], "best_trial": best["trial"],
            "best_val_acc": best["metrics"]["val_acc"], "best_test_acc": best["metrics"]["test_acc"],
            "test_passes": sum(1 for t in trials if "test_acc" in t.get("metrics", {}))}
