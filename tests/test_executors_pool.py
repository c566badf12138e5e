"""The pool executor: worker processes that are killed, hang, or lose their parent, and the same metrics as
the inline search."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import torch

from nasrun.bench.worker_faults import Toy
from nasrun.executors.pool import ProcessPool
from nasrun.rundir.trial_log import read_trials
from nasrun.search.assembly import build_executor, build_search
from nasrun.search.budget import Budget
from nasrun.search.runner import run_search
from nasrun.spaces.custom import CustomSpace
from nasrun.strategies.random import RandomSearch

from conftest import REPO, compose

SPACE = CustomSpace()


def asks(seed, n):
    strategy = RandomSearch(SPACE, seed)
    return [strategy.ask().key for _ in range(n)]


def config_search(run_dir, *overrides):
    cfg = compose("dataset=synthetic", "dataset.num_train=160", "dataset.num_test=64", "budget=smoke",
                  "budget.trials=3", *overrides)
    device = torch.device("cpu")
    search = build_search(cfg, 0, device)
    executor = build_executor(cfg, search, 0, device)
    return run_search(search.space, search.strategy, search.evaluator, search.budget, run_dir, executor=executor)


def test_two_workers_give_each_architecture_the_metrics_of_the_inline_search(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # each of the two workers gets one of the two cores: compare like with like
    try:
        inline = config_search(tmp_path / "inline")
    finally:
        torch.set_num_threads(threads)
    pool = config_search(tmp_path / "pool", "executor=pool", "executor.workers=2")
    logged = read_trials(tmp_path / "pool" / "trials.jsonl")
    assert [r["status"] for r in logged] == ["ok"] * 3 + ["end"] and logged[-1]["trials"] == 3
    assert [r["trial"] for r in logged[:-1]] == [0, 1, 2] and len({r["key"] for r in logged[:-1]}) == 3

    def figures(result, test):  # everything but timings; the test split apart (measured for new bests only)
        return {r["key"]: {k: v for k, v in r["metrics"].items() if "seconds" not in k and k != "history"
                           and k.startswith("test_") == test} for r in result.records}

    assert figures(pool, test=False) == figures(inline, test=False)
    tested = {k: v for k, v in figures(inline, test=True).items() if v}
    assert tested and all(figures(pool, test=True)[k] == v for k, v in tested.items())
    assert (tmp_path / "pool" / "best.pt").is_file() and pool.best["key"] == inline.best["key"]


def test_a_killed_worker_is_retried_a_hung_trial_times_out_and_the_search_goes_on(tmp_path):
    keys = asks(7, 8)
    # keys[1] dies once (a marker remembers it) and succeeds on retry; keys[2] dies on every attempt.
    # Workers take longer to start than trial_timeout (a busy machine): start-up is not charged to a trial.
    toy = Toy(delay=0.05, kill=(keys[1],), marker_dir=str(tmp_path), kill_always=(keys[2],), hang=(keys[3],),
              startup=1.0)
    executor = ProcessPool(toy, workers=2, trial_timeout=0.8, max_retries=1)
    result = run_search(SPACE, RandomSearch(SPACE, 7), None, Budget(trials=8), tmp_path / "run", executor=executor)
    status = {r["key"]: r for r in result.records}
    assert len(result.records) == 8 == len(status) and set(status) == set(keys)
    assert status[keys[1]]["status"] == "ok"
    assert status[keys[2]]["status"] == "failed"
    assert status[keys[2]]["error"] == ("WorkerDied: killed by SIGKILL (tried 2 times; executor.max_retries=1)")
    assert status[keys[3]]["status"] == "failed"
    assert status[keys[3]]["error"].startswith("timeout: the trial ran past executor.trial_timeout=0.8 s")
    assert sum(r["status"] == "ok" for r in result.records) == 6


def test_the_wall_clock_budget_cancels_the_trials_in_flight(tmp_path):
    began = time.monotonic()
    executor = ProcessPool(Toy(delay=60), workers=2)
    result = run_search(SPACE, RandomSearch(SPACE, 1), None, Budget(trials=5, seconds=4), tmp_path, executor=executor)
    assert time.monotonic() - began < 15  # not the 60 s a trial would take
    assert not result.records and [r["status"] for r in result.cancelled] == ["cancelled", "cancelled"]
    logged = read_trials(tmp_path / "trials.jsonl")
    assert [r["status"] for r in logged] == ["cancelled", "cancelled", "end"]


KILLED_RUN = textwrap.dedent("""
    import sys
    from nasrun.bench.worker_faults import Toy
    from nasrun.executors.pool import ProcessPool
    from nasrun.search.budget import Budget
    from nasrun.search.runner import run_search
    from nasrun.spaces.custom import CustomSpace
    from nasrun.strategies.evolution import RegularizedEvolution

    space = CustomSpace()
    run_search(space, RegularizedEvolution(space, 3, 4, 2), None, Budget(trials=14), sys.argv[1],
               executor=ProcessPool(Toy(delay=0.4), workers=2))
""")


def test_a_killed_run_resumes_with_nothing_lost_or_repeated(tmp_path):
    from nasrun.strategies.evolution import RegularizedEvolution

    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(run_dir)], cwd=REPO, start_new_session=True)
    log = run_dir / "trials.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 5):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the search and its workers, mid-search
    proc.wait()
    before = read_trials(log)
    assert 5 <= len(before) < 14 and before[-1]["status"] == "ok"

    # The evaluator too, as the command passes it: a kill between the log and best.json makes the resume
    # evaluate the best trial again to rebuild best.json.
    executor = ProcessPool(Toy(delay=0.01), workers=2)
    result = run_search(SPACE, RegularizedEvolution(SPACE, 3, 4, 2), Toy(delay=0.01)(), Budget(trials=14), run_dir,
                        resume=True, executor=executor)
    after = read_trials(log)
    assert after[:len(before)] == before  # every finished trial kept as it was
    assert len(result.records) == 14 == len({r["key"] for r in result.records})  # none repeated, none lost
    assert result.replayed == len(before) and result.evaluated == 14 - len(before)


def test_on_cuda_each_worker_sees_one_gpu_and_trials_per_gpu_share_it(monkeypatch):
    from nasrun.executors.pool import worker_environments

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    envs = worker_environments(torch.device("cuda"), workers=8, trials_per_gpu=3)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["2", "2", "2", "5", "5", "5"]
    assert {e["NASRUN_WORKER_DEVICE"] for e in envs} == {"cuda"}
    cpu = worker_environments(torch.device("cpu"), workers=2, trials_per_gpu=3)
    assert len(cpu) == 2 and all(e["CUDA_VISIBLE_DEVICES"] == "" for e in cpu)
    assert sum(int(e["NASRUN_WORKER_THREADS"]) for e in cpu) <= max(2, len(os.sched_getaffinity(0)))


def test_a_workers_warnings_go_to_the_runs_log_file(tmp_path):
    """A spawned worker starts with no logging: its warnings reach the run's nasrun.log, marked with its pid."""
    import logging

    log_file = tmp_path / "nasrun.log"
    handler = logging.FileHandler(log_file)  # what Hydra gives the search's process
    logging.getLogger().addHandler(handler)
    try:
        executor = ProcessPool(Toy(warn="a worker says so"), workers=1)
        run_search(SPACE, RandomSearch(SPACE, 3), None, Budget(trials=2), tmp_path / "run", executor=executor)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    text = log_file.read_text()
    assert text.count("a worker says so (logged)") == 2 and text.count("a worker says so (warnings.warn)") >= 1
    assert "worker " in text and "[WARNING]" in text
