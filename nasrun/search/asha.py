"""Successive halving without waiting: ASHA (Li et al. 2020, "A System for Massively Parallel Hyperparameter
Tuning") and asynchronous Hyperband, its brackets run side by side.

The resource is epochs. Rungs sit at min_epochs * η^k below max_epochs, and at max_epochs. In `promote` mode
(the paper's) every trial pauses at each rung it reaches; whenever the runner has a free slot it first asks
`promotion()`: the best trial of the highest rung that is in the top 1/η of its rung's results so far and was
not promoted yet goes on to the next rung, else a new trial starts. Nothing waits for a rung to fill, so a slow
trial never holds the others back and no trial can overstep a rung (it trains to the rung and stops there). In
`stop` mode (Ray's and Syne Tune's stopping variant) a trial reaching a rung goes on at once when it is at or
above the rung's (1 - 1/η) quantile so far, and ends there otherwise.

Every decision is a function of the order of reports alone, so replaying a run's log rebuilds every rung
exactly (resume).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from nasrun.checks import UserError, check_choice, check_int
from nasrun.contracts import Decision

MODES = ("promote", "stop")


def rung_levels(min_epochs: int, max_epochs: int, reduction_factor: int) -> list[int]:
    """The rungs' epochs: min_epochs * η^k while below max_epochs, then max_epochs (integers throughout)."""
    levels, epochs = [], min_epochs
    while epochs < max_epochs:
        levels.append(epochs)
        epochs *= reduction_factor
    return levels + [max_epochs]


def bracket_count(min_epochs: int, max_epochs: int, reduction_factor: int) -> int:
    """Hyperband's s_max + 1 = floor(log_η(max/min)) + 1, counted with integers: float logarithms give
    log_3(243) = 4.999... and one bracket too few (optuna#6835)."""
    count, epochs = 1, min_epochs * reduction_factor
    while epochs <= max_epochs:
        count += 1
        epochs *= reduction_factor
    return count


def check_fidelity(min_epochs: int, max_epochs: int, reduction_factor: int) -> tuple[int, int, int]:
    check_int("min_epochs", min_epochs, low=1)
    check_int("max_epochs", max_epochs, low=1)
    check_int("reduction_factor", reduction_factor, low=2)
    if min_epochs >= max_epochs:
        raise ValueError(f"min_epochs={min_epochs}: must be below max_epochs ({max_epochs}), or no trial is ever "
                         f"cut short; lower it, or raise budget.epochs")
    return min_epochs, max_epochs, reduction_factor


