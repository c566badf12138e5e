"""The `nasrun` command end to end, as a user runs it."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from nasrun.data.builtin import synthetic
from nasrun.rundir.best import load_best, normalize
from nasrun.training.train import evaluate

from conftest import REPO, run_cli

SMOKE = ["dataset=synthetic", "budget=smoke", "dataset.num_train=512"]  # half the default: seconds a trial


def test_search_writes_trials_best_json_and_weights_that_reproduce_the_test_accuracy(tmp_path, capsys):
    run_dir = tmp_path / "run"
    proc = run_cli("dataset=synthetic", "budget=smoke", "budget.trials=4", "strategy=random", "episode_size=3",
                   f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]
    assert records.pop()["status"] == "end"
    assert [r["trial"] for r in records] == [0, 1, 2, 3]
    for r in records:
        assert r["status"] == "ok" and set(r) >= {"trial", "arch", "key", "status", "metrics", "seconds"}
        assert set(r["metrics"]) >= {"val_acc", "val_loss", "params", "history", "train_seconds", "val_seconds"}
    best = json.loads((run_dir / "best.json").read_text())
    assert best["metrics"]["val_acc"] == max(r["metrics"]["val_acc"] for r in records)
    assert "test_acc" in best["metrics"] and "test_acc" in records[0]["metrics"]  # the first is the best so far
    assert best["space_name"] == "custom" and "top 4 of 4 trials" in proc.stdout
    assert records[0]["metrics"]["val_acc"] > 60  # synthetic data is learnable: chance is 25 %
    episodes = (run_dir / "episodes.csv").read_text().splitlines()  # episode_size=3: the reward per 3 trials
    assert len(episodes) == 3 and episodes[2].startswith("2,1,1,") and (run_dir / "episodes.png").is_file()

    model, info = load_best(run_dir)
    data = synthetic(seed=0)  # the run's dataset and seed: the same split and normalisation
    assert info["mean"] == pytest.approx(data.mean.flatten().tolist())
    acc, _ = evaluate(model.to(memory_format=torch.channels_last), data, "test", info["metrics"]["precision"] == "bf16")
    assert acc == pytest.approx(best["metrics"]["test_acc"], abs=1e-9)
    with torch.no_grad():  # the documented path for a user's own images
        logits = model(normalize(data.test_x[:8], info))
    assert logits.shape == (8, 4)

    from nasrun.reports.table import (
        report,  # a trained run: no benchmark-table footnote, no published line
    )

    report(run_dir)
    out = capsys.readouterr().out
    assert "test acc %" in out and "benchmark table" not in out and "unfinished" not in out


def test_help_fits_one_screen_and_lists_groups_presets_keys_and_outputs():
    proc = run_cli("--help")
    assert proc.returncode == 0 and proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert len(lines) <= 30 and max(map(len, lines)) <= 100
    for part in ("nasrun-report", "nasrun-score", "dataset=", "fashion_mnist|arrays|cifar10|folder", "device=",
                 "nb201_rea", "budget.trials", "device.threads", "seed=", "resume=true", "NASRUN_DATA", "trials.jsonl",
                 "best.pt", "--hydra-help"):
        assert part in proc.stdout, part
    assert "Hydra" in run_cli("--hydra-help").stdout  # Hydra's own help is still there


def test_the_wall_clock_budget_holds_inside_a_trial_and_resume_runs_the_cancelled_trial(tmp_path):
    run_dir = tmp_path / "run"
    args = ["dataset=synthetic", "budget.trials=30", "strategy=random", "device.threads=1"]
    began = time.monotonic()
    proc = run_cli(*args, "budget.seconds=4", f"hydra.run.dir={run_dir}")
    wall = time.monotonic() - began
    logged = [json.loads(line) for line in _lines(run_dir / "trials.jsonl")]
    statuses = [r["status"] for r in logged]
    # 30 trials of a second or more cannot fit in 4 s: one is cut short, recorded, and the run ends.
    assert statuses[-2:] == ["cancelled", "end"] and set(statuses[:-2]) <= {"ok"}
    assert logged[-1]["stop_reason"] == "budget.seconds reached" and logged[-2]["elapsed"] < 4 + 2
    assert wall < 4 + 15  # start-up and data included: not a whole trial (or more) past the budget
    if len(logged) > 2:
        assert proc.returncode == 0 and "cancelled, runs again on resume" in proc.stdout
    else:  # a loaded machine did not finish even the first trial: one line says what to do
        assert proc.returncode == 2 and "the first trial did not finish in time" in proc.stderr
    assert "1 CPU threads" in (run_dir / "nasrun.log").read_text()
    cancelled, finished = logged[-2], len(logged) - 2
    resumed = run_cli(*args, "budget.seconds=null", f"budget.trials={finished + 1}", f"hydra.run.dir={run_dir}",
                      "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    after = [json.loads(line) for line in _lines(run_dir / "trials.jsonl")]
    assert after[-2]["key"] == cancelled["key"] and after[-2]["status"] == "ok"
    assert after[-2]["trial"] == cancelled["trial"] and after[-1]["status"] == "end"


def test_table_runs_never_mention_weights(tmp_path):
    run_dir = tmp_path / "run"
    args = ["+experiment=nb201_rea", f"hydra.run.dir={run_dir}"]
    first = run_cli(*args, "budget.simulated_seconds=2000")
    resumed = run_cli(*args, "budget.simulated_seconds=4000", "resume=true")
    assert first.returncode == 0 and resumed.returncode == 0, resumed.stderr
    said = first.stdout + first.stderr + resumed.stdout + resumed.stderr + (run_dir / "nasrun.log").read_text()
    assert "best.pt" not in said and "retrain" not in said and "weights" not in said
    assert json.loads((run_dir / "best.json").read_text())["weights"] is None


def test_guided_evolution_trains_the_best_scored_and_counts_trainings_and_proxy_evaluations(tmp_path):
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    args = ["dataset=synthetic", "dataset.channels=3", "space=nb201", "space.channels=4", "space.cells_per_stage=1",
            "strategy=guided_evolution", "strategy.P=3", "strategy.S=2", "strategy.C=8", "proxy=synflow",
            f"proxy.cache_dir={cache}", "budget=smoke", "budget.trials=5"]
    proc = run_cli(*args, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()][:-1]  # - end
    assert len(records) == 5 and all(r["status"] == "ok" and r["proxy_score"] > 0 for r in records)
    scores = [json.loads(line)["score"] for line in next(cache.glob("synflow-*.jsonl")).read_text().splitlines()]
    assert [r["proxy_score"] for r in records[:3]] == sorted(scores[:8], reverse=True)[:3]  # best 3 of C=8 trained
    best = json.loads((run_dir / "best.json").read_text())
    assert best["counts"]["trained"] == 5 and best["counts"]["proxy_evaluations"] == len(scores) >= 8 + 2 * 3 - 2
    assert best["proxy"] == "synflow" and f"trained: 5, proxy evaluations: {len(scores)}" in proc.stdout
    # The same search again: every score comes from the cache file, which does not grow.
    assert run_cli(*args, f"hydra.run.dir={tmp_path / 'again'}").returncode == 0
    assert len(next(cache.glob("synflow-*.jsonl")).read_text().splitlines()) == len(scores)


def test_multirun_sweeps_seeds_and_strategies(tmp_path):
    proc = run_cli("-m", "seed=0,1", "strategy=random,evolution", *SMOKE, "dataset.num_train=256",
                   "budget.trials=2", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    jobs = sorted(p for p in tmp_path.iterdir() if p.is_dir() and (p / "trials.jsonl").exists())
    assert len(jobs) == 4
    keys = {j.name: [json.loads(l)["key"] for l in (j / "trials.jsonl").read_text().splitlines()[:-1]] for j in jobs}
    assert all(len(k) == 2 for k in keys.values())
    assert len({tuple(k) for k in keys.values()}) > 1  # different seeds search differently


def test_a_sweep_over_presets_takes_the_keys_only_its_presets_have(tmp_path, data_root):
    """`-m +experiment=a,b proxy.cache_dir=X strategy.C=N`: the default config has neither key (no proxy, no
    guided evolution), yet every job does; each job gets them, and a misspelt key still fails in one line."""
    cache = tmp_path / "cache"
    sweep = ["-m", "+experiment=zeroshot_ga_synflow,zeroshot_ga_jacob_cov", "seed=0", f"dataset.root={data_root}",
             "strategy.P=2", "strategy.S=1", "strategy.C=4", "budget.trials=2", "proxy.batch_size=16",
             f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    proc = run_cli(*sweep, f"proxy.cache_dir={cache}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(f"proxy.cache_dir={cache}") == 2 and "++" not in proc.stdout  # shown as typed
    names = sorted(p.name.split("-")[0] for p in cache.glob("*.jsonl"))
    assert names == ["fisher", "grad_norm", "grasp", "jacob_cov", "snip", "synflow"]
    proc = run_cli(*sweep, f"proxy.cachedir={cache}")
    assert proc.returncode == 2 and "proxy.cachedir: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("launcher", [[], ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]],
                         ids=["one_job_at_a_time", "joblib_two_at_once"])
def test_a_stopped_sweep_is_finished_by_the_same_command_with_resume(tmp_path, data_root, launcher):
    """Job 0 finished, job 1 was killed after 12 trials, job 2 never started: `hydra.sweep.dir=... resume=true`
    skips job 0, resumes job 1 and starts job 2, and every job ends as an uninterrupted sweep's did. The same
    with Hydra's joblib launcher running two jobs at once (the `joblib` extra)."""
    sweep = ["-m", "seed=0,1,2", "space=nb201", "evaluator=tabular", f"dataset.root={data_root}", "budget.trials=30",
             f"hydra.sweep.dir={tmp_path}", *launcher]
    assert run_cli(*sweep).returncode == 0
    uninterrupted = {job: (tmp_path / job / "trials.jsonl").read_text().splitlines() for job in "012"}
    (tmp_path / "1" / "trials.jsonl").write_text("\n".join(uninterrupted["1"][:12]) + "\n")
    shutil.rmtree(tmp_path / "2")
    finished = (tmp_path / "0" / "trials.jsonl").read_bytes()
    # Joblib's workers print to the process's own stdout: read it from a process of its own.
    proc = run_cli(*sweep, "resume=true", new_process=bool(launcher))
    assert proc.returncode == 0, proc.stderr
    assert "finished before; skipped" in proc.stdout.split("job 1")[0]
    assert (tmp_path / "0" / "trials.jsonl").read_bytes() == finished
    key = lambda line: json.loads(line).get("key")  # noqa: E731
    for job in "12":
        lines = (tmp_path / job / "trials.jsonl").read_text().splitlines()
        assert [key(l) for l in lines] == [key(l) for l in uninterrupted[job]] and len(lines) == 31
    changed = run_cli(*[a.replace("seed=0,1,2", "seed=0,1,3") for a in sweep], "resume=true",
                      new_process=bool(launcher))
    assert changed.returncode == 2 and "but this sweep gives it" in changed.stderr and "seed=3" in changed.stderr


