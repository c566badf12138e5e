"""Objectives and constraints through the whole runner, on NAS-Bench-201's real tables: infeasible cells
screened before training and not counted, pareto.json, the best feasible, and a search stuck on infeasible
proposals ending in one line."""

import json

import numpy as np

from nasrun.objectives import Objectives
from nasrun.pareto import nondominated
from nasrun.rundir.records import record_problem
from nasrun.search.budget import Budget
from nasrun.search.goals import MAX_INFEASIBLE, Goals
from nasrun.search.runner import run_search
from nasrun.spaces.nb201 import NB201Space
from nasrun.strategies.random import RandomSearch

from conftest import run_cli


def test_a_latency_bound_on_the_real_tables(tmp_path, data_root):
    run_dir = tmp_path / "run"
    proc = run_cli("space=nb201", "evaluator=tabular", "dataset=cifar10", "budget.trials=60",
                   "budget.simulated_seconds=null", "strategy=evolution", "objectives=[val_acc,latency_ms]",
                   "latency=table", "latency.device=fpga",
                   "+constraints.latency_ms=3.0", "reference=[70.0,3.72496]", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]
    ok = [r for r in records if r["status"] == "ok"]
    infeasible = [r for r in records if r["status"] == "infeasible"]
    assert len(ok) == 60 and infeasible and records[-1]["infeasible"] == len(infeasible)
    assert all(record_problem(r) is None for r in records)
    assert all(r["metrics"]["latency_ms"] > 3.0 and r["violation"] > 0 and "val_acc" not in r["metrics"]
               for r in infeasible)
    assert all(r["metrics"]["latency_ms"] <= 3.0 and r["violation"] == 0 for r in ok)
    assert all(r["metrics"]["params"] >= 73306 and r["metrics"]["flops"] >= 15566080 for r in ok)
    front = json.loads((run_dir / "pareto.json").read_text())
    points = np.array([(r["metrics"]["val_acc"], -r["metrics"]["latency_ms"]) for r in ok])
    assert {t["trial"] for t in front["trials"]} == {r["trial"] for r, k in zip(ok, nondominated(points)) if k}
    assert front["objectives"] == ["val_acc", "latency_ms"] and front["hypervolume"] > 0
    best = json.loads((run_dir / "best.json").read_text())
    assert best["metrics"]["val_acc"] == max(r["metrics"]["val_acc"] for r in ok)


def test_a_search_that_proposes_only_infeasible_cells_stops_in_one_line(tmp_path):
    goals = Goals(Objectives(constraints=(("latency_ms", 0.5),)), None, lambda arch: 1.0)  # nothing fits

    class Evaluator:
        reports_cost = False

        def __call__(self, arch, deadline=None):
            raise AssertionError("an infeasible cell was evaluated")

        def describe(self):
            return {}

    result = run_search(NB201Space(), RandomSearch(NB201Space(), seed=0), Evaluator(), Budget(trials=5),
                        tmp_path / "run", goals=goals)
    assert str(result.stop_reason).startswith(f"the strategy proposed {MAX_INFEASIBLE} new architectures in a row")
    assert "constraints.latency_ms=0.5" in result.stop_reason
    assert len(result.records) == MAX_INFEASIBLE and not (tmp_path / "run" / "pareto.json").exists()
