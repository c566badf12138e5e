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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from nasrun.checks import UserError
from nasrun.contracts import (
    Evaluator,
    Executor,
    Outcome,
    Space,
    Strategy,
    Trial,
    hears_scores,
    resumes_clock,
    trains,
)
from nasrun.rundir.atomic import write_json
from nasrun.rundir.best import read_best_json, save_best
from nasrun.rundir.records import Status, better, fitness, is_ok, ok_fitness
from nasrun.rundir.trial_log import TrialWriter
from nasrun.rundir.weight_store import WeightStore
from nasrun.search.budget import Budget, Stop, StopReason
from nasrun.search.goals import MAX_INFEASIBLE, Goals, ParetoSet
from nasrun.search.trial_lines import log_trial, record_proxy_score

if TYPE_CHECKING:
    from nasrun.proxies.scorer import ProxyScorer

log = logging.getLogger(__name__)

MAX_REPEATS = 1000  # consecutive already-evaluated proposals before we conclude the strategy is stuck


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
    goals: Goals | None = None  # objectives, constraints and hardware metrics (None: val_acc alone, no metrics)
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
    pareto: ParetoSet | None = field(init=False)  # the feasible non-dominated trials (pareto.json), or None
    rebuilding: bool = field(init=False, default=False)  # replaying the log: pareto.json is written once after

    def __post_init__(self) -> None:
        self.start = self.clock()
        self.deadline = None if self.budget.seconds is None else self.start + self.budget.seconds - self.offset
        plain = self.goals is None or self.goals.objectives.plain
        self.pareto = None if plain else ParetoSet(self.goals, self.run_dir / "pareto.json")  # type: ignore[arg-type]

    def elapsed(self) -> float:
        """The run's time so far, earlier sessions of a resumed run included."""
        return self.offset + self.clock() - self.start

    def run(self, previous: list[dict]) -> SearchResult:
        leftover = self.replay(previous)
        if previous and resumes_clock(self.executor):
            self.executor.resume_clock(self.simulated)  # type: ignore[attr-defined]  # resumes_clock asked
        reason: Stop | None = None
        while True:
            if reason is None or self.goes_on(reason):
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

    def goes_on(self, reason: Stop) -> bool:
        """Whether trials already started go on after `reason` stops new ones (under a scheduler)."""
        return False

    def started(self) -> int:
        """Trials started: finished or in flight (under a scheduler also those waiting at a rung). An
        architecture rejected before training (infeasible) is not a trial the budget counts."""
        return len(self.records) - self.counts["infeasible"] + len(self.in_flight)

    def explored(self) -> int:
        """Distinct architectures finished or in flight (under a scheduler also those waiting at a rung)."""
        return len(self.done) + len(self.in_flight)

    def stop_reason(self) -> Stop | None:
        """Why no further trial may start now, or None."""
        if self.budget.trials_reached(self.started()):
            return Stop(StopReason.TRIALS)
        if self.deadline is not None and self.clock() >= self.deadline:
            return Stop(StopReason.SECONDS)
        if self.budget.simulated_seconds is not None and self.simulated >= self.budget.simulated_seconds:
            return Stop(StopReason.SIMULATED)
        if self.explored() >= space_size(self.space):
            return Stop(StopReason.EXHAUSTED, f"space exhausted: all {space_size(self.space)} architectures evaluated")
        return None

    def fill(self, leftover=None) -> Stop | None:
        """Ask the strategy for trials until every slot of the executor is busy; the reason to stop, or None.
        An architecture already evaluated is answered from its record; one in flight is never submitted twice
        (its ask waits for that trial's result)."""
        streak = rejected = 0
        while len(self.in_flight) < self.executor.slots:
            if self.go_on():  # trials under way go before new ones (under a scheduler)
                continue
            reason = self.stop_reason()
            if reason is not None:
                return reason
            arch, leftover = leftover or self.strategy.ask(), None
            key = arch.key
            known = self.known(key)
            if known is not None:  # not evaluated again (and free on the simulated clock)
                self.counts["repeats"] += 1
                value, rungs = known
                self.tell(arch, value, rungs, self.done.get(key))
                streak += 1
                if streak >= MAX_REPEATS:
                    return Stop(StopReason.STUCK,
                                f"the strategy proposed {MAX_REPEATS} evaluated architectures in a row")
                continue
            streak = 0
            if key in self.in_flight:
                self.parked.setdefault(key, []).append(arch)
                return None  # ask again once something completes
            screened = self.goals.screen(arch) if self.goals is not None else None
            if screened is not None:
                self.reject(arch, *screened)
                rejected += 1
                if rejected >= MAX_INFEASIBLE:
                    assert self.goals is not None  # screened implies goals
                    bounds = ", ".join(f"constraints.{n}={b:g}" for n, b in self.goals.objectives.constraints)
                    return Stop(StopReason.STUCK, f"the strategy proposed {MAX_INFEASIBLE} new architectures in a "
                                                  f"row that break {bounds}; loosen the bounds")
                continue
            rejected = 0
            self.submit(arch)
        return None

    def reject(self, arch, metrics: dict, violation: float) -> None:
        """Record an architecture that breaks a constraint known before training: never trained, free, and not
        counted against budget.trials; the strategy hears its violation."""
        record = {"trial": len(self.records), "key": arch.key, "arch": arch.to_json(), "status": Status.INFEASIBLE,
                  "metrics": metrics, "violation": violation, "seconds": 0.0, "elapsed": self.elapsed()}
        self.writer.append(record)
        log.debug("trial %d infeasible (violation %.3g): %s", record["trial"], violation, arch.key)
        self.finish(arch, record)

    def go_on(self) -> bool:
        """Submit a trial already under way, when one is due; whether one was."""
        return False

    def known(self, key: str) -> tuple | None:
        """(its fitness, the fidelities it was measured at or None) for an architecture already evaluated,
        answered from its record; None for a new one."""
        return (fitness(self.done[key]), None) if key in self.done else None

    def submit(self, arch) -> None:
        """Start a new trial of `arch`."""
        key = arch.key
        deadline = self.deadline if self.executor.on_budget == "cancel" else None
        inherit = self.store.inheritance(self.strategy, arch) if self.store is not None else None
        trial = Trial(self.submitted, arch, self.best, deadline, inherit=inherit,
                      keep_weights=self.store is not None)
        self.submitted += 1
        self.in_flight[key] = trial
        self.executor.submit(trial)

    def wait(self) -> list[Outcome]:
        """The next completed trials; at the deadline (on_budget=cancel) the ones in flight, cancelled."""
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
        if self.goals is not None:
            self.goals.annotate(record, arch)
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
        self.counts["infeasible"] += record["status"] == Status.INFEASIBLE
        self.simulated = max(self.simulated, record.get("simulated", 0.0))
        self.tell(arch, fitness(record), rungs, record)
        for twin in self.parked.pop(record["key"], []):
            self.counts["repeats"] += 1
            self.tell(twin, fitness(record), rungs, record)
        if better(record, self.best):
            self.best = record
        if self.pareto is not None:
            self.pareto.add(record, write=not self.rebuilding)
        if self.on_trial:
            self.on_trial(record)

    def tell(self, arch, value: float | None, rungs: dict | None = None, record: dict | None = None) -> None:
        """Tell the strategy a result (`rungs`: the fidelities it was measured at, under a scheduler; `record`:
        the trial's record, whose `Scores` a strategy that hears them gets under non-default objectives)."""
        self.strategy.tell(arch, value, **self.scores_for(record))

    def scores_for(self, record: dict | None) -> dict:
        """{"scores": Scores} for a strategy that takes them, under objectives other than the default; else {}."""
        if record is None or self.pareto is None or not hears_scores(self.strategy):
            return {}
        return {"scores": self.goals.scores(record)}  # type: ignore[union-attr]  # pareto implies goals

    def replay(self, previous: list[dict]):
        """Feed the recorded trials to the fresh strategy in the order it asks for them. The first ask the log
        cannot answer (the strategy's config changed, or the trials ran in parallel) ends the replay: every
        recorded trial left is told as it is (a tell the strategy did not ask for), and that ask is returned,
        to be evaluated first."""
        self.rebuilding = True
        try:
            return self._replay(previous)
        finally:
            self.rebuilding = False
            if self.pareto is not None and self.pareto.members:
                self.pareto.write()

    def _replay(self, previous: list[dict]):
        pending = {rec["key"]: rec for rec in previous}
        streak = 0
        while pending:
            arch = self.strategy.ask()
            if arch.key in self.done and streak < MAX_REPEATS:
                self.counts["repeats"] += 1
                streak += 1
                self.tell(arch, fitness(self.done[arch.key]), None, self.done[arch.key])
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

    def standing(self) -> list[dict]:
        """Every trial at its latest result (the finished ones' records)."""
        return self.records

    def more_counts(self) -> dict:
        """Totals beside the trials, trainings and proxy evaluations (under a scheduler: the epochs trained)."""
        return {}

    def end(self, reason: Stop) -> SearchResult:
        counts = self.counts
        records = self.standing()
        log.info("search stopped: %s (%d trials, %d evaluated now, %d replayed, %d repeats answered from records)",
                 reason, len(records), counts["evaluated"], counts["replayed"], counts["repeats"])
        result = SearchResult(records, self.best, reason, counts["evaluated"], counts["replayed"],
                              counts["repeats"], self.scorer.evaluations if self.scorer is not None else 0,
                              self.cancelled)
        evaluator_counts = {**result.counts(self.evaluator), **self.more_counts()}
        if self.counts["infeasible"]:  # rejected before training by a constraint: not trials the budget counted
            evaluator_counts["infeasible"] = self.counts["infeasible"]
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
