import json
import math

import numpy as np
import pytest

from nasrun.checks import UserError
from nasrun.runner import Budget, run_search
from nasrun.spaces.custom import CustomSpace
from nasrun.strategies.evolution import RegularizedEvolution
from nasrun.strategies.random import RandomSearch
from nasrun.trial_log import TrialWriter, read_trials

SPACE = CustomSpace()


def score(arch):
    v = arch.to_json()
    return 10.0 * v["conv3"] + v["num_block"] + v["feature"] / 100 - v["dropout"]


class CountingEvaluator:
    """Deterministic fake training that remembers what it was asked to evaluate."""

    def __init__(self, fail_keys=()):
        self.calls = []
        self.fail_keys = set(fail_keys)

    def __call__(self, arch):
        self.calls.append(arch.key)
        if arch.key in self.fail_keys:
            raise RuntimeError("boom: out of memory")
        return {"val_acc": score(arch), "test_acc": score(arch) - 1}, None


def append_trial(path, record):
    with TrialWriter(path) as writer:
        writer.append(record)


def evolution(seed=0):
    return RegularizedEvolution(SPACE, seed=seed, population_size=6, sample_size=3)


def test_no_architecture_is_evaluated_twice_and_trials_are_numbered_in_order(tmp_path):
    ev = CountingEvaluator()
    result = run_search(SPACE, evolution(), ev, Budget(trials=60), tmp_path)
    assert len(ev.calls) == len(set(ev.calls)) == 60
    assert [r["trial"] for r in result.records] == list(range(60))
    assert result.repeats > 0  # evolution on 108 architectures does propose repeats; they were answered


def test_exhausted_space_stops_the_search_with_a_reason(tmp_path):
    ev = CountingEvaluator()
    result = run_search(SPACE, RandomSearch(SPACE, seed=1), ev, Budget(trials=500), tmp_path)
    assert len(result.records) == 108 == len(set(ev.calls))
    assert "space exhausted" in result.stop_reason


def test_a_failing_trial_is_recorded_and_the_search_goes_on(tmp_path):
    first = RandomSearch(SPACE, seed=5).ask()
    ev = CountingEvaluator(fail_keys={first.key})
    result = run_search(SPACE, RandomSearch(SPACE, seed=5), ev, Budget(trials=4), tmp_path)
    records = read_trials(tmp_path / "trials.jsonl")
    assert [r["status"] for r in records] == ["failed", "ok", "ok", "ok"]
    assert "out of memory" in records[0]["error"]
    assert result.best["status"] == "ok"


def test_seconds_budget_is_checked_before_each_trial(tmp_path):
    ticks = iter(range(0, 1000, 10))  # every clock read advances 10 s
    result = run_search(SPACE, RandomSearch(SPACE, seed=0), CountingEvaluator(), Budget(trials=50, seconds=45),
                        tmp_path, clock=lambda: float(next(ticks)))
    assert result.stop_reason == "budget.seconds reached"
    assert 1 <= len(result.records) < 50


def test_best_json_names_the_best_trial(tmp_path):
    result = run_search(SPACE, evolution(), CountingEvaluator(), Budget(trials=20), tmp_path,
                        model_info={"space_name": "custom"})
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["key"] == result.best["key"] == max(result.records, key=lambda r: r["metrics"]["val_acc"])["key"]
    assert best["space_name"] == "custom"


def test_existing_run_without_resume_is_refused(tmp_path):
    run_search(SPACE, evolution(), CountingEvaluator(), Budget(trials=2), tmp_path)
    with pytest.raises(UserError, match="resume=true"):
        run_search(SPACE, evolution(), CountingEvaluator(), Budget(trials=2), tmp_path)


@pytest.mark.parametrize("stop_after", [1, 7, 15])
def test_resume_replays_the_log_and_proposes_what_the_uninterrupted_run_would(tmp_path, stop_after):
    full = run_search(SPACE, evolution(seed=3), CountingEvaluator(), Budget(trials=30), tmp_path / "full")
    part = tmp_path / "part"
    run_search(SPACE, evolution(seed=3), CountingEvaluator(), Budget(trials=stop_after), part)
    ev = CountingEvaluator()
    resumed = run_search(SPACE, evolution(seed=3), ev, Budget(trials=30), part, resume=True)
    assert resumed.replayed == stop_after and resumed.evaluated == 30 - stop_after
    assert not set(ev.calls) & {r["key"] for r in resumed.records[:stop_after]}  # nothing run again
    assert [r["key"] for r in resumed.records] == [r["key"] for r in full.records]
    on_disk = read_trials(part / "trials.jsonl")
    assert [r["trial"] for r in on_disk] == list(range(30))


