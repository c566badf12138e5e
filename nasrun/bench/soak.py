"""Soak (part of `make bench`; `--only soak`): a long synthetic search with each executor, watching what a
search keeps: the resident memory of its process and its workers, its open file descriptors and its threads.

Peers' users report memory that grows trial after trial until the search dies, and file handles that leak
under process pools. Each executor runs one search on `dataset=synthetic` (real trainings of small cells) for
`trials` trials or `seconds` of wall clock, whichever comes first (the simulated executor, which needs a
benchmark's costs, looks cells up in the NAS-Bench-201 table instead); the process tree is sampled every `every`
trials. Growth is the least-squares slope after the first fifth of the samples (warm-up: imports, the
allocator's pools, the first workers), per 1,000 trials. Targets: under 20 MB per 1,000 trials, and no growth
in descriptors or threads.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from nasrun.bench.common import preset
from nasrun.search.assembly import build_executor, build_search

SEARCH = ["dataset=synthetic", "dataset.num_train=128", "dataset.num_test=32", "budget=smoke", "strategy=random",
          "space=nb201", "space.channels=8", "space.cells_per_stage=1"]
# The simulated executor needs a benchmark's costs: its search looks cells up in the NAS-Bench-201 table.
TABLE = ["space=nb201", "evaluator=tabular", "strategy=random", "budget.simulated_seconds=null"]
EXECUTORS = {"inline": SEARCH, "pool": [*SEARCH, "executor=pool", "executor.workers=2"],
             "ray": [*SEARCH, "executor=ray"], "simulated": [*TABLE, "executor=simulated", "executor.workers=4"]}


def _children(pid: int) -> list[int]:
    """Every descendant of `pid` (pool workers, Ray's raylet and its workers), from /proc."""
    found, queue = [], [pid]
    while queue:
        parent = queue.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            queue += kids
    return found


def _rss_mb(pid: int) -> float:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):  # a worker that just ended
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def sample() -> dict[str, float]:
    """This process and its descendants: resident MB; this process: open descriptors and threads."""
    me = os.getpid()
    status = Path("/proc/self/status").read_text()
    threads = int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))
    return {"rss_mb": _rss_mb(me) + sum(_rss_mb(p) for p in _children(me)), "main_rss_mb": _rss_mb(me),
            "fds": len(os.listdir("/proc/self/fd")), "threads": threads, "python_threads": threading.active_count()}


class Sampler:
    """The runner's `on_trial`: a `sample()` every `every` finished trials."""

    def __init__(self, every: int):
        self.every = every
        self.at: list[int] = []
        self.samples: list[dict[str, float]] = []

    def __call__(self, record: dict) -> None:
        if (record["trial"] + 1) % self.every == 0:
            self.at.append(record["trial"] + 1)
            self.samples.append(sample())


def growth_per_1000(trials: list[int], values: list[float]) -> float | None:
    """Least-squares slope of `values` over `trials` after the first fifth of the samples, per 1,000 trials."""
    start = max(1, len(trials) // 5)
    x, y = np.array(trials[start:], float), np.array(values[start:], float)
    if len(x) < 2 or np.ptp(x) == 0:
        return None
    return float(np.polyfit(x, y, 1)[0] * 1000)


def soak(trials: int = 2000, seconds: float = 600.0, every: int = 100, executors: tuple[str, ...] = tuple(EXECUTORS)
         ) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {"trials": trials, "seconds": seconds, "every": every, "search": " ".join(SEARCH),
                           "table_search": " ".join(TABLE)}
    for name in executors:
        # The wall-clock cap is the runner's own budget: trials in flight then finish or are cancelled.
        cfg = preset(*EXECUTORS[name], f"budget.trials={trials}", f"budget.seconds={seconds}", "seed=0")
        device = torch.device("cpu")
        sampler = Sampler(every)
        with tempfile.TemporaryDirectory() as tmp:
            search = build_search(cfg, 0, device)
            executor = build_executor(cfg, search, 0, device)
            began = time.perf_counter()
            result = search.run(Path(tmp) / "run", executor=executor, on_trial=sampler)
            wall = time.perf_counter() - began
        after = sample()  # the executor closed: what is left behind
        counts, samples = sampler.at, sampler.samples
        out[name] = {
            "trials": len(result.records), "wall_seconds": wall, "samples": samples, "at": counts,
            "rss_mb_per_1000": growth_per_1000(counts, [s["rss_mb"] for s in samples]),
            "main_rss_mb_per_1000": growth_per_1000(counts, [s["main_rss_mb"] for s in samples]),
            "fds_per_1000": growth_per_1000(counts, [s["fds"] for s in samples]),
            "threads_per_1000": growth_per_1000(counts, [s["threads"] for s in samples]),
            "after_close": after,
        }
        print(f"soak {name}: {len(result.records)} trials in {wall:.0f} s; growth per 1,000 trials: "
              f"RSS {out[name]['rss_mb_per_1000']} MB, fds {out[name]['fds_per_1000']}, "
              f"threads {out[name]['threads_per_1000']}", flush=True)
    return out


def print_results(results: dict, console) -> None:
    from rich.table import Table

    s = results.get("soak")
    if not s:
        return
    table = Table(title=f"soak: {s['search']}, sampled every {s['every']} trials (growth per 1,000 trials after "
                        f"warm-up)")
    for column in ("executor", "trials", "wall s", "RSS MB (tree)", "RSS MB (main)", "fds", "threads"):
        table.add_column(column, justify="left" if column == "executor" else "right")
    for name in EXECUTORS:
        if name not in s:
            continue
        r = s[name]
        fmt = lambda v: "-" if v is None else f"{v:+.1f}"  # noqa: E731
        table.add_row(name, str(r["trials"]), f"{r['wall_seconds']:.0f}", fmt(r["rss_mb_per_1000"]),
                      fmt(r["main_rss_mb_per_1000"]), fmt(r["fds_per_1000"]), fmt(r["threads_per_1000"]))
    console.print(table)
