"""`nasrun-train`: one architecture trained in full, killed and resumed, exported; its mistakes in one line."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from omegaconf import OmegaConf

from nasrun.checks import UserError
from nasrun.commands.train import (
    architecture_source,
    build_training,
    quote_arch,
    resolve_architecture,
    train_one,
)
from nasrun.rundir.atomic import write_json
from nasrun.spaces.macro import NASCNN15, MacroSpace
from nasrun.training.checkpoint import identity, load_checkpoint
from nasrun.training.train import TrainConfig

from conftest import REPO, TRAIN_COMMAND, compose, run_cli

ARCH = "3x3-24<0|5x3-36<0.1"
TRAIN = [f"arch={ARCH}", "space=macro", "dataset=synthetic", "dataset.num_train=2000", "budget.epochs=3",
         "evaluator.optimizer=sgd", "evaluator.nesterov=true", "evaluator.lr=0.05", "evaluator.schedule=cosine",
         "evaluator.warmup_epochs=1", "device.threads=1"]


def state_of(run_dir):
    return torch.load(run_dir / "last.pt", weights_only=True)["state"]


def test_killed_after_an_epoch_and_resumed_it_ends_with_the_uninterrupted_weights_and_exports(tmp_path):
    whole = tmp_path / "whole"
    proc = run_cli(*TRAIN, "export=false", f"hydra.run.dir={whole}", command=TRAIN_COMMAND)
    assert proc.returncode == 0, proc.stderr
    killed = tmp_path / "killed"
    env = {**__import__("os").environ, "NASRUN_DATA": str(tmp_path)}
    child = subprocess.Popen([sys.executable, *TRAIN_COMMAND, *TRAIN, f"hydra.run.dir={killed}"], cwd=REPO, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (killed / "last.pt").is_file() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)  # no chance to clean up: the worst case
    child.wait()
    assert state_of(killed)["epoch"] < 3  # killed mid-training
    resumed = run_cli(*TRAIN, f"hydra.run.dir={killed}", "resume=true", command=TRAIN_COMMAND)
    assert resumed.returncode == 0, resumed.stderr
    assert "going on after epoch" in resumed.stdout + resumed.stderr

    a, b = state_of(whole), state_of(killed)
    assert a["epoch"] == b["epoch"] == 3
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    best_a, best_b = (torch.load(d / "best.pt", weights_only=True) for d in (whole, killed))
    assert all(torch.equal(best_a[k], best_b[k]) for k in best_a)  # the best epoch's weights
    records = [json.loads(line) for line in (killed / "trials.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok", "end"]
    metrics = records[0]["metrics"]
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3] and "test_acc" in metrics
    assert metrics["val_acc"] == max(h["val_acc"] for h in metrics["history"])  # restore_best is nasrun-train's default
    assert json.loads((killed / "best.json").read_text())["arch"] == ARCH
    program = torch.export.load(killed / "model.pt2").module()
    assert program(torch.rand(2, 1, 16, 16) * 255).shape == (2, 4)
    assert "model.pt2 (checked" in resumed.stdout and not (whole / "model.pt2").exists()


def test_a_training_in_progress_is_continued_only_with_resume(tmp_path):
    cfg = compose(quote_arch(f"arch={ARCH}"), "space=macro", "dataset=synthetic", config_name="train")
    (tmp_path / "last.pt").write_bytes(b"a training in progress")
    with pytest.raises(UserError, match="last.pt holds a training in progress; add resume=true to continue it"):
        train_one(cfg, tmp_path, 0, False, torch.device("cpu"), [])
    with pytest.raises(UserError, match="resume=true: .* holds no trials to resume"):
        train_one(cfg, tmp_path / "new", 0, True, torch.device("cpu"), [])


def test_architectures_by_name_string_or_run_directory(tmp_path):
    assert resolve_architecture(MacroSpace(15), "nascnn15").key == NASCNN15
    with pytest.raises(UserError, match="arch=nascnn15: 15 layers; this space .space.num_layers=6. has at most 6; "
                                        "named architectures of space=macro"):
        resolve_architecture(MacroSpace(6), "nascnn15")
    cfg = compose(f"arch={tmp_path}", config_name="train")
    with pytest.raises(UserError, match="best.json is missing"):
        architecture_source(cfg)
    write_json(tmp_path / "best.json", {"trial": 3, "key": ARCH, "arch": ARCH, "metrics": {},
                                        "space": {"_target_": "nasrun.spaces.macro.MacroSpace", "num_layers": 4},
                                        "space_name": "macro", "dataset": "synthetic"})
    space_cfg, given, info = architecture_source(cfg)  # the search's space, not the default one
    assert OmegaConf.to_container(space_cfg)["num_layers"] == 4 and given == ARCH and info["trial"] == 3
    with pytest.raises(UserError, match="arch=outputs/nope: no such run directory"):
        architecture_source(compose("arch=outputs/nope", config_name="train"))


@pytest.mark.parametrize("overrides,message", [
    (["evaluator=tabular"], "evaluator=TabularEvaluator: nasrun-train trains the architecture; use evaluator=train"),
    (["budget.trials=2"], "budget.trials=2: nasrun-train trains one architecture"),
    (["arch='1x1-24<0|9x9-24<0'"], "arch=1x1-24<0|9x9-24<0: layer 2: height=9"),
])
def test_mistakes_name_the_key(overrides, message, tmp_path):
    cfg = compose(quote_arch("arch=3x3-24<0"), "space=macro", "dataset=synthetic", *overrides, config_name="train")
    with pytest.raises(UserError, match=message.replace("|", r"\|")):
        build_training(cfg, 0, torch.device("cpu"), tmp_path)


def test_a_checkpoint_resumes_only_the_same_training(tmp_path):
    from nasrun.data.builtin import synthetic
    from nasrun.training.checkpoint import save_checkpoint

    data = synthetic(num_train=64, num_test=32, seed=0)
    ident = identity(ARCH, TrainConfig(epochs=3), data)
    state = {key: 0 for key in ("epoch", "history", "best_epoch", "best_model", "stopped", "train_seconds",
                                "val_seconds", "model", "optimizer", "generator", "torch_rng", "cuda_rng")}
    save_checkpoint(tmp_path / "last.pt", state, ident)
    assert load_checkpoint(tmp_path / "last.pt", ident, "cpu") == state
    assert load_checkpoint(tmp_path / "none.pt", ident, "cpu") is None
    with pytest.raises(UserError, match="evaluator.lr=0.1: the training in .* used 0.001; resume with the same"):
        load_checkpoint(tmp_path / "last.pt", identity(ARCH, TrainConfig(epochs=3, lr=0.1), data), "cpu")
    with pytest.raises(UserError, match="trains architecture .*, not 3x3"):
        load_checkpoint(tmp_path / "last.pt", identity("3x3-24<0", TrainConfig(epochs=3), data), "cpu")
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="last.pt cannot be read .*; delete"):
        load_checkpoint(tmp_path / "last.pt", ident, "cpu")


def test_arch_values_reach_hydra_as_one_quoted_string():
    assert quote_arch("arch=3x3-24<0|5x3-36<0.1") == "arch='3x3-24<0|5x3-36<0.1'"
    assert quote_arch("arch='already'") == "arch='already'" and quote_arch("seed=1") == "seed=1"
    assert quote_arch("arch=it's") == "arch='it\\'s'"
