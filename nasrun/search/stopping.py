"""Early-stopping rules that look at whole learning curves, decided after every epoch: the median stopping rule
(Golovin et al. 2017, Google Vizier) and learning-curve extrapolation (`nasrun.search.curves`).

Both compare a running trial with the trials that finished (reached max_epochs); until enough have, every trial
trains on. A stopped trial keeps the epochs it reached: its record says where it stopped.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from nasrun.checks import check_float, check_int
from nasrun.contracts import Decision
from nasrun.search.curves import probability_above


class EveryEpoch:
    """What both rules share: a first decision after `first` epochs, then one per epoch, and the finished
    trials' curves (in the order they finished)."""

    def __init__(self, max_epochs: int, first: int):
        self.max_epochs = check_int("max_epochs", max_epochs, low=1)
        if max_epochs < 2:
            raise ValueError(f"max_epochs={max_epochs}: one epoch leaves nothing to cut short; raise budget.epochs "
                             f"(for example budget.epochs=9)")
        self.first = min(first, self.max_epochs)
        self.finished: list[list[float]] = []
        self.reached: dict[str, int] = {}

    def start(self, key: str) -> int:
        return self.first

    def report(self, key: str, curve: Sequence[float]) -> tuple[Decision, int]:
        epochs = len(curve)
        self.reached[key] = epochs
        if epochs >= self.max_epochs:
            self.finished.append([float(v) for v in curve])
            return Decision.FINISHED, epochs
        if self.should_stop(curve):
            return Decision.STOP, epochs
        return Decision.CONTINUE, epochs + 1

    def should_stop(self, curve: Sequence[float]) -> bool:
        raise NotImplementedError

    def promotion(self) -> tuple[str, int] | None:
        return None  # nothing ever waits: a trial goes on or stops

    def occupancy(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for epochs in self.reached.values():
            counts[epochs] = counts.get(epochs, 0) + 1
        return dict(sorted(counts.items()))


class MedianStopping(EveryEpoch):
    """Golovin et al.'s rule: after `grace_epochs`, stop a trial whose best fitness so far is below the median,
    over the finished trials, of their running average (mean of their first e epochs) at the same epoch e.
    min_trials: finished trials needed before the rule stops anything."""

    def __init__(self, max_epochs: int, grace_epochs: int = 1, min_trials: int = 3):
        super().__init__(max_epochs, check_int("grace_epochs", grace_epochs, low=1))
        self.min_trials = check_int("min_trials", min_trials, low=1)

    def should_stop(self, curve: Sequence[float]) -> bool:
        epochs = len(curve)
        averages = [np.mean(c[:epochs]) for c in self.finished if len(c) >= epochs]
        if len(averages) < self.min_trials:
            return False
        return max(curve) < float(np.median(averages))


class CurveStopping(EveryEpoch):
    """Domhan et al.'s rule: from `min_epochs` on, extrapolate the curve to max_epochs and stop the trial when
    the probability that it ends above the best finished trial's final fitness is below `threshold`."""

    def __init__(self, max_epochs: int, min_epochs: int = 3, threshold: float = 0.05):
        super().__init__(max_epochs, check_int("min_epochs", min_epochs, low=2))
        self.threshold = check_float("threshold", threshold, low=0.0, high=1.0, low_open=True, high_open=True)

    def should_stop(self, curve: Sequence[float]) -> bool:
        if not self.finished:
            return False
        best = max(c[-1] for c in self.finished)
        chance = probability_above([v / 100.0 for v in curve], self.max_epochs, best / 100.0)
        return chance is not None and chance < self.threshold
