"""`nasrun-score`: score sampled (or all) architectures of a space with zero-cost proxies, and rank-correlate the
scores with the benchmark's accuracies.

    nasrun-score --proxies synflow,jacob_cov -n 500 space=nb201 dataset=cifar10 seed=0

Arguments after the options are the search's Hydra overrides (space, dataset, seed, device, proxy.batch_size,
proxy.cache_dir ...), so a score here is exactly the score a search with the same overrides sees, and both share
the disk cache. The command can be interrupted at any point and rerun: cached scores are not recomputed. It
writes a CSV (arch, each proxy's score and seconds, the table's accuracies when the space has one) and prints
Spearman's rho and Kendall's tau of each proxy against the target accuracy column. The gradient proxies
(grad_norm, snip, grasp, fisher, jacob_cov) are computed together from one forward pass per cell: the CSV's
`shared_seconds` is that pass (network build, forward, backward) once per cell, and each `<proxy>_seconds` is
the proxy's own work beside it.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Mapping

import numpy as np
from omegaconf import OmegaConf

from nasrun.checks import UserError
from nasrun.config.groups import build, conf_dir, proxy_options
from nasrun.config.validate import compose_config
from nasrun.contracts import is_table_space
from nasrun.evaluators.tabular import load_table
from nasrun.proxies.scorer import ProxyScorer, score_together
from nasrun.rundir.atomic import write_csv
from nasrun.search.assembly import proxy_split_seed
from nasrun.search.loop import space_size
from nasrun.training.device import usable_cores

log = logging.getLogger(__name__)

SIX = ("grad_norm", "snip", "grasp", "fisher", "synflow", "jacob_cov")  # the proxies of Abdelfattah et al.


def sample_architectures(space, count: int | None, seed: int) -> list:
    """`count` distinct architectures drawn uniformly (in draw order), or the whole space when count is None."""
    if count is None or count >= space_size(space):
        return list({arch.key: arch for arch in space}.values())  # a space may list one cell twice (macro's skips)
    rng = np.random.default_rng(seed)
    chosen: dict = {}
    while len(chosen) < count:
        arch = space.sample(rng)
        chosen.setdefault(arch.key, arch)
    return list(chosen.values())


def table_rows(cfg, space) -> Mapping | None:
    """The NAS-Bench-201 table's accuracy columns per cell, when the space is the table's; else None."""
    if not is_table_space(space):
        return None
    # The tabular evaluator's default path (dataset.root, else NASRUN_DATA), resolved by the config itself.
    copy = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))  # not struct: its evaluator may change
    copy.evaluator = OmegaConf.load(Path(conf_dir()) / "evaluator" / "tabular.yaml")
    return load_table(copy.evaluator.table)


def correlations(rows: list[dict], proxies: list[str], target: str) -> list[dict]:
    """Per proxy: Spearman's rho and Kendall's tau of the score against `target`, over cells with both."""
    from scipy.stats import kendalltau, spearmanr

    results = []
    for name in proxies:
        pairs = [(r[name], r[target]) for r in rows if r.get(name) is not None and r.get(target) is not None]
        seconds = [r[f"{name}_seconds"] for r in rows if r.get(f"{name}_seconds") is not None]
        failed = sum(1 for r in rows if r.get(f"{name}_seconds") is not None and r.get(name) is None)
        rho = tau = math.nan
        if len(pairs) >= 3:
            x, y = np.array(pairs).T
            rho, tau = spearmanr(x, y).statistic, kendalltau(x, y).statistic
        results.append({"proxy": name, "cells": len(pairs), "failed": failed, "spearman": float(rho),
                        "kendall": float(tau), "seconds": float(np.mean(seconds)) if seconds else math.nan})
    return results


def score_space(overrides: list[str], proxies: list[str], count: int | None, out: Path | None,
                target: str | None, progress: bool = True, shard: tuple[int, int] = (1, 1),
                workers: int | None = 1) -> tuple[list[dict], list[dict], Path, str | None]:
    """Score and correlate; returns (rows, correlations, csv path, target column). The CSV is written even
    when interrupted. shard=(k, n): only every n-th architecture from the k-th (1-based), so n processes
    sharing the cache score the space between them without computing a cell twice. workers: processes that
    score the cells together through the disk cache, this one and workers - 1 helpers of one CPU thread each
    (None: one per usable core on a CPU, one on a GPU or without a disk cache)."""

    unknown = [p for p in proxies if p not in proxy_options()]
    if unknown:
        raise UserError(f"--proxies: no proxy {unknown[0]!r}; choose from: {', '.join(proxy_options())}")
    if any(o.split("=")[0].lstrip("+~") == "proxy" for o in overrides):
        raise UserError("proxy=...: name the proxies with --proxies a,b,c (proxy.KEY=VALUE overrides apply to each)")
    if not proxies:
        raise UserError("--proxies: name at least one proxy")
    workers = _workers(overrides, proxies, workers)
    if workers > 1 and not any(o.split("=")[0].lstrip("+~") == "device.threads" for o in overrides):
        overrides = [*overrides, "device.threads=1"]  # processes of one thread each: 1.4x two threads in one
    cfg, space, data, scorers = _scorers(overrides, proxies)
    table = table_rows(cfg, space)
    target = target or (f"{data.name}_test_acc200" if table is not None else None)
    if table is not None and target not in next(iter(table.values())):
        raise UserError(f"--target={target}: not a column of the table; choose e.g. cifar10_test_acc200")
    archs = _chosen(space, count, cfg.seed, shard)
    first = next(iter(scorers.values()))
    index, shards = shard
    part = f"-shard{index}of{shards}" if shards > 1 else ""
    out = out or Path("outputs") / "scores" / f"{space.name}-{data.name}-seed{first.seed}-b{first.batch_size}{part}.csv"
    known = sum(arch.key in s.entries for s in scorers.values() for arch in archs)
    if known == len(archs) * len(scorers):
        workers = 1  # all in the cache: helpers would only spend their start-up reading it
    helpers = [_start_helper(overrides, proxies, count, shard) for _ in range(workers - 1)]
    rows: list[dict] = []
    began = time.perf_counter()
    finished = False
    try:
        if all(s.cache_path is not None for s in scorers.values()):
            # Through the cache, cell by cell, each scored by whichever process claims it first; the cells the
            # helpers hold are waited for at the end.
            label = f"scoring {len(archs)} {space.name} architectures" + (f", {workers} processes" if helpers else "")
            fill(list(scorers.values()), _progress(archs, label, progress))
        rows = [_row(scorers, arch, table) for arch in archs]
        finished = True
    finally:
        if not finished and not rows:  # interrupted while filling the cache: the cells scored so far
            rows = [_row(scorers, arch, table) for arch in archs
                    if all(arch.key in s.entries for s in scorers.values())]
        _write_csv(out, rows)
        _stop(helpers, wait=finished)
    seconds = time.perf_counter() - began
    computed = len(rows) * len(scorers) - known
    log.info("%d architectures x %d proxies: %d scores computed (%d processes), %d from the cache %s; %.0f s, "
             "%.2f cells/s", len(rows), len(scorers), computed, workers, known,
             first.cache_path.parent if first.cache_path else "", seconds, len(rows) / seconds if seconds else 0)
    return rows, correlations(rows, proxies, target) if target else [], out, target


def _row(scorers: dict, arch, table) -> dict:
    """One CSV row: the cell, each proxy's score and seconds, the shared pass's seconds, the table's accuracies."""
    row = {"arch": arch.key}
    shared = None
    for name, entry in zip(scorers, score_together(list(scorers.values()), arch)):
        row[name], row[f"{name}_seconds"] = entry["score"], entry["seconds"]
        shared = entry.get("shared_seconds", shared)
    row["shared_seconds"] = shared  # once per cell, whichever proxies shared it
    if table is not None:
        row.update({k: v for k, v in table[arch.key].items() if "_acc" in k})
    return row


