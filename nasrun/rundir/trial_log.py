"""`trials.jsonl`: one JSON object per trial, appended and flushed as each trial ends.

Every record has a `status`: `ok` and `failed` are finished trials; `cancelled` is a trial the wall-clock budget
cut short (it runs again on resume); `end` is the last record of a run that finished, with its stop reason and
counts (a log without one belongs to a run that is still going, or was killed).

Each line goes to the operating system in one unbuffered write, so a killed process loses nothing. fsync (which also
survives a power cut) costs milliseconds, more than a whole table-lookup trial, so `TrialWriter` syncs at most
once a second and on close. A run killed mid-write leaves at most one torn last line; reading drops it with a
warning, so a resumed run re-evaluates only that trial. Damage anywhere else stops the resume.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from nasrun.checks import UserError
from nasrun.rundir.atomic import environment_error, write_bytes
from nasrun.rundir.jsonl import UNREADABLE, decode_lines, encode_line
from nasrun.rundir.records import FINISHED, Status, arch_problem, record_problem

log = logging.getLogger(__name__)


def read_trials(path: Path, repair: bool = True, space=None) -> list[dict]:
    """Every record in `path`, each checked against the trial schema (`nasrun.rundir.records.record_problem`) and,
    given the run's `space`, its architecture against the space. A torn last line (cut JSON or cut UTF-8) is
    dropped with a warning; with `repair` (a resume) it is also cut from the file so new records start on a
    fresh line. A finished trial logged twice to the letter (a double append, a careless copy) is dropped with a
    warning naming the line, and with `repair` cut from the file: counted twice, it would take one trial too
    many from the budget. Readers of a run that may still be writing (the report) pass repair=False and leave
    the file alone. Any other bad line, two different records of one trial among them, raises a UserError
    naming the file, the line and what is wrong."""
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    records = []
    finished: dict[int, tuple[int, dict]] = {}  # trial number -> (its line, its record), for finished trials
    left_out: set[int] = set()  # lines not kept: a torn last line, exact repeats of an earlier line
    for number, record in decode_lines(lines):
        if record is UNREADABLE:
            if any(rest.strip() for rest in lines[number:]):
                raise UserError(f"{path}:{number} is not valid JSON and is not the last line",
                                "repair or remove it before resuming", path=path, line=number) from None
            left_out.add(number)
            if repair:
                log.warning("%s: dropped a torn last line (the run was killed while writing it)", path)
            else:
                log.warning("%s: ignored a torn last line (the run was killed while writing it, or is writing "
                            "it now)", path)
            continue
        problem = record_problem(record)
        if problem is None and space is not None and record["status"] != Status.END:
            problem = arch_problem(record, space)
        if problem is not None:
            raise UserError(f"{path}:{number} is not a valid nasrun trial record: {problem}",
                            "repair or remove that line", path=path, line=number)
        if record["status"] in FINISHED:
            earlier = finished.setdefault(record["trial"], (number, record))
            if earlier[0] != number:
                if earlier[1] != record:
                    raise UserError(f"{path}:{number} and line {earlier[0]} both hold trial {record['trial']}, with "
                                    f"different records", "keep the line that belongs to this run and remove the "
                                    "other", path=path, line=number)
                log.warning("%s:%d repeats line %d (trial %d) exactly; %s", path, number, earlier[0],
                            record["trial"], "removed it" if repair else "ignored it")
                left_out.add(number)
                continue
        records.append(record)
    # Rewritten without the lines left out, and ended by a newline: a whole last record without its newline (a
    # crash between the two) would have the next record glued on.
    if repair and (left_out or lines[-1].strip()):
        kept = [line for number, line in enumerate(lines, start=1) if number not in left_out and line.strip()]
        _rewrite_ended(path, b"\n".join(kept))
    return records


def split_log(records: list[dict]) -> tuple[list[dict], list[dict], dict | None]:
    """(finished trials, cancelled trials, the last end record or None if the run has not ended since)."""
    trials = [r for r in records if r["status"] in FINISHED]
    cancelled = [r for r in records if r["status"] == Status.CANCELLED]
    end = records[-1] if records and records[-1]["status"] == Status.END else None
    return trials, cancelled, end


def _rewrite_ended(path: Path, content: bytes) -> None:
    """Rewrite the log as `content` ended by a newline (without a torn tail; with a last record ended), atomically,
    so new records start on a fresh line."""
    write_bytes(path, content + b"\n" if content.strip() else b"")


class TrialWriter:
    """Appends records to one `trials.jsonl`: each line in one unbuffered write (so nothing waits in a buffer
    when the disk fills up), fsynced at most every `sync_every` s. A failed write (ENOSPC, EIO) becomes a
    one-line UserError naming the file; the line it tore is dropped by the next resume."""

    def __init__(self, path: Path, sync_every: float = 1.0):
        self.path = path
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as err:
            raise environment_error(path, err, "append to") from None
        self.open = True
        self.sync_every = sync_every
        self.synced = time.monotonic()

    def append(self, record: dict) -> None:
        data = encode_line(record)
        size = os.fstat(self.fd).st_size
        try:
            while data:  # os.write may write less than asked (a signal, a nearly full disk): write the rest
                data = data[os.write(self.fd, data):]
            if time.monotonic() - self.synced >= self.sync_every:
                os.fsync(self.fd)
                self.synced = time.monotonic()
        except OSError as err:
            try:
                os.ftruncate(self.fd, size)  # take back the part of the line that did get written
            except OSError:
                pass  # then the next resume drops it as a torn last line
            raise environment_error(self.path, err, "append to") from None

    def close(self) -> None:
        if not self.open:
            return
        fd, self.open = self.fd, False
        try:
            os.fsync(fd)
        except OSError as err:  # the records are with the OS already; only their trip to the disk is unconfirmed
            log.warning("%s: fsync failed (%s)", self.path, err.strerror)
        finally:
            os.close(fd)

    def __enter__(self) -> "TrialWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
