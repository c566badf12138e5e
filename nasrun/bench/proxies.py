"""Zero-cost proxy benchmarks (part of `make bench`; see `nasrun.bench`).

- `correlation`: Spearman's rho and Kendall's tau of each of the six proxies against NAS-Bench-201's CIFAR-10
  200-epoch test accuracy over uniformly sampled cells (default 500), through `nasrun-score` and its cache,
  beside the values Abdelfattah et al. 2021 publish over all 15625 cells.
- `timing`: seconds per cell of the six proxies together as nasrun-score computes them (the five gradient
  proxies from one shared pass, then synflow), network build and fresh initialisation included, at batch 64 on
  CIFAR-10 images and one CPU thread (what each nasrun-score worker runs on): GraSP by the double backward
  (before) and by the finite difference (after) taking turns cell by cell, over 50 random cells and the 10
  largest, and where the time goes after (build, shared pass, each proxy, synflow).
"""

from __future__ import annotations

import statistics
import time
from functools import partial

from nasrun.data.builtin import cifar10
from nasrun.proxies.correlation import sample_architectures, score_space
from nasrun.proxies.scorer import ProxyScorer, score_together
from nasrun.spaces.nb201 import NB201Space
from nasrun.training.device import select_device

PUBLISHED_RHO = {"synflow": 0.737, "jacob_cov": 0.731, "snip": 0.596, "grad_norm": 0.594, "grasp": 0.514,
                 "fisher": 0.36}
SIX = tuple(PUBLISHED_RHO)


def correlation(root: str, cells: int = 500, seed: int = 0, device: str = "auto") -> list[dict]:
    overrides = ["space=nb201", "dataset=cifar10", f"dataset.root={root}", f"seed={seed}", f"device={device}"]
    _, results, path, _ = score_space(overrides, list(SIX), cells, None, None)
    for r in results:
        r["published"] = PUBLISHED_RHO[r["proxy"]]
        r["csv"] = str(path)
    return results


def timing(root: str, cells: int = 50, largest: int = 10, seed: int = 0, device: str = "auto",
           threads: int = 1) -> dict:
    """Seconds per cell for the six proxies as `nasrun-score` computes them (one shared gradient pass, then
    synflow), network build included, before and after: GraSP by the double backward (`exact`, nasrun 0.6)
    and by the finite difference (0.7), cell by cell on the same cells, the two taking turns (which goes first
    alternates), so machine noise hits both alike. `threads` CPU threads: 1 is what each `nasrun-score`
    worker runs on. Cases: `cells` uniformly drawn cells and the `largest` cells (most 3x3 convolutions)."""
    import numpy as np
    import torch

    from nasrun.proxies import zero_cost as proxies  # torch: only for this bench

    dev = select_device(device, threads)
    data = cifar10(root, download=False, seed=seed, device=dev)
    space = NB201Space()
    rng = np.random.default_rng(seed + 1)
    by_size = sorted(space, key=lambda a: (-a.ops.count("nor_conv_3x3"), -a.ops.count("nor_conv_1x1"), a.key))
    cases = {f"{cells} random cells": [space.sample(rng) for _ in range(cells)],
             f"{largest} largest cells": by_size[:largest]}
    out: dict = {"device": str(dev), "threads": torch.get_num_threads(), "batch_size": 64}
    variants = {"double backward (before)": True, "finite difference (after)": False}
    for case, archs in cases.items():
        seconds: dict[str, list[float]] = {name: [] for name in variants}
        for number, arch in enumerate(archs):
            order = list(variants) if number % 2 == 0 else list(reversed(variants))
            for name in order:
                # Fresh scorers without a disk cache: every call computes (build, initialise, score).
                scorers = [ProxyScorer(partial(getattr(proxies, p), exact=variants[name]) if p == "grasp" else
                                       getattr(proxies, p), space, data, run_seed=seed, batch_size=64) for p in SIX]
                began = time.perf_counter()
                score_together(scorers, arch)
                seconds[name].append(time.perf_counter() - began)
        out[case] = {name: {"median": statistics.median(v), "mean": statistics.fmean(v)} for name, v in seconds.items()}
        out[case]["profile"] = _profile(archs, space, data, seed)
    return out


def _profile(archs, space, data, seed: int) -> dict:
    """Where a cell's time goes with the finite-difference GraSP: building and initialising the network, the
    shared forward and cross-entropy backward, each gradient proxy's own work, synflow (mean s per cell)."""
    from nasrun.proxies import zero_cost as proxies  # torch: only for this bench

    scorer = ProxyScorer(proxies.grad_norm, space, data, run_seed=seed, batch_size=64)
    parts: dict[str, float] = {}
    for arch in archs:
        began = time.perf_counter()
        model = scorer.build(arch)
        parts["build"] = parts.get("build", 0.0) + time.perf_counter() - began
        proxies.gradient_proxies(model, scorer.batch, seconds=parts)
        began = time.perf_counter()
        try:
            proxies.synflow(model, scorer.batch)
        except ValueError:
            pass  # an overflow is a score too (the scorer records it): the time counts all the same
        parts["synflow"] = parts.get("synflow", 0.0) + time.perf_counter() - began
    return {part: value / len(archs) for part, value in parts.items()}


