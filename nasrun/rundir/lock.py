"""One writer per run directory: an OS file lock (`fcntl.flock`) on `RUN_DIR/run.lock`, which also records who
holds it (pid, host, start time).

Two processes resuming one directory would run every trial twice and race on best.json, so the second one
stops with one line naming the holder. The kernel releases a flock when its process dies, however it dies, so a
lock left by a killed process is simply free again; its recorded holder is then reported as taken over.
Re-entrant within a process (the command and the search loop both hold it).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from nasrun.checks import UserError
from nasrun.rundir.atomic import environment_error

log = logging.getLogger(__name__)

_held: dict[str, list] = {}  # resolved run directory -> [file descriptor, depth], for this process


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _holder(fd: int) -> dict:
    try:
        data = os.pread(fd, 4096, 0)
        holder = json.loads(data) if data.strip() else {}
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}  # an unreadable record only loses the name of the holder, never the lock itself


@contextmanager
def hold_run_dir(run_dir) -> Iterator[None]:
    """Hold the run directory's lock for the block, or raise UserError naming the process that holds it."""
    run_dir = Path(run_dir)
    key = str(run_dir.resolve())
    if key in _held:
        _held[key][1] += 1
        try:
            yield
        finally:
            _held[key][1] -= 1
        return
    path = run_dir / "run.lock"
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise environment_error(path, err, "create") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('started', '?')}"
        raise UserError(f"{run_dir} is in use by {who}; wait for that run to end or stop it (two writers would "
                        f"run every trial twice), or choose another hydra.run.dir") from None
    previous = _holder(fd)
    if previous.get("pid") and previous.get("pid") != os.getpid():
        same_host = previous.get("host") == socket.gethostname()
        if not same_host or not _alive(previous["pid"]):
            log.warning("%s: took over the lock of pid %s on %s, which ended without releasing it", run_dir,
                        previous["pid"], previous.get("host"))
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
    except OSError as err:  # a full disk: nothing else could be written either
        os.close(fd)  # closing releases the flock
        raise environment_error(path, err, "write") from None
    _held[key] = [fd, 1]
    try:
        yield
    finally:
        del _held[key]
        os.ftruncate(fd, 0)  # released cleanly: nothing to take over
        if created and [p.name for p in run_dir.iterdir()] == ["run.lock"]:
            path.unlink()  # nothing ran (a mistyped override): leave no empty run directory behind
            run_dir.rmdir()
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
