"""Evaluators that misbehave on purpose, for the executor tests and benchmarks. Pool and Ray workers are other
processes that import what they run by module name, so these live in the package, not in tests/.

`Toy(...)` is a picklable `make_evaluator(device)`: its evaluator scores an architecture by a hash of its key
(deterministic and instant, like a table), optionally sleeping `delay` seconds per trial, and it kills its own
worker (SIGKILL) or hangs on chosen keys.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Toy:
    """kill: keys whose evaluation SIGKILLs the worker; the first time only when `marker_dir` is set (a marker
    file remembers it, so the retry succeeds), every time otherwise. kill_always: keys that SIGKILL it on every
    attempt. hang: keys that sleep `hang_seconds`. startup: seconds a worker takes to build its evaluator (a slow
    start-up, e.g. a busy machine importing torch and reading data). warn: a warning every evaluation logs and
    issues (through `logging` and `warnings`), to see where a worker's warnings end up."""

    delay: float = 0.0
    kill: tuple = ()
    marker_dir: str | None = None
    kill_always: tuple = ()
    hang: tuple = ()
    hang_seconds: float = 600.0
    startup: float = 0.0
    warn: str | None = None

    def __call__(self, device=None):
        time.sleep(self.startup)
        return ToyEvaluator(self)


class ToyEvaluator:
    reports_cost = False
    trains = False

    def __init__(self, plan: Toy):
        self.plan = plan
        self.pid = os.getpid()

    def __call__(self, arch, deadline: float | None = None):
        plan = self.plan
        if arch.key in plan.kill_always or (arch.key in plan.kill and self._first_time(arch.key)):
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(plan.hang_seconds if arch.key in plan.hang else plan.delay)
        if plan.warn is not None:
            logging.getLogger(__name__).warning("%s (logged)", plan.warn)
            warnings.warn(f"{plan.warn} (warnings.warn)", UserWarning, stacklevel=1)
        return {"val_acc": toy_accuracy(arch.key), "worker_pid": os.getpid()}, None

    def _first_time(self, key: str) -> bool:
        if self.plan.marker_dir is None:
            return True
        marker = Path(self.plan.marker_dir) / hashlib.sha256(key.encode()).hexdigest()[:16]
        if marker.exists():
            return False
        marker.touch()
        return True

    def describe(self) -> dict:
        return {"dataset": "toy"}


def toy_accuracy(key: str) -> float:
    """A fixed accuracy in [50, 100) per architecture key."""
    return 50 + int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little") % 5000 / 100


@dataclass(frozen=True)
class SegmentToy:
    """A picklable `make_evaluator(device)` whose evaluator trains in segments as a scheduler needs
    (`train_segment`), instantly: a trial's accuracy after epoch e is a fixed curve per key rising to
    `toy_accuracy(key)`. It sleeps `delay` seconds per epoch, SIGKILLs its own process when it trains past
    (key, epoch) in `kill_at` (once per marker file when `marker_dir` is set), and fails (raises) on the epochs
    in `fail_at`. Its checkpoint names the epoch it holds, and every segment reports the epoch it went on from
    (`resumed_from`), so a test sees that a promotion never trains from scratch."""

    delay: float = 0.0
    kill_at: tuple = ()
    fail_at: tuple = ()
    marker_dir: str | None = None
    max_epochs: int = 9

    def __call__(self, device=None):
        return SegmentToyEvaluator(self)


class SegmentToyEvaluator(ToyEvaluator):
    trains = True
    plan: SegmentToy  # type: ignore[assignment]  # the segment toy's plan, not Toy's

    def __init__(self, plan: SegmentToy):
        self.plan = plan
        self.pid = os.getpid()

    def __call__(self, arch, deadline: float | None = None):
        metrics, model, _ = self.train_segment(arch, self.plan.max_epochs, None, deadline)
        return metrics, model

    def train_segment(self, arch, until: int, resume: dict | None, deadline: float | None = None):
        plan = self.plan
        start = 0 if resume is None else int(resume["epoch"])
        if resume is not None and resume.get("key") != arch.key:
            raise ValueError(f"the checkpoint holds {resume.get('key')}, not {arch.key}")
        history = []
        for epoch in range(start + 1, until + 1):
            if (arch.key, epoch) in plan.kill_at and self._first_time(f"{arch.key}:{epoch}"):
                os.kill(os.getpid(), signal.SIGKILL)
            if (arch.key, epoch) in plan.fail_at:
                raise RuntimeError(f"epoch {epoch} failed")
            time.sleep(plan.delay)
            history.append({"epoch": epoch, "val_acc": toy_curve(arch.key, epoch, plan.max_epochs)})
        metrics = {"val_acc": history[-1]["val_acc"], "epochs_run": until, "history": history,
                   "resumed_from": start, "stopped_early": False}
        return metrics, None, {"epoch": until, "key": arch.key}


def toy_curve(key: str, epoch: int, max_epochs: int) -> float:
    """A learning curve per key: rising from 10 % towards toy_accuracy(key) at max_epochs."""
    final = toy_accuracy(key)
    return 10 + (final - 10) * (1 - 0.5 ** epoch) / (1 - 0.5 ** max_epochs)
