"""The search loop: ask -> deduplicate -> evaluate -> tell -> log, until the budget is spent.

The runner owns everything a strategy must not: the budget, deduplication, the trial log, resume, the best
model on disk. It knows nothing of Hydra; `nasrun.search.assembly` builds the pieces from the config and
`nasrun.commands.search` calls `run_search` through them.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from nasrun.checks import UserError
from nasrun.contracts import (
    Evaluator,
    Executor,
    Outcome,
    Scheduler,
    Space,
    Strategy,
    Trial,
    hears_rungs,
    keeps_weights,
    resumes_clock,
    trains,
)
from nasrun.executors.inline import InlineExecutor
from nasrun.rundir.atomic import write_json
from nasrun.rundir.best import ensure_best_weights, read_best_json, save_best
from nasrun.rundir.lock import hold_run_dir
from nasrun.rundir.records import Status, best_of, better, fitness, is_ok, ok_fitness
from nasrun.rundir.trial_log import TrialWriter, read_trials, split_log
from nasrun.rundir.weight_store import WeightStore
from nasrun.search.budget import Budget, Stop, StopReason
from nasrun.search.fidelity import Fidelity, LogReplay, Scheduled, segment_trial

if TYPE_CHECKING:
    from nasrun.proxies.scorer import ProxyScorer

log = logging.getLogger(__name__)

MAX_REPEATS = 1000  # consecutive already-evaluated proposals before we conclude the strategy is stuck
QUIET_BELOW_SECONDS = 0.1  # trials evaluated faster than this are logged at DEBUG, not INFO


@dataclass
class SearchResult:
    records: list[dict]  # every finished trial of the run, resumed ones included, numbered in completion order
    best: dict | None  # the best ok trial by val_acc
    stop_reason: str  # a `Stop` from a search; the recorded text when read back from a log
    evaluated: int  # trials evaluated by this process (not replayed from the log)
    replayed: int  # trials taken from trials.jsonl on resume
    repeats: int = 0  # proposals of already-evaluated architectures, answered from the records
    proxy_evaluations: int = 0  # distinct architectures the proxy scored (strategy, evaluator and log together)
    cancelled: list[dict] = field(default_factory=list)  # trials the wall-clock budget cut short (run again on resume)

    def counts(self, evaluator: Evaluator | None) -> dict:
        """Trainings (or table lookups standing in for them) and proxy evaluations, counted apart."""
        trained = sum(1 for r in self.records if is_ok(r)) if trains(evaluator) else 0
        return {"trials": len(self.records), "trained": trained, "proxy_evaluations": self.proxy_evaluations}


def run_search(space: Space, strategy: Strategy, evaluator: Evaluator, budget: Budget, run_dir: Path, *,
               resume: bool = False, model_info: dict | None = None, on_trial: Callable[[dict], None] | None = None,
               clock: Callable[[], float] = time.monotonic, scorer: ProxyScorer | None = None,
               on_start: Callable[[], None] | None = None, executor: Executor | None = None,
               scheduler: Scheduler | None = None) -> SearchResult:
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
    scheduler: how far each trial trains (`nasrun.search.fidelity`); None trains every trial to the end.
    """
    run_dir = Path(run_dir)
    runs_on: Executor = executor if executor is not None else InlineExecutor(evaluator)
    with hold_run_dir(run_dir):  # one writer per run directory (re-entrant: the command holds it already)
        previous, offset, logged = read_log(run_dir, space, resume)
        with runs_on:  # entered before anything is written: joining a Ray cluster that is not there changes nothing
            if on_start is not None:
                on_start()
            store = None
            if keeps_weights(space) and trains(evaluator):  # children inherit their ancestor's weights
                store = WeightStore(run_dir / "weights", keeps_weights(space))
                store.recover(previous)
            best_recorded = best_of(logged if scheduler is not None else previous)
            if resume and best_recorded is not None:
                # Before any new trial: the log decides the best so far, and best.json and best.pt must match it.
                ensure_best_weights(run_dir, best_recorded, evaluator, space, model_info or {},
                                    kept=store.load if store is not None else None)
            with TrialWriter(run_dir / "trials.jsonl") as writer:
                search = Search(space, strategy, evaluator, budget, runs_on, run_dir, model_info or {}, writer,
                                scorer, on_trial, clock, store=store, offset=offset,
                                fidelity=None if scheduler is None else Fidelity(scheduler, run_dir))
                return search.run(logged if scheduler is not None else previous)


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
        log.info("resuming %s: %d recorded trials", run_dir, len(previous))
    return previous, logged[-1].get("elapsed", 0.0) if logged else 0.0, logged


