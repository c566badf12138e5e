"""The trial record schema: fitness, which record is better, the running best."""

import math

import pytest

from nasrun.rundir.records import (
    arch_problem,
    best_of,
    better,
    fitness,
    record_problem,
    reported_accuracy,
    running_best,
)
from nasrun.spaces.nb201 import NB201Space

CELL = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def rec(trial, status="ok", **metrics):
    return {"trial": trial, "key": str(trial), "arch": str(trial), "status": status, "metrics": metrics}


def test_fitness_is_the_proxy_score_when_given_else_validation_accuracy():
    assert fitness(rec(0, val_acc=80.0)) == 80.0
    assert fitness(rec(0, val_acc=80.0, fitness=3.5)) == 3.5
    assert fitness(rec(0, "failed")) is None and fitness(rec(0, "cancelled")) is None


def test_strictly_better_wins_and_ties_keep_the_earlier_trial():
    records = [rec(0, "failed"), rec(1, val_acc=70.0, test_acc=69.0), rec(2, val_acc=75.0, test_acc=71.0),
               rec(3, val_acc=75.0, test_acc=99.0), rec(4, "cancelled"), rec(5, val_acc=60.0)]
    assert [best["trial"] if best else None for _, best in running_best(records)] == [None, 1, 2, 2, 2, 2]
    assert best_of(records)["trial"] == 2 and reported_accuracy(best_of(records)) == 71.0
    assert not better(rec(6, "failed"), None) and better(rec(7, val_acc=0.0), None)
    assert best_of([]) is None and reported_accuracy(None) is None


GOOD = {"trial": 3, "key": "k", "arch": "k", "status": "ok", "metrics": {"val_acc": 70.0, "cost": 1.5},
        "seconds": 0.2, "elapsed": 4.0, "simulated": 9.0}


@pytest.mark.parametrize("change,problem", [
    ({"status": "great"}, "status='great'"),
    ({"trial": "3"}, "trial='3': must be an integer"),
    ({"trial": True}, "trial=True"),
    ({"trial": -1}, "trial=-1"),
    ({"key": 5}, "key=5"),
    ({"metrics": []}, "metrics=[]"),
    ({"metrics": {"val_acc": None}}, "metrics.val_acc=None: an ok trial needs a finite val_acc"),
    ({"metrics": {"val_acc": math.nan}}, "metrics.val_acc=nan"),
    ({"metrics": {"val_acc": "70"}}, "metrics.val_acc='70'"),
    ({"metrics": {"val_acc": 70.0, "fitness": math.inf}}, "metrics.fitness=inf"),
    ({"metrics": {"val_acc": 70.0, "cost": -2.0}}, "metrics.cost=-2.0: must be a finite number >= 0"),
    ({"seconds": -0.1}, "seconds=-0.1"),
    ({"elapsed": "soon"}, "elapsed='soon'"),
    ({"simulated": math.inf}, "simulated=inf"),
    ({"status": "failed"}, "needs an error string"),
    ({"epochs": 0}, "epochs=0: must be an integer >= 1"),
    ({"epochs": 2.5}, "epochs=2.5"),
    ({"decision": "maybe"}, "decision='maybe': must be one of continue, pause, stop, finished"),
    ({"status": "rung"}, "a rung record needs epochs and decision=continue or pause"),
    ({"status": "rung", "epochs": 3, "decision": "stop"}, "decision=continue or pause"),
    ({"status": "rung", "epochs": 3, "decision": "pause", "metrics": {"val_acc": None}}, "metrics.val_acc=None"),
])
def test_record_problem_names_the_bad_field(change, problem):
    assert record_problem(GOOD) is None
    assert problem in record_problem({**GOOD, **change})


@pytest.mark.parametrize("missing", ["trial", "key", "arch", "metrics"])
def test_record_problem_names_a_missing_field(missing):
    assert f"no '{missing}' field" in record_problem({k: v for k, v in GOOD.items() if k != missing})


def test_scheduled_records_compare_at_the_highest_fidelity_first():
    """Under a scheduler the best is the best at the most epochs any result reached: 60 % after 9 epochs beats
    80 % after 1 (which says less), and rung records are results like finished ones."""
    low = {**GOOD, "trial": 0, "status": "rung", "epochs": 1, "decision": "pause", "metrics": {"val_acc": 80.0}}
    high = {**GOOD, "trial": 1, "epochs": 9, "decision": "finished", "metrics": {"val_acc": 60.0}}
    assert record_problem(low) is None and record_problem(high) is None
    assert better(low, None) and better(high, low) and not better(low, high)
    assert best_of([low, high])["trial"] == 1 and fitness(low) == 80.0


def test_other_records_and_end_records():
    assert "a list, not a JSON object" in record_problem([1])
    assert record_problem({"status": "end", "stop_reason": "budget.trials reached", "elapsed": 3.0}) is None
    assert "stop_reason" in record_problem({"status": "end"})
    assert record_problem({**GOOD, "status": "failed", "metrics": {}, "error": "boom"}) is None


def test_arch_problem_checks_the_architecture_and_its_key_against_the_space():
    space = NB201Space()
    assert arch_problem({"arch": CELL, "key": CELL}, space) is None
    assert "arch: malformed cell" in arch_problem({"arch": "|none~0|", "key": "|none~0|"}, space)
    assert "'conv' is not an operation" in arch_problem({"arch": CELL.replace("none~2", "conv~2"), "key": CELL}, space)
    assert "is not the key of its arch" in arch_problem({"arch": CELL, "key": "other"}, space)
    assert "must be a dict or a canonical string" in arch_problem({"arch": 5, "key": CELL}, space)


def test_a_bad_log_line_is_an_error_that_carries_its_file_and_line(tmp_path):
    from nasrun.checks import UserError
    from nasrun.rundir.trial_log import read_trials

    log = tmp_path / "trials.jsonl"
    log.write_text('{"status": "end", "stop_reason": "x"}\n{"status": "maybe"}\n'
                   '{"status": "end", "stop_reason": "y"}\n')
    with pytest.raises(UserError) as caught:
        read_trials(log)
    assert (caught.value.path, caught.value.line) == (log, 2) and caught.value.fix == "repair or remove that line"
    assert str(caught.value) == f"{caught.value.problem}; {caught.value.fix}"
