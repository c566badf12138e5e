"""The schedulers benchmark's bookkeeping (the runs themselves take an hour: `make bench ARGS="--only
schedulers"`): its summary of hand-made runs, and the cost per decision it times."""

import math

from nasrun.bench.schedulers import decision_cost, first_reach, print_results, summary


def test_summary_of_hand_made_runs(capsys):
    runs = [{"name": "random + asha", "seed": s, "explored": 9 + s, "epochs": 20 + s, "test": 75.0 + s,
             "curve": [(10.0, 60.0), (50.0, 81.0 + s), (90.0, 70.0)]} for s in range(3)]
    runs.append({"name": "random (9 epochs)", "seed": 0, "error": ["boom"]})
    result = {"runs": runs, "decision_ms": {"asha": 0.01}, "seconds": 300.0, "folder": "/tmp/x"}
    [row] = summary(result, 82.0)
    assert row["name"] == "random + asha" and row["runs"] == 3
    assert row["explored"] == (10.0, math.sqrt(2 / 3)) and row["test"][0] == 76.0
    assert row["reach"] == [None, 50, 50]
    assert first_reach(runs[0]["curve"], 60.0) == 10.0 and first_reach([], 1.0) is None
    print_results(result, 82.0)
    out = capsys.readouterr().out
    assert "| random + asha | 3 | 10.0 ± 0.8 | 21 ± 1 | 76.00 ± 0.82 | -, 50, 50 |" in out
    assert "failed: random (9 epochs) seed 0" in out


def test_decision_cost_times_every_scheduler():
    cost = decision_cost(repeats=20)
    assert set(cost) == {"asha", "hyperband", "median", "curve", "curve (fit)"}
    assert all(0 < ms < 1000 for ms in cost.values())
