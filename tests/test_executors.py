"""The runner over executors: completion order, deduplication in flight, budgets, and the in-process executors
(inline, simulated). Pool and Ray have their own files."""

import json

import pytest
import torch

from nasrun.deadline import check_deadline
from nasrun.executors import run_trial
from nasrun.executors.inline import InlineExecutor
from nasrun.executors.simulated import SimulatedExecutor
from nasrun.rundir.trial_log import read_trials
from nasrun.search.assembly import build_executor, build_search
from nasrun.search.budget import Budget
from nasrun.search.runner import run_search
from nasrun.spaces.custom import CustomSpace
from nasrun.strategies.evolution import RegularizedEvolution
from nasrun.strategies.random import RandomSearch

from conftest import compose

SPACE = CustomSpace()


def accuracy(arch):
    v = arch.to_json()
    return 10.0 * v["conv3"] + v["num_block"] + v["feature"] / 100 - v["dropout"]


class Counting:
    def __init__(self):
        self.calls = []

    def __call__(self, arch, deadline=None):
        self.calls.append(arch.key)
        return {"val_acc": accuracy(arch)}, None


class LastFirst:
    """A parallel executor in one process: `slots` trials in flight, completed newest first, so results arrive
    out of submission order."""

    on_budget = "cancel"

    def __init__(self, evaluator, slots=3):
        self.evaluator, self.slots, self.queue = evaluator, slots, []

    def submit(self, trial):
        self.queue.append(trial)

    def completed(self, timeout=None):
        return [run_trial(self.evaluator, self.queue.pop())] if self.queue else []

    def cancel(self):
        self.queue.clear()
        return []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


class Listening:
    """Random search that remembers what it was told, and asks `twice` the same architecture in a row."""

    def __init__(self, seed=0, twice=()):
        self.inner, self.told, self.asked, self.twice, self.last = RandomSearch(SPACE, seed), [], [], set(twice), None

    def ask(self):
        if self.last is not None and len(self.asked) in self.twice:
            arch = self.last
        else:
            arch = self.last = self.inner.ask()
        self.asked.append(arch.key)
        return arch

    def tell(self, arch, fitness):
        self.told.append(arch.key)


def test_results_are_told_and_logged_in_completion_order_and_the_trial_budget_is_exact(tmp_path):
    strategy, ev = Listening(seed=3), Counting()
    result = run_search(SPACE, strategy, ev, Budget(trials=10), tmp_path, executor=LastFirst(ev, slots=3))
    logged = [r for r in read_trials(tmp_path / "trials.jsonl") if r["status"] == "ok"]
    assert len(logged) == len(ev.calls) == 10 and [r["trial"] for r in logged] == list(range(10))
    # Told in the order they completed and were logged (later tells of a key answer repeated asks).
    assert [r["key"] for r in logged] == list(dict.fromkeys(strategy.told))
    assert strategy.told[0] == strategy.asked[2]  # newest first: out of submission order
    assert result.best["metrics"]["val_acc"] == max(r["metrics"]["val_acc"] for r in logged)


def test_an_architecture_in_flight_is_never_submitted_twice_and_both_asks_are_answered(tmp_path):
    strategy, ev = Listening(seed=4, twice={1, 5}), Counting()  # asks 1 and 5 repeat the previous ask
    run_search(SPACE, strategy, ev, Budget(trials=8), tmp_path, executor=LastFirst(ev, slots=3))
    assert len(ev.calls) == len(set(ev.calls)) == 8
    assert sorted(strategy.told) == sorted(strategy.asked[:len(strategy.told)])  # every ask told once
    assert strategy.told.count(strategy.asked[1]) == 2


def test_every_strategy_runs_with_several_trials_in_flight(tmp_path):
    for number, strategy in enumerate([RandomSearch(SPACE, 1), RegularizedEvolution(SPACE, 1, 6, 3)]):
        ev = Counting()
        result = run_search(SPACE, strategy, ev, Budget(trials=30), tmp_path / str(number),
                            executor=LastFirst(ev, slots=4))
        assert len(result.records) == 30 == len(set(ev.calls))
    assert strategy.outstanding <= 4  # the trials still in flight when the budget ended, nothing lost track of


class Slow:
    """Takes `seconds` per trial, checking its deadline between 'batches' as training does."""

    def __init__(self, seconds, slow_keys=None):
        self.seconds, self.slow_keys = seconds, slow_keys

    def __call__(self, arch, deadline=None):
        import time

        if self.slow_keys is None or arch.key in self.slow_keys:
            end = time.monotonic() + self.seconds
            while time.monotonic() < end:
                check_deadline(deadline, "training")
                time.sleep(0.01)
        return {"val_acc": accuracy(arch)}, None


def test_inline_trial_timeout_fails_that_trial_and_the_search_goes_on(tmp_path):
    slow = RandomSearch(SPACE, 2).ask().key
    executor = InlineExecutor(Slow(30, {slow}), trial_timeout=0.3)
    result = run_search(SPACE, RandomSearch(SPACE, 2), executor.evaluator, Budget(trials=3), tmp_path,
                        executor=executor)
    assert [r["status"] for r in result.records] == ["failed", "ok", "ok"]
    assert result.records[0]["error"].startswith("timeout: the trial ran past executor.trial_timeout=0.3 s")


