"""Claims on cells in a shared proxy cache, so that concurrent processes never score one cell twice.

Processes that share a `proxy.cache_dir` (sweep jobs, `nasrun-score` workers) claim a cell before scoring it:
an OS file lock (`fcntl.flock`) on `CACHE_DIR/claims/<group>-<cell>.claim`, held while the score is computed
and written, then released and the file removed. A process that finds a cell claimed either moves on to
other cells (`try_claim`, how workers and a search's batch of candidates share out the work) or waits for the
claim and then reads the score the holder wrote (`claim`).

A claim left by a killed process expires at once: the kernel releases a flock when its holder dies, however
it dies (SIGKILL included), so the next process takes the cell over and finds no score in the cache. A holder
that lives but hangs is waited on for `WAIT_SECONDS` at most; then the waiter scores the cell itself, so a
search never stalls on another (a score computed twice is harmless: the cache keeps the first line).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

WAIT_SECONDS = 600.0  # the longest wait for another process's claim before scoring the cell anyway
POLL_SECONDS = 0.02   # how often a waiting process retries the lock (a cell takes 0.1 s to seconds)


class Claim:
    """A held claim: release() (after the score is written) removes the file and lets waiters in."""

    def __init__(self, path: Path | None, fd: int | None):
        self.path, self.fd = path, fd

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            if self.path is not None:
                self.path.unlink(missing_ok=True)  # while still locked: a waiter that locked it first re-checks
        finally:
            os.close(self.fd)  # releases the lock
            self.fd = None

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


UNCLAIMED = Claim(None, None)  # what a process without a writable claims folder works under


class Claims:
    """Claims on cells, for one group of scores computed together (one batch and seed: the gradient pass, or
    one proxy), in `folder`."""

    def __init__(self, folder: Path, group: str):
        self.folder, self.group = Path(folder), group
        self._broken = False  # the folder could not be written: work unclaimed, say so once

    def _path(self, key: str) -> Path:
        cell = hashlib.sha256(key.encode()).hexdigest()[:20]
        return self.folder / f"{self.group}-{cell}.claim"

    def try_claim(self, key: str) -> Claim | None:
        """The claim on cell `key` if no other process holds it, else None (at once, never waiting)."""
        return self._acquire(key)

    def claim(self, key: str, wait_seconds: float = WAIT_SECONDS) -> Claim:
        """The claim on cell `key`, waiting while another process holds it (at most `wait_seconds`; then
        UNCLAIMED, and the caller scores the cell unclaimed)."""
        deadline = time.monotonic() + wait_seconds
        while True:
            claim = self._acquire(key)
            if claim is not None:
                return claim
            if time.monotonic() >= deadline:
                log.warning("proxy cache: cell %s has been claimed by another process for over %.0f s; scoring it "
                            "here as well", key, wait_seconds)
                return UNCLAIMED
            time.sleep(POLL_SECONDS)

    def _acquire(self, key: str) -> Claim | None:
        if self._broken:
            return UNCLAIMED
        path = self._path(key)
        while True:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:  # a read-only or full cache folder: scoring goes on, only unclaimed
                self._broken = True
                log.warning("proxy cache: cannot write claims in %s (%s); concurrent processes may score a cell "
                            "twice", self.folder, err.strerror or err)
                return UNCLAIMED
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            except BaseException:
                os.close(fd)
                raise
            # The holder before us removes the file before unlocking it: then our lock is on a file nobody else
            # will open again, and we try with a fresh one.
            try:
                current = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                return Claim(path, fd)
            os.close(fd)
