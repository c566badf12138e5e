"""Argument checks for constructors, which are the config schema (CONTRIBUTING.md rule 2).

Each check raises ValueError naming the parameter, the bad value and what is allowed. The runner prefixes
the config group, so a user sees e.g. `strategy.population_size=1: must be an integer >= 2`.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Any, Iterable


class UserError(Exception):
    """A mistake in the user's config, data or environment: reported as one line, without a traceback.

    The line is `problem` (what is wrong, naming the file, line or key) and `fix` (what to do), joined by "; ".
    Both are kept, with `path`, `line` and `key` where known, so code that reports the error another way (a
    warning before a repair, say) uses the fields and never reads the text."""

    def __init__(self, problem: str, fix: str | None = None, *, path: object = None, line: int | None = None,
                 key: str | None = None):
        super().__init__(f"{problem}; {fix}" if fix else problem)
        self.problem, self.fix = problem, fix
        self.path, self.line, self.key = path, line, key


class TextEnum(str, Enum):
    """An enum whose members are their strings, in JSON, comparisons, str() and f-strings alike: what the run
    directory records stays the text it always was, and code compares members, never reads the text."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


INT64_MAX = 2**63 - 1  # what numpy and torch hold: no integer setting may go past it


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}={value!r}: must be an integer{_range(low, high)}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name}={value!r}: must be an integer{_range(low, high)}")
    if abs(value) > INT64_MAX:
        raise ValueError(f"{name}={value!r}: too large; integers must be within +-{INT64_MAX}")
    return value


def check_float(name: str, value: Any, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        number = float(value)
        ok = math.isfinite(number)  # NaN compares false to every bound, and no setting means infinity
        if ok and low is not None:
            ok = number > low if low_open else number >= low
        if ok and high is not None:
            ok = number < high if high_open else number <= high
    if not ok:
        lower = "" if low is None else (f" > {low}" if low_open else f" >= {low}")
        upper = "" if high is None else (f" < {high}" if high_open else f" <= {high}")
        joined = " and".join(p for p in (lower, upper) if p)
        raise ValueError(f"{name}={value!r}: must be a finite number{joined}")
    return number


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r}: must be true or false")
    return value


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    allowed = list(allowed)
    # True == 1 in Python: a bool only matches a bool.
    if not any(a == value and isinstance(a, bool) == isinstance(value, bool) for a in allowed):
        raise ValueError(f"{name}={value!r}: choose one of: {', '.join(str(a) for a in allowed)}")
    return value


def _range(low, high) -> str:
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    return ""
