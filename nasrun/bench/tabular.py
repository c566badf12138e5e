"""Benchmarks on the NAS-Bench-201 table (part of `make bench`; see `nasrun.bench`).

- `runner_overhead`: microseconds per trial of the runner's own work (dedup, records, trials.jsonl, best.json,
  logging) over the same ask -> lookup -> tell loop written bare, both in this process, side by side.
- `sweeps`: `nasrun -m +experiment=nb201_rea seed='range(30)'` and the same for nb201_random and nb201_reinforce,
  as a user runs them: wall time of each whole sweep, and mean +- std of the reported accuracy beside the
  published figures.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nasrun.bench.common import preset
from nasrun.config.groups import build
from nasrun.evaluators.tabular import TabularEvaluator
from nasrun.reports.runs import load_run
from nasrun.reports.table import summarize
from nasrun.search.budget import Budget
from nasrun.search.runner import run_search
from nasrun.spaces.nb201 import NB201Space

EXPERIMENTS = ("nb201_rea", "nb201_random", "nb201_reinforce", "nb201_bayesian")


def _strategies(space, seed):
    """Each sweep preset's strategy, built from the preset itself (so the bench follows the preset's settings)."""

    return {f"{experiment} strategy": build("strategy", preset(f"+experiment={experiment}").strategy, space=space,
                                            seed=seed) for experiment in ("nb201_random", "nb201_rea")}


def _bare(strategy, evaluator, trials: int) -> tuple[float, int]:
    """The loop without a runner: ask, look up, tell. Returns (seconds, proposals)."""
    start = time.perf_counter()
    for _ in range(trials):
        arch = strategy.ask()
        metrics, _ = evaluator(arch)
        strategy.tell(arch, metrics["val_acc"])
    return time.perf_counter() - start, trials


def _runner(space, strategy, evaluator, trials: int) -> tuple[float, int]:
    """The same through `run_search` (its trials.jsonl, best.json and records; per-trial log lines of trials this
    quick go to DEBUG, so no logging is configured here)."""

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = run_search(space, strategy, evaluator, Budget(trials=trials), Path(tmp) / "run")
        seconds = time.perf_counter() - start
    return seconds, len(result.records) + result.repeats


def runner_overhead(root: str, trials: int = 2000, rounds: int = 5) -> dict:
    space = NB201Space()
    evaluator = TabularEvaluator(space, Path(root) / "nasbench201" / "nb201.csv")  # the table under --root
    out: dict[str, Any] = {"trials_per_round": trials, "rounds": rounds}
    for name in _strategies(space, 0):
        bare, runner = [], []
        for r in range(rounds):  # interleaved, fresh seeded strategies: both loops see the same proposals
            seconds, asks = _bare(_strategies(space, r)[name], evaluator, trials)
            bare.append(seconds / asks * 1e6)
            seconds, asks = _runner(space, _strategies(space, r)[name], evaluator, trials)
            runner.append(seconds / trials * 1e6)
        out[name] = {"bare_us_per_proposal": statistics.median(bare),
                     "runner_us_per_trial": statistics.median(runner),
                     "runner_overhead_us_per_trial": statistics.median(runner) - statistics.median(bare)}
    return out


def sweeps(root: str, out: Path, seeds: int = 30) -> dict:
    results = {}
    for experiment in EXPERIMENTS:
        sweep_dir = out / experiment
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "nasrun", "-m", f"+experiment={experiment}",
                               f"seed=range({seeds})", f"hydra.sweep.dir={sweep_dir}"],
                              env={**os.environ, "NASRUN_DATA": root}, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode:
            raise SystemExit(f"{experiment} sweep failed:\n{proc.stderr[-2000:]}")
        runs = [load_run(sweep_dir / str(i)) for i in range(seeds)]
        row = summarize(runs)[0].row
        results[experiment] = {
            "command": f"nasrun -m +experiment={experiment} seed='range({seeds})'",
            "wall_seconds": wall, "runs": row["runs"], "mean": row["mean"], "std": row["std"],
            "published": row["published"], "published_std": row["published_std"], "diff": row["diff"],
            "mean_trials": row["mean_trials"],
        }
    return results


def print_results(results: dict, console) -> None:
    if "tabular" in results:
        t = results["tabular"]
        for name, v in t.items():
            if isinstance(v, dict):
                console.print(f"runner on the NAS-Bench-201 table, {name}: {v['runner_us_per_trial']:.0f} us/trial "
                              f"vs {v['bare_us_per_proposal']:.0f} us bare ask/lookup/tell -> overhead "
                              f"{v['runner_overhead_us_per_trial']:.0f} us/trial")
    for _experiment, s in results.get("sweeps", {}).items():
        console.print(f"{s['command']}: {s['runs']} runs in {s['wall_seconds']:.1f} s wall, test acc "
                      f"{s['mean']:.2f} ± {s['std']:.2f} vs published {s['published']:.2f} ± "
                      f"{s['published_std']:.2f} (diff {s['diff']:+.2f}), {s['mean_trials']:.1f} trials per run")
