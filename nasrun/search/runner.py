"""One search in a run directory: its log read and checked (a new run must not find one, a resume must), the
run directory held, the executor entered, the weight store and best.pt brought in line with the log, then the
loop: `Search`, or `ScheduledSearch` under a scheduler."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from nasrun.checks import UserError
from nasrun.contracts import Evaluator, Executor, Scheduler, Space, Strategy, keeps_weights, trains
from nasrun.executors.inline import InlineExecutor
from nasrun.rundir.best import ensure_best_weights
from nasrun.rundir.lock import hold_run_dir
from nasrun.rundir.records import Status, best_of
from nasrun.rundir.trial_log import TrialWriter, read_trials, split_log
from nasrun.rundir.weight_store import WeightStore
from nasrun.search.budget import Budget
from nasrun.search.goals import Goals
from nasrun.search.loop import Search, SearchResult
from nasrun.search.scheduled import ScheduledSearch

if TYPE_CHECKING:
    from nasrun.proxies.scorer import ProxyScorer

log = logging.getLogger(__name__)


def run_search(space: Space, strategy: Strategy, evaluator: Evaluator, budget: Budget, run_dir: Path, *,
               resume: bool = False, model_info: dict | None = None, on_trial: Callable[[dict], None] | None = None,
               clock: Callable[[], float] = time.monotonic, scorer: ProxyScorer | None = None,
               on_start: Callable[[], None] | None = None, executor: Executor | None = None,
               scheduler: Scheduler | None = None, goals: Goals | None = None) -> SearchResult:
    """Run one search in `run_dir` and return every trial.

    resume: replay `trials.jsonl` into the fresh `strategy`, then go on. Replay feeds the strategy the same
    ask/tell sequence the first run made (recorded results stand in for evaluation), so a seeded strategy
    proposes exactly what the uninterrupted run would have (with the inline executor), and no recorded trial is
    evaluated again.
    model_info: what best.json needs besides the trial to rebuild the network (space config, shapes).
    scorer: the run's zero-cost proxy (or None); every trial records its score beside the evaluator's result.
    on_start: called once the log has been read and checked, before anything is written (the command records
    the environment there, so a refused resume leaves the run directory as it was).
    executor: where trials run (`nasrun.executors`); None runs them one at a time in this process.
    scheduler: how far each trial trains (`nasrun.search.scheduled`); None trains every trial to the end.
    goals: objectives, constraints and hardware metrics (`nasrun.search.goals`); None: val_acc alone."""
    run_dir = Path(run_dir)
    runs_on: Executor = executor if executor is not None else InlineExecutor(evaluator)
    with hold_run_dir(run_dir):  # one writer per run directory (re-entrant: the command holds it already)
        previous, offset, logged = read_log(run_dir, space, resume)
        check_same_scheduling(logged, scheduler, run_dir)
        with runs_on:  # entered before anything is written: joining a Ray cluster that is not there changes nothing
            if on_start is not None:
                on_start()
            store = None
            if keeps_weights(space) and trains(evaluator):  # children inherit their ancestor's weights
                store = WeightStore(run_dir / "weights", keeps_weights(space))
                store.recover(previous)
            best_recorded = best_of(logged)  # under a scheduler, rung results too
            if resume and best_recorded is not None:
                # Before any new trial: the log decides the best so far, and best.json and best.pt must match it.
                ensure_best_weights(run_dir, best_recorded, evaluator, space, model_info or {},
                                    kept=store.load if store is not None else None)
            with TrialWriter(run_dir / "trials.jsonl") as writer:
                pieces = (space, strategy, evaluator, budget, runs_on, run_dir, model_info or {}, writer, scorer,
                          on_trial, clock)
                if scheduler is None:
                    return Search(*pieces, store=store, offset=offset, goals=goals).run(previous)
                return ScheduledSearch(*pieces, store=store, offset=offset, goals=goals,
                                       scheduler=scheduler).run(logged)


def read_log(run_dir: Path, space, resume: bool) -> tuple[list[dict], float, list[dict]]:
    """The finished trials a run goes on from (all of its log on resume, every record checked; none for a new
    run, which must not find a log), the run's clock when its log ends, and every record. Cancelled trials run
    again and end records are only marks, but their time was spent."""
    log_path = run_dir / "trials.jsonl"
    logged = read_trials(log_path, space=space)
    if logged and not resume:
        raise UserError(f"{log_path} already holds {len(logged)} records; add resume=true to continue that run, "
                        f"or choose a new hydra.run.dir")
    if resume and not logged:
        check_resumable(run_dir)
    previous, _, _ = split_log(logged)
    if resume:
        rungs = {r["trial"] for r in logged if r["status"] == Status.RUNG} - {r["trial"] for r in previous}
        log.info("resuming %s: %d recorded trials%s", run_dir, len(previous),
                 f", {len(rungs)} more under way at a rung" if rungs else "")
    return previous, logged[-1].get("elapsed", 0.0) if logged else 0.0, logged


def check_same_scheduling(logged: list[dict], scheduler: Scheduler | None, run_dir: Path) -> None:
    """A run resumes as it was started: with a scheduler (its records carry `epochs`) or without one. Replayed
    the other way, trials waiting at a rung would be lost or full trainings taken for first rungs."""
    trials = [r for r in logged if r["status"] in (Status.OK, Status.FAILED, Status.RUNG)]
    scheduled = [r for r in trials if "decision" in r]
    if scheduler is None and scheduled:
        raise UserError(f"resume=true: {run_dir} was searched with a scheduler (its trials.jsonl has rung "
                        f"records); resume it with the same scheduler=NAME, or start a new hydra.run.dir")
    if scheduler is not None and len(scheduled) < len(trials):
        raise UserError(f"resume=true: {run_dir} was searched without a scheduler; resume it with "
                        f"scheduler=none, or start a new hydra.run.dir for a scheduled search")


def check_resumable(run_dir: Path) -> None:
    """resume=true needs a run directory whose trials.jsonl holds at least one record."""
    log_path = Path(run_dir) / "trials.jsonl"
    if not log_path.is_file() or not log_path.read_bytes().strip():
        raise UserError(f"resume=true: {run_dir} holds no trials to resume (trials.jsonl is "
                        f"{'empty' if log_path.is_file() else 'missing'}); check hydra.run.dir, or drop "
                        f"resume=true to start a new run")
