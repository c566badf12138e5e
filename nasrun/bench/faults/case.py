"""The vocabulary of the fault-injection suite: the outcomes a case can end in, the runs the cases damage
(`KINDS`), and one `Case` (a row of `nasrun.bench.faults.cases`, run by `nasrun.bench.faults.runner`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

RECOVERED, ONE_LINE = "recovered", "one line"
TRACEBACK, SILENTLY_WRONG, UNCLEAR, CHANGED, SKIPPED = ("traceback", "silently wrong", "unclear message",
                                                       "run files changed", "skipped")

# The runs the cases damage: their overrides ({data}: the shared data folder, {run}: the case's run directory),
# the trials of the whole run, and the trials of the part made before the damage.
KINDS = {
    "table": (["space=nb201", "evaluator=tabular", "dataset.root={data}", "seed=0"], 40, 20),
    "train": (["dataset=synthetic", "budget=smoke", "dataset.num_train=256", "seed=0"], 3, 3),
    "data": (["budget=smoke", "seed=0"], 3, 3),  # the cases give the dataset (they fail before training)
    "proxy": (["space=nb201", "evaluator=tabular", "evaluator.table={data}/nasbench201/nb201.csv", "proxy=naswot",
               "proxy.batch_size=8", "dataset=synthetic", "dataset.channels=3", "dataset.image_size=16",
               "proxy.cache_dir={run}/proxy_cache", "seed=0"], 12, 6),
}


class Skip(Exception):
    """The condition cannot be made here (e.g. mounting a file system needs root)."""


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # a key of KINDS
    damage: Callable  # damage(run_dir, env) -> extra overrides (KEY=VALUE, replacing the base's KEY)
    expect: str  # RECOVERED or ONE_LINE
    says: tuple[str, ...] = ()  # what the one line (or the warnings of a recovered run) must contain
    part: bool = True  # start from a copy of the kind's part run (else from nothing)
    fix: Callable | None = None  # fix(run_dir, env): undo the cause; the resume after it must recover
    process: dict | None = None  # run as a new process: {"sigterm_after": trial lines}, {"obey_permissions": True}
    unchanged: bool = True  # a one-line failure leaves the run's files as they were
