"""Schedulers (`make bench ARGS="--only schedulers"`): the same wall-clock budget for random search at full
epochs, random search under each scheduler, and regularized evolution with and without ASHA, over seeds.

Each run is the `nasrun` command in a process of its own, pinned to one core (`taskset`), two at a time on a
2-core machine, so every configuration meets the same machine. Per run: architectures explored (trials
started), epochs trained, the selected trial's test accuracy, and the wall time at which a validation accuracy
was first reached at any fidelity. Also the schedulers' own cost per decision, timed in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from nasrun.contracts import Decision, Scheduler
from nasrun.search.asha import ASHA, Hyperband
from nasrun.search.stopping import CurveStopping, MedianStopping

CONFIGS = {
    "random (9 epochs)": ["strategy=random"],
    "random + asha": ["strategy=random", "scheduler=asha"],
    "random + hyperband": ["strategy=random", "scheduler=hyperband"],
    "random + median": ["strategy=random", "scheduler=median"],
    "random + curve": ["strategy=random", "scheduler=curve"],
    "evolution (9 epochs)": ["strategy=evolution", "strategy.population_size=10", "strategy.sample_size=3"],
    "evolution + asha": ["strategy=evolution", "strategy.population_size=10", "strategy.sample_size=3",
                         "scheduler=asha"],
}
COMMON = ["dataset=fashion_mnist", "space=custom", "budget.epochs=9", "budget.trials=null"]


def run_one(name: str, seed: int, seconds: float, core: int, folder: Path, data: list[str]) -> dict:
    run_dir = folder / f"{name.replace(' ', '_').replace('(', '').replace(')', '').replace('+', 'with')}-{seed}"
    command = ["taskset", "-c", str(core), str(Path(sys.executable).parent / "nasrun"), *COMMON, *data,
               *CONFIGS[name], f"seed={seed}", f"budget.seconds={seconds}", f"hydra.run.dir={run_dir}"]
    began = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    wall = time.monotonic() - began
    if done.returncode != 0:
        return {"name": name, "seed": seed, "error": done.stderr.strip().splitlines()[-1:]}
    records = [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines() if line.strip()]
    results = [r for r in records if r["status"] in ("ok", "rung")]
    end = records[-1]
    best = json.loads((run_dir / "best.json").read_text())
    started = {r["trial"] for r in records if r["status"] in ("ok", "rung", "failed")}
    epochs = end.get("epochs_trained", sum(len(r["metrics"].get("history", [])) for r in results))
    return {"name": name, "seed": seed, "wall": wall, "explored": len(started), "epochs": epochs,
            "test": best["metrics"].get("test_acc"), "val": best["metrics"].get("val_acc"),
            "best_epochs": best.get("epochs", 9),
            "curve": [(r["elapsed"], r["metrics"]["val_acc"]) for r in results], "dir": str(run_dir)}


def decision_cost(repeats: int = 200) -> dict:
    """Milliseconds per scheduler decision, on a hand-made state of 100 trials (the curve rule fits curves)."""
    rng = np.random.default_rng(0)
    out = {}
    makers: dict[str, Callable[[], Scheduler]] = {
        "asha": lambda: ASHA(9), "hyperband": lambda: Hyperband(9), "median": lambda: MedianStopping(9),
        "curve": lambda: CurveStopping(9)}
    for name, make in makers.items():
        scheduler = make()
        curves = [np.sort(rng.uniform(50, 90, 9)).tolist() for _ in range(100)]
        for i, curve in enumerate(curves[:20]):  # finished trials to compare with
            key, epochs = f"f{i}", scheduler.start(f"f{i}")
            decision = Decision.CONTINUE
            while decision is Decision.CONTINUE:
                decision, epochs = scheduler.report(key, curve[:epochs])
        began = time.perf_counter()
        count = 0
        for i, curve in enumerate(curves[20:]):
            key = f"t{i}"
            epochs = scheduler.start(key)
            scheduler.report(key, curve[:epochs])
            count += 1
            if scheduler.promotion() is not None:
                count += 1
        out[name] = 1000 * (time.perf_counter() - began) / count
    # The curve rule's real work: a fit of three families against finished trials, at epoch 4 of 9.
    curve_rule = CurveStopping(9)
    curve_rule.finished = [[60 + 3 * e for e in range(9)]]
    began = time.perf_counter()
    for i in range(repeats // 10):
        curve_rule.should_stop([40 + 5 * e + (i % 3) for e in range(4)])
    out["curve (fit)"] = 1000 * (time.perf_counter() - began) / (repeats // 10)
    return out


def bench(seconds: float = 300.0, seeds: int = 3, fraction: float = 0.02, val_size: int = 500,
          folder: str | None = None, names: list[str] | None = None) -> dict:
    folder_path = Path(folder or tempfile.mkdtemp(prefix="nasrun-sched-"))
    data = [f"dataset.fraction={fraction}", f"dataset.val_size={val_size}"]
    jobs = [(name, seed) for seed in range(seeds) for name in (names or CONFIGS)]
    cores = os.cpu_count() or 1
    with ThreadPoolExecutor(cores) as pool:
        futures = [pool.submit(run_one, name, seed, seconds, i % cores, folder_path, data)
                   for i, (name, seed) in enumerate(jobs)]
        runs = [f.result() for f in futures]
    return {"runs": runs, "decision_ms": decision_cost(), "seconds": seconds, "folder": str(folder_path)}


def first_reach(curve: list, threshold: float) -> float | None:
    return next((t for t, v in curve if v >= threshold), None)


def summary(result: dict, threshold: float) -> list[dict]:
    rows = []
    for name in CONFIGS:
        runs = [r for r in result["runs"] if r["name"] == name and "error" not in r]
        if not runs:
            continue
        reach = [first_reach(r["curve"], threshold) for r in runs]
        tests = [r["test"] for r in runs if r["test"] is not None]
        rows.append({"name": name, "runs": len(runs),
                     "explored": (np.mean([r["explored"] for r in runs]), np.std([r["explored"] for r in runs])),
                     "epochs": (np.mean([r["epochs"] for r in runs]), np.std([r["epochs"] for r in runs])),
                     "test": (np.mean(tests), np.std(tests)) if tests else (float("nan"), float("nan")),
                     "reach": [None if t is None else round(t) for t in reach]})
    return rows


def print_results(result: dict, threshold: float = 80.0) -> None:
    print(f"same wall clock per run: {result['seconds']:.0f} s; runs in {result['folder']}")
    print(f"| configuration | runs | architectures explored | epochs trained | selected test acc % | "
          f"s to val >= {threshold:g} % (per seed) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in summary(result, threshold):
        print(f"| {row['name']} | {row['runs']} | {row['explored'][0]:.1f} ± {row['explored'][1]:.1f} | "
              f"{row['epochs'][0]:.0f} ± {row['epochs'][1]:.0f} | {row['test'][0]:.2f} ± {row['test'][1]:.2f} | "
              f"{', '.join('-' if t is None else str(t) for t in row['reach'])} |")
    errors = [r for r in result["runs"] if "error" in r]
    for r in errors:
        print(f"failed: {r['name']} seed {r['seed']}: {r['error']}")
    print("scheduler cost per decision (ms): " + ", ".join(f"{k} {v:.3f}" for k, v in result["decision_ms"].items()))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--fraction", type=float, default=0.02)
    parser.add_argument("--out", default=None)
    parser.add_argument("--configs", nargs="*", choices=list(CONFIGS), default=None)
    args = parser.parse_args()
    outcome = bench(args.seconds, args.seeds, args.fraction, folder=args.out, names=args.configs)
    Path(outcome["folder"], "result.json").write_text(json.dumps(outcome))
    print_results(outcome)