@dataclass
class Search:
    """One search in progress: the loop and what it knows (recorded trials, the best, the simulated clock, the
    trials in flight). Budget, deduplication, resume and logging are each one method. Built whole: its clock
    starts, and the wall-clock budget becomes a deadline on that clock, when it is made."""

    space: Space
    strategy: Strategy
    evaluator: Evaluator | None  # None where the executor's workers build their own
    budget: Budget
    executor: Executor
    run_dir: Path
    model_info: dict
    writer: TrialWriter  # trials.jsonl, open for appending
    scorer: ProxyScorer | None = None
    on_trial: Callable[[dict], None] | None = None
    clock: Callable[[], float] = time.monotonic
    store: WeightStore | None = None  # the weights children inherit (space=morph), or None
    offset: float = 0.0  # the run's clock where its log ends: a resumed run's time goes on from there
    fidelity: Fidelity | None = None  # the scheduler's trials in progress (scheduler=...), or None
    replaying: LogReplay | None = None  # a resumed scheduled run's log, answering segments it holds
    records: list[dict] = field(default_factory=list)  # finished trials in completion order (the log's order)
    done: dict[str, dict] = field(default_factory=dict)  # key -> finished record, for deduplication
    in_flight: dict[str, Trial] = field(default_factory=dict)  # key -> Trial submitted and not yet completed
    parked: dict[str, list] = field(default_factory=dict)  # key -> asks of an architecture in flight
    cancelled: list[dict] = field(default_factory=list)
    best: dict | None = None
    simulated: float = 0.0  # the simulated clock: the latest finish of the trials so far
    submitted: int = 0
    counts: Counter = field(default_factory=Counter)  # evaluated, replayed, repeats
    start: float = field(init=False)
    deadline: float | None = field(init=False)  # the wall-clock budget as a time on `clock`, or None

    def __post_init__(self) -> None:
        self.start = self.clock()
        self.deadline = None if self.budget.seconds is None else self.start + self.budget.seconds - self.offset

    def elapsed(self) -> float:
        """The run's time so far, earlier sessions of a resumed run included."""
        return self.offset + self.clock() - self.start

    def run(self, previous: list[dict]) -> SearchResult:
        if self.fidelity is None:
            leftover = self.replay(previous)
        else:  # the loop itself replays a scheduled run: segments the log holds are answered from it
            leftover, self.replaying = None, LogReplay(previous) if previous else None
            numbers = [r["trial"] for r in previous if "trial" in r]
            self.fidelity.next_number = max(numbers, default=-1) + 1  # a trial the log lacks takes a new number
        if previous and resumes_clock(self.executor):
            self.executor.resume_clock(self.simulated)  # type: ignore[attr-defined]  # resumes_clock asked
        reason: Stop | None = None
        while True:
            # Under a scheduler, trials already started go on after budget.trials is reached (it counts starts).
            if reason is None or (self.fidelity is not None and reason.reason in (StopReason.TRIALS,
                                                                                  StopReason.EXHAUSTED)):
                reason, leftover = self.fill(leftover), None
            if not self.in_flight:
                break
            for outcome in self.wait():
                reason = self.complete(outcome) or reason
            if reason is not None and reason.reason is StopReason.SIMULATED and self.in_flight:
                # The trials still running would all finish later on the simulated clock: none of them counts.
                self.executor.cancel()
                self.in_flight.clear()
        return self.end(reason or Stop(StopReason.TRIALS))

    def started(self) -> int:
        """Trials started: finished or in flight (under a scheduler also those waiting at a rung)."""
        return self.fidelity.started if self.fidelity is not None else len(self.records) + len(self.in_flight)

    def stop_reason(self) -> Stop | None:
        """Why no further trial may start now, or None."""
        if self.budget.trials_reached(self.started()):
            return Stop(StopReason.TRIALS)
        if self.deadline is not None and self.clock() >= self.deadline:
            return Stop(StopReason.SECONDS)
        if self.budget.simulated_seconds is not None and self.simulated >= self.budget.simulated_seconds:
            return Stop(StopReason.SIMULATED)
        if (self.started() if self.fidelity else len(self.done) + len(self.in_flight)) >= space_size(self.space):
            return Stop(StopReason.EXHAUSTED, f"space exhausted: all {space_size(self.space)} architectures evaluated")
        return None

    def fill(self, leftover=None) -> Stop | None:
        """Ask the strategy for trials until every slot of the executor is busy; the reason to stop, or None.
        An architecture already evaluated is answered from its record; one in flight is never submitted twice
        (its ask waits for that trial's result)."""
        streak = 0
        while len(self.in_flight) < self.executor.slots:
            if self.fidelity is not None and (self.deadline is None or self.clock() < self.deadline):
                scheduled = self.fidelity.due()  # trials under way go before new ones
                if scheduled is not None:
                    self.submit_segment(scheduled)
                    continue
            reason = self.stop_reason()
            if reason is not None:
                return reason
            arch, leftover = leftover or self.strategy.ask(), None
            key = arch.key
            if key in self.done or (self.fidelity is not None and key in self.fidelity.trials
                                    and key not in self.in_flight):
                # Not evaluated again (and free on the simulated clock); a trial under way answers with its
                # latest result.
                self.counts["repeats"] += 1
                latest = fitness(self.done[key]) if key in self.done else self.fidelity.latest(key)  # type: ignore[union-attr]
                self.strategy.tell(arch, latest)
                streak += 1
                if streak >= MAX_REPEATS:
                    return Stop(StopReason.STUCK,
                                f"the strategy proposed {MAX_REPEATS} evaluated architectures in a row")
                continue
            streak = 0
            if key in self.in_flight:
                self.parked.setdefault(key, []).append(arch)
                return None  # ask again once something completes
            if self.fidelity is not None:
                number = self.replaying.number_of(key) if self.replaying is not None else None
                self.submit_segment(self.fidelity.start(arch, number))
                continue
            deadline = self.deadline if self.executor.on_budget == "cancel" else None
            inherit = self.store.inheritance(self.strategy, arch) if self.store is not None else None
            trial = Trial(self.submitted, arch, self.best, deadline, inherit=inherit,
                          keep_weights=self.store is not None)
            self.submitted += 1
            self.in_flight[key] = trial
            self.executor.submit(trial)
        return None

    def submit_segment(self, scheduled: Scheduled) -> None:
        """Submit a scheduled trial's next segment (answered from the log when a resume replays it)."""
        assert self.fidelity is not None
        key = scheduled.arch.key
        deadline = self.deadline if self.executor.on_budget == "cancel" else None
        inherit = self.store.inheritance(self.strategy, scheduled.arch) if self.store is not None and \
            not scheduled.curve else None
        trial = segment_trial(self.submitted, scheduled.arch, self.best, deadline, scheduled,
                              self.fidelity.scheduler.max_epochs, inherit, self.store is not None)
        self.submitted += 1
        self.in_flight[key] = trial
        if self.replaying is not None and self.replaying.answers(key):
            self.replaying.hold(trial)
        else:
            self.executor.submit(replace(trial, resume=self.fidelity.checkpoint_of(scheduled)))

    def wait(self) -> list[Outcome]:
        """The next completed trials; at the deadline (on_budget=cancel) the ones in flight, cancelled."""
        if self.replaying is not None:
            replayed = self.replaying.next()
            if replayed is not None:
                return [replayed]
            self.leave_log()
        deadline = self.deadline if self.executor.on_budget == "cancel" else None
        timeout = None if deadline is None else max(0.0, deadline - self.clock())
        outcomes = self.executor.completed(timeout)
        if not outcomes and deadline is not None and self.clock() >= deadline:
            outcomes = self.executor.cancel()
            self.in_flight.clear()
        return outcomes

    def complete(self, outcome: Outcome) -> Stop | None:
        """Record, log and tell one completed trial, in completion order; a reason to stop, or None."""
        arch = outcome.trial.arch
        self.in_flight.pop(arch.key, None)
        if self.fidelity is not None and outcome.record["status"] != Status.CANCELLED:
            return self.complete_segment(outcome)
        record = {"trial": len(self.records), **outcome.record}
        if record["status"] == Status.CANCELLED:
            # Recorded (the time was spent) but never ok and never the best; a resume runs it again.
            record["elapsed"] = self.elapsed()
            self.writer.append(record)
            self.cancelled.append(record)
            log.info("trial %d cancelled: %s", record["trial"], record["error"])
            return Stop(StopReason.SECONDS)
        if self.scorer is not None:
            record_proxy_score(record, self.scorer, arch)
        record["elapsed"] = self.elapsed()
        if not self.on_simulated_clock(record):
            log.debug("trial %d would end at %.0f simulated s; not counted", record["trial"], record["simulated"])
            return Stop(StopReason.SIMULATED)
        self.counts["evaluated"] += 1
        self.writer.append(record)
        if better(record, self.best):
            save_best(self.run_dir, record, outcome.weights, self.model_info)
        if self.store is not None and outcome.weights is not None and is_ok(record):
            self.store.save(record["key"], outcome.weights, ok_fitness(record))
        log_trial(record)
        self.finish(arch, record)
        return None

    def on_simulated_clock(self, record: dict) -> bool:
        """Give the trial its finish time on the simulated clock (the simulated executor sets it; otherwise the
        clock is the running sum of costs), and whether it counts: NAS-Bench-201's protocol does not count the
        evaluation that would end past `budget.simulated_seconds`."""
        cost = record["metrics"].get("cost")
        if "simulated" not in record and (cost is not None or self.budget.simulated_seconds is not None):
            if cost is None and is_ok(record):
                raise UserError(f"budget.simulated_seconds: the evaluator reported no cost for trial "
                                f"{record['trial']}; budget by budget.trials or budget.seconds instead")
            record["simulated"] = self.simulated + (cost or 0.0)  # a failed trial costs nothing
        limit = self.budget.simulated_seconds
        return limit is None or record["simulated"] <= limit

    def finish(self, arch, record: dict, rungs: dict | None = None) -> None:
        """A finished trial joins the records and the strategy hears it (so do asks parked on it)."""
        self.records.append(record)
        self.done[record["key"]] = record
        self.simulated = max(self.simulated, record.get("simulated", 0.0))
        self.tell(arch, fitness(record), rungs)
        for twin in self.parked.pop(record["key"], []):
            self.counts["repeats"] += 1
            self.tell(twin, fitness(record), rungs)
        if better(record, self.best):
            self.best = record
        if self.on_trial:
            self.on_trial(record)

    def tell(self, arch, value: float | None, rungs: dict | None = None) -> None:
        """Tell the strategy a result; with the fidelities it was measured at, when it listens for them."""
        if rungs and hears_rungs(self.strategy):
            self.strategy.tell(arch, value, rungs=dict(rungs))  # type: ignore[call-arg]  # hears_rungs asked
        else:
            self.strategy.tell(arch, value)

    def complete_segment(self, outcome: Outcome) -> Stop | None:
        """A scheduled trial's segment came back (or its record, replayed from the log): record it, save or drop
        its checkpoint, and tell the strategy when the trial ends or pauses (`nasrun.search.fidelity`)."""
        assert self.fidelity is not None
        replayed = "trial" in outcome.record  # a fresh outcome has no number yet; a logged record has
        record, scheduled, drop = self.fidelity.take(outcome, replayed)
        arch = scheduled.arch
        if not replayed:
            if self.scorer is not None:
                record_proxy_score(record, self.scorer, arch)
            record["elapsed"] = self.elapsed()
            self.writer.append(record)
            if drop is not None:
                drop.unlink(missing_ok=True)  # after the record: a kill in between leaves a spare, not a hole
            if better(record, self.best):
                save_best(self.run_dir, record, outcome.weights, self.model_info)
            log_trial(record)
        if record["status"] == Status.RUNG:
            if better(record, self.best):
                self.best = record
            if record["decision"] == "pause":  # it has ended for now: the strategy hears where it stands
                self.tell(arch, fitness(record), scheduled.rungs)
            if self.on_trial:
                self.on_trial(record)
            return None
        self.counts["replayed" if replayed else "evaluated"] += 1
        if self.store is not None and outcome.weights is not None and is_ok(record) and not replayed:
            self.store.save(record["key"], outcome.weights, ok_fitness(record))
        self.finish(arch, record, scheduled.rungs)
        return None

    def leave_log(self) -> None:
        """The replay has parted from the resumed run's log (its trials ran in parallel, or the config changed):
        take in the rest of the log as it is, and run the segments held for it again from their trials' state."""
        assert self.replaying is not None and self.fidelity is not None
        records, held = self.replaying.rest()
        self.replaying = None
        for trial in held:
            self.in_flight.pop(trial.arch.key, None)
        if records:
            log.warning("resumed run parts from its log at trial %d; taking the remaining %d records as they are",
                        records[0]["trial"], len(records))
        for record in records:
            if record["key"] in self.done:
                continue
            arch = self.space.from_json(record["arch"])
            if record["key"] not in self.fidelity.trials:
                self.fidelity.adopt(record, arch)
            self.complete_segment(Outcome(Trial(-1, arch), record))
        for trial in held:
            self.fidelity.requeue(trial.arch.key)
        self.fidelity.tidy()

    def replay(self, previous: list[dict]):
        """Feed the recorded trials to the fresh strategy in the order it asks for them. The first ask the log
        cannot answer (the strategy's config changed, or the trials ran in parallel) ends the replay: every
        recorded trial left is told as it is (a tell the strategy did not ask for), and that ask is returned,
        to be evaluated first."""
        pending = {rec["key"]: rec for rec in previous}
        streak = 0
        while pending:
            arch = self.strategy.ask()
            if arch.key in self.done and streak < MAX_REPEATS:
                self.counts["repeats"] += 1
                streak += 1
                self.strategy.tell(arch, fitness(self.done[arch.key]))
                continue
            streak = 0
            if arch.key in pending:
                self.counts["replayed"] += 1
                self.finish(arch, pending.pop(arch.key))
                continue
            log.warning("resumed run diverges from its log at trial %d; replaying the remaining %d recorded "
                        "trials as they are", len(self.records), len(pending))
            for rec in pending.values():
                self.counts["replayed"] += 1
                self.finish(self.space.from_json(rec["arch"]), rec)
            return None if arch.key in self.done else arch
        return None

    def end(self, reason: Stop) -> SearchResult:
        counts = self.counts
        # Under a scheduler, trials waiting at a rung stand at their latest result (and may go on on resume).
        records = self.records + (self.fidelity.standing() if self.fidelity is not None else [])
        log.info("search stopped: %s (%d trials, %d evaluated now, %d replayed, %d repeats answered from records)",
                 reason, len(records), counts["evaluated"], counts["replayed"], counts["repeats"])
        if self.fidelity is not None:
            files, size = self.fidelity.kept()
            log.info("scheduler: trials per rung reached %s; %d epochs trained; %d checkpoints kept (%.1f MB) for "
                     "trials paused at a rung", self.fidelity.scheduler.occupancy(), self.fidelity.epochs, files,
                     size / 1e6)
            if self.best is not None and self.best.get("epochs", 0) < self.fidelity.scheduler.max_epochs:
                log.warning("the best trial reached %d of %d epochs, so its test accuracy was not measured; resume "
                            "with a larger budget to train it on", self.best["epochs"],
                            self.fidelity.scheduler.max_epochs)
        result = SearchResult(records, self.best, reason, counts["evaluated"], counts["replayed"],
                              counts["repeats"], self.scorer.evaluations if self.scorer is not None else 0,
                              self.cancelled)
        evaluator_counts = result.counts(self.evaluator)
        if self.fidelity is not None:
            evaluator_counts["epochs_trained"] = self.fidelity.epochs
        if self.best is not None:
            # The search's totals beside its best trial: trainings and proxy evaluations counted apart.
            write_json(self.run_dir / "best.json", {**read_best_json(self.run_dir), "counts": evaluator_counts,
                                                    "stop_reason": reason})
        # The end record: the run finished (a report marks runs without one as unfinished).
        self.writer.append({"status": Status.END, "stop_reason": reason, **evaluator_counts,
                            "cancelled": [r["trial"] for r in self.cancelled], "elapsed": self.elapsed()})
        return result


