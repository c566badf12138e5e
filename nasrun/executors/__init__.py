"""Executors: where and how trials run. The runner `submit`s trials and collects them as they complete.

An executor is any object with
- `slots`: how many trials it runs at once (the runner keeps at most that many in flight);
- `submit(trial)`: start one `Trial` (or queue it until `completed` runs it, for the in-process ones);
- `completed(timeout) -> list[Outcome]`: block until at least one trial completes (or `timeout` seconds pass,
  giving []), and return the finished ones in completion order;
- `cancel() -> list[Outcome]`: stop every trial in flight; those that took real time come back as `cancelled`
  records (the in-process executors have none: a queued trial never started, a simulated one never finished);
- `on_budget` (`wait` | `cancel`): what the runner does with trials in flight when `budget.seconds` runs out;
- use as a context manager: leaving it stops its workers, whatever happened.

Options (conf/executor/): `inline` (today's sequential search, in process), `pool` (worker processes on one
machine), `ray` (Ray tasks, one machine or a cluster) and `simulated` (virtual workers on a benchmark table's
clock). Every trial's result depends only on (seed, architecture), so an executor changes when results arrive,
never what they are. Only the search's main process writes the run directory: workers return results.
"""

from __future__ import annotations

import logging
import time
import traceback

from nasrun.checks import check_choice, check_float
from nasrun.contracts import Outcome, Trial, measures_test_apart
from nasrun.deadline import TrialCancelled
from nasrun.rundir.best import cpu_weights
from nasrun.rundir.records import Status, better, record_problem

log = logging.getLogger(__name__)

ON_BUDGET = ("wait", "cancel")


def check_executor_options(trial_timeout, on_budget) -> tuple[float | None, str]:
    """The options every executor shares, checked."""
    if trial_timeout is not None:
        trial_timeout = check_float("trial_timeout", trial_timeout, low=0.0, low_open=True)
    return trial_timeout, check_choice("on_budget", on_budget, ON_BUDGET)


def run_trial(evaluator, trial: Trial, deadline: float | None = None) -> Outcome:
    """Evaluate one architecture wherever the executor runs it. Any exception (NaN loss, out of memory, a build
    error) makes a failed record, the deadline a cancelled one: a failing trial never ends the search."""
    began = time.perf_counter()
    record = {"arch": trial.arch.to_json(), "key": trial.arch.key}
    model = state = None
    try:
        extra = {} if trial.inherit is None else {"inherit": trial.inherit}
        if trial.until is not None:  # a scheduler's segment: up to that epoch, from the trial's checkpoint
            metrics, model, state = evaluator.train_segment(trial.arch, trial.until, trial.resume,
                                                            deadline=deadline, **extra)
            record["epochs"] = metrics["epochs_run"]
        else:
            metrics, model = evaluator(trial.arch, deadline=deadline, **extra)
        record.update(status=Status.OK, metrics=metrics, seconds=0.0)
        problem = record_problem({"trial": 0, **record})
        if problem is not None:  # never log what a resume could not read back: a NaN accuracy, a negative cost
            raise ValueError(f"the evaluator returned {problem}")
        wins = better(record, trial.best)
        if wins and trial.measure_test and "test_acc" not in metrics and measures_test_apart(evaluator) and \
                model is not None:
            metrics.update(evaluator.test(model, deadline=deadline))
    except TrialCancelled as err:
        record.update(status=Status.CANCELLED, metrics={}, error=str(err))
        model = state = None
    except Exception as err:  # a failing trial must not end the search; the record keeps the error
        log.debug("".join(traceback.format_exception(err)))
        record.update(status=Status.FAILED, metrics={}, error=f"{type(err).__name__}: {err}")
        model = state = None
    record["seconds"] = time.perf_counter() - began
    if record["status"] == Status.FAILED:
        # After the except block: its traceback held the failed trial's tensors, which only now can be freed.
        release_cuda_memory()
    weights = None
    if model is not None and (trial.keep_weights or better(record, trial.best)):
        weights = cpu_weights(model)
    return Outcome(trial, record, weights, state)


def failed_outcome(trial: Trial, error: str, seconds: float, status: str = Status.FAILED) -> Outcome:
    """The record of a trial its worker could not finish (killed, timed out, lost, cancelled)."""
    record = {"arch": trial.arch.to_json(), "key": trial.arch.key, "status": status, "metrics": {},
              "seconds": seconds, "error": error}
    return Outcome(trial, record)


def timeout_error(trial_timeout: float, how: str) -> str:
    """The error of a trial that ran past `executor.trial_timeout` (`how`: what was done about it)."""
    return f"timeout: the trial ran past executor.trial_timeout={trial_timeout:g} s{how}"


def wait_seconds(until: float | None, started: list[float], trial_timeout: float | None) -> float | None:
    """How long a parallel executor may block: until the caller's deadline (`until`, time.monotonic()) or the
    first running trial's timeout, whichever comes first; None: until something completes."""
    now = time.monotonic()
    waits = [until - now] if until is not None else []
    if trial_timeout is not None:
        waits += [began + trial_timeout - now for began in started]
    return max(0.0, min(waits)) if waits else None


def release_cuda_memory() -> None:
    """Give a failed trial's GPU memory back (an out-of-memory trial must not starve the next one)."""
    import sys

    if "torch" not in sys.modules:  # a table lookup never imported torch: nothing to release
        return
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
