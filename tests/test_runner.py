import json
import math

import numpy as np
import pytest

from nasrun.checks import UserError
from nasrun.rundir.trial_log import TrialWriter, read_trials, split_log
from nasrun.search.budget import Budget
from nasrun.search.runner import run_search
from nasrun.spaces.custom import CustomSpace
from nasrun.strategies.evolution import RegularizedEvolution
from nasrun.strategies.random import RandomSearch

SPACE = CustomSpace()


def score(arch):
    v = arch.to_json()
    return 10.0 * v["conv3"] + v["num_block"] + v["feature"] / 100 - v["dropout"]


class CountingEvaluator:
    """Deterministic fake training that remembers what it was asked to evaluate."""

    def __init__(self, fail_keys=()):
        self.calls = []
        self.fail_keys = set(fail_keys)

    def __call__(self, arch, deadline=None):
        self.calls.append(arch.key)
        if arch.key in self.fail_keys:
            raise RuntimeError("boom: out of memory")
        return {"val_acc": score(arch), "test_acc": score(arch) - 1}, None


def trials_of(path):
    """The finished trials of a log (without its cancelled and end records)."""
    return split_log(read_trials(path))[0]


def record(trial, **extra):
    return {"trial": trial, "arch": {}, "key": f"k{trial}", "status": "ok", "metrics": {"val_acc": 1.0},
            "seconds": 0.1, **extra}


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


def test_a_space_too_large_for_len_is_searched_and_never_exhausted(tmp_path):
    from nasrun.search.loop import space_size
    from nasrun.spaces.macro import MacroSpace

    macro = MacroSpace(15)  # about 2**160 networks: len() cannot hold it
    assert space_size(macro) == math.inf and space_size(SPACE) == 108

    class Constant:
        def __call__(self, arch, deadline=None):
            return {"val_acc": 1.0}, None

    result = run_search(macro, RandomSearch(macro, seed=0), Constant(), Budget(trials=3), tmp_path)
    assert len(result.records) == 3 and result.stop_reason == "budget.trials reached"


def test_a_failing_trial_is_recorded_and_the_search_goes_on(tmp_path):
    first = RandomSearch(SPACE, seed=5).ask()
    ev = CountingEvaluator(fail_keys={first.key})
    result = run_search(SPACE, RandomSearch(SPACE, seed=5), ev, Budget(trials=4), tmp_path)
    records = trials_of(tmp_path / "trials.jsonl")
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
    # Each run ends its part of the log with an end record; the trials are numbered straight through.
    assert [r["status"] for r in on_disk].count("end") == 2 and on_disk[-1]["status"] == "end"
    assert [r["trial"] for r in split_log(on_disk)[0]] == list(range(30))


def test_torn_last_line_is_dropped_and_that_trial_rerun(tmp_path, caplog):
    run_search(SPACE, evolution(seed=4), CountingEvaluator(), Budget(trials=5), tmp_path)
    path = tmp_path / "trials.jsonl"
    lines = path.read_text().splitlines()[:-1]  # killed before the end record, while writing the last trial
    torn_key = json.loads(lines[-1])["key"]
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    ev = CountingEvaluator()
    result = run_search(SPACE, evolution(seed=4), ev, Budget(trials=8), tmp_path, resume=True)
    assert "torn last line" in caplog.text
    assert ev.calls[0] == torn_key and len(ev.calls) == 4
    assert [r["trial"] for r in trials_of(path)] == list(range(8))
    assert len(result.records) == 8


def test_a_whole_last_record_without_its_newline_is_ended_before_appending(tmp_path):
    path = tmp_path / "trials.jsonl"
    append_trial(path, record(0))
    path.write_bytes(path.read_bytes().rstrip(b"\n"))  # a crash between the record and its newline
    assert read_trials(path) == [record(0)]
    append_trial(path, record(1))
    assert read_trials(path) == [record(0), record(1)]


def test_damage_before_the_last_line_stops_the_resume(tmp_path):
    path = tmp_path / "trials.jsonl"
    append_trial(path, record(0))
    path.write_text(path.read_text() + "{not json\n")
    append_trial(path, record(2))
    with pytest.raises(UserError, match="trials.jsonl:2"):
        read_trials(path)


def test_a_trial_logged_twice_to_the_letter_is_dropped_with_a_warning_and_cut_from_the_log(tmp_path, caplog):
    """A double append (or a careless copy) of one record: dropped, or the run would hold an architecture twice
    and one trial too many against its budget."""
    straight = run_search(SPACE, evolution(seed=6), CountingEvaluator(), Budget(trials=8), tmp_path / "straight")
    run_search(SPACE, evolution(seed=6), CountingEvaluator(), Budget(trials=5), tmp_path / "run")
    path = tmp_path / "run" / "trials.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3] + [lines[2]] + lines[3:]) + "\n")  # line 4 repeats line 3
    ev = CountingEvaluator()
    result = run_search(SPACE, evolution(seed=6), ev, Budget(trials=8), tmp_path / "run", resume=True)
    assert "trials.jsonl:4 repeats line 3 (trial 2) exactly; removed it" in caplog.text
    assert len(ev.calls) == 3 and result.replayed == 5  # the budget counts the trial once
    assert [r["key"] for r in result.records] == [r["key"] for r in straight.records]
    assert [r["trial"] for r in trials_of(path)] == list(range(8))


