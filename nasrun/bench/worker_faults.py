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
