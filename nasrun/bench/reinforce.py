"""REINFORCE benchmarks (part of `make bench`; `--only reinforce`; see `nasrun.bench`).

- `toy`: on a toy reward over the custom space (the share of choices set to their last option, in %, so the
  best architecture is known and unique), the best reward REINFORCE has found after 20, 40 and 80 samples
  against random search at the same samples, 10 seeds each, for both controllers.
- `overhead`: milliseconds per child of the controller (one ask and one tell with its update) on the
  NAS-Bench-201 space (6 decisions) and on the 15-layer macro space (165 decisions).
"""

from __future__ import annotations

import statistics
import time

from nasrun.spaces.custom import CustomSpace
from nasrun.spaces.macro import MacroSpace
from nasrun.spaces.nb201 import NB201Space
from nasrun.strategies.random import RandomSearch
from nasrun.strategies.reinforce import Reinforce

CHECKPOINTS = (20, 40, 80)


def toy_reward(arch, space) -> float:
    values = arch.choices()
    return 100.0 * sum(values[d] == options[-1] for d, options in space.choices.items()) / len(space.choices)


def toy(seeds: int = 10) -> dict:
    space = CustomSpace()
    makers = {"reinforce factorized": lambda s: Reinforce(space, s, controller="factorized", lr=0.05),
              "reinforce lstm": lambda s: Reinforce(space, s, controller="lstm", lr=0.003),
              "random": lambda s: RandomSearch(space, s)}
    return best_found(makers, space, seeds, CHECKPOINTS)


def best_found(makers: dict, space, seeds: int, checkpoints) -> dict:
    """Per strategy (name -> make(seed)), the mean over seeds of the best toy reward found after each number of
    samples in `checkpoints`."""
    out = {}
    for name, make in makers.items():
        found: dict[int, list] = {n: [] for n in checkpoints}
        for seed in range(seeds):
            strategy, best = make(seed), 0.0
            for n in range(1, max(checkpoints) + 1):
                arch = strategy.ask()
                best = max(best, toy_reward(arch, space))
                strategy.tell(arch, toy_reward(arch, space))
                if n in found:
                    found[n].append(best)
        out[name] = {n: statistics.mean(v) for n, v in found.items()}
    return out


def overhead(children: int = 200) -> dict:
    out = {}
    for space_name, space in (("nb201", NB201Space()), ("macro, 15 layers", MacroSpace(15))):
        for controller in ("factorized", "lstm"):
            strategy = Reinforce(space, 0, controller=controller)
            began = time.perf_counter()
            for n in range(children):
                strategy.tell(strategy.ask(), 50.0 + n % 7)
            out[f"{controller} on {space_name}"] = (time.perf_counter() - began) / children * 1000
    return out


def print_results(results: dict, console) -> None:
    from rich.table import Table

    if "reinforce_toy" in results:
        table = Table(title="toy reward: best found (mean over seeds) at equal samples")
        table.add_column("search")
        for n in CHECKPOINTS:
            table.add_column(f"{n} samples", justify="right")
        for name, found in results["reinforce_toy"].items():
            table.add_row(name, *(f"{found[n]:.1f}" for n in CHECKPOINTS))
        console.print(table)
    if "reinforce_overhead" in results:
        console.print("controller ms per child (ask + tell): " + ", ".join(
            f"{k} {v:.2f}" for k, v in results["reinforce_overhead"].items()))