class Bracket:
    """One successive-halving bracket: its rungs' results in the order they came, and who left each rung."""

    def __init__(self, levels: list[int], eta: int, mode: str):
        self.levels, self.eta, self.mode = levels, eta, mode
        self.results: list[dict[str, float]] = [{} for _ in levels]  # rung -> key -> fitness, in report order
        self.promoted: list[set[str]] = [set() for _ in levels]  # rung -> keys that went on to the next rung

    def report(self, key: str, epochs: int, value: float) -> tuple[Decision, int]:
        if epochs not in self.levels:
            raise UserError(f"a trial reached {epochs} epochs, which is not a rung of this scheduler "
                            f"({', '.join(map(str, self.levels))}): the run's log was written with other "
                            f"scheduler settings; resume with those, or start a new hydra.run.dir")
        rung = self.levels.index(epochs)
        self.results[rung][key] = value
        if rung > 0:
            self.promoted[rung - 1].add(key)  # it reached this rung from the one below (also on replay)
        if rung == len(self.levels) - 1:
            return Decision.FINISHED, epochs
        if self.mode == "promote":
            return Decision.PAUSE, epochs
        values = np.fromiter(self.results[rung].values(), dtype=float)
        if value >= np.quantile(values, 1.0 - 1.0 / self.eta):
            self.promoted[rung].add(key)
            return Decision.CONTINUE, self.levels[rung + 1]
        return Decision.STOP, epochs

    def promotable(self) -> tuple[int, str] | None:
        """(rung, key): the best not-yet-promoted trial among the top 1/η of the highest rung that has one."""
        for rung in range(len(self.levels) - 2, -1, -1):
            results = self.results[rung]
            top = sorted(results, key=lambda k: -results[k])[:len(results) // self.eta]  # stable: earlier first
            waiting = [k for k in top if k not in self.promoted[rung]]
            if waiting:
                return rung, waiting[0]
        return None

    def promote(self) -> tuple[str, int] | None:
        found = self.promotable()
        if found is None:
            return None
        rung, key = found
        self.promoted[rung].add(key)
        return key, self.levels[rung + 1]


class ASHA:
    """min_epochs: the first rung. max_epochs: the last (the whole training). reduction_factor: η, the
    fraction 1/η of each rung that goes on. mode: promote (pause at each rung; the top 1/η are promoted as
    slots free up) | stop (go on at once when in the rung's top 1/η so far, else stop)."""

    def __init__(self, max_epochs: int, min_epochs: int = 1, reduction_factor: int = 3, mode: str = "promote"):
        self.min_epochs, self.max_epochs, self.eta = check_fidelity(min_epochs, max_epochs, reduction_factor)
        self.mode = check_choice("mode", mode, MODES)
        self.brackets = [Bracket(rung_levels(min_epochs, max_epochs, reduction_factor), self.eta, self.mode)]
        self.bracket_of: dict[str, Bracket] = {}

    def start(self, key: str) -> int:
        bracket = self.brackets[self.assign()]
        self.bracket_of[key] = bracket
        return bracket.levels[0]

    def assign(self) -> int:
        return 0

    def report(self, key: str, curve: Sequence[float]) -> tuple[Decision, int]:
        bracket = self.bracket_of[key]
        if not any(key in results for results in bracket.results) and len(curve) != bracket.levels[0]:
            # Its first result sits at another bracket's first rung: a resumed parallel run whose trials started
            # in another order than the log's. The log says which bracket the trial was in.
            bracket = next((b for b in self.brackets if b.levels[0] == len(curve)), bracket)
            self.bracket_of[key] = bracket
        return bracket.report(key, len(curve), float(curve[-1]))

    def promotion(self) -> tuple[str, int] | None:
        """The promotion due now: across brackets, the one to the highest rung (ties: the first bracket). In
        stop mode nothing waits, so nothing is promoted."""
        if self.mode == "stop":
            return None
        chosen, to = None, 0
        for bracket in self.brackets:
            found = bracket.promotable()
            if found is not None and bracket.levels[found[0] + 1] > to:
                chosen, to = bracket, bracket.levels[found[0] + 1]
        return None if chosen is None else chosen.promote()

    def occupancy(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for bracket in self.brackets:
            for level, results in zip(bracket.levels, bracket.results):
                counts[level] = counts.get(level, 0) + len(results)
        return dict(sorted(counts.items()))


class Hyperband(ASHA):
    """Li et al.'s Hyperband run asynchronously: brackets of ASHA that start at rungs min_epochs * η^s
    (s = 0 .. brackets - 1), each new trial joining the bracket whose share of the trials is furthest behind.
    A bracket's share is its trial count in synchronous Hyperband, n_s = ceil((s_max+1)/(s+1) * η^s) counted
    from the most aggressive bracket (s = s_max starts at min_epochs), so the cycle of brackets is the paper's.
    brackets: how many (null: all, s_max + 1)."""

    def __init__(self, max_epochs: int, min_epochs: int = 1, reduction_factor: int = 3, mode: str = "promote",
                 brackets: int | None = None):
        super().__init__(max_epochs, min_epochs, reduction_factor, mode)
        levels = rung_levels(min_epochs, max_epochs, reduction_factor)
        most = bracket_count(min_epochs, max_epochs, reduction_factor)
        count = most if brackets is None else check_int("brackets", brackets, low=1, high=most)
        s_max = most - 1
        self.brackets = [Bracket(levels[i:], self.eta, self.mode) for i in range(count)]
        # Bracket i starts i rungs up: synchronous Hyperband's s = s_max - i.
        self.weights = [math.ceil((s_max + 1) / (s_max - i + 1) * self.eta ** (s_max - i)) for i in range(count)]
        self.credit = [0] * count

    def assign(self) -> int:
        """Smooth weighted round robin over the brackets' shares: deterministic, so a replay assigns alike."""
        for i, weight in enumerate(self.weights):
            self.credit[i] += weight
        chosen = max(range(len(self.weights)), key=lambda i: (self.credit[i], -i))
        self.credit[chosen] -= sum(self.weights)
        return chosen
