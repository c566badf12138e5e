"""`space=choices`: a search space of named discrete choices that a user writes in YAML, with a `build`
function of their own, and no subclassing.

    # myconf/space/myspace.yaml
    _target_: nasrun.spaces.generic.GenericSpace
    name: myspace
    builder: mymodels.build          # build(choices, in_channels, image_size, num_classes) -> nn.Module
    choices:
      width: [16, 32, 64]
      depth: [1, 2, 3]
      activation: [relu, gelu]

An architecture is a `ChoiceArch`: the chosen value of every dimension in the YAML's order, an immutable,
hashable value whose canonical string is `width=32,depth=2,activation=gelu` and whose JSON form is the dict.
Sampling, mutation, crossover and enumeration come from `ChoiceSpace`, as for the built-in spaces, so every
strategy, deduplication, resume and `load_best` work unchanged.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from nasrun.spaces import choices as dims
from nasrun.spaces.base import ChoiceSpace

SCALARS = (bool, int, float, str)
RESERVED = ",="  # they separate a canonical string's parts


@dataclass(frozen=True)
class ChoiceArch:
    """One architecture: (dimension, value) pairs in the space's order. Build it with `space.make(dict)` or
    `space.from_json(...)`, which check every value against the space."""

    items: tuple[tuple[str, Any], ...]
    key: str = field(init=False, repr=False, compare=False)  # computed once: the runner reads it every trial

    def __post_init__(self):
        object.__setattr__(self, "items", tuple((str(k), v) for k, v in self.items))
        object.__setattr__(self, "key", ",".join(f"{k}={_text(v)}" for k, v in self.items))

    def choices(self) -> dict:
        return dict(self.items)

    def to_json(self) -> dict:
        return self.choices()

    def __getitem__(self, name: str):
        return dict(self.items)[name]

    def __getattr__(self, name: str):
        """`arch.width` reads a choice (called only for names that are not attributes)."""
        if name.startswith("__") or name in ("items", "key"):  # not set yet (copying, unpickling)
            raise AttributeError(name)
        for dimension, value in self.items:
            if dimension == name:
                return value
        raise AttributeError(f"{type(self).__name__} has no choice {name!r}")

    def __str__(self) -> str:
        return self.key


def _text(value) -> str:
    return "true" if value is True else "false" if value is False else str(value)


class GenericSpace(ChoiceSpace):
    """choices: dimension name -> list of allowed values (numbers, strings or booleans).
    builder: a function build(choices: dict, in_channels, image_size, num_classes) -> torch.nn.Module, or its
    dotted path (`mymodels.build`; the module is looked up on PYTHONPATH, then in the working directory).
    name: what outputs call the space."""

    def __init__(self, choices: Mapping[str, Any], builder: str | Callable, name: str = "choices"):
        if not isinstance(name, str) or not name:
            raise ValueError(f"name={name!r}: must be a non-empty string")
        self.name = name
        self.choices = _checked_choices(choices)
        self.builder_path = builder if isinstance(builder, str) else f"{builder.__module__}.{builder.__qualname__}"
        self.builder = import_builder(builder) if isinstance(builder, str) else builder
        _check_signature(self.builder, self.builder_path)

    def make(self, values: dict) -> ChoiceArch:
        return ChoiceArch(tuple(dims.validate(self.choices, values).items()))

    def from_key(self, text: str) -> ChoiceArch:
        """Parse `name=value,...`; a malformed string raises ValueError naming what is wrong."""
        if not isinstance(text, str):
            raise ValueError(f"an architecture string must be a string, got {type(text).__name__}")
        values = {}
        for part in text.split(","):
            name, sep, written = part.partition("=")
            if not sep:
                raise ValueError(f"malformed architecture string {text!r}: expected name=value parts joined by ','")
            if name not in self.choices:
                raise ValueError(f"unknown field {name!r} in {text!r}; fields are: {', '.join(self.choices)}")
            values[name] = _parse(self.choices, name, written)
        return self.make(values)

    def build(self, arch: ChoiceArch, in_channels: int, image_size: int, num_classes: int):
        from torch import nn

        model = self.builder(arch.choices(), in_channels, image_size, num_classes)
        if not isinstance(model, nn.Module):
            raise TypeError(f"space.builder={self.builder_path} returned {type(model).__name__}, not a "
                            f"torch.nn.Module")
        return model

    def __repr__(self) -> str:
        return f"GenericSpace(name={self.name!r}, size={len(self)}, builder={self.builder_path!r})"


def _parse(choices, name: str, written: str):
    """The allowed value whose text is `written` (1.0 also matches an allowed 1)."""
    for candidate in choices[name]:
        if _text(candidate) == written:
            return candidate
    try:
        return dims.canonical_value(choices, name, float(written))
    except ValueError:  # not a number: reported by validate, naming the field and the allowed values
        return dims.canonical_value(choices, name, written)


def _checked_choices(choices) -> dict[str, tuple]:
    if not hasattr(choices, "items") or not len(choices):
        raise ValueError(f"choices={choices!r}: must map each dimension's name to a list of allowed values")
    checked = {}
    for name, values in choices.items():
        name = str(name)
        if not name or any(c in name for c in RESERVED):
            raise ValueError(f"choices.{name}: a dimension's name must be non-empty without ',' or '='")
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise ValueError(f"choices.{name}={values!r}: must be a list of allowed values, e.g. [16, 32]")
        values = tuple(values)
        if not values:
            raise ValueError(f"choices.{name}: the list of allowed values is empty")
        for value in values:
            if not isinstance(value, SCALARS):
                raise ValueError(f"choices.{name}: {value!r} is not a number, string or boolean")
            if isinstance(value, str) and (not value or any(c in value for c in RESERVED)):
                raise ValueError(f"choices.{name}: {value!r}: a string value must be non-empty without ',' or '='")
        for i, value in enumerate(values):  # 1 and 1.0 are one value; so are "1" and 1 in a canonical string
            if any(_text(v) == _text(value) or (dims.kind(v) == dims.kind(value) and v == value) for v in values[:i]):
                raise ValueError(f"choices.{name}: {_text(value)} is listed twice")
        checked[name] = values
    return checked


def import_builder(path: str) -> Callable:
    """The function at dotted `path`. A user's module sits on PYTHONPATH or in the working directory, which
    a console script does not put on sys.path, so that is tried last."""
    module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"builder={path!r}: give the dotted path of a function, e.g. mymodels.build")
    try:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name.split(".")[0] or os.getcwd() in sys.path:
                raise
            sys.path.append(os.getcwd())
            module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"builder={path}: cannot import {module_name} ({err}); put {module_name.split('.')[0]}.py "
                         f"in the working directory or on PYTHONPATH") from None
    except Exception as err:  # the user's module raised while importing: show its error, not ours
        raise ValueError(f"builder={path}: importing {module_name} failed: {type(err).__name__}: {err}") from None
    builder = getattr(module, attr, None)
    if not callable(builder):
        raise ValueError(f"builder={path}: {module_name} has no function {attr!r}")
    return builder


def _check_signature(builder: Callable, path: str) -> None:
    try:
        inspect.signature(builder).bind({}, 1, 28, 10)
    except TypeError:
        raise ValueError(f"builder={path}: must take (choices, in_channels, image_size, num_classes)") from None
    except ValueError:  # no signature to read (a builtin): calling it will tell
        pass
