"""The runner under a scheduler: segments from checkpoints, rung records, budget.trials counting starts,
failures, disk use, and resume after a kill (inline: exactly the uninterrupted run; pool: nothing finished
lost)."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from nasrun.bench.worker_faults import SegmentToy, toy_curve
from nasrun.checks import UserError
from nasrun.data.builtin import synthetic
from nasrun.evaluators.train import TrainingEvaluator
from nasrun.executors.pool import ProcessPool
from nasrun.reports.table import report
from nasrun.rundir.records import Status
from nasrun.rundir.trial_log import read_trials
from nasrun.search.asha import ASHA, Hyperband
from nasrun.search.budget import Budget
from nasrun.search.fidelity import Fidelity
from nasrun.search.runner import run_search
from nasrun.search.stopping import MedianStopping
from nasrun.spaces.custom import CustomSpace
from nasrun.strategies.evolution import RegularizedEvolution
from nasrun.strategies.random import RandomSearch
from nasrun.training.checkpoint import read_payload

from conftest import run_cli

SPACE = CustomSpace()


def search(run_dir, scheduler, trials=12, toy=None, strategy=None, resume=False, executor=None):
    strategy = strategy or RandomSearch(SPACE, seed=3)
    evaluator = None if executor is not None else (toy or SegmentToy())()
    return run_search(SPACE, strategy, evaluator, Budget(trials=trials), run_dir, scheduler=scheduler,
                      resume=resume, executor=executor)


def lines(run_dir):
    return [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]


def essence(records):
    """What must not differ between two runs of one seed: the sequence of results and decisions."""
    return [(r["trial"], r["key"], r["status"], r.get("epochs"), r.get("decision"), r["metrics"].get("val_acc"))
            for r in records if r["status"] != "end"]


def test_a_promoted_trial_ends_exactly_as_a_straight_training(tmp_path):
    """Segments 1, 1-3, 3-9 through checkpoint files, as the runner keeps them, against 9 epochs straight:
    the same seed and thread count give the same weights and the same metrics, to the bit."""
    data = synthetic(num_train=96, num_test=16, image_size=16, seed=0)
    evaluator = TrainingEvaluator(SPACE, data, epochs=9, seed=5, optimizer="sgd", lr=0.05, schedule="cosine",
                                  warmup_epochs=1)
    arch = SPACE.sample(np.random.default_rng(2))
    straight, straight_model = evaluator(arch)
    fidelity = Fidelity(ASHA(9), tmp_path)
    state = None
    for until in (1, 3, 9):
        metrics, model, payload = evaluator.train_segment(arch, until, state)
        path = tmp_path / f"epoch-{until}.pt"
        fidelity.save(path, payload)
        state = read_payload(path)
        assert metrics["epochs_run"] == until and metrics["history"][-1]["epoch"] == until
    assert metrics["history"] == [{**h, "seconds": metrics["history"][i]["seconds"]}
                                  for i, h in enumerate(straight["history"])]
    assert metrics["val_acc"] == straight["val_acc"] and metrics["val_loss"] == straight["val_loss"]
    for (name, a), b in zip(model.state_dict().items(), straight_model.state_dict().values()):
        assert torch.equal(a, b), name
    # The learning rate spans all 9 epochs: a 3-epoch segment is not a 3-epoch schedule.
    assert [round(h["lr"], 6) for h in metrics["history"][:3]] == [round(h["lr"], 6) for h in straight["history"][:3]]


def test_asha_over_random_search_records_rungs_and_counts_architectures(tmp_path):
    result = search(tmp_path, ASHA(9, 1, 3), trials=12)
    logged = lines(tmp_path)
    started = {r["trial"] for r in logged if r["status"] != "end"}
    assert started == set(range(12))  # budget.trials counts architectures started, not segments
    finals = [r for r in logged if r["status"] == "ok"]
    rungs = [r for r in logged if r["status"] == "rung"]
    assert rungs and all(r["decision"] == "pause" for r in rungs)
    for record in rungs + finals:  # every result is the toy's curve at the epochs the trial reached
        assert record["metrics"]["val_acc"] == toy_curve(record["key"], record["epochs"], 9)
    promoted = [r for r in rungs + finals if r["epochs"] > 1]
    assert promoted and all(r["metrics"]["resumed_from"] > 0 for r in promoted)  # never from scratch
    assert all(r["epochs"] == 9 and r["decision"] == "finished" for r in finals)
    # 12 at rung 1 -> 4 promoted to 3 -> 1 to 9, exactly as successive halving would.
    assert sum(1 for r in rungs if r["epochs"] == 1) == 12 and sum(1 for r in rungs if r["epochs"] == 3) == 4
    assert len(finals) == 1
    # Paused trials keep their checkpoint (one file each); the finished one's are gone.
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    waiting = {r["trial"]: r["epochs"] for r in rungs}
    assert kept == sorted(f"trial-{t}-epoch-{e}.pt" for t, e in waiting.items() if t != finals[0]["trial"])
    # The result stands every trial at its latest fidelity; the best is at the highest fidelity reached.
    assert len(result.records) == 12 and result.best["epochs"] == 9
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["epochs"] == 9 and best["key"] == finals[0]["key"]
    assert lines(tmp_path)[-1]["epochs_trained"] == 12 + 4 * 2 + 6


def test_stop_mode_and_stopping_rules_delete_checkpoints_of_ended_trials(tmp_path):
    for name, scheduler in {"stop": ASHA(9, 1, 3, mode="stop"), "median": MedianStopping(9, 1, 2)}.items():
        run_dir = tmp_path / name
        search(run_dir, scheduler, trials=10)
        logged = lines(run_dir)
        ended = {r["trial"] for r in logged if r["status"] in ("ok", "failed")}
        assert len(ended) == 10 and any(r["decision"] == "stop" for r in logged if r["status"] == "ok")
        assert not list((run_dir / "checkpoints").glob("*.pt"))  # nothing waits: no checkpoint is kept
        assert all(r["decision"] == "continue" for r in logged if r["status"] == "rung")


def test_a_failed_epoch_fails_only_its_trial(tmp_path):
    strategy = RandomSearch(SPACE, seed=3)
    first = strategy.ask().key
    toy = SegmentToy(fail_at=((first, 2),))
    search(tmp_path, ASHA(9, 1, 3, mode="stop"), trials=6, toy=toy)
    logged = lines(tmp_path)
    failed = [r for r in logged if r["status"] == "failed"]
    assert [r["key"] for r in failed] == [first] and failed[0]["epochs"] == 1
    assert "epoch 2 failed" in failed[0]["error"]
    assert sum(1 for r in logged if r["status"] == "ok") == 5


def test_evolution_compares_at_the_same_fidelity_and_hyperband_runs(tmp_path):
    strategy = RegularizedEvolution(SPACE, seed=1, population_size=4, sample_size=2)
    search(tmp_path / "rea", ASHA(9, 1, 3), trials=16, strategy=strategy)
    members = list(strategy.population)
    assert len({m[0].key for m in members}) == len(members)  # one entry per architecture, its latest fidelity
    assert all(m[2] in (1, 3, 9) for m in members)
    result = search(tmp_path / "hb", Hyperband(9, 1, 3), trials=17)
    firsts = {}
    for record in lines(tmp_path / "hb"):
        if record["status"] != "end":
            firsts.setdefault(record["trial"], record["epochs"])
    assert sorted(firsts.values()).count(9) == 3 and result.best is not None


def _kill_and_resume_script(run_dir, kill_key, kill_epoch, pool: bool) -> str:
    return f"""
