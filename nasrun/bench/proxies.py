"""Zero-cost proxy benchmarks (part of `make bench`; see `nasrun.bench`).

- `correlation`: Spearman's rho and Kendall's tau of each of the six proxies against NAS-Bench-201's CIFAR-10
  200-epoch test accuracy over uniformly sampled cells (default 500), through `nasrun-score` and its cache,
  beside the values Abdelfattah et al. 2021 publish over all 15625 cells.
- `timing`: seconds per cell of each proxy, network build and fresh initialisation included, at batch 64 on
  CIFAR-10 images: the proxies take turns on the same cells in each round (so machine noise hits all alike),
  the median round is reported, for random cells and for the largest cell (all nor_conv_3x3); and the six
  together as nasrun-score computes them (the five gradient proxies from one shared pass, then synflow), side
  by side with the same on networks with nasrun 0.4's pooling layer (PyTorch's AvgPool2d, whose CPU kernel
  was a third of the time), and where the five gradient proxies' time goes (build, shared pass, each proxy).
"""

from __future__ import annotations

import statistics
import time

from nasrun.bench.common import NB201_CELL
from nasrun.data.builtin import cifar10
from nasrun.proxies.correlation import score_space
from nasrun.proxies.scorer import ProxyScorer, score_together
from nasrun.spaces.nb201 import NB201Arch, NB201Space
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


def timing(root: str, cells: int = 10, rounds: int = 3, seed: int = 0, device: str = "auto") -> dict:
    import numpy as np
    import torch

    from nasrun.proxies import zero_cost as proxies  # torch: only for this bench

    dev = select_device(device)
    data = cifar10(root, download=False, seed=seed, device=dev)
    space = NB201Space()
    rng = np.random.default_rng(seed + 1)
    cases = {"random cells": [space.sample(rng) for _ in range(cells)],
             "all nor_conv_3x3": [NB201Arch.from_key(NB201_CELL)]}
    out = {"device": str(dev), "threads": torch.get_num_threads(), "batch_size": 64, "cells": cells, "rounds": rounds}
    for case, archs in cases.items():
        per_round: dict[str, list] = {name: [] for name in SIX + ("naswot",)}
        shared: list[float] = []
        before: list[float] = []
        for _ in range(rounds):
            for name in per_round:
                # A fresh scorer without a disk cache: every call computes (build, initialise, score).
                scorer = ProxyScorer(getattr(proxies, name), space, data, run_seed=seed, batch_size=64)
                began = time.perf_counter()
                for arch in archs:
                    scorer.entry(arch)
                per_round[name].append((time.perf_counter() - began) / len(archs))
            # The six as nasrun-score computes them: the five gradient proxies in one shared pass, then synflow;
            # and the same with the pooling layer nasrun used before 0.5 (PyTorch's AvgPool2d), side by side.
            for label, times in (("now", shared), ("before", before)):
                scorers = [ProxyScorer(getattr(proxies, name), space, data, run_seed=seed, batch_size=64)
                           for name in SIX]
                if label == "before":
                    for scorer in scorers:
                        scorer.build = _with_avg_pool2d(scorer.build)  # type: ignore[method-assign]
                began = time.perf_counter()
                for arch in archs:
                    score_together(scorers, arch)
                times.append((time.perf_counter() - began) / len(archs))
        seconds = {name: statistics.median(values) for name, values in per_round.items()}
        out[case] = {"seconds_per_cell": seconds, "six_one_by_one": sum(seconds[n] for n in SIX),
                     "six_shared_pass": statistics.median(shared), "six_shared_pass_before": statistics.median(before),
                     "profile": _profile(archs, space, data, seed)}
    return out


def _profile(archs, space, data, seed: int) -> dict:
    """Where a cell's time goes when all five gradient proxies are computed together: building and initialising
    the network, the shared forward and cross-entropy backward, each proxy's own work (mean seconds per cell)."""
    from nasrun.proxies import zero_cost as proxies  # torch: only for this bench

    scorer = ProxyScorer(proxies.grad_norm, space, data, run_seed=seed, batch_size=64)
    parts: dict[str, float] = {}
    for arch in archs:
        began = time.perf_counter()
        model = scorer.build(arch)
        parts["build"] = parts.get("build", 0.0) + time.perf_counter() - began
        proxies.gradient_proxies(model, scorer.batch, seconds=parts)
    return {part: value / len(archs) for part, value in parts.items()}


def _with_avg_pool2d(build):
    """`build`, with each NB201 cell's pooling edge as the `nn.AvgPool2d(3, 1, 1, count_include_pad=False)` it
    replaced (the same values; PyTorch's CPU kernel for it is the slow one)."""
    from torch import nn

    from nasrun.spaces.nb201_network import BorderAvgPool3x3  # torch: only for this bench

    def swapped(arch):
        model = build(arch)
        for module in model.modules():
            for name, child in module.named_children():
                if isinstance(child, BorderAvgPool3x3):
                    setattr(module, name, nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False))
        return model

    return swapped


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
        table = Table(title=f"seconds per NB201 cell at batch {t['batch_size']}, {t['device']} "
                            f"({t['threads']} threads; median of {t['rounds']} rounds)")
        cases = [c for c in t if isinstance(t[c], dict)]
        table.add_column("proxy")
        for case in cases:
            table.add_column(case, justify="right")
        for name in t[cases[0]]["seconds_per_cell"]:
            table.add_row(name, *(f"{t[c]['seconds_per_cell'][name]:.3f}" for c in cases))
        table.add_row("six, one by one", *(f"{t[c]['six_one_by_one']:.3f}" for c in cases))
        table.add_row("six, shared pass (nasrun-score)", *(f"{t[c]['six_shared_pass']:.3f}" for c in cases))
        if all("six_shared_pass_before" in t[c] for c in cases):
            table.add_row("six, shared pass, nasrun 0.4's pooling layer",
                          *(f"{t[c]['six_shared_pass_before']:.3f}" for c in cases))
        if all("profile" in t[c] for c in cases):
            for part in t[cases[0]]["profile"]:
                table.add_row(f"  of the five gradient proxies: {part}",
                              *(f"{t[c]['profile'].get(part, 0.0):.3f}" for c in cases))
        console.print(table)
