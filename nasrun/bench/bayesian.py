"""Bayesian-optimisation benchmarks (part of `make bench`; `--only bayesian`; see `nasrun.bench`).

- `overhead`: seconds per ask (the GP fit plus the annealing tree search) on the NAS-Bench-201 table, once the
  history holds 50 and 200 architectures (random cells, scored by the table's 12-epoch validation accuracy).
- `morph_search`: a small Fashion-MNIST search on space=morph, Bayesian optimisation (with and without weight
  inheritance) against random search and evolution, 3 seeds each.
- `toy`: on the custom space's toy reward (the share of choices set to their last option, as in
  `nasrun.bench.reinforce`), the best reward found after 10, 20 and 40 samples against random search, 10 seeds.
"""

from __future__ import annotations

import statistics
import time

from nasrun.bench.reinforce import best_found

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
    return best_found(makers, space, seeds, CHECKPOINTS)


def print_results(results: dict, console) -> None:
    for name, v in results.get("bayesian_morph", {}).items():
        console.print(f"space=morph, small Fashion-MNIST search, {name}: best test acc "
                      f"{v['test_acc_mean']:.2f} (seeds {', '.join(f'{a:.2f}' for a in v['test_acc'])}), "
                      f"{v['seconds_per_trial']:.1f} s per trial", highlight=False)
    if "bayesian_overhead" in results:
        for size, v in results["bayesian_overhead"].items():
            console.print(f"bayesian ask on NAS-Bench-201 with {size} observed: {v['seconds_per_ask']:.3f} s "
                          f"(median of {v['asks']})", highlight=False)
    if "bayesian_toy" in results:
        for name, found in results["bayesian_toy"].items():
            console.print(f"toy reward, {name}: " + ", ".join(f"{n} samples {v:.1f}" for n, v in found.items()),
                          highlight=False)


def morph_search(root: str, seeds: int = 3, trials: int = 8, fraction: float = 0.05) -> dict:
    """Fashion-MNIST at a fixed small budget on space=morph (resnet seed; `fraction` of the training images,
    1,000 to validate, one epoch per trial): the best-by-validation trial's test accuracy and the seconds per trial, for
    Bayesian optimisation with and without weight inheritance, random search and regularized evolution."""
    import tempfile

    from nasrun.data import fashion_mnist
    from nasrun.evaluators.train import TrainingEvaluator
    from nasrun.runner import Budget, run_search
    from nasrun.spaces.morph import MorphSpace
    from nasrun.strategies.evolution import RegularizedEvolution
    from nasrun.strategies.random import RandomSearch

    variants = {
        "bayesian, inheriting": (10, lambda space, s: _bayesian(space, s)),
        "bayesian, from scratch": (0, lambda space, s: _bayesian(space, s)),
        "random": (0, lambda space, s: RandomSearch(space, s)),
        "evolution": (0, lambda space, s: RegularizedEvolution(space, s, population_size=4, sample_size=2)),
    }
    out = {}
    for name, (keep, make) in variants.items():
        accuracies, per_trial = [], []
        for seed in range(seeds):
            space = MorphSpace("resnet", max_morphs=2, keep_weights=keep)
            data = fashion_mnist(root=root, download=False, fraction=fraction, val_size=1000, batch_size=64,
                                 seed=seed)
            evaluator = TrainingEvaluator(space, data, epochs=1, seed=seed)
            with tempfile.TemporaryDirectory() as folder:
                began = time.perf_counter()
                result = run_search(space, make(space, seed), evaluator, Budget(trials=trials), folder)
                per_trial.append((time.perf_counter() - began) / len(result.records))
            accuracies.append(result.best["metrics"]["test_acc"])
        out[name] = {"test_acc_mean": statistics.mean(accuracies), "test_acc": accuracies,
                     "seconds_per_trial": statistics.mean(per_trial)}
    return out


def _bayesian(space, seed):
    from nasrun.strategies.bayesian import BayesianOptimization

    return BayesianOptimization(space, seed, initial=2)