def test_on_budget_wait_lets_the_running_trial_finish(tmp_path):
    ev = Slow(0.6)
    result = run_search(SPACE, RandomSearch(SPACE, 2), ev, Budget(trials=5, seconds=0.9), tmp_path,
                        executor=InlineExecutor(ev, on_budget="wait"))
    assert [r["status"] for r in result.records] == ["ok", "ok"] and not result.cancelled
    assert result.stop_reason == "budget.seconds reached"


def table_search(run_dir, root, workers=None, preset="nb201_rea", seed=0, simulated_seconds=12000):
    cfg = compose(f"+experiment={preset}", f"dataset.root={root}", f"seed={seed}",
                  f"budget.simulated_seconds={simulated_seconds}",
                  *(["executor=simulated", f"executor.workers={workers}"] if workers else []))
    search = build_search(cfg, seed, torch.device("cpu"))
    executor = build_executor(cfg, search, seed, torch.device("cpu"))
    return run_search(search.space, search.strategy, search.evaluator, search.budget, run_dir, executor=executor)


@pytest.mark.parametrize("preset", ["nb201_rea", "nb201_random"])
def test_simulated_with_one_worker_is_the_inline_search_exactly(tmp_path, data_root, preset):
    inline = table_search(tmp_path / "inline", data_root, preset=preset)
    simulated = table_search(tmp_path / "simulated", data_root, workers=1, preset=preset)
    strip = lambda records: [{k: v for k, v in r.items() if k not in ("seconds", "elapsed", "simulated_start")}
                             for r in records]
    assert strip(simulated.records) == strip(inline.records) and len(inline.records) > 50
    assert all(r["simulated_start"] + r["metrics"]["cost"] == r["simulated"] for r in simulated.records)


def test_simulated_workers_complete_in_order_of_simulated_finish_time(tmp_path, data_root):
    result = table_search(tmp_path, data_root, workers=4)
    records = result.records
    ends = [r["simulated"] for r in records]
    assert ends == sorted(ends) and ends[-1] <= 12000
    for r in records:  # each trial started at 0 or when an earlier one finished (its worker came free)
        assert r["simulated_start"] in {0.0, *ends[:r["trial"]]} and r["simulated_start"] <= r["simulated"]
    busy = max(sum(r["simulated_start"] <= t < r["simulated"] for r in records) for t in ends)
    assert busy == 4
    one = table_search(tmp_path / "one", data_root, workers=1)
    assert len(records) > 3 * len(one.records)  # four workers do about four times the trials in the same time


def test_simulated_needs_an_evaluator_with_a_cost(tmp_path):
    from nasrun.checks import UserError

    with pytest.raises(UserError, match="executor=simulated .* needs an evaluator that reports a cost"):
        SimulatedExecutor(Counting(), workers=2)


def test_resume_with_the_simulated_executor_keeps_the_log_and_its_clock(tmp_path, data_root):
    first = table_search(tmp_path, data_root, workers=4, simulated_seconds=4000)
    resumed_cfg = compose("+experiment=nb201_rea", f"dataset.root={data_root}", "executor=simulated",
                          "executor.workers=4")
    search = build_search(resumed_cfg, 0, torch.device("cpu"))
    executor = build_executor(resumed_cfg, search, 0, torch.device("cpu"))
    resumed = run_search(search.space, search.strategy, search.evaluator, search.budget, tmp_path, resume=True,
                         executor=executor)
    by_key = {r["key"]: r for r in resumed.records}
    assert all(by_key[r["key"]] == r for r in first.records) and resumed.replayed == len(first.records)
    new = [r for r in resumed.records if r["trial"] >= len(first.records)]
    assert new and min(r["simulated_start"] for r in new) >= first.records[-1]["simulated"]
    assert len({r["key"] for r in resumed.records}) == len(resumed.records)
    lines = (tmp_path / "trials.jsonl").read_text().splitlines()
    assert sum(json.loads(line)["status"] == "end" for line in lines) == 2


def test_out_of_memory_fails_that_trial_only_and_its_tensors_are_gone_before_memory_is_released(tmp_path,
                                                                                                monkeypatch):
    import weakref

    import nasrun.executors as executors

    first = RandomSearch(SPACE, 9).ask().key
    held = []

    class OutOfMemory(Counting):
        def __call__(self, arch, deadline=None):
            if arch.key == first:
                activations = torch.ones(1024, 1024)  # what a trial holds when it runs out of memory
                held.append(weakref.ref(activations))
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return super().__call__(arch)

    released = []
    monkeypatch.setattr(executors, "release_cuda_memory", lambda: released.append(held[0]() is None))
    result = run_search(SPACE, RandomSearch(SPACE, 9), OutOfMemory(), Budget(trials=3), tmp_path)
    assert [r["status"] for r in result.records] == ["failed", "ok", "ok"]
    assert result.records[0]["error"].startswith("OutOfMemoryError: CUDA out of memory")
    assert released == [True]  # released once, after the failed trial's tensors were freed
