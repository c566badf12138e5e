"""The small shared part of every choice-based space: sampling, mutation, crossover, enumeration, parsing.

A space subclass sets `name` and `arch_type` (an immutable architecture class with a `CHOICES` mapping, a
`from_choices(dict)` constructor, `choices() -> dict`, `to_json()` and `from_key()`) and defines
`build(arch, in_channels, image_size, num_classes) -> nn.Module`.
Strategies only ever call `sample`, `mutate` and `crossover`; the runner uses `from_json` and `len`.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from nasrun.spaces import choices


class ChoiceSpace:
    name: str = ""
    arch_type: type = object

    def sample(self, rng: np.random.Generator):
        return self.arch_type.from_choices(choices.sample(self.arch_type.CHOICES, rng))

    def mutate(self, arch, rng: np.random.Generator, prob: float | None = None):
        return self.arch_type.from_choices(choices.mutate(arch.choices(), self.arch_type.CHOICES, rng, prob))

    def crossover(self, a, b, rng: np.random.Generator):
        return self.arch_type.from_choices(choices.crossover(a.choices(), b.choices(), rng))

    def __len__(self) -> int:
        return choices.size(self.arch_type.CHOICES)

    def __iter__(self) -> Iterator:
        return (self.arch_type.from_choices(values) for values in choices.enumerate_all(self.arch_type.CHOICES))

    def from_json(self, data: Any):
        """Rebuild an architecture from its JSON form: its canonical string or a dict of its choices."""
        if isinstance(data, str):
            return self.arch_type.from_key(data)
        if isinstance(data, dict):
            return self.arch_type.from_choices(choices.validate(self.arch_type.CHOICES, data))
        raise ValueError(f"architecture must be a dict or a canonical string, got {type(data).__name__}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, size={len(self)})"
