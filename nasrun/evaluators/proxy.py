"""The proxy evaluator: training-free search (NASWOT-style), where an architecture's fitness is its zero-cost
proxy score. Nothing is trained; when the space has a results table (NAS-Bench-201 at the table's size), the
table supplies the accuracies that are reported, so a training-free search can be judged like any other.
"""

from __future__ import annotations

from nasrun.contracts import is_table_space
from nasrun.deadline import check_deadline
from nasrun.evaluators.tabular import TabularEvaluator


class ProxyEvaluator:
    """scorer: the `proxy=` option's scorer (arch -> score), passed by the CLI. table / benchmark: the
    NAS-Bench-201 table to report accuracies from, used only for space=nb201 at the table's size (table=null:
    report scores only)."""

    reports_cost = False  # a proxy score costs no simulated training time: budget by trials or seconds
    trains = False  # trials are proxy evaluations, not trainings (the outputs count them apart)

    def __init__(self, space, scorer, table: str | None = None, benchmark: str = "cifar10"):
        self.scorer = scorer
        self.lookup = None
        if table is not None and is_table_space(space):
            self.lookup = TabularEvaluator(space, table, benchmark)

    def __call__(self, arch, deadline: float | None = None):
        check_deadline(deadline, "proxy scoring")  # one score takes about a second: checked before it starts
        score = self.scorer(arch)  # a ProxyScoreError here is a failed trial, not a failed search
        metrics = {"fitness": score, "proxy_score": score}
        if self.lookup is not None:
            reported, _ = self.lookup(arch)
            reported.pop("cost", None)
            metrics.update(reported)
        return metrics, None

    def describe(self) -> dict:
        info = {"dataset": self.scorer.data.name, "proxy": self.scorer.name}
        if self.lookup is not None:
            info.update(table=self.lookup.path, benchmark=self.lookup.benchmark)
        return info
