"""Bayesian-optimisation benchmarks (part of `make bench`; `--only bayesian`; see `nasrun.bench`).

- `overhead`: seconds per ask (the GP fit plus the annealing tree search) on the NAS-Bench-201 table, once the
  history holds 50 and 200 architectures (random cells, scored by the table's 12-epoch validation accuracy).
- `toy`: on the custom space's toy reward (the share of choices set to their last option, as in
  `nasrun.bench.reinforce`), the best reward found after 10, 20 and 40 samples against random search, 10 seeds.
"""

from __future__ import annotations

import statistics
import time

from nasrun.bench.reinforce import toy_reward

CHECKPOINTS = (10, 20, 40)


def overhead(root: str, histories=(50, 200), asks: int = 5) -> dict:
    import numpy as np
    import torch

    from nasrun.config import build_search, compose_config
    from nasrun.strategies.bayesian import BayesianOptimization

    search = build_search(compose_config(["+experiment=nb201_bayesian", f"dataset.root={root}"]), 0,
                          torch.device("cpu"))
    space, evaluator = search.space, search.evaluator
    out = {}
    for size in histories:
        strategy = BayesianOptimization(space, 0)
        rng = np.random.default_rng(size)
        while len(strategy.observed) < size:
            arch = space.sample(rng)
            strategy.tell(arch, evaluator(arch)[0]["val_acc"])
        seconds = []
        for _ in range(asks):
            began = time.perf_counter()
            arch = strategy.ask()
            seconds.append(time.perf_counter() - began)
            strategy.tell(arch, evaluator(arch)[0]["val_acc"])
        out[size] = {"seconds_per_ask": statistics.median(seconds), "asks": asks}
    return out


def toy(seeds: int = 10) -> dict:
    from nasrun.spaces.custom import CustomSpace
    from nasrun.strategies.bayesian import BayesianOptimization
    from nasrun.strategies.random import RandomSearch

    space = CustomSpace()
    makers = {"bayesian (initial 5)": lambda s: BayesianOptimization(space, s, initial=5),
              "random": lambda s: RandomSearch(space, s)}
    out = {}
    for name, make in makers.items():
        found = {n: [] for n in CHECKPOINTS}
        for seed in range(seeds):
            strategy, best = make(seed), 0.0
            for n in range(1, max(CHECKPOINTS) + 1):
                arch = strategy.ask()
                best = max(best, toy_reward(arch, space))
                strategy.tell(arch, toy_reward(arch, space))
                if n in found:
                    found[n].append(best)
        out[name] = {n: statistics.mean(v) for n, v in found.items()}
    return out


def print_results(results: dict, console) -> None:
    if "bayesian_overhead" in results:
        for size, v in results["bayesian_overhead"].items():
            console.print(f"bayesian ask on NAS-Bench-201 with {size} observed: {v['seconds_per_ask']:.3f} s "
                          f"(median of {v['asks']})", highlight=False)
    if "bayesian_toy" in results:
        for name, found in results["bayesian_toy"].items():
            console.print(f"toy reward, {name}: " + ", ".join(f"{n} samples {v:.1f}" for n, v in found.items()),
                          highlight=False)
