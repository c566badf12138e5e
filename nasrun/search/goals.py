"""A search's goals at run time: its `Objectives` with what measures an architecture before training (size,
latency), the screening of constraints known before training, and the Pareto set kept in `pareto.json`.

The runner holds one `Goals` per search. With the default objectives (`Objectives.plain`) it only adds `params`
and `flops` (and `latency_ms`, with a latency= option) to every ok trial's metrics; everything else the search
does is as before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from nasrun.objectives import BEFORE_TRAINING, Objectives, Scores
from nasrun.pareto import hypervolume, nondominated
from nasrun.rundir.atomic import write_json
from nasrun.rundir.records import Status, feasible, is_ok

log = logging.getLogger(__name__)

MAX_INFEASIBLE = 1000  # new proposals in a row that break a constraint before the search is declared stuck


@dataclass
class Goals:
    """objectives: what the search optimises and bounds. cost: `arch -> {"params", "flops"}` (None: the space
    builds no network to count, e.g. an evaluator that needs no data shape). latency: `arch -> ms` (the
    latency= option; None for latency=none). reference: the hypervolume's reference point in metric units, one
    value per objective (None: no hypervolume shown)."""

    objectives: Objectives = field(default_factory=Objectives)
    cost: Callable[[Any], dict] | None = None
    latency: Callable[[Any], float] | None = None
    reference: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.latency is None:
            for name in self.objectives.metrics_needed():
                if name == "latency_ms":
                    raise ValueError("latency_ms is an objective or a constraint, but latency=none measures no "
                                     "latency; choose latency=table (NAS-Bench-201's measured latencies)")
        if self.cost is None and {"params", "flops"} & set(self.objectives.metrics_needed()):
            raise ValueError("params/flops are objectives or constraints, but this search builds no network to "
                             "count them on")

    def hardware(self, arch) -> dict[str, float]:
        """The metrics known before training: params, flops and latency_ms, as far as this search measures them."""
        metrics = dict(self.cost(arch)) if self.cost is not None else {}
        if self.latency is not None:
            metrics["latency_ms"] = float(self.latency(arch))
        return metrics

    def screen(self, arch) -> tuple[dict, float] | None:
        """(its hardware metrics, its violation) for an architecture that breaks a constraint known before
        training (it is recorded as infeasible and never trained); None when it may train."""
        if not self.objectives.before_training():
            return None
        metrics = self.hardware(arch)
        violation = self.objectives.violation({k: v for k, v in metrics.items() if k in BEFORE_TRAINING})
        return (metrics, violation) if violation > 0 else None

    def annotate(self, record: dict, arch) -> None:
        """Add the hardware metrics to an ok trial (those the evaluator measured itself are kept) and, under
        constraints, its violation."""
        if not is_ok(record):
            return
        metrics = record["metrics"]
        for name, value in self.hardware(arch).items():
            metrics.setdefault(name, value)
        if self.objectives.constraints:
            record["violation"] = self.objectives.violation(metrics)

    def scores(self, record: dict) -> Scores:
        """What a strategy hears of a finished trial under these objectives."""
        if record["status"] == Status.INFEASIBLE:
            return Scores(None, float(record["violation"]))
        if not is_ok(record):
            return Scores(None, 0.0)
        metrics = dict(record["metrics"])
        metrics.setdefault("val_acc", metrics.get("fitness"))
        return Scores(self.objectives.vector(metrics), float(record.get("violation", 0.0)))


@dataclass
class ParetoSet:
    """The feasible non-dominated trials so far (at the highest fidelity each reached), kept current during the
    run and written atomically to `pareto.json` whenever it changes."""

    goals: Goals
    path: Path | None
    members: list[dict] = field(default_factory=list)

    def add(self, record: dict, write: bool = True) -> bool:
        """Consider a finished trial; whether the set changed (and was written)."""
        scores = self.goals.scores(record)
        if scores.values is None or not feasible(record):
            return False
        pool = [m for m in self.members if m["key"] != record["key"]] + [record]
        points = [self.goals.scores(m).values for m in pool]
        keep = nondominated(points)
        members = [m for m, k in zip(pool, keep) if k]
        if [m["trial"] for m in members] == [m["trial"] for m in self.members]:
            return False
        self.members = members
        if write and self.path is not None:
            self.write()
        return True

    def hypervolume(self) -> float | None:
        """The set's hypervolume against the goals' reference point (None without one)."""
        reference = self.goals.reference
        if reference is None:
            return None
        objectives = self.goals.objectives
        oriented = objectives.vector(dict(zip(objectives.names, reference)))
        points = [self.goals.scores(m).values for m in self.members]
        return hypervolume(points, oriented) if points and oriented is not None else 0.0

    def write(self) -> None:
        assert self.path is not None
        objectives = self.goals.objectives
        rows = [{"trial": m["trial"], "key": m["key"], "arch": m["arch"],
                 "values": {n: _metric(m, n) for n in objectives.names},
                 "metrics": m["metrics"], **({"epochs": m["epochs"]} if "epochs" in m else {})}
                for m in sorted(self.members, key=lambda m: m["trial"])]
        write_json(self.path, {**objectives.describe(), "hypervolume": self.hypervolume(),
                               "reference": list(self.goals.reference) if self.goals.reference else None,
                               "trials": rows})


def _metric(record: dict, name: str) -> float:
    metrics = record["metrics"]
    return metrics["fitness"] if name == "val_acc" and "fitness" in metrics else metrics[name]
