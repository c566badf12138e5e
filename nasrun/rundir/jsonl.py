"""JSON lines, the format of trials.jsonl and the proxy cache: one object per line, encoded and decoded here.

What a reader does with a line that does not decode is its own policy (the trial log refuses damage before
its last line; the proxy cache scores that architecture again), so `decode_lines` only reports it.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterator

UNREADABLE = object()  # what `decode_lines` yields for a line that is not JSON (cut, or bytes cut inside a character)


def jsonable(value: Any) -> Any:
    """Replace NaN and infinities (a diverging validation loss, say) by null: JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def encode_line(record: dict) -> bytes:
    """One record as one compact line, newline included."""
    return (json.dumps(jsonable(record), separators=(",", ":"), allow_nan=False) + "\n").encode()


def decode_lines(lines: list[bytes]) -> Iterator[tuple[int, Any]]:
    """(line number from 1, the decoded value or UNREADABLE) for every non-blank line."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except ValueError:  # JSONDecodeError, or UnicodeDecodeError for bytes cut inside a character
            yield number, UNREADABLE