def test_two_different_records_of_one_trial_stop_the_resume_naming_both_lines(tmp_path):
    path = tmp_path / "trials.jsonl"
    append_trial(path, record(0))
    append_trial(path, record(1))
    append_trial(path, record(1, metrics={"val_acc": 2.0}))
    with pytest.raises(UserError, match=r"trials.jsonl:3 and line 2 both hold trial 1, with different records; "
                                        r"keep the line that belongs to this run and remove the other"):
        read_trials(path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2]) + "\n")
    append_trial(path, {**record(2), "status": "cancelled", "error": "budget.seconds reached"})
    append_trial(path, record(2))  # a cancelled trial's number comes again: it ran again on resume
    assert [(r["trial"], r["status"]) for r in read_trials(path)] == [(0, "ok"), (1, "ok"), (2, "cancelled"),
                                                                         (2, "ok")]


def test_a_resume_that_diverges_keeps_every_recorded_trial(tmp_path, caplog):
    run_search(SPACE, RandomSearch(SPACE, seed=1), CountingEvaluator(), Budget(trials=6), tmp_path)
    recorded = {r["key"] for r in trials_of(tmp_path / "trials.jsonl")}
    ev = CountingEvaluator()
    result = run_search(SPACE, RandomSearch(SPACE, seed=99), ev, Budget(trials=10), tmp_path, resume=True)
    assert "diverges" in caplog.text
    assert not recorded & set(ev.calls)
    assert len(result.records) == 10 and result.replayed == 6


def test_non_finite_metrics_are_written_as_null(tmp_path):
    path = tmp_path / "trials.jsonl"
    append_trial(path, record(0, metrics={"val_acc": 1.0, "val_loss": math.nan, "x": [math.inf]}))
    assert read_trials(path)[0]["metrics"] == {"val_acc": 1.0, "val_loss": None, "x": [None]}


@pytest.mark.parametrize("kwargs,key", [({"trials": 0}, "trials"), ({"epochs": 1.5}, "epochs"),
                                        ({"seconds": -1}, "seconds"), ({"simulated_seconds": 0}, "simulated_seconds"),
                                        ({"trials": None}, "never stop")])
def test_budget_rejects_bad_values_naming_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        Budget(**kwargs)


class CostlyEvaluator(CountingEvaluator):
    """A fake benchmark table: each architecture reports a fixed simulated cost."""

    def __call__(self, arch, deadline=None):
        metrics, model = super().__call__(arch)
        return {**metrics, "cost": 10.0 + arch.to_json()["feature"] / 10}, model


def test_simulated_budget_stops_before_the_trial_that_would_pass_it(tmp_path):
    ev = CostlyEvaluator()
    result = run_search(SPACE, RandomSearch(SPACE, seed=2), ev, Budget(trials=None, simulated_seconds=150), tmp_path)
    records = trials_of(tmp_path / "trials.jsonl")
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
        writer.append(record(0))
        assert read_trials(path) == [record(0)]  # visible to another reader (and to a resume after a kill)
        writer.append(record(1))
        assert len(read_trials(path)) == 2


def test_a_record_that_is_not_a_trial_stops_the_resume_naming_the_line(tmp_path):
    path = tmp_path / "trials.jsonl"
    append_trial(path, record(0))
    append_trial(path, {"trial": 1, "status": "great"})
    append_trial(path, record(2))
    with pytest.raises(UserError, match="trials.jsonl:2 is not a valid nasrun trial record: status='great'"):
        read_trials(path)


def test_resume_of_a_directory_without_trials_names_the_directory(tmp_path):
    with pytest.raises(UserError, match=f"resume=true: {tmp_path} holds no trials"):
        run_search(SPACE, evolution(), CountingEvaluator(), Budget(trials=3), tmp_path, resume=True)
    (tmp_path / "trials.jsonl").write_text("")
    with pytest.raises(UserError, match="empty"):
        run_search(SPACE, evolution(), CountingEvaluator(), Budget(trials=3), tmp_path, resume=True)


class SlowEvaluator(CountingEvaluator):
    """Training that checks the deadline between 'batches', as nasrun.training.train does; trial `slow_at` never ends
    on its own."""

    def __init__(self, slow_at):
        super().__init__()
        self.slow_at = slow_at

    def __call__(self, arch, deadline=None):
        import time

        from nasrun.deadline import check_deadline

        if len(self.calls) == self.slow_at:
            while True:
                check_deadline(deadline, "training")
                time.sleep(0.01)
        return super().__call__(arch)


