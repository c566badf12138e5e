"""Are the configurations' final accuracies different, or is it the seeds? For the groups `nasrun-report` read:

- a one-way ANOVA over every group with at least two runs (`scipy.stats.f_oneway`): does any group differ;
- Tukey's honestly significant difference for every pair (`scipy.stats.tukey_hsd`): which pairs differ, with
  the family-wise error held at the level over all pairs;
- Welch's t-test of each group against the random-search baseline of the same space and dataset, when the
  sweep has one (`scipy.stats.ttest_ind(equal_var=False)`): the groups' variances need not be equal.

The figure tested is each run's reported accuracy (the test accuracy of the trial it selected), as in the table.
A group with fewer than two runs, or a test whose groups have no variance at all (every run of every group found
the same cell), gets no p-value and a reason instead: a p-value of NaN printed as a result would mislead.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from nasrun.reports.runs import Group

ALPHA = 0.05  # the level at which a pair is called different


@dataclass
class Tests:
    """What `compare` found. anova: {"F", "p"} or None (with `skipped` saying why); pairs: Tukey's, one dict per
    pair {"a", "b", "difference" (mean a - mean b), "p"}; welch: {"group", "baseline", "t", "p"} per group."""

    groups: dict[str, np.ndarray]
    anova: dict | None = None
    pairs: list[dict] = field(default_factory=list)
    welch: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def different_pairs(self, alpha: float = ALPHA) -> list[dict]:
        return [p for p in self.pairs if p["p"] < alpha]


def _values(group: Group) -> np.ndarray:
    values = np.array([r.reported for r in group.runs if r.reported is not None], dtype=float)
    return values[np.isfinite(values)]


def _no_variance(samples: list[np.ndarray]) -> bool:
    return all(np.ptp(s) == 0 for s in samples)


def compare(groups: list[Group]) -> Tests:
    """ANOVA, Tukey's HSD and Welch's tests over the groups (see the module)."""
    from scipy import stats

    values = {g.label: _values(g) for g in groups}
    tests = Tests(values)
    enough = {label: v for label, v in values.items() if len(v) >= 2}
    for label, v in values.items():
        if len(v) < 2:
            tests.skipped.append(f"{label}: {len(v)} run(s) with an accuracy; a test needs at least 2")
    if len(enough) >= 2:
        samples = list(enough.values())
        if _no_variance(samples):
            tests.skipped.append("ANOVA and Tukey's HSD: every run of every group has the same accuracy (no "
                                 "variance to test)")
        else:
            anova = stats.f_oneway(*samples)
            tests.anova = {"F": float(anova.statistic), "p": float(anova.pvalue), "groups": len(samples)}
            tukey = stats.tukey_hsd(*samples)
            labels = list(enough)
            for i in range(len(labels)):
                for j in range(i + 1, len(labels)):
                    tests.pairs.append({"a": labels[i], "b": labels[j],
                                        "difference": float(samples[i].mean() - samples[j].mean()),
                                        "p": float(tukey.pvalue[i, j])})
    for baseline_group in groups:
        if not any(run.choices.get("strategy") == "random" for run in baseline_group.runs):
            continue
        baseline = baseline_group.label
        for group in groups:
            label = group.label
            same_problem = all(group.row[c] == baseline_group.row[c] for c in ("space", "dataset", "evaluator"))
            if group is baseline_group or not same_problem or label not in enough or baseline not in enough:
                continue
            a, b = enough[label], enough[baseline]
            if _no_variance([a, b]):
                tests.skipped.append(f"Welch {label} vs {baseline}: no variance in either group")
                continue
            with warnings.catch_warnings():  # one group without variance: scipy warns; the p-value stands
                warnings.simplefilter("ignore", RuntimeWarning)
                welch = stats.ttest_ind(a, b, equal_var=False)
            tests.welch.append({"group": label, "baseline": baseline, "difference": float(a.mean() - b.mean()),
                                "t": float(welch.statistic), "p": float(welch.pvalue)})
    return tests


def _p(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3g}"


def rows(tests: Tests) -> list[dict]:
    """Every test as a row of significance.csv: test, a, b, difference, statistic, p."""
    out = []
    if tests.anova is not None:
        out.append({"test": "anova", "a": f"{tests.anova['groups']} groups", "b": "", "difference": "",
                    "statistic": tests.anova["F"], "p": tests.anova["p"]})
    out += [{"test": "tukey_hsd", "a": p["a"], "b": p["b"], "difference": p["difference"], "statistic": "",
             "p": p["p"]} for p in tests.pairs]
    out += [{"test": "welch", "a": w["group"], "b": w["baseline"], "difference": w["difference"],
             "statistic": w["t"], "p": w["p"]} for w in tests.welch]
    return out


def summary_lines(tests: Tests, alpha: float = ALPHA) -> list[str]:
    """The findings in words (markdown list items), for the console and checklist.md."""
    lines = []
    if tests.anova is not None:
        lines.append(f"- One-way ANOVA over {tests.anova['groups']} groups: F = {tests.anova['F']:.3g}, "
                     f"p = {_p(tests.anova['p'])}" + (" (the groups differ)" if tests.anova["p"] < alpha else
                                                        " (no difference shown)"))
        different = tests.different_pairs(alpha)
        if tests.pairs:
            lines.append(f"- Tukey's HSD: {len(different)} of {len(tests.pairs)} pairs differ at p < {alpha}" +
                         (": " + "; ".join(f"{p['a']} vs {p['b']} ({p['difference']:+.2f}, p = {_p(p['p'])})"
                                           for p in different) if different else ""))
    for w in tests.welch:
        lines.append(f"- Welch's t-test, {w['group']} vs {w['baseline']}: {w['difference']:+.2f} points, "
                     f"t = {w['t']:.3g}, p = {_p(w['p'])}")
    lines += [f"- Not tested: {reason}" for reason in tests.skipped]
    return lines


def print_tests(tests: Tests) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if tests.pairs:
        table = Table(title="Tukey's HSD: every pair of groups (difference of mean accuracy, points)")
        for column in ("group a", "group b", "a - b", "p"):
            table.add_column(column, justify="right" if column in ("a - b", "p") else "left")
        for p in tests.pairs:
            mark = " *" if p["p"] < ALPHA else ""
            table.add_row(p["a"], p["b"], f"{p['difference']:+.2f}", _p(p["p"]) + mark)
        console.print(table)
    for line in summary_lines(tests):
        console.print(line[2:], highlight=False, soft_wrap=True)
