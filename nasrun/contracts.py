"""The contracts the runner relies on, written down as `typing.Protocol`s (Space, Architecture, Strategy,
Evaluator, Executor, with the executor's `Trial` and `Outcome`), and one helper per question the code asks
about an object's optional abilities (so "does this evaluator train?" is answered here, never probed ad hoc).

Nothing needs to inherit from these: any object with these methods fits (a test's toy evaluator, a user's
space). They are the documentation of record for CONTRIBUTING.md's module map. `isinstance` against a
runtime Protocol only checks that the names exist: tests/test_contracts.py calls the methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Mapping,
    Protocol,
    Sequence,
    runtime_checkable,
)

import numpy as np

from nasrun.checks import TextEnum


class Architecture(Protocol):
    """An immutable, hashable value: `key` is its one canonical string, `to_json()` its JSON form."""

    @property
    def key(self) -> str: ...

    def to_json(self) -> Any: ...


@runtime_checkable
class Space(Protocol):
    """What strategies and the runner use. `choices` is per instance (a space with a parameter varies them);
    `build` gives the network for a dataset's image shape; `from_json` rebuilds an architecture from a log.
    A finite space also has `len()` and iteration (the runner asks `nasrun.search.loop.space_size`); an
    unbounded one (space=morph) has neither."""

    name: str
    choices: Mapping[str, tuple]

    def sample(self, rng: np.random.Generator) -> Architecture: ...

    # `arch`, `a`, `b`: architectures of this space (typed Any: each space takes its own kind only).
    def mutate(self, arch: Any, rng: np.random.Generator, prob: float | None = None) -> Architecture: ...

    def crossover(self, a: Any, b: Any, rng: np.random.Generator) -> Architecture: ...

    def from_json(self, data: Any) -> Architecture: ...

    def build(self, arch: Any, in_channels: int, image_size: int, num_classes: int): ...


@runtime_checkable
class Strategy(Protocol):
    """Ask/tell only: a strategy never trains, reads the clock or touches files. `tell` gets the trial's fitness
    (None for a failed trial), also for a repeated proposal the runner answered from its records.

    With a parallel executor several `ask()`s are outstanding at once and their `tell()`s come in completion
    order, not in the order asked: a strategy must give sensible proposals meanwhile (it may count the asks it
    is owed answers for) and must not assume a tell answers its latest ask. A strategy must also accept a tell
    for an architecture it never proposed (a resumed run whose log it no longer retraces, a trial asked before
    a restart): that is information like any other result (evolution adds it to the population, random search
    ignores it), and it must never drive its own bookkeeping below zero or raise."""

    def ask(self) -> Architecture: ...

    def tell(self, arch: Architecture, fitness: float | None) -> None: ...


@runtime_checkable
class Evaluator(Protocol):
    """`evaluator(arch, deadline=None) -> (metrics, model or None)`; past `deadline` (a time.monotonic() value) it
    raises `nasrun.deadline.TrialCancelled`. `metrics` holds `val_acc` (or `fitness`, a proxy score, which then
    is what the strategy maximises), `test_acc` when measured, and `cost` (simulated seconds) when
    `reports_cost`. `describe()` is what best.json records about where the figures come from.

    Optional: `trains` (False: trials are proxy evaluations or lookups, counted apart from trainings; default
    True) and `test(model, deadline=None) -> dict` (the test split, measured only for a new best)."""

    reports_cost: bool

    def __call__(self, arch: Architecture, deadline: float | None = None) -> tuple[dict, Any]: ...

    def describe(self) -> dict: ...


@dataclass(frozen=True)
class Trial:
    """One evaluation to run. `number` is its submission order (the log numbers trials by completion);
    `best` is the run's best record when it was submitted: a trial that beats it is measured on the test split
    and sends its weights back (the best can only rise, so a trial that is the best on completion beat it).
    `deadline`: a time.monotonic() value past which an in-process evaluation stops (workers are killed
    instead). `attempt` counts retries after a worker died. `inherit`: (ancestor, its weights, morphisms) for a
    child that starts from its ancestor's weights (space=morph); `keep_weights`: send the trained weights back
    whatever the result, for the run's weight store."""

    number: int
    arch: Architecture
    best: dict | None = None
    deadline: float | None = None
    attempt: int = 0
    inherit: tuple | None = field(default=None, repr=False)
    keep_weights: bool = False
    until: int | None = None  # under a scheduler: train up to this epoch (a segment), else the whole training
    resume: dict | None = field(default=None, repr=False)  # the segment's starting checkpoint (None: epoch 0)
    measure_test: bool = True  # a segment short of max_epochs is not measured on the test split, even as the best


@dataclass
class Outcome:
    """A completed trial: its record (status, metrics, seconds, error; the runner adds number and times) and,
    for a trial that beat `trial.best`, its trained weights on the CPU."""

    trial: Trial
    record: dict
    weights: dict | None = field(default=None, repr=False)
    state: dict | None = field(default=None, repr=False)  # a segment's checkpoint after its last epoch, on the CPU


