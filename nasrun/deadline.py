"""A trial's deadline: the wall-clock budget (`budget.seconds`) holds inside a trial, not only between trials.

The runner turns what is left of `budget.seconds` into an absolute `time.monotonic()` deadline and hands it to
the evaluator; training and evaluation check it between batches (a clock read costs ~50 ns, a batch
milliseconds). Past it they raise `TrialCancelled`: the runner records the trial as `cancelled` (never `ok`,
never the best), stops the search, and a resume runs that trial again from the start.
"""

from __future__ import annotations

import time


class TrialCancelled(Exception):
    """The run's wall-clock budget ran out while this trial was running."""


def check_deadline(deadline: float | None, where: str) -> None:
    """Raise TrialCancelled once `time.monotonic()` has passed `deadline` (None: no deadline)."""
    if deadline is not None and time.monotonic() >= deadline:
        raise TrialCancelled(f"budget.seconds ran out during {where}")
