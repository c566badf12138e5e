"""Benchmarks of a trial's cost (part of `make bench`; see `nasrun.bench`).

- `evaluation`: images/s of nasrun's `evaluate()` against a minimal hand-written inference_mode loop over the
  same in-memory uint8 tensors (normalised per batch, the same batch size, precision and memory layout), in
  bf16 and fp32, with the process's system seconds and minor page faults over each pass (getrusage). The old
  500-image batch is measured beside them: it is what made a test pass cost seconds of system time.
- `trial_phases`: one trial's seconds split into training, validation and test, at `make run`'s settings and at
  2 % of the data with the 6,000-image validation split, and the old `make run` settings (20 %, 6,000).
- `threads`: nasrun-score over 100 NB201 cells with `device.threads=1` and with the default (every usable
  core, which is torch's own default here), each while one other CPU-bound process runs beside it.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

from nasrun.bench.common import ARCH, preset
from nasrun.bench.common import model as bench_model
from nasrun.data.builtin import fashion_mnist
from nasrun.evaluators.train import TrainingEvaluator
from nasrun.spaces.custom import CustomSpace
from nasrun.training.device import usable_cores
from nasrun.training.train import cpu_has_native_bf16, evaluate


def _usage() -> tuple[float, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_stime, r.ru_minflt


def _timed(run) -> dict:
    """Seconds, system seconds and minor page faults of `run()`, which returns how many images it saw."""
    sys0, flt0 = _usage()
    began = time.perf_counter()
    images = run()
    seconds = time.perf_counter() - began
    sys1, flt1 = _usage()
    return {"images_per_second": images / seconds, "system_seconds": sys1 - sys0, "page_faults": flt1 - flt0}


def _minimal_eval(model, data, batch_size: int, bf16: bool) -> int:
    """What a user writes by hand: inference_mode, slices of the uint8 tensors, normalise, channels_last."""
    import torch

    x_all, y_all = data.test_x, data.test_y
    correct = 0
    with torch.inference_mode(), torch.autocast(data.device.type, dtype=torch.bfloat16, enabled=bf16):
        for i in range(0, len(x_all), batch_size):
            x = data.normalize(x_all[i:i + batch_size]).contiguous(memory_format=torch.channels_last)
            correct += int((model(x).argmax(1) == y_all[i:i + batch_size]).sum())
    return len(x_all)


def evaluation(root: str, rounds: int = 3, images: int = 1000) -> dict:
    import torch

    data = fashion_mnist(root=root, download=False, fraction=0.02, val_size=2000, seed=0)
    data.test_x, data.test_y = data.test_x[:images], data.test_y[:images]
    model = bench_model("custom").to(memory_format=torch.channels_last).eval()
    variants: dict[str, Callable[..., int]] = {}
    for precision in ("fp32", "bf16"):
        bf16 = precision == "bf16"
        variants[f"nasrun evaluate(), {precision}"] = \
            lambda bf16=bf16: (evaluate(model, data, "test", bf16), len(data.test_y))[1]
        variants[f"minimal loop, {precision}"] = \
            lambda bf16=bf16: _minimal_eval(model, data, data.eval_batch_size, bf16)
    variants["old: batch 500, fp32"] = lambda: _minimal_eval(model, data, 500, False)
    for run in variants.values():  # warm-up: oneDNN kernel choice
        run()
    samples: dict[str, list] = {name: [] for name in variants}
    for r in range(rounds):
        for name, run in variants.items():
            samples[name].append(_timed(run))
            print(f"eval round {r + 1}/{rounds} {name}: {samples[name][-1]['images_per_second']:.0f} img/s",
                  flush=True)
    median = {name: {k: statistics.median(s[k] for s in runs) for k in runs[0]} for name, runs in samples.items()}
    speed = {name: m["images_per_second"] for name, m in median.items()}
    ratio = {p: speed[f"nasrun evaluate(), {p}"] / speed[f"minimal loop, {p}"] for p in ("fp32", "bf16")}
    return {"images": images, "batch_size": data.eval_batch_size, "rounds": rounds,
            "native_bf16": cpu_has_native_bf16(), "threads": torch.get_num_threads(), "median": median,
            "ratio_vs_minimal": ratio}


def trial_phases(root: str) -> dict:
    """One trial of the bench architecture, timed by phase, at make run's data settings and the old ones."""
    import torch


    default = preset().dataset  # make run's settings, from the config
    settings = {f"make run: fraction {default.fraction}, val_size {default.val_size}":
                dict(fraction=default.fraction, val_size=default.val_size),
                "fraction 0.02, 10 % validation": dict(fraction=0.02, val_size=None),
                "old make run: fraction 0.2, 10 % validation": dict(fraction=0.2, val_size=None)}
    out: dict[str, Any] = {}
    for name, kwargs in settings.items():
        data = fashion_mnist(root=root, download=False, batch_size=64, seed=0, **kwargs)
        evaluator = TrainingEvaluator(CustomSpace(), data, epochs=1, seed=0)
        began = time.perf_counter()
        metrics, model = evaluator(CustomSpace().make(ARCH))
        tested = evaluator.test(model)
        out[name] = {"train": metrics["train_seconds"], "val": metrics["val_seconds"], "test": tested["test_seconds"],
                     "total": time.perf_counter() - began, "train_images": len(data.train_y),
                     "val_images": len(data.val_y), "test_images": len(data.test_y),
                     "precision": metrics["precision"], "threads": torch.get_num_threads()}
        print(f"trial phases, {name}: {out[name]}", flush=True)
    return out


