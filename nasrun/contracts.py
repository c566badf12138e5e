"""The three contracts the runner relies on, written down as `typing.Protocol`s, and one helper per question
the code asks about an object (so "does this evaluator train?" is answered in one place, not probed ad hoc).

Nothing needs to inherit from these: any object with these methods fits (a test's toy evaluator, a user's
space). They are the documentation of record for CONTRIBUTING.md's module map.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Protocol, runtime_checkable

import numpy as np


class Architecture(Protocol):
    """An immutable, hashable value: `key` is its one canonical string, `to_json()` its JSON form."""

    key: str

    def to_json(self) -> Any: ...


@runtime_checkable
class Space(Protocol):
    """What strategies and the runner use. `choices` is per instance (a space with a parameter varies them);
    `build` gives the network for a dataset's image shape; `from_json` rebuilds an architecture from a log."""

    name: str
    choices: Mapping[str, tuple]

    def sample(self, rng: np.random.Generator) -> Architecture: ...

    def mutate(self, arch: Architecture, rng: np.random.Generator, prob: float | None = None) -> Architecture: ...

    def crossover(self, a: Architecture, b: Architecture, rng: np.random.Generator) -> Architecture: ...

    def from_json(self, data: Any) -> Architecture: ...

    def build(self, arch: Architecture, in_channels: int, image_size: int, num_classes: int): ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Architecture]: ...


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


def trains(evaluator) -> bool:
    """Whether a trial of this evaluator is a training (not a table lookup or a proxy score)."""
    return bool(getattr(evaluator, "trains", True))


def measures_test_apart(evaluator) -> bool:
    """Whether the evaluator leaves the test split out of its metrics and offers `test(model)` for it."""
    return callable(getattr(evaluator, "test", None))


def is_table_space(space) -> bool:
    """Whether NAS-Bench-201's results table describes this space's networks (the nb201 space at C=16, N=5)."""
    return bool(getattr(space, "is_table_space", lambda: False)())
