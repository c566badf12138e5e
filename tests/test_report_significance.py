"""The report's statistics (`nasrun.reports.significance`) against scipy called directly, and the plot of
convergence against iterations (`nasrun.reports.convergence`)."""

from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from nasrun.reports.runs import Group
from nasrun.reports.significance import compare, rows, summary_lines

HAND_MADE = {"evolution": [94.1, 93.9, 94.3, 94.0, 94.2], "guided": [93.5, 93.2, 93.6, 93.4, 93.3],
             "random": [93.0, 93.6, 92.8, 93.4, 93.1, 92.9]}


def group(name: str, values, strategy=None, space="nb201") -> Group:
    row = {"experiment": name, "strategy": strategy or name, "settings": "", "space": space, "dataset": "cifar10",
           "evaluator": "tabular"}
    runs = [SimpleNamespace(reported=v, choices={"strategy": strategy or name}) for v in values]
    return Group(row, runs)  # type: ignore[arg-type]


def test_anova_tukey_and_welch_equal_scipy_called_directly():
    tests = compare([group(name, values) for name, values in HAND_MADE.items()])
    samples = [np.array(v) for v in HAND_MADE.values()]
    anova = stats.f_oneway(*samples)
    assert tests.anova["F"] == pytest.approx(anova.statistic) and tests.anova["p"] == pytest.approx(anova.pvalue)
    assert tests.anova["p"] < 1e-4
    tukey = stats.tukey_hsd(*samples)
    names = list(HAND_MADE)
    assert [(p["a"], p["b"]) for p in tests.pairs] == [("evolution", "guided"), ("evolution", "random"),
                                                       ("guided", "random")]
    for pair in tests.pairs:
        i, j = names.index(pair["a"]), names.index(pair["b"])
        assert pair["p"] == pytest.approx(tukey.pvalue[i, j])
        assert pair["difference"] == pytest.approx(np.mean(HAND_MADE[pair["a"]]) - np.mean(HAND_MADE[pair["b"]]))
    assert {(p["a"], p["b"]) for p in tests.different_pairs()} == {("evolution", "guided"), ("evolution", "random")}
    # Welch against the random-search baseline, for each other group.
    assert [(w["group"], w["baseline"]) for w in tests.welch] == [("evolution", "random"), ("guided", "random")]
    for w in tests.welch:
        direct = stats.ttest_ind(HAND_MADE[w["group"]], HAND_MADE["random"], equal_var=False)
        assert w["t"] == pytest.approx(direct.statistic) and w["p"] == pytest.approx(direct.pvalue)
    assert [r["test"] for r in rows(tests)] == ["anova"] + ["tukey_hsd"] * 3 + ["welch"] * 2
    text = "\n".join(summary_lines(tests))
    assert "2 of 3 pairs differ at p < 0.05" in text and "Welch's t-test, guided vs random" in text


def test_groups_that_cannot_be_tested_say_why_instead_of_a_nan():
    single = compare([group("a", [93.0]), group("b", [93.5, 93.7])])
    assert single.anova is None and single.pairs == []
    assert any("a: 1 run(s)" in reason for reason in single.skipped)
    constant = compare([group("a", [94.37] * 3), group("b", [94.37] * 4)])
    assert constant.anova is None and any("no variance" in reason for reason in constant.skipped)
    # A baseline of another space is no baseline for this group.
    other = compare([group("evolution", [94.0, 94.2]), group("random", [93.0, 93.2], space="custom")])
    assert other.welch == [] and other.anova is not None
