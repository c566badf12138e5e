"""Random search: independent uniform samples from the space."""

from __future__ import annotations

import numpy as np


class RandomSearch:
    def __init__(self, space, seed: int):
        self.space = space
        self.rng = np.random.default_rng(seed)

    def ask(self):
        return self.space.sample(self.rng)

    def tell(self, arch, fitness: float | None) -> None:
        """Random search learns nothing from results."""
