"""The trial record's schema in one place: its statuses, its fitness, and which record is the best.

A record is the JSON object `trials.jsonl` holds per trial: `trial`, `key`, `arch`, `status`, `metrics`,
`seconds`, `elapsed` (and `simulated`, `proxy_score`, `error` where they apply); `end` records close a run.
The runner, the console and the report all select the best trial through `better` / `best_of` here, so
"best" means the same thing in the progress bar, best.json and the report.
"""

from __future__ import annotations

from typing import Iterable, Iterator

OK, FAILED, CANCELLED, END = "ok", "failed", "cancelled", "end"
STATUSES = (OK, FAILED, CANCELLED, END)
FINISHED = (OK, FAILED)  # trials that count; a cancelled one runs again on resume


def is_ok(record: dict) -> bool:
    return record["status"] == OK


def fitness(record: dict) -> float | None:
    """What the strategy maximises: the evaluator's `fitness` (a proxy score) when it gives one, else `val_acc`;
    None for a trial that did not succeed."""
    if not is_ok(record):
        return None
    metrics = record["metrics"]
    return metrics["fitness"] if "fitness" in metrics else metrics["val_acc"]


def better(record: dict, best: dict | None) -> bool:
    """Strictly higher fitness wins; ties keep the earlier trial."""
    return is_ok(record) and (best is None or fitness(record) > fitness(best))


def running_best(records: Iterable[dict]) -> Iterator[tuple[dict, dict | None]]:
    """(record, the best record so far including it) for each record in order."""
    best = None
    for record in records:
        if better(record, best):
            best = record
        yield record, best


def best_of(records: Iterable[dict]) -> dict | None:
    best = None
    for _, best in running_best(records):
        pass
    return best


def reported_accuracy(record: dict | None) -> float | None:
    """The reported figure of a trial: its test accuracy, when it was measured."""
    return None if record is None else record["metrics"].get("test_acc")
