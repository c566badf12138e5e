"""Bayesian-optimisation benchmarks (part of `make bench`; `--only bayesian`; see `nasrun.bench`).

- `overhead`: seconds per ask (the GP fit plus the annealing tree search) on the NAS-Bench-201 table and on
  space=morph, once the history holds 50 and 200 architectures.
- `inheritance`: the same morphed networks trained one epoch from scratch and from their parent's weights.
- `morph_search`: a small Fashion-MNIST search on space=morph, Bayesian optimisation (with and without weight
  inheritance) against random search and evolution, 3 seeds each.
- `toy`: on the custom space's toy reward (the share of choices set to their last option, as in
  `nasrun.bench.reinforce`), the best reward found after 10, 20 and 40 samples against random search, 10 seeds.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from nasrun.bench.reinforce import best_found
from nasrun.config.validate import compose_config
from nasrun.data.builtin import fashion_mnist
from nasrun.evaluators.train import TrainingEvaluator
from nasrun.search.assembly import build_search
from nasrun.search.budget import Budget
from nasrun.search.runner import run_search
from nasrun.spaces.custom import CustomSpace
from nasrun.spaces.morph.distance import layers_and_skips
from nasrun.spaces.morph.graph import parse
from nasrun.spaces.morph.space import SEEDS, MorphSpace
from nasrun.strategies.bayesian import BayesianOptimization
from nasrun.strategies.evolution import RegularizedEvolution
from nasrun.strategies.random import RandomSearch

CHECKPOINTS = (10, 20, 40)


def overhead(root: str, histories=(50, 200), asks: int = 5) -> dict:
    """Seconds per ask on the NAS-Bench-201 table (random cells scored by its 12-epoch validation accuracy)
    and on space=morph (the resnet seed with up to 8 random morphisms, scored by a stand-in: the seconds do not
    depend on the scores), once the history holds each of `histories` architectures."""
    import numpy as np
    import torch

    search = build_search(compose_config(["+experiment=nb201_bayesian", f"dataset.root={root}"]), 0,
                          torch.device("cpu"))

    def stand_in(arch):  # wider helps, with diminishing returns; each skip connection helps a little
        layers, skips = layers_and_skips(arch)
        return 80.0 + 5.0 * np.tanh(sum(layers) / 400.0) + len(skips)

    return {"nb201": _ask_seconds(search.space, lambda arch: search.evaluator(arch)[0]["val_acc"], histories, asks),
            "morph": _ask_seconds(MorphSpace("resnet", max_morphs=8), stand_in, histories, asks)}


def _ask_seconds(space, score, histories, asks: int) -> dict:
    import numpy as np

    out = {}
    for size in histories:
        strategy = BayesianOptimization(space, 0)
        rng = np.random.default_rng(size)
        while len(strategy.observed) < size:
            arch = space.sample(rng)
            strategy.tell(arch, score(arch))
        seconds = []
        for _ in range(asks):
            began = time.perf_counter()
            arch = strategy.ask()
            seconds.append(time.perf_counter() - began)
            strategy.tell(arch, score(arch))
        out[size] = {"seconds_per_ask": statistics.median(seconds), "asks": asks}
    return out


def inheritance(root: str, fraction: float = 0.05, seed: int = 0) -> dict:
    """The same child networks trained for one epoch on `fraction` of Fashion-MNIST, from scratch and from
    their parent's weights (the resnet seed, trained one epoch first): seconds per trial (the handing-over
    included) and validation accuracy, one child per kind of morphism, the two runs of each side by side."""
    import numpy as np

    space = MorphSpace("resnet")
    data = fashion_mnist(root=root, download=False, fraction=fraction, val_size=1000, batch_size=64, seed=seed)
    evaluator = TrainingEvaluator(space, data, epochs=1, seed=seed)
    parent = parse(SEEDS["resnet"])
    parent_metrics, model = evaluator(parent)
    weights = model.state_dict()
    children: dict = {}
    for morph in space.morphs(parent):  # the first of each kind, in the space's fixed order
        children.setdefault(morph.op.split()[0], morph)
    out = {"parent_val_acc": parent_metrics["val_acc"], "children": {}}
    for kind, morph in children.items():
        timed = {}
        for name, inherit in (("scratch", None), ("inherited", (parent, weights, [morph]))):
            began = time.perf_counter()
            metrics, _ = evaluator(morph.child, inherit=inherit)
            timed[name] = {"seconds": time.perf_counter() - began, "val_acc": metrics["val_acc"]}
        out["children"][kind] = timed
    for name in ("scratch", "inherited"):
        out[name] = {key: float(np.mean([c[name][key] for c in out["children"].values()]))
                     for key in ("seconds", "val_acc")}
    return out


def toy(seeds: int = 10) -> dict:
    space = CustomSpace()
    makers = {"bayesian (initial 5)": lambda s: BayesianOptimization(space, s, initial=5),
              "random": lambda s: RandomSearch(space, s)}
    return best_found(makers, space, seeds, CHECKPOINTS)


def print_results(results: dict, console) -> None:
    for name, v in results.get("bayesian_morph", {}).items():
        console.print(f"space=morph, small Fashion-MNIST search, {name}: best test acc "
                      f"{v['test_acc_mean']:.2f} (seeds {', '.join(f'{a:.2f}' for a in v['test_acc'])}), "
                      f"{v['seconds_per_trial']:.1f} s per trial", highlight=False)
    for space, sizes in results.get("bayesian_overhead", {}).items():
        for size, v in sizes.items():
            console.print(f"bayesian ask on {space} with {size} observed: {v['seconds_per_ask']:.3f} s "
                          f"(median of {v['asks']})", highlight=False)
    if "bayesian_inheritance" in results:
        v = results["bayesian_inheritance"]
        console.print(f"space=morph, one epoch of the same children (parent {v['parent_val_acc']:.2f} % val): "
                      f"from scratch {v['scratch']['seconds']:.1f} s, {v['scratch']['val_acc']:.2f} %; inherited "
                      f"{v['inherited']['seconds']:.1f} s, {v['inherited']['val_acc']:.2f} % (time ratio "
                      f"{v['inherited']['seconds'] / v['scratch']['seconds']:.2f})", highlight=False)
    if "bayesian_toy" in results:
        for name, found in results["bayesian_toy"].items():
            console.print(f"toy reward, {name}: " + ", ".join(f"{n} samples {v:.1f}" for n, v in found.items()),
                          highlight=False)


def morph_search(root: str, seeds: int = 3, trials: int = 8, fraction: float = 0.05) -> dict:
    """Fashion-MNIST at a fixed small budget on space=morph (resnet seed; `fraction` of the training images,
    1,000 to validate, one epoch per trial): the best-by-validation trial's test accuracy and the seconds per trial, for
    Bayesian optimisation with and without weight inheritance, random search and regularized evolution."""
    import tempfile

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
                result = run_search(space, make(space, seed), evaluator, Budget(trials=trials), Path(folder))
                per_trial.append((time.perf_counter() - began) / len(result.records))
            assert result.best is not None, "a search of trained trials has a best"
            accuracies.append(result.best["metrics"]["test_acc"])
        out[name] = {"test_acc_mean": statistics.mean(accuracies), "test_acc": accuracies,
                     "seconds_per_trial": statistics.mean(per_trial)}
    return out


def _bayesian(space, seed):
    return BayesianOptimization(space, seed, initial=2)
