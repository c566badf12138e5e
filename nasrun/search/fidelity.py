"""The runner's side of a scheduler (`scheduler=asha|hyperband|median|curve`): trials trained in segments, each
from one decision point to the next, with a checkpoint in between.

A scheduled trial is one architecture, however far it trains. Each segment's result is a record: `rung`
(status) while the trial goes on or waits, then one final `ok` or `failed` record, the only one `budget.trials`
and the strategy's `tell` count. The checkpoint after a segment is written (atomically, in the main process:
workers send it back) before its record, as `checkpoints/trial-<n>-epoch-<e>.pt`, and the trial's older
checkpoint is deleted after the record: a kill between the two leaves a spare file, never a record without its
checkpoint. A stopped or finished trial's checkpoints go at once, so the disk holds one file per trial that
is paused or running.

Resume replays the log through the same loop (`LogReplay`): a segment the log already holds is answered from
it, in log order, so the scheduler and the strategy see the same sequence as the first run (with the inline
executor: the same decisions and metrics). What the log holds beyond the point where the replay parts from it
(a parallel run's completion order) is taken in as it is.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasrun.contracts import Decision, Outcome, Scheduler, Trial
from nasrun.rundir.records import Status, is_ok, ok_fitness

log = logging.getLogger(__name__)


@dataclass
class Scheduled:
    """One trial under the scheduler."""

    number: int  # its trial number (start order): every record of the trial carries it
    arch: Any
    target: int  # the epoch its current (or next) segment ends at
    curve: list[float] = field(default_factory=list)  # fitness after each epoch trained
    rungs: dict[int, float] = field(default_factory=dict)  # epochs -> fitness at each decision point reached
    checkpoint: Path | None = None  # the state after its latest segment
    record: dict | None = None  # its latest rung record
    waiting: str = "running"  # running | ready (its next segment is due now) | paused (until promoted)


class Fidelity:
    """The trials a scheduler is running, their checkpoints and the segments due."""

    def __init__(self, scheduler: Scheduler, run_dir: Path):
        self.scheduler = scheduler
        self.folder = Path(run_dir) / "checkpoints"
        self.trials: dict[str, Scheduled] = {}  # key -> trial, for every trial not yet ended
        self.ready: deque[str] = deque()  # keys whose next segment is due (continue), in decision order
        self.started = 0  # trials started (what budget.trials counts)
        self.next_number = 0  # the next new trial's number
        self.epochs = 0  # epochs trained, every segment counted (replayed ones too)

    # ----- what runs next --------------------------------------------------------------------------------

    def start(self, arch, number: int | None = None) -> Scheduled:
        """A new trial (`number`: the one the log gives it, on a replay; else the next)."""
        number = self.next_number if number is None else number
        self.next_number = max(self.next_number, number + 1)
        trial = Scheduled(number, arch, self.scheduler.start(arch.key))
        self.started += 1
        self.trials[arch.key] = trial
        return trial

    def requeue(self, key: str) -> None:
        """A segment that was submitted and will not come back (the replay dropped it): due again."""
        trial = self.trials.get(key)
        if trial is not None and trial.waiting == "running":
            trial.waiting = "ready"
            self.ready.append(key)

    def due(self) -> Scheduled | None:
        """The segment to run before any new trial: a trial told to continue, else a promotion."""
        while self.ready:
            trial = self.trials.get(self.ready.popleft())
            if trial is not None and trial.waiting == "ready":
                trial.waiting = "running"
                return trial
        promoted = self.scheduler.promotion()
        if promoted is None:
            return None
        key, target = promoted
        trial = self.trials[key]
        trial.target, trial.waiting = target, "running"
        return trial

    def latest(self, key: str) -> float | None:
        """The fitness of a trial still in progress at its latest decision point (None before the first)."""
        trial = self.trials[key]
        return trial.curve[-1] if trial.curve else None

    def checkpoint_of(self, trial: Scheduled) -> dict | None:
        """The state to go on from: its latest checkpoint read back, or None to train from epoch 0 (its first
        segment; or its checkpoint is gone, which costs the epochs again and changes no result)."""
        from nasrun.training.checkpoint import read_payload  # torch-heavy: only once a trial goes on

        if trial.checkpoint is None:
            return None
        if not trial.checkpoint.is_file() or trial.checkpoint.is_symlink():
            log.warning("%s is missing: trial %d trains again from its first epoch to epoch %d", trial.checkpoint,
                        trial.number, trial.target)
            return None
        return read_payload(trial.checkpoint)

    # ----- what came back -----------------------------------------------------------------------------------

    def take(self, outcome: Outcome, replayed: bool) -> tuple[dict, Scheduled, Path | None]:
        """The record of a completed segment (numbered as its trial; `rung` or final), with the scheduler's
        decision; its checkpoint saved or the trial's deleted; and the checkpoint it replaces, to delete once the
        record is written. A replayed record comes back as logged (its decision taken from the log: the
        checkpoint on disk matches it)."""
        key = outcome.trial.arch.key
        trial = self.trials[key]
        record = dict(outcome.record)
        if not is_ok(record):
            record["trial"] = trial.number
            if trial.curve:
                record["epochs"] = len(trial.curve)  # what it had trained before the segment that failed
            if not replayed:
                self.end(trial)
            self.trials.pop(key, None)
            return record, trial, None
        history = record["metrics"].get("history", [])
        new = [h for h in history if h["epoch"] > len(trial.curve)]
        trial.curve += [h["val_acc"] for h in new]
        self.epochs += len(new)
        decision, target = self.scheduler.report(key, trial.curve)
        if record["metrics"].get("stopped_early") and decision not in (Decision.STOP, Decision.FINISHED):
            decision, target = Decision.FINISHED, len(trial.curve)  # its own early stopping ended it
        if replayed:
            decision = Decision(record["decision"])
        epochs = len(trial.curve)
        trial.rungs[epochs] = ok_fitness(record)
        ends = decision in (Decision.STOP, Decision.FINISHED)
        if not replayed:
            record["metrics"] = {**record["metrics"], "history": new}  # the segment's epochs only
            record.update(trial=trial.number, epochs=epochs, decision=decision.value,
                          status=Status.OK if ends else Status.RUNG)
        previous = trial.checkpoint
        trial.record = record
        if ends:
            if not replayed:
                self.end(trial)
            self.trials.pop(key, None)
        else:
            trial.checkpoint = self.folder / f"trial-{trial.number}-epoch-{epochs}.pt"
            if not replayed:
                self.save(trial.checkpoint, outcome.state)
            trial.target = target
            trial.waiting = "ready" if decision is Decision.CONTINUE else "paused"
            if decision is Decision.CONTINUE:
                self.ready.append(key)
        return record, trial, previous if previous != trial.checkpoint and not replayed and not ends else None

    def save(self, path: Path, state: dict | None) -> None:
        from nasrun.training.checkpoint import save_payload  # torch-heavy: only once a segment comes back

        if state is None:
            raise RuntimeError("the evaluator sent no checkpoint for a segment")
        save_payload(path, state)

    def end(self, trial: Scheduled) -> None:
        """A trial ended (stopped, finished or failed): its checkpoints go now."""
        for path in self.folder.glob(f"trial-{trial.number}-epoch-*.pt"):
            path.unlink(missing_ok=True)

    def standing(self) -> list[dict]:
        """The latest result of each trial not ended (paused, or cut short by the budget), by trial number."""
        return sorted((t.record for t in self.trials.values() if t.record is not None), key=lambda r: r["trial"])

    def kept(self) -> tuple[int, int]:
        """(checkpoint files, their bytes) on disk now."""
        files = [p for p in self.folder.glob("trial-*-epoch-*.pt") if p.is_file()] if self.folder.is_dir() else []
        return len(files), sum(p.stat().st_size for p in files)

    def adopt(self, record: dict, arch) -> Scheduled:
        """A trial the log holds and the replay never started (the log parted from it): known from here on."""
        trial = Scheduled(record["trial"], arch, self.scheduler.start(arch.key))
        self.trials[arch.key] = trial
        self.started += 1
        self.next_number = max(self.next_number, record["trial"] + 1)
        return trial

    def tidy(self) -> None:
        """On resume: checkpoint files no record names (a kill between a checkpoint and its record) go."""
        named = {t.checkpoint for t in self.trials.values()}
        if self.folder.is_dir():
            for path in self.folder.glob("trial-*-epoch-*.pt"):
                if path not in named:
                    path.unlink(missing_ok=True)


class LogReplay:
    """The resumed run's log, answering the segments the loop submits again, strictly in log order."""

    def __init__(self, records: list[dict]):
        # Cancelled segments run again; end records are marks.
        self.records = deque(r for r in records if r["status"] in (Status.OK, Status.FAILED, Status.RUNG))
        self.held: dict[str, Trial] = {}  # key -> the submitted segment the log will answer

    def answers(self, key: str) -> bool:
        return any(r["key"] == key for r in self.records)

    def number_of(self, key: str) -> int | None:
        """The trial number the log gives this architecture (None: the log does not hold it)."""
        return next((r["trial"] for r in self.records if r["key"] == key), None)

    def hold(self, trial: Trial) -> None:
        self.held[trial.arch.key] = trial

    def next(self) -> Outcome | None:
        """The log's next record as the outcome of the segment it answers; None when the log is done or its
        next record answers nothing submitted (the replay has parted from the log)."""
        if not self.records or self.records[0]["key"] not in self.held:
            return None
        record = self.records.popleft()
        return Outcome(self.held.pop(record["key"]), record)

    def rest(self) -> tuple[list[dict], list[Trial]]:
        """What the replay did not reach: the log's remaining records and the segments held for them."""
        records, held = list(self.records), list(self.held.values())
        self.records.clear()
        self.held.clear()
        return records, held


def segment_trial(number: int, arch, best, deadline, scheduled: Scheduled, max_epochs: int, inherit=None,
                  keep_weights: bool = False) -> Trial:
    """The submission of a trial's next segment, up to its target epoch (its checkpoint is added when it is
    sent). The test split is measured only for a new best at max_epochs: the fidelity every selection ends at."""
    return Trial(number, arch, best, deadline, inherit=inherit if not scheduled.curve else None,
                 keep_weights=keep_weights, until=scheduled.target, measure_test=scheduled.target >= max_epochs)

