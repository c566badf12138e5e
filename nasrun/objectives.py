"""What a search optimises: its objectives (metric names, each with a known direction) and its constraints
(bounds on metrics), as one immutable, validated value built from the config's `objectives` and `constraints`.

`objectives=[val_acc]` with no constraints is the default, and with it every part of nasrun behaves exactly as
before objectives existed (`Objectives.plain`). Everything else is hardware-aware or multi-objective search:
strategies then hear `Scores` (the objective vector, oriented so that higher is better, and how far the trial
breaks the constraints) beside the plain fitness, and the runner keeps the Pareto set (`nasrun.pareto`).

Constraints follow Deb's rules (Deb 2000, as NSGA-II handles them): a feasible trial beats an infeasible one,
and of two infeasible ones the smaller violation wins. A violation is the sum over the broken bounds of the
relative excess, |value - bound| / |bound|, so that a millisecond over a 5 ms bound and 100 k parameters over a
1 M bound are comparable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

MAXIMISE, MINIMISE = "max", "min"

# Every metric an objective or a constraint may name, with its direction. `val_acc` is the evaluator's fitness:
# the validation accuracy, or the score that stands in for it (a zero-cost proxy under evaluator=proxy).
DIRECTIONS: Mapping[str, str] = {
    "val_acc": MAXIMISE,
    "latency_ms": MINIMISE,  # the latency= group's figure: a benchmark table's or one measured here
    "params": MINIMISE,  # trainable parameters of the built network
    "flops": MINIMISE,  # floating-point operations of one forward pass of one image (nasrun.hardware.cost)
}
# Metrics known before anything trains: a constraint on one of them is checked before the trial runs, and an
# architecture that breaks it is recorded as infeasible and never trained.
BEFORE_TRAINING = ("latency_ms", "params", "flops")


@dataclass(frozen=True)
class Scores:
    """What a strategy hears of one trial under `Objectives`: `values`, the objective vector oriented so that
    higher is better (minimised metrics negated), None when the trial has none (it broke a constraint before
    training, or it failed); `violation`, 0.0 for a feasible trial, else how far it breaks the constraints."""

    values: tuple[float, ...] | None
    violation: float = 0.0

    @property
    def feasible(self) -> bool:
        return self.violation == 0.0


@dataclass(frozen=True)
class Objectives:
    """names: the metrics to optimise, the first being the one a single-objective view uses (best.json's
    `max_acc`, a strategy's fitness). constraints: (metric, bound) pairs; the bound is an upper one for a
    minimised metric and a lower one for a maximised metric. Invalid values raise ValueError naming the field."""

    names: tuple[str, ...] = ("val_acc",)
    constraints: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("objectives=[]: name at least one metric, e.g. objectives=[val_acc]")
        for name in self.names:
            _check_metric("objectives", name)
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"objectives={list(self.names)}: a metric is named twice")
        if "val_acc" not in self.names:
            raise ValueError(f"objectives={list(self.names)}: val_acc must be one of them (a search that ignores "
                             f"accuracy picks the smallest network); add it, e.g. objectives=[val_acc,latency_ms]")
        seen = set()
        for name, bound in self.constraints:
            _check_metric("constraints", name)
            if name in seen:
                raise ValueError(f"constraints.{name}: bounded twice")
            seen.add(name)
            if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
                raise ValueError(f"constraints.{name}={bound!r}: must be a finite number")
            if DIRECTIONS[name] == MINIMISE and bound <= 0:
                raise ValueError(f"constraints.{name}={bound!r}: an upper bound on {name} must be > 0")

    @classmethod
    def from_config(cls, objectives: Any = None, constraints: Any = None) -> Objectives:
        """From the config's `objectives` (a list of names, or one name) and `constraints` (metric -> bound)."""
        if objectives is None:
            objectives = ["val_acc"]
        if isinstance(objectives, str):
            objectives = [objectives]
        if not isinstance(objectives, (list, tuple)) or not all(isinstance(n, str) for n in objectives):
            raise ValueError(f"objectives={objectives!r}: must be a list of metric names, e.g. "
                             f"objectives='[val_acc,latency_ms]'")
        if constraints is None:
            constraints = {}
        if not isinstance(constraints, Mapping):
            raise ValueError(f"constraints={constraints!r}: must map metric names to bounds, e.g. "
                             f"+constraints.latency_ms=5.0")
        bounds = tuple((str(k), _as_number(f"constraints.{k}", v)) for k, v in constraints.items())
        return cls(tuple(objectives), bounds)

    @property
    def plain(self) -> bool:
        """The default: validation accuracy alone, unconstrained (every part behaves as it always did)."""
        return self.names == ("val_acc",) and not self.constraints

    @property
    def multi(self) -> bool:
        return len(self.names) > 1

    @property
    def maximise(self) -> tuple[bool, ...]:
        """Per objective, whether it is maximised (what moocore's `maximise=` takes)."""
        return tuple(DIRECTIONS[n] == MAXIMISE for n in self.names)

    def metrics_needed(self) -> tuple[str, ...]:
        """Every metric the objectives and constraints read, in order, each once."""
        return tuple(dict.fromkeys(self.names + tuple(n for n, _ in self.constraints)))

    def before_training(self) -> tuple[str, ...]:
        """The constrained metrics known before training: checked before a trial runs."""
        return tuple(n for n, _ in self.constraints if n in BEFORE_TRAINING)

    def violation(self, metrics: Mapping[str, Any]) -> float:
        """Sum of the relative excesses over the broken bounds (0.0: feasible). A bound whose metric is not in
        `metrics` is not judged (before training, accuracy bounds wait for the training)."""
        total = 0.0
        for name, bound in self.constraints:
            value = metrics.get(name)
            if value is None:
                continue
            excess = value - bound if DIRECTIONS[name] == MINIMISE else bound - value
            if excess > 0:
                total += excess / abs(bound) if bound != 0 else excess
        return total

    def vector(self, metrics: Mapping[str, Any]) -> tuple[float, ...] | None:
        """The objective values oriented so that higher is better (minimised ones negated); None when one is
        missing or not finite."""
        out = []
        for name in self.names:
            value = metrics.get(name)
            if value is None or not math.isfinite(value):
                return None
            out.append(float(value) if DIRECTIONS[name] == MAXIMISE else -float(value))
        return tuple(out)

    def scores(self, metrics: Mapping[str, Any] | None) -> Scores:
        """`Scores` of a trial's metrics (None: a failed trial, which has no values and breaks nothing)."""
        if metrics is None:
            return Scores(None, 0.0)
        return Scores(self.vector(metrics), self.violation(metrics))

    def describe(self) -> dict:
        """The JSON form best.json and pareto.json record."""
        return {"objectives": list(self.names), "directions": [DIRECTIONS[n] for n in self.names],
                "constraints": dict(self.constraints)}


def _check_metric(field: str, name: Any) -> None:
    if name not in DIRECTIONS:
        raise ValueError(f"{field}: {name!r} is not a metric nasrun knows; choose from {', '.join(DIRECTIONS)}")


def _as_number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{field}={value!r}: must be a number")
    return float(value)