def _lines(path):
    return path.read_text().splitlines() if path.exists() else []


def test_sigkill_mid_search_then_resume_loses_and_repeats_nothing(tmp_path):
    args = [*SMOKE, "dataset.num_train=256", "budget.trials=6", "strategy.population_size=3",
            "strategy.sample_size=2"]
    killed = tmp_path / "killed"
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.Popen([sys.executable, "-m", "nasrun", *args, f"hydra.run.dir={killed}"], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while len(_lines(killed / "trials.jsonl")) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _lines(killed / "trials.jsonl")
    assert 2 <= len(before) < 6, "the run must be killed mid-search"

    resumed = run_cli(*args, f"hydra.run.dir={killed}", "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    after = [json.loads(l) for l in _lines(killed / "trials.jsonl")]
    assert _lines(killed / "trials.jsonl")[: len(before) - 1] == before[: len(before) - 1]  # nothing lost
    assert after.pop()["status"] == "end"
    assert [r["trial"] for r in after] == list(range(6))
    assert len({r["key"] for r in after}) == 6  # nothing repeated

    straight = tmp_path / "straight"
    assert run_cli(*args, f"hydra.run.dir={straight}").returncode == 0
    reference = [json.loads(l) for l in _lines(straight / "trials.jsonl")][:-1]
    assert [r["key"] for r in after] == [r["key"] for r in reference]  # the same proposals, in order
    assert [r["metrics"]["val_acc"] for r in after] == [r["metrics"]["val_acc"] for r in reference]
    best_key = lambda run: json.loads((run / "best.json").read_text())["key"]  # noqa: E731
    assert best_key(killed) == best_key(straight)


def test_ctrl_c_names_the_run_directory_to_resume(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "NASRUN_DATA": "unused"}
    env.pop("HYDRA_FULL_ERROR", None)
    # A shell that starts jobs in the background (nohup, `&` in a script) passes SIGINT on as ignored; Ctrl-C
    # in a terminal is what this test stands for, so the child gets the default handler back.
    proc = subprocess.Popen([sys.executable, "-m", "nasrun", *SMOKE, "budget.trials=50", f"hydra.run.dir={run_dir}"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler))
    deadline = time.time() + 240
    while not _lines(run_dir / "trials.jsonl") and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"hydra.run.dir={run_dir} resume=true" in err and "Traceback" not in err


@pytest.mark.parametrize("args,expected", [
    (["strategy=guided_evolution"], ["strategy: GuidedEvolution ranks architectures with a zero-cost proxy",
                                      "proxy=NAME", "jacob_cov"]),
    (["proxy=snip", "proxy.batchsize=8"], ["proxy.batchsize", "unknown key", "batch_size, cache_dir"]),
    (["proxy=snip", "proxy.batch_size=1"], ["proxy.batch_size=1: must be an integer"]),
    (["strategy=foo"], ["strategy=foo", "evolution, guided_evolution, nsga2, random"]),
    (["foo=1"], ["foo", "unknown key", "seed"]),
    (["dataset=synthetic", "evaluator.test_every_trial=maybe"],
     ["evaluator.test_every_trial='maybe'", "true or false"]),
    (["strategy.popsize=3"], ["strategy.popsize", "unknown key", "population_size"]),
    (["+strategy.popsize=3"], ["strategy.popsize", "population_size, sample_size"]),
    (["seed=abc"], ["seed='abc'", "integer"]),
    (["device=tpu"], ["device=tpu", "auto, cpu, cuda"]),
    (["device.threads=0"], ["device.threads=0", ">= 1"]),
    (["strategy.populaton_size=3"], ["strategy.populaton_size", "unknown key", "are: population_size"]),
    (["budget.trial=3"], ["budget.trial", "unknown key", "keys of budget are: trials"]),
    (["dataset.val_size=99999"], ["dataset.val_size=99999", "hold out fewer"]),
    (["resume=true"], ["resume=true", "holds no trials", "hydra.run.dir"]),
    (["resume=true", "dataset.root=/nowhere"], ["resume=true", "holds no trials"]),  # checked before data
    (["resume=maybe"], ["resume='maybe'", "true or false"]),
    (["strategy.population_size=1"], ["strategy.population_size=1", ">= 2"]),
    (["budget.trials=0"], ["budget.trials=0", ">= 1"]),
    (["dataset.fraction=2"], ["dataset.fraction=2", "<= 1.0"]),
    (["evaluator.optimizer=adamw"], ["evaluator.optimizer='adamw'", "adam, sgd"]),
    (["dataset.root=/nonexistent/place", "dataset.download=false"], ["/nonexistent/place", "NASRUN_DATA"]),
    (["seed=1,2"], ["seed"]),
    (["evaluator=tabular"], ["evaluator=tabular", "space=nb201", "space=custom"]),
    (["budget.simulated_seconds=100"], ["budget.simulated_seconds=100", "evaluator=tabular"]),
    (["space=nb201", "evaluator=tabular", "evaluator.benchmark=imagenet"], ["evaluator.benchmark='imagenet'",
                                                                            "cifar10, cifar100, imagenet16"]),
    (["space=nb201", "evaluator=tabular", "evaluator.table=/nowhere/nb.csv"], ["/nowhere/nb.csv", "not found"]),
    (["space=nb201", "space.channels=0"], ["space.channels=0", ">= 1"]),
    (["+experiment=nope"], ["experiment=nope", "nb201_rea"]),
    (["-m", "--cfg", "job", "seed=0"], ["-m and --cfg: one at a time"]),
    (["scheduler=asha"], ["scheduler.min_epochs=1: must be below max_epochs (1)", "raise budget.epochs"]),
    (["scheduler=median"], ["scheduler.max_epochs=1", "raise budget.epochs"]),
    (["scheduler=asha", "budget.epochs=9", "scheduler.mode=halve"], ["scheduler.mode='halve'", "promote, stop"]),
    (["scheduler=hyperband", "budget.epochs=9", "scheduler.brackets=7"], ["scheduler.brackets=7", "in [1, 3]"]),
    (["space=nb201", "evaluator=tabular", "scheduler=asha", "budget.epochs=9"],
     ["scheduler: ASHA decides how many epochs", "evaluator=train"]),
    (["objectives=[val_acc,latncy_ms]"], ["'latncy_ms' is not a metric", "latency_ms, params, flops"]),
    (["objectives=[val_acc,latency_ms]"], ["latency=none measures no latency", "latency=table"]),
    (["+constraints.params=-5"], ["constraints.params=-5.0", "> 0"]),
    (["space=nb201", "evaluator=tabular", "dataset=cifar10", "latency=table", "latency.device=pixel9"],
     ["latency.device='pixel9'", "eyeriss, fpga"]),
    (["latency=table"], ["latency=table", "space=nb201", "not space=custom"]),
    (["space=nb201", "evaluator=tabular", "dataset=cifar10", "latency=table", "latency.devce=fpga"],
     ["latency.devce: unknown key", "device"]),
    (["objectives=[val_acc,params]", "reference=[1,2,3]"], ["reference=[1, 2, 3]", "one number per objective"]),
])
def test_user_errors_are_one_line_without_traceback(args, expected, tmp_path, monkeypatch, data_root):
    from nasrun.bench.faults.runner import invoke

    monkeypatch.setenv("NASRUN_DATA", str(data_root))

    # nasrun's main in this process (a new interpreter per case would cost 4 s each; test_packaging and the
    # end-to-end tests above run the console script itself)
    code, out, err = invoke([*args, f"hydra.run.dir={tmp_path}"], tmp_path)
    assert code == 2, (out, err)
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and "Traceback" not in err + out, err
    for part in expected:
        assert part in lines[0], lines[0]
    assert "prefix +" not in lines[0]  # a `+` would make a typo a silent new key


def test_a_one_line_error_keeps_its_traceback_in_the_run_log(tmp_path):
    from nasrun.bench.faults.runner import invoke

    args = ["space=nb201", "evaluator=tabular", f"evaluator.table={tmp_path / 'missing.csv'}",
            f"hydra.run.dir={tmp_path / 'run'}"]
    code, out, err = invoke(args, tmp_path)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in out + err
    log = (tmp_path / "run" / "nasrun.log").read_text()
    assert "Traceback (most recent call last)" in log and "missing.csv not found" in log


@pytest.mark.parametrize("command", [["-m", "nasrun"], ["-c", "from nasrun.commands.train import main; main()"]])
def test_help_piped_into_head_ends_quietly(command):
    """`nasrun --help | head -1` (and nasrun-train's): the reader closes the pipe early; no BrokenPipeError.
    Unbuffered output (PYTHONUNBUFFERED=1) makes the write after the first line hit the closed pipe."""
    shell = f"{sys.executable} {' '.join(repr(a) for a in command)} --help | head -1"
    proc = subprocess.run(shell, shell=True, capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout.startswith("usage: nasrun") and proc.stderr == ""