def space_size(space) -> float:
    """How many architectures `space` holds: len(), or infinity for one too large for it (over 2**63, e.g. 15
    macro layers) or unbounded (no len: space=morph grows without end), which a search never exhausts."""
    try:
        return len(space)
    except (OverflowError, TypeError):
        return math.inf


def log_trial(record: dict) -> None:
    """One log line per finished trial. A table lookup makes thousands of trials a second; a console line each
    would cost more than the trial (about 1 ms through rich), so trials faster than QUIET_BELOW_SECONDS go to
    DEBUG: trials.jsonl holds every trial anyway."""
    number, metrics = record["trial"], record["metrics"]
    if not is_ok(record):
        log.warning("trial %d failed: %s", number, record["error"])
        return
    level = logging.INFO if record["seconds"] >= QUIET_BELOW_SECONDS else logging.DEBUG
    proxy = f" proxy_score={metrics['proxy_score']:.4g}" if "proxy_score" in metrics else ""
    state = "ok" if "decision" not in record else f"{record['decision']} at epoch {record['epochs']}"
    log.log(level, "trial %d %s: val_acc=%s test_acc=%s%s params=%s %s", number, state, _fmt(metrics.get("val_acc")),
            _fmt(metrics.get("test_acc")), proxy, metrics.get("params", "-"), record["key"])


def check_resumable(run_dir: Path) -> None:
    """resume=true needs a run directory whose trials.jsonl holds at least one record."""
    log_path = Path(run_dir) / "trials.jsonl"
    if not log_path.is_file() or not log_path.read_bytes().strip():
        raise UserError(f"resume=true: {run_dir} holds no trials to resume (trials.jsonl is "
                        f"{'empty' if log_path.is_file() else 'missing'}); check hydra.run.dir, or drop "
                        f"resume=true to start a new run")


def record_proxy_score(record: dict, scorer, arch) -> None:
    """Add the proxy's score of the trial's architecture (memoised: free when the strategy or the evaluator
    already scored it) and the running count of proxy evaluations. A proxy failure is noted on the trial."""
    try:
        record["proxy_score"] = scorer(arch)
    except ValueError as err:
        record["proxy_error"] = str(err)
    record["proxy_evaluations"] = scorer.evaluations


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"
