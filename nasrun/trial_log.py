"""`trials.jsonl`: one JSON object per finished trial, appended, flushed and fsynced.

A run killed mid-write leaves at most one torn last line; reading drops it with a warning, so a resumed run
re-evaluates only that trial. Damage anywhere else is not ours to guess about and stops the resume.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

from nasrun.checks import UserError

log = logging.getLogger(__name__)


def read_trials(path: Path) -> list[dict]:
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if any(rest.strip() for rest in lines[number:]):
                raise UserError(f"{path}:{number} is not valid JSON and is not the last line; "
                                f"repair or remove it before resuming") from None
            log.warning("%s: dropped a torn last line (the run was killed while writing it)", path)
            _truncate_to(path, b"\n".join(lines[:number - 1]))
    return records


def _truncate_to(path: Path, content: bytes) -> None:
    """Rewrite the file without its torn tail, so new records start on a fresh line."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(content + b"\n" if content.strip() else b"")
    os.replace(tmp, path)


def jsonable(value):
    """Replace NaN and infinities (a diverging validation loss, say) by null: JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def append_trial(path: Path, record: dict) -> None:
    line = json.dumps(jsonable(record), separators=(",", ":"), allow_nan=False) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