def test_the_wall_clock_budget_cancels_a_running_trial_and_resume_runs_it_again(tmp_path):
    import time

    began = time.monotonic()
    result = run_search(SPACE, evolution(seed=6), SlowEvaluator(slow_at=3), Budget(trials=8, seconds=1.0), tmp_path)
    assert time.monotonic() - began < 3  # ends at the budget, not when the trial would have
    assert result.stop_reason == "budget.seconds reached" and [r["trial"] for r in result.cancelled] == [3]
    assert len(result.records) == 3 and result.best["status"] == "ok"
    logged = read_trials(tmp_path / "trials.jsonl")
    assert [r["status"] for r in logged] == ["ok", "ok", "ok", "cancelled", "end"]
    assert "budget.seconds ran out during training" in logged[3]["error"] and logged[-1]["cancelled"] == [3]
    assert json.loads((tmp_path / "best.json").read_text())["key"] != logged[3]["key"]

    ev = CountingEvaluator()
    resumed = run_search(SPACE, evolution(seed=6), ev, Budget(trials=8), tmp_path, resume=True)
    assert ev.calls[0] == logged[3]["key"]  # the cancelled trial runs again, first
    assert [r["trial"] for r in resumed.records] == list(range(8)) and resumed.replayed == 3
    straight = run_search(SPACE, evolution(seed=6), CountingEvaluator(), Budget(trials=8), tmp_path / "straight")
    assert [r["key"] for r in resumed.records] == [r["key"] for r in straight.records]


class EvaluatorWithTest(CountingEvaluator):
    """Leaves the test split out, like the training evaluator: `test` is called for the best so far only."""

    def __init__(self):
        super().__init__()
        self.tested = []

    def __call__(self, arch, deadline=None):
        metrics, _ = super().__call__(arch)
        metrics.pop("test_acc")
        import torch

        model = torch.nn.Identity()  # a stand-in trained model that remembers its architecture
        model.arch = arch
        return metrics, model

    def test(self, model, deadline=None):
        self.tested.append(model.arch.key)
        return {"test_acc": score(model.arch) - 1}


def test_the_test_split_is_measured_only_for_trials_that_become_the_best(tmp_path):
    ev = EvaluatorWithTest()
    result = run_search(SPACE, RandomSearch(SPACE, seed=7), ev, Budget(trials=12), tmp_path)
    running_best, expected = -math.inf, []
    for r in result.records:
        if r["metrics"]["val_acc"] > running_best:
            running_best = r["metrics"]["val_acc"]
            expected.append(r["key"])
    assert ev.tested == expected and len(expected) < 12
    tested = [r for r in result.records if "test_acc" in r["metrics"]]
    assert [r["key"] for r in tested] == expected
    assert result.best["metrics"]["test_acc"] == score(SPACE.from_json(result.best["arch"])) - 1


def bare_search(budget, strategy=None, **fields):
    """A `Search` with no executor or log: for its pieces one at a time."""
    from nasrun.search.loop import Search

    class OneSlot:
        slots, on_budget = 1, "cancel"

    search = Search(SPACE, strategy or RandomSearch(SPACE, 0), None, budget, OneSlot(), None, {}, None, **fields)
    search.deadline = None
    return search


def test_stop_reason_names_each_budget_and_counts_trials_in_flight():
    search = bare_search(Budget(trials=3))
    assert search.stop_reason() is None
    search.records, search.in_flight = [{}] * 2, {"k": None}
    assert search.stop_reason() == "budget.trials reached"  # two finished and one in flight make three
    clock = iter([0.0, 10.0, 11.0])  # the search's start, then two checks
    search = bare_search(Budget(trials=None, seconds=5), clock=lambda: next(clock))
    search.deadline = 11.0
    assert search.stop_reason() is None and search.stop_reason() == "budget.seconds reached"
    search = bare_search(Budget(trials=None, simulated_seconds=100), simulated=100.0)
    assert search.stop_reason() == "budget.simulated_seconds reached"
    search = bare_search(Budget(trials=None, seconds=5), done={f"k{i}": {} for i in range(len(SPACE))})
    assert search.stop_reason() == f"space exhausted: all {len(SPACE)} architectures evaluated"


def test_replay_tells_the_log_in_the_order_asked_and_hands_back_the_first_ask_it_cannot_answer():
    strategy = RandomSearch(SPACE, 3)
    archs = [strategy.ask() for _ in range(4)]
    log = [{**record(n, key=a.key, arch=a.to_json()), "metrics": {"val_acc": 50.0 + n}} for n, a in enumerate(archs)]
    told = []

    class Listening(RandomSearch):
        def tell(self, arch, fitness):
            told.append((arch.key, fitness))

    search = bare_search(Budget(trials=10), Listening(SPACE, 3))
    assert search.replay([log[1], log[0], log[3]]) == archs[2]  # the third ask is not in the log
    assert told == [(archs[0].key, 50.0), (archs[1].key, 51.0), (archs[3].key, 53.0)]  # the rest told as is
    assert search.counts["replayed"] == 3 and set(search.done) == {archs[i].key for i in (0, 1, 3)}