def test_torn_last_line_is_dropped_and_that_trial_rerun(tmp_path, caplog):
    run_search(SPACE, evolution(seed=4), CountingEvaluator(), Budget(trials=5), tmp_path)
    path = tmp_path / "trials.jsonl"
    lines = path.read_text().splitlines()
    torn_key = json.loads(lines[-1])["key"]
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    ev = CountingEvaluator()
    result = run_search(SPACE, evolution(seed=4), ev, Budget(trials=8), tmp_path, resume=True)
    assert "torn last line" in caplog.text
    assert ev.calls[0] == torn_key and len(ev.calls) == 4
    assert [r["trial"] for r in read_trials(path)] == list(range(8))
    assert len(result.records) == 8


def test_damage_before_the_last_line_stops_the_resume(tmp_path):
    path = tmp_path / "trials.jsonl"
    append_trial(path, {"trial": 0})
    path.write_text(path.read_text() + "{not json\n")
    append_trial(path, {"trial": 2})
    with pytest.raises(UserError, match="trials.jsonl:2"):
        read_trials(path)


def test_a_resume_that_diverges_keeps_every_recorded_trial(tmp_path, caplog):
    run_search(SPACE, RandomSearch(SPACE, seed=1), CountingEvaluator(), Budget(trials=6), tmp_path)
    recorded = {r["key"] for r in read_trials(tmp_path / "trials.jsonl")}
    ev = CountingEvaluator()
    result = run_search(SPACE, RandomSearch(SPACE, seed=99), ev, Budget(trials=10), tmp_path, resume=True)
    assert "diverges" in caplog.text
    assert not recorded & set(ev.calls)
    assert len(result.records) == 10 and result.replayed == 6


def test_non_finite_metrics_are_written_as_null(tmp_path):
    path = tmp_path / "trials.jsonl"
    append_trial(path, {"trial": 0, "metrics": {"val_loss": math.nan, "x": [math.inf]}})
    assert read_trials(path)[0]["metrics"] == {"val_loss": None, "x": [None]}


@pytest.mark.parametrize("kwargs,key", [({"trials": 0}, "trials"), ({"epochs": 1.5}, "epochs"),
                                        ({"seconds": -1}, "seconds"), ({"simulated_seconds": 0}, "simulated_seconds"),
                                        ({"trials": None}, "never stop")])
def test_budget_rejects_bad_values_naming_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        Budget(**kwargs)


class CostlyEvaluator(CountingEvaluator):
    """A fake benchmark table: each architecture reports a fixed simulated cost."""

    def __call__(self, arch):
        metrics, model = super().__call__(arch)
        return {**metrics, "cost": 10.0 + arch.to_json()["feature"] / 10}, model


def test_simulated_budget_stops_before_the_trial_that_would_pass_it(tmp_path):
    ev = CostlyEvaluator()
    result = run_search(SPACE, RandomSearch(SPACE, seed=2), ev, Budget(trials=None, simulated_seconds=150), tmp_path)
    records = read_trials(tmp_path / "trials.jsonl")
    costs = [r["metrics"]["cost"] for r in records]
    assert result.stop_reason == "budget.simulated_seconds reached"
    # Each record carries the simulated clock after it; the trial that would have crossed 150 s is not counted.
    assert [r["simulated"] for r in records] == pytest.approx(np.cumsum(costs).tolist())
    assert records[-1]["simulated"] <= 150
    crossing = ev.calls[len(records)]  # evaluated (a lookup) but not recorded
    assert records[-1]["simulated"] + 10.0 + SPACE.from_json(crossing).feature / 10 > 150
    assert len(ev.calls) == len(records) + 1


def test_repeats_are_free_on_the_simulated_clock_and_resume_keeps_the_clock(tmp_path):
    budget = Budget(trials=None, simulated_seconds=600)
    full = run_search(SPACE, evolution(seed=5), CostlyEvaluator(), budget, tmp_path / "full")
    assert full.repeats > 0  # evolution on 108 architectures proposes repeats; none was charged
    assert full.records[-1]["simulated"] == pytest.approx(sum(r["metrics"]["cost"] for r in full.records))
    part = tmp_path / "part"
    run_search(SPACE, evolution(seed=5), CostlyEvaluator(), Budget(trials=10, simulated_seconds=600), part)
    resumed = run_search(SPACE, evolution(seed=5), CostlyEvaluator(), budget, part, resume=True)
    assert [r["key"] for r in resumed.records] == [r["key"] for r in full.records]
    assert resumed.records[-1]["simulated"] == pytest.approx(full.records[-1]["simulated"])


def test_simulated_budget_needs_an_evaluator_that_reports_cost(tmp_path):
    with pytest.raises(UserError, match="reported no cost"):
        run_search(SPACE, RandomSearch(SPACE, seed=0), CountingEvaluator(), Budget(simulated_seconds=100), tmp_path)


def test_trial_writer_flushes_every_record_before_the_next_trial(tmp_path):
    path = tmp_path / "trials.jsonl"
    with TrialWriter(path, sync_every=3600) as writer:
        writer.append({"trial": 0})
        assert read_trials(path) == [{"trial": 0}]  # visible to another reader (and to a resume after a kill)
        writer.append({"trial": 1})
        assert len(read_trials(path)) == 2