@runtime_checkable
class Executor(Protocol):
    """Where and how trials run (`nasrun.executors` has the options). The runner keeps at most `slots` trials
    in flight, `submit`s each, and collects `completed(timeout)` ones in completion order ([] when `timeout`
    seconds pass first). `cancel()` stops every trial in flight and returns those that took real time as
    `cancelled` outcomes. `on_budget` says what happens to trials in flight when `budget.seconds` runs out:
    `wait` for them or `cancel` them. Used as a context manager: leaving it stops its workers, whatever
    happened. Optional: `resume_clock(simulated)` (an executor with its own simulated clock, helper
    `resumes_clock`)."""

    slots: int
    on_budget: str  # "wait" | "cancel"

    def submit(self, trial: Trial) -> None: ...

    def completed(self, timeout: float | None = None) -> list[Outcome]: ...

    def cancel(self) -> list[Outcome]: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...


class Decision(TextEnum):
    """A scheduler's word on a trial after a segment (the value is what rung and final records hold)."""

    CONTINUE = "continue"  # train on to the next decision point now
    PAUSE = "pause"  # wait at this rung; a later promotion goes on from its checkpoint
    STOP = "stop"  # the trial ends here
    FINISHED = "finished"  # it reached max_epochs (or its own early stopping ended it)


@runtime_checkable
class Scheduler(Protocol):
    """How far each trial trains (`nasrun.search.asha`, `nasrun.search.stopping`): the runner trains a trial in
    segments, from one decision point to the next, and asks after each. `start(key)`: a new trial, and the
    epoch its first segment ends at. `report(key, curve)`: its fitness after every epoch so far; the decision
    and the epoch the next segment ends at. `promotion()`: a paused trial to go on now, and to which epoch (None:
    none is due). `occupancy()`: rung (epochs) -> trials that reached it. Pure bookkeeping: no clock, no
    files; replaying the same calls rebuilds the same state (resume)."""

    max_epochs: int

    def start(self, key: str) -> int: ...

    def report(self, key: str, curve: Sequence[float]) -> tuple[Decision, int]: ...

    def promotion(self) -> tuple[str, int] | None: ...

    def occupancy(self) -> dict[int, int]: ...


def trains_in_segments(evaluator) -> bool:
    """Whether the evaluator trains part of a schedule and goes on from a checkpoint (`train_segment`): what a
    scheduler needs."""
    return callable(getattr(evaluator, "train_segment", None))


def hears_rungs(strategy) -> bool:
    """Whether the strategy's `tell` takes `rungs` (epochs -> fitness at each decision point the trial reached),
    to compare results at the same fidelity (evolution) or model the highest one (bayesian, as BOHB)."""
    import inspect

    return "rungs" in inspect.signature(strategy.tell).parameters


def hears_scores(strategy) -> bool:
    """Whether the strategy's `tell` takes `scores` (`nasrun.objectives.Scores`: the objective vector and the
    constraint violation), which the runner passes under objectives other than `[val_acc]` alone. A strategy
    without it hears the first objective's value only (random search needs nothing more)."""
    import inspect

    return "scores" in inspect.signature(strategy.tell).parameters


def trains(evaluator) -> bool:
    """Whether a trial of this evaluator is a training (not a table lookup or a proxy score)."""
    return bool(getattr(evaluator, "trains", True))


def measures_test_apart(evaluator) -> bool:
    """Whether the evaluator leaves the test split out of its metrics and offers `test(model)` for it."""
    return callable(getattr(evaluator, "test", None))


def is_table_space(space) -> bool:
    """Whether NAS-Bench-201's results table describes this space's networks (the nb201 space at C=16, N=5)."""
    return bool(getattr(space, "is_table_space", lambda: False)())


def reports_cost(evaluator) -> bool:
    """Whether the evaluator's metrics carry `cost`, the simulated seconds of a training (a benchmark table)."""
    return bool(getattr(evaluator, "reports_cost", False))


def keeps_weights(space) -> int:
    """How many trained networks a space whose children inherit weights keeps for them (space=morph's
    `keep_weights`); 0 for every other space."""
    return int(getattr(space, "keep_weights", 0) or 0)


def named_architectures(space) -> Mapping[str, Any]:
    """The architectures a space knows by name (`NAMED`: space=macro's nascnn15), name -> JSON form."""
    return getattr(space, "NAMED", {})


def morphisms(space) -> Callable[..., list] | None:
    """`space.morphs(arch, limit)`, the function-preserving children of an architecture, on a morphism space
    (space=morph); None for every other space."""
    return getattr(space, "morphs", None)


def lineage(strategy) -> Callable[[Any], tuple | None] | None:
    """`strategy.lineage(arch)`: (ancestor, morphisms) of a child it proposed on a morphism space, for weight
    inheritance; None for a strategy that keeps no lineage."""
    return getattr(strategy, "lineage", None)


def resumes_clock(executor) -> bool:
    """Whether the executor keeps a simulated clock that a resumed run must set (`resume_clock(simulated)`)."""
    return callable(getattr(executor, "resume_clock", None))


def skip_decisions(space) -> Mapping[str, int]:
    """Decisions that choose a skip connection (decision -> how many inputs it chooses among), which a
    controller samples by attention rather than a softmax (space=macro's `skips`); {} elsewhere."""
    return getattr(space, "skips", {})


def anchor_steps(space) -> Mapping[str, int]:
    """Decision -> the layer whose anchor step follows it (space=macro's `anchors`); {} elsewhere."""
    return getattr(space, "anchors", {})


def is_layered(space) -> bool:
    """Whether the space's networks are stacks of layers with a prefix per depth (`layer_dims`, `num_layers`):
    what progressive depth needs."""
    return callable(getattr(space, "layer_dims", None))