def grasp_exactness(root: str, cells: int = 200, sweep_cells: int = 30, seed: int = 0, device: str = "auto",
                    steps=(1e-2, 3e-3, 1e-3, 3e-4, 1e-4)) -> dict:
    """GraSP by the finite difference (the default step) against the double backward on `cells` uniformly drawn
    NAS-Bench-201 cells (each network initialised and scored as `nasrun-score ... proxy.seed=seed` does):
    Spearman between the two, the relative error's percentiles and sign disagreements; and over the first
    `sweep_cells` the same for forward differences of other steps and central differences, which is how the
    default step was chosen. One CPU thread: what each nasrun-score worker runs on."""
    import numpy as np
    from scipy.stats import spearmanr

    from nasrun.proxies import zero_cost as proxies  # torch: only for this bench

    dev = select_device(device, 1)
    data = cifar10(root, download=False, seed=seed, device=dev)
    space = NB201Space()
    archs = sample_architectures(space, cells, seed)
    scorer = ProxyScorer(proxies.grasp, space, data, run_seed=seed, batch_size=64)
    exact: list[float] = []
    values: dict[str, list[float]] = {"forward, default step": []}
    timing = {"double backward": 0.0, "finite difference": 0.0}
    for number, arch in enumerate(archs):
        model = scorer.build(arch)
        began = time.perf_counter()
        exact.append(proxies.grasp(model, scorer.batch, exact=True))
        timing["double backward"] += time.perf_counter() - began
        began = time.perf_counter()
        values["forward, default step"].append(proxies.grasp(model, scorer.batch))
        timing["finite difference"] += time.perf_counter() - began
        if number < sweep_cells:
            for step in steps:
                values.setdefault(f"forward {step:g}", []).append(proxies.grasp(model, scorer.batch, step=step))
                values.setdefault(f"central {step:g}", []).append(_central_grasp(model, scorer.batch, step))
    reference = np.array(exact)
    out: dict = {"cells": len(archs), "sweep_cells": min(sweep_cells, len(archs)),
                 "seconds_per_cell": {k: v / len(archs) for k, v in timing.items()}, "rows": []}
    for name, found in values.items():
        got, ref = np.array(found), reference[:len(found)]
        zero = ref == 0  # no weight reaches the loss (all-`none` paths): both ways give exactly 0
        error = np.abs(got[~zero] - ref[~zero]) / np.abs(ref[~zero])
        out["rows"].append({"variant": name, "cells": len(got), "spearman": float(spearmanr(got, ref).statistic),
                            **{f"p{q}": float(np.percentile(error, q)) for q in (50, 90, 99, 100)},
                            "sign_flips": int(np.sum(np.sign(got) != np.sign(ref))),
                            "zero_cells": int(zero.sum()), "zero_cells_equal": int(np.sum(got[zero] == 0))})
    out["exact"], out["difference"] = exact, values["forward, default step"]
    return out


def _central_grasp(model, batch, step: float) -> float:
    """−gᵀ(H θ) with H θ by the central difference (∇L(θ(1+step)) − ∇L(θ(1−step))) / 2 step, error O(step²) but
    two passes: it is the mean of the forward differences of step and −step."""
    from nasrun.proxies import zero_cost as proxies  # torch: only for this bench

    return (proxies.grasp(model, batch, step=step) + proxies.grasp(model, batch, step=-step)) / 2


def print_results(results: dict, console) -> None:
    from rich.table import Table

    if "proxy_correlation" in results:
        rows = results["proxy_correlation"]
        table = Table(title=f"rank correlation with cifar10_test_acc200 over {rows[0]['cells']} sampled NB201 cells")
        for column in ("proxy", "Spearman rho", "published rho", "difference", "Kendall tau", "failed"):
            table.add_column(column, justify="left" if column == "proxy" else "right")
        for r in rows:
            table.add_row(r["proxy"], f"{r['spearman']:.3f}", f"{r['published']:.3f}",
                          f"{r['spearman'] - r['published']:+.3f}", f"{r['kendall']:.3f}", str(r["failed"]))
        console.print(table)
    if "proxy_timing" in results:
        t = results["proxy_timing"]
        cases = [c for c in t if isinstance(t[c], dict)]
        table = Table(title=f"seconds per NB201 cell, all six proxies as nasrun-score computes them, batch "
                            f"{t['batch_size']}, {t['device']}, {t['threads']} thread(s); side by side, cell by cell")
        table.add_column("")
        for case in cases:
            table.add_column(f"{case}: median", justify="right")
            table.add_column("mean", justify="right")
        variants = [v for v in t[cases[0]] if v != "profile"]
        for name in variants:
            table.add_row(name, *(f"{t[c][name][k]:.3f}" for c in cases for k in ("median", "mean")))
        before, after = variants
        table.add_row("speed-up", *(f"{t[c][before][k] / t[c][after][k]:.2f}x" for c in cases
                                    for k in ("median", "mean")))
        for part in t[cases[0]]["profile"]:
            table.add_row(f"  after: {part}", *(f"{t[c]['profile'].get(part, 0.0):.3f}" for c in cases for _ in "ab"))
        console.print(table)
    if "grasp_exactness" in results:
        g = results["grasp_exactness"]
        table = Table(title="GraSP by finite difference against the double backward, NB201 cells (relative error)")
        for column in ("variant", "cells", "Spearman", "median", "p90", "p99", "max", "sign flips"):
            table.add_column(column, justify="left" if column == "variant" else "right")
        for r in g["rows"]:
            table.add_row(r["variant"], str(r["cells"]), f"{r['spearman']:.5f}", f"{r['p50']:.2%}",
                          f"{r['p90']:.2%}", f"{r['p99']:.2%}", f"{r['p100']:.2%}", str(r["sign_flips"]))
        console.print(table)
        console.print("seconds per cell, grasp alone, one thread: " + ", ".join(
            f"{k} {v:.3f}" for k, v in g["seconds_per_cell"].items()), highlight=False)
