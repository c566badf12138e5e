"""The search loop under a scheduler (`scheduler=asha|hyperband|median|curve`): `Search` whose trials train in
segments (`nasrun.search.fidelity`), whose started trials go on after budget.trials stops new ones, and whose
resume replays the log through the loop itself.

The strategy proposes; the scheduler decides how far each proposal trains. A strategy hears a trial when it
ends (stopped, finished, failed) and when it pauses at a rung (it has ended for now; a promotion later tells it
again at the higher fidelity), with the fidelities it was measured at when its `tell` takes `rungs`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from nasrun.contracts import Outcome, Scheduler, Trial, hears_rungs
from nasrun.rundir.best import save_best
from nasrun.rundir.records import Status, better, fitness, is_ok, ok_fitness
from nasrun.search.budget import Stop, StopReason
from nasrun.search.fidelity import Fidelity, LogReplay, Scheduled, segment_trial
from nasrun.search.loop import Search
from nasrun.search.trial_lines import log_trial, record_proxy_score

log = logging.getLogger(__name__)


@dataclass
class ScheduledSearch(Search):
    scheduler: Scheduler | None = None  # required: how far each trial trains
    fidelity: Fidelity = field(init=False)  # the trials under way, their checkpoints, the segments due
    replaying: LogReplay | None = field(default=None, init=False)  # a resumed run's log, answering segments

    def __post_init__(self) -> None:
        super().__post_init__()
        assert self.scheduler is not None, "ScheduledSearch needs a scheduler"
        self.fidelity = Fidelity(self.scheduler, self.run_dir)

    def replay(self, previous: list[dict]):
        """The loop itself replays a scheduled run: the segments its log holds are answered from it (`wait`)."""
        if previous:
            self.replaying = LogReplay(previous)
            numbers = [r["trial"] for r in previous if "trial" in r]
            self.fidelity.next_number = max(numbers, default=-1) + 1  # a trial the log lacks takes a new number
        return None

    # ----- what runs: trials under way first, and they go on after budget.trials ---------------------------

    def goes_on(self, reason: Stop) -> bool:
        return reason.reason in (StopReason.TRIALS, StopReason.EXHAUSTED)  # it counts trials started

    def started(self) -> int:
        return self.fidelity.started

    def explored(self) -> int:
        return self.fidelity.started

    def go_on(self) -> bool:
        if self.deadline is not None and self.clock() >= self.deadline:
            return False
        scheduled = self.fidelity.due()
        if scheduled is None:
            return False
        self.submit_segment(scheduled)
        return True

    def known(self, key: str) -> tuple | None:
        """A finished trial answers with its record, one waiting at a rung with its latest result: each at the
        epochs it reached."""
        if key in self.fidelity.trials and key not in self.in_flight and key not in self.done:
            return self.fidelity.latest(key), dict(self.fidelity.trials[key].rungs)
        if key in self.done and "epochs" in self.done[key]:
            record = self.done[key]
            return fitness(record), {record["epochs"]: fitness(record)} if is_ok(record) else None
        return super().known(key)

    def submit(self, arch) -> None:
        number = self.replaying.number_of(arch.key) if self.replaying is not None else None
        self.submit_segment(self.fidelity.start(arch, number))

    def submit_segment(self, scheduled: Scheduled) -> None:
        """Submit a trial's next segment (held for the log when a resume replays it; otherwise sent with the
        checkpoint it goes on from)."""
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

    # ----- what came back -----------------------------------------------------------------------------------

    def wait(self) -> list[Outcome]:
        if self.replaying is not None:
            replayed = self.replaying.next()
            if replayed is not None:
                return [replayed]
            self.leave_log()
        return super().wait()

    def complete(self, outcome: Outcome) -> Stop | None:
        if outcome.record["status"] == Status.CANCELLED:  # recorded; the trial goes on from its checkpoint on resume
            number = self.fidelity.trials[outcome.trial.arch.key].number
            return super().complete(replace(outcome, record={**outcome.record, "trial": number}))
        self.in_flight.pop(outcome.trial.arch.key, None)
        replayed = "trial" in outcome.record  # a fresh outcome has no number yet; a logged record has
        record, scheduled, drop = self.fidelity.take(outcome, replayed)
        arch = scheduled.arch
        if not replayed:
            if self.scorer is not None:
                record_proxy_score(record, self.scorer, arch)
            record["elapsed"] = self.elapsed()
            if self.goals is not None:
                self.goals.annotate(record, arch)
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
                self.tell(arch, fitness(record), scheduled.rungs, record)
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
        assert self.replaying is not None
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
            self.complete(Outcome(Trial(-1, arch), record))
        for trial in held:
            self.fidelity.requeue(trial.arch.key)
        self.fidelity.tidy()

    def tell(self, arch, value: float | None, rungs: dict | None = None, record: dict | None = None) -> None:
        """With the fidelities it was measured at, when the strategy's tell takes them."""
        options = self.scores_for(record)
        if rungs and hears_rungs(self.strategy):
            options["rungs"] = dict(rungs)
        self.strategy.tell(arch, value, **options)

    # ----- the end ------------------------------------------------------------------------------------------

    def standing(self) -> list[dict]:
        """Trials waiting at a rung stand at their latest result (and may go on when the run is resumed)."""
        return self.records + self.fidelity.standing()

    def more_counts(self) -> dict:
        files, size = self.fidelity.kept()
        max_epochs = self.fidelity.scheduler.max_epochs
        log.info("scheduler: trials per rung reached %s; %d epochs trained; %d checkpoints kept (%.1f MB) for "
                 "trials paused at a rung", self.fidelity.scheduler.occupancy(), self.fidelity.epochs, files,
                 size / 1e6)
        if self.best is not None and self.best.get("epochs", 0) < max_epochs:
            log.warning("the best trial reached %d of %d epochs, so its test accuracy was not measured; resume "
                        "with a larger budget to train it on", self.best["epochs"], max_epochs)
        return {"epochs_trained": self.fidelity.epochs}
