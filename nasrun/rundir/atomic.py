"""Every file nasrun writes goes through here: written under a temporary name unique to the process (and
thread), flushed to disk, then renamed over the target, so a reader (or a resume after a kill) sees the old
file or the new one, never half of one. A failed write removes its temporary file, and an error of the
environment (a full disk, a read-only folder, a file in the way) becomes one line naming the path and the fix.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from nasrun.checks import UserError
from nasrun.rundir.jsonl import jsonable

FIXES = {
    errno.ENOSPC: "the disk is full; free space, then resume",
    errno.EDQUOT: "the disk quota is used up; free space, then resume",
    errno.EROFS: "the file system is read-only; choose a writable folder (hydra.run.dir=DIR)",
    errno.EACCES: "permission denied; choose a folder you can write (hydra.run.dir=DIR)",
    errno.EPERM: "permission denied; choose a folder you can write (hydra.run.dir=DIR)",
    errno.ENOTDIR: "a file is in the way of a folder on that path; move it or choose another folder",
    errno.EEXIST: "a file is in the way of a folder on that path; move it or choose another folder",
    errno.EISDIR: "a folder is in the way of that file; move it or choose another folder",
}


def environment_error(path, err: OSError, action: str = "write") -> UserError:
    """One line for an OSError on `path`: what failed, why, and what to do."""
    known = FIXES.get(err.errno) if err.errno is not None else None
    why, _, fix = (known or err.strerror or str(err)).partition("; ")
    return UserError(f"cannot {action} {path}: {why}", fix or None, path=path)


def temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")


@contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends, flush it to disk and rename it over `path`.
    On any error the temporary file is removed, and an OSError becomes a one-line UserError."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        _remove(tmp)
        raise environment_error(path, err) from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp: Path) -> None:
    """Remove a temporary file if it was created (its folder may be the thing that failed)."""
    try:
        tmp.unlink(missing_ok=True)
    except OSError:
        pass


def write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_csv(path, rows: list[dict], columns: list[str]) -> None:
    """A header of `columns`, then one line per row (only those columns)."""
    import csv

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_json(path, content) -> None:
    write_text(path, json.dumps(jsonable(content), indent=2))
