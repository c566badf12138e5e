"""Trained weights kept for children to inherit (space=morph): `weights/` in the run directory.

A child proposed as a morph of an observed ancestor (`strategy.lineage(arch)`) starts from that ancestor's
trained weights, handed on through the morphisms by `nasrun.spaces.morph.network.inherit`. The store keeps
the weights of the `keep` fittest trials only, so the disk does not grow with the search; a child whose
ancestor's weights are gone trains from its own initialisation, and its record says so.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from nasrun.contracts import lineage
from nasrun.rundir.atomic import atomic_path
from nasrun.rundir.records import is_ok, ok_fitness

log = logging.getLogger(__name__)


class WeightStore:
    def __init__(self, folder: Path, keep: int):
        self.folder = Path(folder)
        self.keep = keep
        self.fitness: dict[str, float] = {}  # key -> fitness of the weights on disk

    def recover(self, records: list[dict]) -> None:
        """On resume: the weights already on disk, for the trials the log says are ok."""

        for record in records:
            path = self.path(record["key"])
            if is_ok(record) and path.is_file() and not path.is_symlink():  # a link could lead out of the run
                self.fitness[record["key"]] = ok_fitness(record)

    def path(self, key: str) -> Path:
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.pt"

    def save(self, key: str, weights: dict, fitness: float) -> None:
        """Keep `weights` if they are among the `keep` fittest; drop whatever falls out."""
        import torch

        self.fitness[key] = fitness
        kept = sorted(self.fitness, key=lambda k: -self.fitness[k])[:self.keep]
        if key in kept:
            with atomic_path(self.path(key)) as tmp:
                torch.save(weights, tmp)
        for dropped in set(self.fitness) - set(kept):
            self.path(dropped).unlink(missing_ok=True)
            del self.fitness[dropped]

    def load(self, key: str) -> dict | None:
        """The weights of `key`, or None when they were never kept, were dropped, or cannot be read."""
        import pickle

        import torch

        path = self.path(key)
        if key not in self.fitness or not path.is_file() or path.is_symlink():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
            log.warning("%s (weights of %s) cannot be read (%s); its children train from scratch", path, key, err)
            return None

    def inheritance(self, strategy, arch):
        """(ancestor, its weights, the morphisms) for a child the strategy proposed as a morph, or None."""
        traced = lineage(strategy)
        found = traced(arch) if traced is not None else None
        if not found:
            return None
        ancestor, morphs = found
        weights = self.load(ancestor.key)
        return None if weights is None else (ancestor, weights, tuple(morphs))
