"""`nasrun oneshot=...`: a supernet trained in a run directory, read out, resumed exactly after SIGKILL, stopped
by the wall clock at an epoch boundary; RSPS's search on the supernet; the report and nasrun-train after it."""

import itertools
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from nasrun.checks import UserError
from nasrun.data.builtin import synthetic
from nasrun.oneshot.evaluator import SupernetEvaluator
from nasrun.oneshot.methods import GDAS
from nasrun.oneshot.supernet import Supernet
from nasrun.oneshot.training import CHECKPOINT, identity, load, start, train_supernet
from nasrun.spaces.nb201 import NB201Arch, NB201Space

from conftest import REPO, TRAIN_COMMAND, run_cli

TINY = ["dataset=synthetic", "dataset.val_fraction=0.5", "space=nb201", "space.channels=4",
        "space.cells_per_stage=1", "device=cpu", "device.threads=1"]


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]


def _timeless(records):
    return [{k: v for k, v in r.items() if k not in ("seconds", "elapsed")} |
            {"supernet": {k: v for k, v in r.get("supernet", {}).items() if k != "seconds"}} for r in records]


def test_gdas_writes_a_cell_per_epoch_with_table_figures_and_best_json_the_last(tmp_path, data_root):
    table = data_root / "nasbench201" / "nb201.csv"
    proc = run_cli(*TINY, "oneshot=gdas", "oneshot.epochs=3", f"oneshot.table={table}", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    records = _records(tmp_path)
    assert records[-1]["status"] == "end" and records[-1]["supernet_epochs"] == 3
    epochs = records[:-1]
    assert [r["trial"] for r in epochs] == [0, 1, 2]
    for r in epochs:
        NB201Arch.from_key(r["key"])
        assert 0 < r["metrics"]["test_acc"] < 100 and "table_val_acc12" in r["metrics"]  # the table's figures
        preferences = r["supernet"]["preferences"]
        assert set(preferences) == {"1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"}
        assert all(abs(sum(p.values()) - 1) < 1e-4 for p in preferences.values())
    assert [r["supernet"]["tau"] for r in epochs] == [10.0, pytest.approx(5.05), pytest.approx(0.1)]
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["key"] == epochs[-1]["key"] and best["space"]["channels"] == 4 and best["weights"] is None
    assert "derived cell" in proc.stdout

    report = run_cli(str(tmp_path), command=("-c", "from nasrun.commands.report import main; main()"),
                     new_process=True)
    assert report.returncode == 0, report.stderr
    row = (tmp_path / "report.csv").read_text().splitlines()
    assert "oneshot" in row[0] and "gdas" in row[1]
    assert f"{epochs[-1]['metrics']['test_acc']:.2f}" in report.stdout  # the last cell, not the best-scored one

    trained = run_cli(f"arch={tmp_path}", "dataset=synthetic", "budget.epochs=1", "device.threads=1",
                      f"hydra.run.dir={tmp_path / 'train'}", command=TRAIN_COMMAND)
    assert trained.returncode == 0, trained.stderr  # the derived cell trains from scratch
    assert json.loads((tmp_path / "train" / "best.json").read_text())["key"] == best["key"]


def test_sigkill_mid_epoch_then_resume_ends_bit_for_bit_as_a_straight_run(tmp_path):
    args = [*TINY, "dataset.num_train=3072", "oneshot=darts", "oneshot.epochs=5"]
    straight = tmp_path / "straight"
    assert run_cli(*args, f"hydra.run.dir={straight}").returncode == 0
    killed = tmp_path / "killed"
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.Popen([sys.executable, "-m", "nasrun", *args, f"hydra.run.dir={killed}"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    log = killed / "trials.jsonl"
    while (not log.exists() or len(log.read_text().splitlines()) < 2) and proc.poll() is None \
            and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)  # into the third epoch
    assert proc.poll() is None, "the run must still be training when it is killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= len(_records(killed)) < 5
    resumed = run_cli(*args, f"hydra.run.dir={killed}", "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    assert _timeless(_records(killed))[:-1] == _timeless(_records(straight))[:-1]
    a = torch.load(killed / CHECKPOINT, weights_only=True)["state"]
    b = torch.load(straight / CHECKPOINT, weights_only=True)["state"]
    assert a["epoch"] == b["epoch"] == 5
    for name in ("model",):
        assert all(torch.equal(a[name][k], b[name][k]) for k in b[name])
    assert torch.equal(a["alpha"], b["alpha"])
    for opt in ("w_opt", "a_opt"):
        for p, state in b[opt]["state"].items():
            assert all(torch.equal(a[opt]["state"][p][k], v) for k, v in state.items() if torch.is_tensor(v))
    assert all(torch.equal(a["generators"][k], b["generators"][k]) for k in b["generators"])
    again = run_cli(*args, f"hydra.run.dir={killed}", "resume=true")  # a finished run: nothing more to do
    assert again.returncode == 0 and len(_records(killed)) == 6


def test_a_kill_between_the_checkpoint_and_the_log_loses_no_record(tmp_path):
    args = [*TINY, "dataset.num_train=256", "oneshot=darts", "oneshot.epochs=2", f"hydra.run.dir={tmp_path}"]
    assert run_cli(*args).returncode == 0
    whole = (tmp_path / "trials.jsonl").read_text().splitlines()
    # As if killed after epoch 2's checkpoint, before its record: the log ends with epoch 1's record.
    (tmp_path / "trials.jsonl").write_text(whole[0] + "\n")
    assert run_cli(*args, "resume=true").returncode == 0
    again = (tmp_path / "trials.jsonl").read_text().splitlines()
    assert again[:2] == whole[:2] and json.loads(again[-1])["status"] == "end" and len(again) == 3


def test_a_resume_with_other_settings_or_a_new_run_on_an_old_directory_is_one_line(tmp_path):
    args = [*TINY, "dataset.num_train=256", "oneshot=gdas", "oneshot.epochs=1", f"hydra.run.dir={tmp_path}"]
    assert run_cli(*args).returncode == 0
    changed = run_cli(*args, "oneshot.lr=0.05", "oneshot.epochs=2", "resume=true")
    assert changed.returncode != 0 and "oneshot.epochs=2" in changed.stderr and "resume with the same setting" \
        in changed.stderr and "Traceback" not in changed.stderr
    again = run_cli(*args)
    assert again.returncode != 0 and "resume=true" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    nothing = run_cli(*args[:-1], f"hydra.run.dir={tmp_path / 'empty'}", "resume=true")  # never a fresh start
    assert nothing.returncode != 0 and "holds no supernet to resume" in nothing.stderr
    assert not (tmp_path / "empty" / "trials.jsonl").exists()


@pytest.mark.parametrize("args,message", [
    (["oneshot=darts", "space=custom"], "use space=nb201"),
    (["oneshot=rsps", "space=nb201", "evaluator=train"], "use evaluator=supernet"),
    (["evaluator=supernet", "space=nb201", "strategy=random"], "oneshot=rsps"),
    (["oneshot=gdas", "space=nb201", "oneshot.tau_min=0"], "oneshot.tau_min=0"),
])
def test_bad_one_shot_settings_are_one_line(args, message, tmp_path):
    proc = run_cli("dataset=synthetic", *args, f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_the_wall_clock_stops_the_supernet_at_an_epoch_boundary(tmp_path):
    data = synthetic(num_train=512, val_fraction=0.5, seed=0, device=torch.device("cpu"))
    space, method = NB201Space(4, 1), GDAS(epochs=50)
    ident = identity(method, space, data, 0)
    # A clock that ticks a millisecond a call, until, a few calls into the third epoch, it leaps 10 s a call:
    # the second epoch's length let the third start, and it overruns; it must be dropped whole.
    state = {"t": 0.0, "calls": 0, "leap_at": None}

    def clock():
        state["calls"] += 1
        state["t"] += 10.0 if state["leap_at"] is not None and state["calls"] >= state["leap_at"] else 0.001
        return state["t"]

    def on_epoch(stats):
        if stats["epoch"] == 2:
            state["leap_at"] = state["calls"] + 4

    run = start(method, space, data, 0)
    appended = []
    reason = train_supernet(run, data, tmp_path, ident, append=appended.append, seconds=5.0, clock=clock,
                            on_epoch=on_epoch)
    assert "epoch 3 was cut short and dropped" in reason and run.epoch == 2 and len(appended) == 2
    saved = start(method, space, data, 0)
    load(saved, tmp_path / CHECKPOINT, ident)
    assert saved.epoch == run.epoch and torch.equal(saved.alpha, run.alpha)  # the supernet is the checkpoint's
    assert all(torch.equal(a, b) for a, b in zip(saved.supernet.state_dict().values(),
                                                 run.supernet.state_dict().values()))
    # A steady clock: the last epoch's length says the next would not fit, so it does not start.
    steady = itertools.count()
    run = start(method, space, data, 0)
    (tmp_path / "steady").mkdir()
    reason = train_supernet(run, data, tmp_path / "steady", ident, append=lambda r: None, seconds=0.5,
                            clock=lambda: next(steady) * 0.01)
    assert reason.startswith("budget.seconds reached: stopped after epoch") and "the next would end past" in reason
    assert 1 <= run.epoch < 50 and run.elapsed <= 0.5
    with pytest.raises(UserError, match="first epoch did not finish"):
        train_supernet(start(method, space, data, 0), data, tmp_path, ident, append=lambda r: None, seconds=1e-9,
                       clock=lambda: next(steady) * 0.01)


def test_rsps_trains_paths_then_searches_with_the_supernet_as_evaluator(tmp_path):
    proc = run_cli(*TINY, "dataset.num_train=512", "oneshot=rsps", "oneshot.epochs=2", "evaluator=supernet",
                   "evaluator.calibration_batches=2", "strategy=random", "budget.trials=6",
                   f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    records = _records(tmp_path)
    assert records[-1]["status"] == "end" and [r["trial"] for r in records[:-1]] == list(range(6))
    assert all(0 <= r["metrics"]["val_acc"] <= 100 for r in records[:-1])
    history = json.loads((tmp_path / "supernet.json").read_text())["history"]
    assert len(history) == 2 and all(abs(sum(p.values()) - 1) < 1e-4 for p in history[0]["preferences"].values())
    assert json.loads((tmp_path / "best.json").read_text())["key"] in {r["key"] for r in records[:-1]}


def test_the_supernet_evaluator_recalibrates_batchnorm_per_cell_and_puts_the_statistics_back():
    data = synthetic(num_train=256, seed=0, device=torch.device("cpu"))
    torch.manual_seed(0)
    supernet = Supernet(1, 4, 4, 1)
    norms = [m for m in supernet.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.running_mean.fill_(5.0)  # statistics that fit no path: scored with these, every cell is at chance
    evaluator = SupernetEvaluator(NB201Space(4, 1), data, supernet, calibration_batches=2)
    arch = NB201Arch(("nor_conv_3x3",) * 6)
    first, _ = evaluator(arch)
    assert all(torch.all(m.running_mean == 5.0) for m in norms)  # the run's statistics are back
    assert evaluator(arch)[0] == first  # the same calibration batches every time: the same score
    seen = []
    hook = norms[0].register_forward_hook(lambda m, args, out: seen.append(m.running_mean.clone()))
    evaluator(arch)
    hook.remove()
    assert not torch.all(seen[-1] == 5.0)  # scored with statistics of its own
    with pytest.raises(UserError, match="oneshot=rsps"):
        SupernetEvaluator(NB201Space(4, 1), data, None)


def test_a_sweep_of_supernets_prints_a_line_per_job_and_reports_the_last_cells(tmp_path, data_root):
    table = data_root / "nasbench201" / "nb201.csv"
    proc = run_cli("-m", *TINY, "dataset.num_train=256", "oneshot=gdas", "oneshot.epochs=2", "seed=0,1",
                   f"oneshot.table={table}", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("after 2 epochs") == 2
    report = run_cli(str(tmp_path), command=("-c", "from nasrun.commands.report import main; main()"),
                     new_process=True)
    assert report.returncode == 0, report.stderr
    last = [_records(tmp_path / job)[-2]["metrics"]["test_acc"] for job in "01"]
    row = (tmp_path / "report.csv").read_text().splitlines()
    assert len(row) == 2 and "gdas" in row[1] and f"{sum(last) / 2:.2f}"[:4] in row[1]