def threads(root: str, cells: int = 100, proxy: str = "snip", limit: float = 900.0) -> dict:
    """Wall seconds of `nasrun-score --proxies PROXY -n CELLS` (no cache) with device.threads=1 and with the
    default, each beside one busy CPU-bound process (a Python loop pinned to nothing). A run past `limit`
    seconds is stopped and reported as a lower bound."""
    base = [sys.executable, "-c", "from nasrun.commands.score import main; main()", "--proxies", proxy,
            "-n", str(cells), "--out", os.devnull, "space=nb201", "dataset=cifar10", f"dataset.root={root}",
            "dataset.fraction=0.1", "proxy.cache_dir=null"]
    out: dict[str, Any] = {"cells": cells, "proxy": proxy, "usable_cores": usable_cores()}
    for label, extra in (("device.threads=1", ["device.threads=1"]), ("default threads", [])):
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            began = time.perf_counter()
            try:
                subprocess.run(base + extra, check=True, capture_output=True, timeout=limit)
            except subprocess.TimeoutExpired:
                out[f"{label} stopped"] = True  # slower than `limit`: the figure is a lower bound
            out[label] = time.perf_counter() - began
        finally:
            busy.kill()
            busy.wait()
        print(f"threads: {label}: {out[label]:.1f} s for {cells} cells beside a busy process", flush=True)
    out["speedup"] = out["default threads"] / out["device.threads=1"]
    return out


def print_results(results: dict, console) -> None:
    from rich.table import Table

    if "evaluation" in results:
        e = results["evaluation"]
        table = Table(title=f"evaluation of {e['images']} Fashion-MNIST test images, batch {e['batch_size']}, "
                            f"{e['threads']} threads (native bf16: {e['native_bf16']}; median of {e['rounds']})")
        for column in ("variant", "images/s", "system s", "minor page faults"):
            table.add_column(column, justify="left" if column == "variant" else "right")
        for name, m in e["median"].items():
            table.add_row(name, f"{m['images_per_second']:.0f}", f"{m['system_seconds']:.2f}",
                          f"{m['page_faults']:.0f}")
        console.print(table)
        console.print(f"nasrun / minimal: fp32 {e['ratio_vs_minimal']['fp32']:.2f}x, "
                      f"bf16 {e['ratio_vs_minimal']['bf16']:.2f}x")
    if "trial_phases" in results:
        table = Table(title="one trial's seconds by phase (custom space, 1 epoch)")
        for column in ("settings", "train", "val", "test", "total"):
            table.add_column(column, justify="left" if column == "settings" else "right")
        for name, t in results["trial_phases"].items():
            table.add_row(f"{name} ({t['train_images']}/{t['val_images']}/{t['test_images']} images)",
                          *(f"{t[k]:.1f}" for k in ("train", "val", "test", "total")))
        console.print(table)
    if "threads" in results:
        t = results["threads"]
        bound = ">" if t.get("default threads stopped") else ""
        console.print(f"nasrun-score, {t['cells']} NB201 cells ({t['proxy']}) beside a busy process: "
                      f"device.threads=1 {t['device.threads=1']:.1f} s, default ({t['usable_cores']} threads) "
                      f"{bound}{t['default threads']:.1f} s: {bound}{t['speedup']:.1f}x")
