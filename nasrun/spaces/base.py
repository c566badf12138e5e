"""The small shared part of every choice-based space: sampling, mutation, crossover, enumeration, parsing.

A space is a `ChoiceSpace` with, per instance, `name`, `choices` (dimension name -> tuple of allowed values,
in a fixed order; a space with a parameter varies them per instance), `make(values) -> arch` (an immutable
architecture from a dict of valid choices), `from_key(text) -> arch` and
`build(arch, in_channels, image_size, num_classes) -> nn.Module`. Each architecture offers `key`,
`choices() -> dict` and `to_json()`. Strategies call `sample`, `mutate`, `crossover`, and (Bayesian
optimisation) `neighbours` and `distances`; the runner uses `from_json` and `len`. The contract is written
down as `nasrun.contracts.Space`.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import numpy as np

from nasrun.spaces import choices as dims


class ChoiceSpace:
    name: str = ""
    choices: Mapping[str, tuple] = {}

    def make(self, values: dict):
        raise NotImplementedError

    def from_key(self, text: str):
        raise NotImplementedError

    def sample(self, rng: np.random.Generator):
        return self.make(dims.sample(self.choices, rng))

    def mutate(self, arch, rng: np.random.Generator, prob: float | None = None):
        return self.make(dims.mutate(arch.choices(), self.choices, rng, prob))

    def crossover(self, a, b, rng: np.random.Generator):
        return self.make(dims.crossover(a.choices(), b.choices(), rng))

    def neighbours(self, arch) -> list:
        """Every architecture one choice away from `arch`."""
        return [self.make(values) for values in dims.neighbours(arch.choices(), self.choices)]

    def distances(self, a: list, b: list) -> np.ndarray:
        """The |a| x |b| matrix of edit distances (`nasrun.spaces.choices.distances`): what Bayesian
        optimisation's kernel sees."""
        return dims.distances(dims.encode([x.choices() for x in a], self.choices),
                              dims.encode([x.choices() for x in b], self.choices), dims.numeric_columns(self.choices))

    def __len__(self) -> int:
        return dims.size(self.choices)

    def __iter__(self) -> Iterator:
        return (self.make(values) for values in dims.enumerate_all(self.choices))

    def from_json(self, data: Any):
        """Rebuild an architecture from its JSON form: its canonical string or a dict of its choices."""
        if isinstance(data, str):
            return self.from_key(data)
        if isinstance(data, dict):
            return self.make(dims.validate(self.choices, data))
        raise ValueError(f"architecture must be a dict or a canonical string, got {type(data).__name__}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, size={len(self)})"
