"""Executor benchmarks (part of `make bench`; `--only executors`; see `nasrun.bench`).

- `throughput`: trials per hour of a real search (custom space, 2 % of Fashion-MNIST, 1 epoch) through the
  inline, pool (2 workers) and ray (2 trials at once) executors, one after the other in one process; worker
  start-up and data hand-over are included, as a user pays them.
- `overhead`: milliseconds per trial of each executor on the NAS-Bench-201 table, whose lookups take
  microseconds, so what is timed is the executor itself (submission, the round trip to a worker, records).
- `simulated`: asynchronous search on the table's clock, nb201_rea and nb201_random with 1, 4 and 16 virtual
  workers at 12,000 simulated seconds, 30 seeds each: final test accuracy and the simulated time at which the
  best-so-far first reaches 94.0 % test accuracy.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from nasrun.bench.common import preset
from nasrun.rundir.records import running_best
from nasrun.search.assembly import build_executor, build_search
from nasrun.search.runner import run_search

EXECUTORS = {"inline": [], "pool": ["executor=pool", "executor.workers=2"], "ray": ["executor=ray"]}
TARGET = 94.0  # % test accuracy (200 epochs) of NAS-Bench-201's CIFAR-10, the level the time-to-target is taken at


def _search(run_dir: Path, overrides: list[str], seed: int = 0):
    """One search as the `nasrun` command builds it, without Hydra's run directory; (result, seconds)."""
    import torch

    cfg = preset(*overrides, f"seed={seed}")
    device = torch.device("cpu")
    began = time.perf_counter()
    search = build_search(cfg, seed, device)
    executor = build_executor(cfg, search, seed, device)
    result = run_search(search.space, search.strategy, search.evaluator, search.budget, run_dir, executor=executor)
    return result, time.perf_counter() - began


def throughput(root: str, trials: int = 10) -> dict:
    import torch

    common = ["dataset=fashion_mnist", f"dataset.root={root}", "dataset.download=false", "dataset.fraction=0.02",
              "strategy=random", f"budget.trials={trials}", "budget.epochs=1", "budget.seconds=null"]
    out: dict[str, Any] = {"trials": trials, "threads_inline": torch.get_num_threads(), "trials_per_hour": {},
                           "seconds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in EXECUTORS.items():
            result, seconds = _search(Path(tmp) / name, common + overrides)
            assert len(result.records) == trials and all(r["status"] == "ok" for r in result.records)
            out["seconds"][name] = seconds
            out["trials_per_hour"][name] = trials / seconds * 3600
    return out


def overhead(root: str, trials: int = 400) -> dict:
    common = ["space=nb201", "evaluator=tabular", f"dataset.root={root}", "strategy=random",
              f"budget.trials={trials}", "budget.seconds=null"]
    cases = {**EXECUTORS, "simulated": ["executor=simulated", "executor.workers=2"]}
    out: dict[str, Any] = {"trials": trials, "ms_per_trial": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in cases.items():
            result, _ = _search(Path(tmp) / name, common + overrides)
            elapsed = [r["elapsed"] for r in result.records]
            # From the first completion to the last: start-up (workers, Ray) left out, every trial's path in.
            out["ms_per_trial"][name] = (elapsed[-1] - elapsed[0]) / (len(elapsed) - 1) * 1000
    return out


def time_to_target(records: list[dict]) -> float:
    """Simulated seconds at which the best trial so far (by validation) first has test accuracy >= TARGET."""

    for record, best in running_best(records):
        if best is not None and best["metrics"]["test_acc"] >= TARGET:
            return record["simulated"]
    return math.inf


def simulated(root: str, seeds: int = 30, workers=(1, 4, 16)) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for experiment in ("nb201_rea", "nb201_random"):
            for count in workers:
                finals, times, trials = [], [], []
                for seed in range(seeds):
                    overrides = [f"+experiment={experiment}", f"dataset.root={root}", "executor=simulated",
                                 f"executor.workers={count}"]
                    result, _ = _search(Path(tmp) / f"{experiment}-{count}-{seed}", overrides, seed)
                    finals.append(result.best["metrics"]["test_acc"])
                    times.append(time_to_target(result.records))
                    trials.append(len(result.records))
                out[f"{experiment} workers={count}"] = {
                    "mean": statistics.mean(finals), "std": statistics.stdev(finals),
                    "median_seconds_to_target": statistics.median(times),
                    "reached_target": sum(t < math.inf for t in times), "seeds": seeds,
                    "mean_trials": statistics.mean(trials)}
    return out


def print_results(results: dict, console) -> None:
    from rich.table import Table

    if "executor_throughput" in results:
        t = results["executor_throughput"]
        table = Table(title=f"trials per hour, custom space, 2 % of Fashion-MNIST, 1 epoch ({t['trials']} trials)")
        for column in ("executor", "seconds", "trials/hour", "vs inline"):
            table.add_column(column, justify="right" if column != "executor" else "left")
        base = t["trials_per_hour"]["inline"]
        for name, rate in t["trials_per_hour"].items():
            table.add_row(name, f"{t['seconds'][name]:.1f}", f"{rate:.0f}", f"{rate / base:.2f}x")
        console.print(table)
    if "executor_overhead" in results:
        o = results["executor_overhead"]
        console.print("executor overhead on the table (ms per trial, " + f"{o['trials']} trials): " +
                      ", ".join(f"{k} {v:.2f}" for k, v in o["ms_per_trial"].items()))
    if "simulated_async" in results:
        table = Table(title=f"asynchronous search on the simulated clock, 12,000 s; time to {TARGET} % test acc")
        for column in ("search", "test acc % (mean +- std)", "median s to target", "seeds reaching it",
                       "trials (mean)"):
            table.add_column(column)
        for name, r in results["simulated_async"].items():
            table.add_row(name, f"{r['mean']:.2f} +- {r['std']:.2f}", f"{r['median_seconds_to_target']:.0f}",
                          f"{r['reached_target']}/{r['seeds']}", f"{r['mean_trials']:.0f}")
        console.print(table)
