"""The inline executor: one trial at a time, in the search's own process (the default, and the exact one).

With one slot, the runner's loop asks, evaluates and tells in strict turn, so a seed gives the same proposals
and metrics as it always has, and a resume replays the log exactly. Nothing can kill a trial from outside in one
process, so `trial_timeout` and the wall-clock budget are deadlines the evaluator checks between batches; for a
hard limit on a trial that may hang inside one batch, use executor=pool.
"""

from __future__ import annotations

import time
from collections import deque

from nasrun.contracts import Outcome, Trial
from nasrun.executors import check_executor_options, run_trial, timeout_error
from nasrun.rundir.records import Status


class InlineExecutor:
    slots = 1

    def __init__(self, evaluator, trial_timeout: float | None = None, on_budget: str = "cancel"):
        self.evaluator = evaluator
        self.trial_timeout, self.on_budget = check_executor_options(trial_timeout, on_budget)
        self.queue: deque[Trial] = deque()

    def submit(self, trial: Trial) -> None:
        self.queue.append(trial)

    def completed(self, timeout: float | None = None) -> list[Outcome]:
        """Run the next trial to its end (`timeout` does not apply: the trial's own deadline does)."""
        if not self.queue:
            return []
        trial = self.queue.popleft()
        began = time.monotonic()
        timeout_s = self.trial_timeout
        limit = None if timeout_s is None else began + timeout_s
        deadline = min((d for d in (trial.deadline, limit) if d is not None), default=None)
        outcome = run_trial(self.evaluator, trial, deadline)
        if timeout_s is not None and outcome.record["status"] == Status.CANCELLED and limit == deadline:
            # The trial's own limit passed before the run's: a timeout (failed), not the budget (cancelled).
            outcome.record.update(status=Status.FAILED, error=timeout_error(timeout_s, ""))
        return [outcome]

    def cancel(self) -> list[Outcome]:
        self.queue.clear()  # queued trials have not started: nothing ran, nothing to record
        return []

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.queue.clear()
