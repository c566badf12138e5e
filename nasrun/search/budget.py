"""When a search stops: the `budget` group (`Budget`) and the reasons a search ends (`StopReason`, `Stop`)."""

from __future__ import annotations

from dataclasses import dataclass

from nasrun.checks import TextEnum, check_float, check_int


class StopReason(TextEnum):
    """Why a search ended. The value is what end records, best.json and the console say, as before."""

    TRIALS = "budget.trials reached"
    SECONDS = "budget.seconds reached"
    SIMULATED = "budget.simulated_seconds reached"
    EXHAUSTED = "space exhausted"  # every architecture of a finite space evaluated
    STUCK = "strategy stuck"  # the strategy kept proposing architectures already evaluated


class Stop(str):
    """A stop reason as the text the run directory records (a `str`, so JSON and comparisons are as before),
    carrying its `StopReason`: code decides by `stop.reason`, never by reading the text."""

    reason: StopReason

    def __new__(cls, reason: StopReason, text: str | None = None) -> Stop:
        stop = super().__new__(cls, text if text is not None else reason.value)
        stop.reason = reason
        return stop


@dataclass(frozen=True)
class Budget:
    """When the search stops: after `trials` evaluated architectures, after `seconds` of wall clock (a trial
    still running then is cancelled between two batches and run again on resume), or when the evaluators'
    summed cost would pass `simulated_seconds` (NAS-Bench-201's protocol: the trial that would cross it is not
    counted). Any of them may be null; at least one must be set. `epochs` is the training length per trial."""

    trials: int | None = 20
    epochs: int = 1
    seconds: float | None = None
    simulated_seconds: float | None = None

    def __post_init__(self):
        if self.trials is not None:
            check_int("trials", self.trials, low=1)
        check_int("epochs", self.epochs, low=1)
        if self.seconds is not None:
            check_float("seconds", self.seconds, low=0.0, low_open=True)
        if self.simulated_seconds is not None:
            check_float("simulated_seconds", self.simulated_seconds, low=0.0, low_open=True)
        if self.trials is None and self.seconds is None and self.simulated_seconds is None:
            raise ValueError("trials=null: with seconds and simulated_seconds null too the search would never "
                             "stop; set budget.trials, budget.seconds or budget.simulated_seconds")

    def trials_reached(self, count: int) -> bool:
        return self.trials is not None and count >= self.trials
