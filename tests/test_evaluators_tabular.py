import csv
import re

import numpy as np
import pytest

from nasrun.checks import UserError
from nasrun.evaluators.tabular import TabularEvaluator
from nasrun.search.budget import Budget
from nasrun.search.runner import run_search
from nasrun.spaces.custom import CustomSpace
from nasrun.spaces.nb201 import NB201Arch, NB201Space
from nasrun.strategies.random import RandomSearch

SPACE = NB201Space()


@pytest.fixture(scope="module")
def table(data_root):
    return data_root / "nasbench201" / "nb201.csv"


@pytest.fixture(scope="module")
def rows(table):
    with open(table, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("benchmark", ["cifar10", "cifar100", "imagenet16"])
def test_lookups_match_the_csv(table, rows, benchmark):
    ev = TabularEvaluator(SPACE, table, benchmark)
    for row in rows[::997]:
        metrics, model = ev(NB201Arch.from_key(row["arch"]))
        assert model is None
        assert metrics["val_acc"] == float(row[f"{benchmark}_valid_acc12"])
        assert metrics["test_acc"] == float(row[f"{benchmark}_test_acc200"])
        assert metrics["test_acc12"] == float(row[f"{benchmark}_test_acc12"])
        if benchmark == "cifar10":
            assert metrics["cost"] == float(row["cifar10_valid_time12"])
        else:  # no training times for these: no simulated clock
            assert "cost" not in metrics
    assert ev.reports_cost == (benchmark == "cifar10")


def test_best_cells_of_the_table_are_the_published_ones(table, rows):
    ev = TabularEvaluator(SPACE, table)
    best = max((ev(NB201Arch.from_key(r["arch"]))[0]["test_acc"] for r in rows))
    assert best == pytest.approx(94.37, abs=0.01)  # the README's best CIFAR-10 cell


def test_wrong_space_size_or_table_is_a_one_line_user_error(table, tmp_path):
    with pytest.raises(UserError, match="needs space=nb201"):
        TabularEvaluator(CustomSpace(), table)
    with pytest.raises(UserError, match="space.channels=16"):
        TabularEvaluator(NB201Space(channels=32), table)
    with pytest.raises(UserError, match="not found"):
        TabularEvaluator(SPACE, tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("index,arch\n0,x\n")
    with pytest.raises(UserError, match="lacks the column"):
        TabularEvaluator(SPACE, bad)
    with pytest.raises(ValueError, match="benchmark"):
        TabularEvaluator(SPACE, table, "imagenet")


def damage(line: str, column: int, value: str) -> str:
    fields = line.split(",")
    fields[column] = value
    return ",".join(fields)


# (what is done to data row 3 of a 6-row table, what the one-line error says)
ROW_DAMAGE = [
    (lambda line: damage(line, 2, "nan"), "cifar10_valid_acc12=nan: an accuracy must be in [0, 100]"),
    (lambda line: damage(line, 5, "inf"), "cifar10_test_acc200=inf"),
    (lambda line: damage(line, 3, "-86.6"), "cifar10_valid_time12=-86.6: a time must be finite and >= 0"),
    (lambda line: damage(line, 6, "131.0"), "cifar100_valid_acc12=131.0: an accuracy must be in [0, 100]"),
    (lambda line: damage(line, 4, "n/a"), "cifar10_test_acc12='n/a' is not a number"),
    (lambda line: damage(line, 1, "|conv~0|"), "arch: malformed cell"),
    (lambda line: line[: len(line) // 2], "has the wrong number of fields"),
    (lambda line: line + ",1.0", "has the wrong number of fields"),
    (lambda line: damage(line, 0, "0").replace(line.split(",")[1], "ARCH0"), "repeats the cell"),
]


@pytest.mark.parametrize("change,message", ROW_DAMAGE)
def test_a_damaged_table_row_is_named_in_one_line(table, tmp_path, change, message):
    lines = table.read_text().splitlines()[:7]
    lines[4] = change(lines[4]).replace("ARCH0", lines[1].split(",")[1])
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=re.escape(f"{bad}:5 ") + ".*" + re.escape(message)):
        TabularEvaluator(SPACE, bad)


def test_a_cell_missing_from_a_partial_table_is_a_failed_trial_not_a_crash(table, tmp_path, caplog):
    lines = table.read_text().splitlines()
    partial = tmp_path / "partial.csv"
    partial.write_text("\n".join(lines[:200]) + "\n")
    TabularEvaluator(SPACE, partial)
    assert "holds 199 of the 15625 NAS-Bench-201 cells" in caplog.text
    result = run_search(SPACE, RandomSearch(SPACE, seed=0), TabularEvaluator(SPACE, partial),
                        Budget(trials=20, simulated_seconds=12000), tmp_path / "run")
    failed = [r for r in result.records if r["status"] == "failed"]
    assert failed and "is not in" in failed[0]["error"]
    assert all(r["simulated"] >= 0 for r in result.records)


def test_a_whole_nb201_search_on_the_table_follows_the_protocol(table, tmp_path):
    result = run_search(SPACE, RandomSearch(SPACE, seed=0), TabularEvaluator(SPACE, table),
                        Budget(trials=None, simulated_seconds=12000), tmp_path)
    costs = np.array([r["metrics"]["cost"] for r in result.records])
    assert 60 < len(result.records) < 160 and costs.sum() <= 12000
    assert result.best["metrics"]["val_acc"] == max(r["metrics"]["val_acc"] for r in result.records)