def _scorers(overrides: list[str], proxies: list[str]):
    """(config, space, data, {proxy: scorer}) as a search with these overrides builds them."""
    configs = {name: compose_config(overrides + [f"proxy={name}"]) for name in proxies}
    cfg = configs[proxies[0]]
    device = build("device", cfg.device)
    space = build("space", cfg.space)
    data = build("dataset", cfg.dataset, seed=proxy_split_seed(cfg, cfg.seed), device=device)  # the searches' images
    space_config = OmegaConf.to_container(cfg.space, resolve=True)
    scorers = {name: build("proxy", configs[name].proxy, space=space, data=data, run_seed=cfg.seed,
                           space_config=space_config) for name in proxies}
    return cfg, space, data, scorers


def _chosen(space, count: int | None, seed: int, shard: tuple[int, int]) -> list:
    index, shards = shard
    return sample_architectures(space, count, seed)[index - 1::shards]


def _workers(overrides: list[str], proxies: list[str], workers: int | None) -> int:
    """How many processes score: as asked, or (None) one per usable core when they can share a disk cache on a
    CPU. Several need the cache: it is how they share the cells out and hand over the scores."""
    cfg = compose_config(overrides + [f"proxy={proxies[0]}"])
    cached = cfg.proxy.get("cache_dir") is not None
    if workers is None:
        import torch

        on_gpu = cfg.device.type == "cuda" or (cfg.device.type == "auto" and torch.cuda.is_available())
        return usable_cores() if cached and not on_gpu else 1
    if workers < 1:
        raise UserError(f"--workers={workers}: must be at least 1")
    if workers > 1 and not cached:
        raise UserError(f"--workers={workers}: several processes share their work through the disk cache; set "
                        f"proxy.cache_dir=DIR (it is null) or use --workers 1")
    return workers


