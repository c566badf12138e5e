"""The trial record's schema in one place: its statuses, its fitness, and which record is the best.

A record is the JSON object `trials.jsonl` holds per trial: `trial`, `key`, `arch`, `status`, `metrics`,
`seconds`, `elapsed` (and `simulated`, `proxy_score`, `error` where they apply); `end` records close a run.
The runner, the console and the report all select the best trial through `better` / `best_of` here, so
"best" means the same thing in the progress bar, best.json and the report.
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator

from nasrun.checks import TextEnum


class Status(TextEnum):
    """A record's `status` (str-valued: trials.jsonl holds the same strings as ever)."""

    OK = "ok"  # a finished trial with its metrics
    FAILED = "failed"  # a finished trial that raised: its error, no metrics
    CANCELLED = "cancelled"  # cut short by the wall-clock budget: recorded, and run again on resume
    RUNG = "rung"  # a scheduled trial's result at a rung it goes on from (continue) or waits at (pause)
    END = "end"  # not a trial: the run ended, with its stop reason and counts
    INFEASIBLE = "infeasible"  # broke a constraint known before training (constraints=): never trained, not counted


STATUSES = tuple(s.value for s in Status)
COUNTED = (Status.OK, Status.FAILED)  # trials that count against the budget; a cancelled one runs again
FINISHED = (*COUNTED, Status.INFEASIBLE)  # trials whose result a resume replays (an infeasible one costs nothing)
DECISIONS = ("continue", "pause", "stop", "finished")  # a scheduler's `decision` on a rung or final record


# Numbers that are never negative: durations, the simulated clock and a benchmark's training time (its cost).
NON_NEGATIVE = ("seconds", "elapsed", "simulated", "simulated_start", "violation")
NON_NEGATIVE_METRICS = ("cost", "params", "flops", "latency_ms", "train_seconds", "val_seconds", "test_seconds")


def record_problem(record) -> str | None:
    """What is wrong with one record read back from trials.jsonl, or None: the schema check that every reader
    (resume, the report) applies before trusting a line. Architecture checks need the space: `arch_problem`."""
    if not isinstance(record, dict):
        return f"a {type(record).__name__}, not a JSON object"
    status = record.get("status")
    if status not in STATUSES:
        return f"status={status!r}: must be one of {', '.join(STATUSES)}"
    for name in NON_NEGATIVE:
        if name in record and not _non_negative(record[name]):
            return f"{name}={record[name]!r}: must be a finite number >= 0"
    if status == Status.END:
        return None if isinstance(record.get("stop_reason"), str) else "an end record needs a stop_reason string"
    for name, kind, what in (("trial", int, "an integer"), ("key", str, "a string"), ("metrics", dict, "an object")):
        if name not in record:
            return f"no {name!r} field (a trial record needs trial, key, arch, status, metrics)"
        if not isinstance(record[name], kind) or isinstance(record[name], bool):
            return f"{name}={record[name]!r}: must be {what}"
    if "arch" not in record:
        return "no 'arch' field (a trial record needs trial, key, arch, status, metrics)"
    if record["trial"] < 0:
        return f"trial={record['trial']}: must be >= 0"
    if "epochs" in record and (not isinstance(record["epochs"], int) or isinstance(record["epochs"], bool)
                               or record["epochs"] < 1):
        return f"epochs={record['epochs']!r}: must be an integer >= 1 (the epochs the trial has trained)"
    if "decision" in record and record["decision"] not in DECISIONS:
        return f"decision={record['decision']!r}: must be one of {', '.join(DECISIONS)}"
    if status == Status.RUNG and ("epochs" not in record or record.get("decision") not in ("continue", "pause")):
        return "a rung record needs epochs and decision=continue or pause"
    metrics = record["metrics"]
    for name in NON_NEGATIVE_METRICS:
        if metrics.get(name) is not None and not _non_negative(metrics[name]):
            return f"metrics.{name}={metrics[name]!r}: must be a finite number >= 0"
    if status == Status.INFEASIBLE:
        violation = record.get("violation")
        if isinstance(violation, (int, float)) and not isinstance(violation, bool) and violation > 0:
            return None
        return f"violation={violation!r}: an infeasible trial needs a violation > 0"
    if status in (Status.OK, Status.RUNG):
        name = "fitness" if "fitness" in metrics else "val_acc"
        value = metrics.get(name)
        if not _number(value) or not math.isfinite(value):
            return f"metrics.{name}={value!r}: an ok trial needs a finite {name}"
    elif not isinstance(record.get("error"), str):
        return f"a {status} trial needs an error string"
    return None


def arch_problem(record: dict, space) -> str | None:
    """Whether the space accepts the record's architecture and its key is the one the space gives it."""
    try:
        arch = space.from_json(record["arch"])
    except (ValueError, TypeError, KeyError) as err:
        return f"arch: {err}"
    if arch.key != record["key"]:
        return f"key={record['key']!r} is not the key of its arch ({arch.key!r})"
    return None


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _non_negative(value) -> bool:
    return _number(value) and math.isfinite(value) and value >= 0


def is_ok(record: dict) -> bool:
    """A result with metrics: a finished trial, or a scheduled one's result at a rung."""
    return record["status"] in (Status.OK, Status.RUNG)


def fitness(record: dict) -> float | None:
    """What the strategy maximises: the evaluator's `fitness` (a proxy score) when it gives one, else `val_acc`;
    None for a trial that did not succeed."""
    if not is_ok(record):
        return None
    return ok_fitness(record)


def ok_fitness(record: dict) -> float:
    """The fitness of an ok trial (the schema guarantees it is there and finite)."""
    metrics = record["metrics"]
    return metrics["fitness"] if "fitness" in metrics else metrics["val_acc"]


def feasible(record: dict) -> bool:
    """Whether a trial meets the run's constraints (`violation` 0 or absent: a run without constraints)."""
    return record["status"] != Status.INFEASIBLE and not record.get("violation", 0.0)


def better(record: dict, best: dict | None) -> bool:
    """At the higher fidelity (`epochs`, when a scheduler ran trials to different lengths), else strictly higher
    fitness wins; ties keep the earlier trial. Without a scheduler every record has the same epochs (or none).
    A trial that breaks the run's constraints is never the best (best.json holds the most accurate feasible one)."""
    if not is_ok(record) or not feasible(record):
        return False
    if best is None:
        return True
    mine, theirs = record.get("epochs", 0), best.get("epochs", 0)
    return mine > theirs or (mine == theirs and ok_fitness(record) > ok_fitness(best))


def running_best(records: Iterable[dict]) -> Iterator[tuple[dict, dict | None]]:
    """(record, the best record so far including it) for each record in order."""
    best = None
    for record in records:
        if better(record, best):
            best = record
        yield record, best


def best_of(records: Iterable[dict]) -> dict | None:
    """The best record of all (the last of the running best), or None when no trial is ok."""
    best = None
    for _, current in running_best(records):
        best = current
    return best


def reported_accuracy(record: dict | None) -> float | None:
    """The reported figure of a trial: its test accuracy, when it was measured."""
    return None if record is None else record["metrics"].get("test_acc")