import sys
from pathlib import Path
from nasrun.bench.worker_faults import SegmentToy
from nasrun.executors.pool import ProcessPool
from nasrun.search.asha import ASHA
from nasrun.search.budget import Budget
from nasrun.search.runner import run_search
from nasrun.spaces.custom import CustomSpace
from nasrun.strategies.random import RandomSearch
space = CustomSpace()
toy = SegmentToy(delay={0.05 if pool else 0.0}, kill_at=(({kill_key!r}, {kill_epoch}),), marker_dir={str(run_dir)!r})
executor = ProcessPool(toy, workers=2) if {pool} else None
run_search(space, RandomSearch(space, seed=3), None if {pool} else toy(), Budget(trials=12), Path({str(run_dir)!r}),
           scheduler=ASHA(9, 1, 3), executor=executor)
"""


def test_inline_kill_mid_promotion_then_resume_is_exactly_the_uninterrupted_run(tmp_path):
    whole = tmp_path / "whole"
    search(whole, ASHA(9, 1, 3), trials=12)
    expected = lines(whole)
    promoted = next(r for r in expected if r["epochs"] == 3)  # the first promotion: killed in its epoch 2
    run_dir = tmp_path / "killed"
    run_dir.mkdir()
    done = subprocess.run([sys.executable, "-c", _kill_and_resume_script(run_dir, promoted["key"], 2, False)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    before = lines(run_dir)
    assert before == expected[:len(before)] or essence(before) == essence(expected[:len(before)])
    assert (run_dir / "checkpoints" / f"trial-{promoted['trial']}-epoch-1.pt").is_file()  # kept for the promotion
    search(run_dir, ASHA(9, 1, 3), trials=12, resume=True)
    after = lines(run_dir)
    assert essence(after) == essence(expected)  # the same decisions, the same metrics, in the same order
    assert after[:len(before)] == before  # nothing finished was touched
    resumed = next(r for r in after[len(before):] if r["key"] == promoted["key"])
    assert resumed["metrics"]["resumed_from"] == 1  # the promotion went on from its checkpoint
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == \
        sorted(p.name for p in (whole / "checkpoints").iterdir())


def test_pool_kill_mid_promotion_then_resume_loses_nothing_finished(tmp_path):
    strategy = RandomSearch(SPACE, seed=3)
    keys: list = []
    while len(keys) < 12:  # the first 12 distinct proposals: a repeated one is answered, not started
        key = strategy.ask().key
        keys += [key] if key not in keys else []
    run_dir = tmp_path / "pool"
    run_dir.mkdir()
    # SIGKILL the main process (its workers go with it) once half the trials have reached rung 1.
    script = _kill_and_resume_script(run_dir, "never", 0, True)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log = run_dir / "trials.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until a promotion to 3 epochs is under way (a rung-3 record not yet)
        records = read_trials(log, repair=False) if log.exists() else []
        if sum(1 for r in records if r.get("epochs") == 1) >= 6:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    before = lines(run_dir)
    assert before and all(r["status"] != "end" for r in before)
    with ProcessPool(SegmentToy(delay=0.05), workers=2) as executor:
        search(run_dir, ASHA(9, 1, 3), trials=12, resume=True, executor=executor)
    after = lines(run_dir)
    assert after[:len(before)] == before  # nothing finished lost or rewritten
    results = [r for r in after if r["status"] in (Status.OK, Status.RUNG)]
    assert {r["key"] for r in results} == set(keys)  # every architecture the budget started, none twice
    trials = {}
    for record in results:
        assert record["metrics"]["val_acc"] == toy_curve(record["key"], record["epochs"], 9)
        previous = trials.get(record["trial"], 0)
        assert record["epochs"] > previous  # each trial goes on from where it was
        if previous:
            assert record["metrics"]["resumed_from"] == previous  # from its checkpoint, not from scratch
        trials[record["trial"]] = record["epochs"]
    assert len(trials) == 12 and after[-1]["status"] == "end"
    numbers = [r["trial"] for r in after if r["status"] == "ok"]
    assert len(numbers) == len(set(numbers))


def test_the_cli_runs_reports_and_resumes_a_scheduled_search(tmp_path):
    run_dir = tmp_path / "run"
    args = ["dataset=synthetic", "dataset.num_train=128", "dataset.num_test=32", "strategy=random",
            "scheduler=asha", "budget.epochs=3", "budget.seconds=null", f"hydra.run.dir={run_dir}"]
    first = run_cli(*args, "budget.trials=6", new_process=True)  # a process of its own: the progress line
    assert first.returncode == 0, first.stderr
    logged = lines(run_dir)
    promoted = sum(1 for r in logged if r.get("epochs") == 3)
    assert f"rungs 1:{6 - promoted} 3:{promoted}" in first.stdout  # the progress line: trials at each rung
    assert sum(1 for r in logged if r["status"] == "rung") == 6 and logged[-1]["epochs_trained"] == 6 + 2 * promoted
    assert len(list((run_dir / "checkpoints").glob("*.pt"))) == 6 - sum(1 for r in logged if r["status"] == "ok")
    # A larger budget goes on: paused trials are promoted from their checkpoints, new ones start.
    again = run_cli(*args, "budget.trials=9", "resume=true")
    assert again.returncode == 0, again.stderr
    more = lines(run_dir)[len(logged):]
    assert {r["trial"] for r in more if r["status"] != "end"} >= {6, 7, 8}
    assert all(r["metrics"].get("val_acc") is not None for r in more if r["status"] in ("ok", "rung"))
    rows = report(run_dir, tmp_path / "report")
    assert rows[0]["mean_epochs"] == lines(run_dir)[-1]["epochs_trained"] and rows[0]["mean_trials"] == 9
    assert "| epochs trained (mean) |" in (tmp_path / "report" / "checklist.md").read_text()


def test_a_run_resumes_only_as_it_was_started(tmp_path):
    search(tmp_path / "scheduled", ASHA(9, 1, 3), trials=4)
    with pytest.raises(UserError, match="was searched with a scheduler.*same scheduler=NAME"):
        search(tmp_path / "scheduled", None, trials=6, resume=True)
    run_search(SPACE, RandomSearch(SPACE, seed=3), SegmentToy()(), Budget(trials=3), tmp_path / "plain")
    with pytest.raises(UserError, match="was searched without a scheduler.*scheduler=none"):
        search(tmp_path / "plain", ASHA(9, 1, 3), trials=6, resume=True)


def test_real_trainings_under_asha_give_the_same_results_inline_and_in_a_pool(tmp_path):
    """Checkpoints with real tensors travel to pool workers and back: every architecture's result at every
    rung is the inline run's (one thread each, so the arithmetic is the same)."""
    args = ["dataset=synthetic", "dataset.num_train=128", "dataset.num_test=32", "strategy=random",
            "scheduler=asha", "budget.epochs=3", "budget.trials=6", "budget.seconds=null", "device.threads=1"]
    results = []
    for name, extra in {"inline": [], "pool": ["executor=pool", "executor.workers=2"]}.items():
        done = run_cli(*args, *extra, f"hydra.run.dir={tmp_path / name}")
        assert done.returncode == 0, done.stderr
        results.append(sorted((r["key"], r["epochs"], r["metrics"]["val_acc"]) for r in lines(tmp_path / name)
                              if r["status"] in ("ok", "rung")))
    assert results[0] == results[1] and any(epochs == 3 for _, epochs, _ in results[0])