def fill(scorers: list[ProxyScorer], archs) -> None:
    """Compute every scorer's missing entries for `archs` through their disk caches: a cell another process has
    claimed is skipped, and waited for only at the end, so processes filling the same list share it out."""
    waiting = [(s, arch) for arch in archs for s in scorers if not s.try_entry(arch)]
    for s, arch in waiting:
        s.entry(arch)


def _start_helper(overrides: list[str], proxies: list[str], count: int | None, shard: tuple[int, int]):
    import multiprocessing

    # spawn, not fork: a forked child inherits torch's thread pools mid-state
    helper = multiprocessing.get_context("spawn").Process(target=_help, args=(overrides, proxies, count, shard),
                                                           daemon=True)
    helper.start()
    return helper


def _help(overrides: list[str], proxies: list[str], count: int | None, shard: tuple[int, int]) -> None:
    """A helper process of `score_space`: fill the same cells' entries in the same cache, then exit."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the main process stops us
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    cfg, space, _, scorers = _scorers(overrides, proxies)
    fill(list(scorers.values()), _chosen(space, count, cfg.seed, shard))


def _stop(helpers: list, wait: bool) -> None:
    """Let the helpers finish (every cell is scored: they only read the cache's last lines), or, when the
    command was interrupted, stop them at once; a helper that failed is reported in one line."""
    for helper in helpers:
        helper.join(timeout=60 if wait else 0)
        if helper.is_alive():
            helper.terminate()
            helper.join()
        elif helper.exitcode != 0 and wait:
            log.warning("a helper process stopped with exit code %s; this one scored its cells", helper.exitcode)


def _progress(items, label: str, show: bool):
    if not show:
        yield from items
        return
    from rich.progress import track

    yield from track(items, description=label, transient=True)


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return

    write_csv(path, rows, list(rows[0]))


def print_correlations(results: list[dict], target: str | None, out: Path, shared: float | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"rank correlation with {target}")
    for column in ("proxy", "cells", "failed", "Spearman rho", "Kendall tau", "s / cell"):
        table.add_column(column, justify="left" if column == "proxy" else "right")
    for r in results:
        table.add_row(r["proxy"], str(r["cells"]), str(r["failed"]), f"{r['spearman']:.3f}", f"{r['kendall']:.3f}",
                      f"{r['seconds']:.3f}")
    console = Console()
    console.print(table)
    if shared is not None:
        console.print(f"shared gradient pass (network build, forward, backward; counted once): {shared:.3f} s / cell; "
                      f"s / cell above is each proxy's own work", highlight=False, soft_wrap=True)
    console.print(f"scores: {out}", highlight=False, soft_wrap=True)
