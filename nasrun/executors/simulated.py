"""The simulated executor: asynchronous parallel search on a benchmark's clock, exact and reproducible.

`workers` virtual workers evaluate cells from a table that reports each cell's training cost (NAS-Bench-201's
12-epoch time). A trial submitted at simulated time t on a free worker finishes at t + cost; the runner gets
trials back in order of those finish times and asks for the next one at that moment, exactly as a real
asynchronous search with `workers` GPUs would see them, without waiting for any of it (the lookup itself takes
microseconds). Each record carries `simulated_start` and `simulated` (its end), and `budget.simulated_seconds`
becomes wall time on that clock. With one worker the clock is the running sum of costs, as the inline executor
keeps it, so the search is the inline one exactly.
"""

from __future__ import annotations

import heapq

from nasrun.checks import UserError, check_int
from nasrun.contracts import Outcome, Trial, reports_cost
from nasrun.executors import run_trial
from nasrun.rundir.records import Status


class SimulatedExecutor:
    on_budget = "cancel"  # budget.seconds is real time; nothing here takes any

    def __init__(self, evaluator, workers: int = 1):
        if not reports_cost(evaluator):
            raise UserError("executor=simulated runs trials on a benchmark's clock and needs an evaluator that "
                            "reports a cost (evaluator=tabular with benchmark=cifar10); use executor=inline or pool")
        self.evaluator = evaluator
        self.slots = check_int("workers", workers, low=1)
        self.clock = 0.0  # simulated seconds: the finish time of the last completed trial
        self.running: list[tuple[float, int, Outcome]] = []  # (finish time, submission number, outcome), a heap

    def resume_clock(self, simulated: float) -> None:
        """A resumed run's clock starts where its log ends, every virtual worker free (the trials in flight
        when it stopped were not recorded and are asked again)."""
        self.clock = simulated

    def submit(self, trial: Trial) -> None:
        outcome = run_trial(self.evaluator, trial)
        cost = outcome.record["metrics"].get("cost")
        if cost is None and outcome.record["status"] == Status.OK:
            raise UserError(f"executor=simulated: the evaluator reported no cost for {trial.arch.key}; use "
                            f"evaluator=tabular with benchmark=cifar10")
        start = self.clock
        finish = start + (cost or 0.0)  # a failed lookup takes no simulated time
        outcome.record.update(simulated_start=start, simulated=finish)
        heapq.heappush(self.running, (finish, trial.number, outcome))

    def completed(self, timeout: float | None = None) -> list[Outcome]:
        """The trial that finishes first on the simulated clock (ties: the earlier submitted)."""
        if not self.running:
            return []
        finish, _, outcome = heapq.heappop(self.running)
        self.clock = finish
        return [outcome]

    def cancel(self) -> list[Outcome]:
        """Trials still running when the search stops never finished on the simulated clock: not recorded."""
        self.running.clear()
        return []

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.running.clear()
