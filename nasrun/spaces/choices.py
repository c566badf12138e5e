"""Spaces whose architectures are a fixed, ordered set of named discrete choices.

The custom space (five choices) and NAS-Bench-201 (six edges, five operations each) are both of this kind,
so sampling, mutation, crossover and enumeration are written once here, on plain dicts, and each space wraps
the result in its own immutable architecture type.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Iterator, Mapping

import numpy as np

Choices = Mapping[str, tuple]  # dimension name -> allowed values, in a fixed order


def canonical_value(choices: Choices, field: str, value: Any) -> Any:
    """Return the allowed value equal to `value`, or raise ValueError naming the field and the allowed values.

    Booleans, strings and numbers only match their own kind: `conv3=True` or `dropout="0.5"` are configuration
    mistakes, while 1.0 matches an allowed 1 (and comes back as 1).
    """
    allowed = choices[field]
    for candidate in allowed:
        if kind(value) == kind(candidate) and value == candidate:
            return candidate
    shown = ", ".join(str(v) for v in allowed)
    raise ValueError(f"{field}={value!r} is not allowed; choose one of: {shown}")


def kind(value: Any) -> str:
    return "bool" if isinstance(value, bool) else "str" if isinstance(value, str) else "number"


def validate(choices: Choices, values: Mapping[str, Any]) -> dict:
    """Check that `values` sets every dimension to an allowed value; return them in canonical order."""
    unknown = [k for k in values if k not in choices]
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}; fields are: {', '.join(choices)}")
    missing = [k for k in choices if k not in values]
    if missing:
        raise ValueError(f"missing field {missing[0]!r}; fields are: {', '.join(choices)}")
    return {k: canonical_value(choices, k, values[k]) for k in choices}


def size(choices: Choices) -> int:
    return math.prod(len(v) for v in choices.values())


def enumerate_all(choices: Choices) -> Iterator[dict]:
    names = list(choices)
    for combo in itertools.product(*(choices[n] for n in names)):
        yield dict(zip(names, combo))


def sample(choices: Choices, rng: np.random.Generator) -> dict:
    return {k: v[int(rng.integers(len(v)))] for k, v in choices.items()}


def _other_value(allowed: tuple, current: Any, rng: np.random.Generator) -> Any:
    others = [v for v in allowed if v != current]
    return others[int(rng.integers(len(others)))]


def mutate(values: Mapping[str, Any], choices: Choices, rng: np.random.Generator, prob: float | None) -> dict:
    """Change each dimension with probability `prob` to a *different* allowed value.

    A draw that changes nothing is redrawn, so the child always differs from the parent (with prob=0.05 over
    five dimensions, four draws in five would otherwise return the parent unchanged). `prob=None` changes
    exactly one uniformly chosen dimension, the mutation NAS-Bench-201's own evolution uses.
    """
    names = [k for k in choices if len(choices[k]) > 1]
    if not names:
        raise ValueError("cannot mutate: every dimension has a single allowed value")
    child = dict(values)
    if prob is None:
        name = names[int(rng.integers(len(names)))]
        child[name] = _other_value(choices[name], child[name], rng)
        return child
    while True:
        flips = rng.random(len(names)) < prob
        if flips.any():
            break
    for name, flip in zip(names, flips):
        if flip:
            child[name] = _other_value(choices[name], child[name], rng)
    return child


def crossover(a: Mapping[str, Any], b: Mapping[str, Any], rng: np.random.Generator) -> dict:
    """Uniform crossover: each dimension comes from `a` or `b` with probability 1/2."""
    take_a = rng.random(len(a)) < 0.5
    return {k: (a[k] if pick else b[k]) for k, pick in zip(a, take_a)}


def neighbours(values: Mapping[str, Any], choices: Choices) -> Iterator[dict]:
    """Every architecture one choice away (each dimension set to each of its other values), in a fixed order:
    the moves of Bayesian optimisation's acquisition search on a choice space."""
    for name, current in values.items():
        for other in choices[name]:
            if other != current:
                yield {**values, name: other}


def encode(rows: list[Mapping[str, Any]], choices: Choices) -> np.ndarray:
    """One float row per architecture, one column per dimension of `choices`: a number for numeric choices, the
    value's index otherwise, NaN where the architecture lacks the dimension (a shallower network)."""
    out = np.full((len(rows), len(choices)), np.nan)
    for c, (name, allowed) in enumerate(choices.items()):
        numeric = all(kind(v) == "number" for v in allowed)
        for r, values in enumerate(rows):
            if name in values:
                out[r, c] = float(values[name]) if numeric else allowed.index(values[name])
    return out


def numeric_columns(choices: Choices) -> np.ndarray:
    return np.array([all(kind(v) == "number" for v in allowed) for allowed in choices.values()])


def distances(a: np.ndarray, b: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """The edit distance between every row of `a` and of `b` (from `encode`): per dimension, a numeric choice
    costs |x - y| / max(|x|, |y|) (Auto-Keras' width term: 16 against 32 filters is as far as 32 against 64),
    any other differing choice 1, and a dimension only one side has 1 (an unmatched layer)."""
    x, y = a[:, None, :], b[None, :, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.maximum(np.abs(x), np.abs(y))
        relative = np.where(scale > 0, np.abs(x - y) / scale, 0.0)
    cost = np.where(numeric, relative, (x != y).astype(float))
    missing = np.isnan(x) | np.isnan(y)
    cost = np.where(missing, (np.isnan(x) != np.isnan(y)).astype(float), cost)
    return cost.sum(axis=2)
