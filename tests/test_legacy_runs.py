"""Run directories written before nasrun's modules moved (tests/data/legacy_runs, from commit dcdfefe) still
load, resume and report: their saved configs name the old module paths."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from nasrun.reports.table import report
from nasrun.rundir.best import load_best
from nasrun.rundir.targets import MOVED, current_target, shipped_names, upgrade_targets

from conftest import run_cli

LEGACY = Path(__file__).parent / "data" / "legacy_runs"


@pytest.fixture
def legacy(tmp_path):
    """A fresh copy of the saved runs (the tests resume and rewrite them)."""
    shutil.copytree(LEGACY, tmp_path / "runs")
    return tmp_path / "runs"


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "trials.jsonl").read_text().splitlines()]


def test_every_moved_target_resolves_and_unmoved_ones_pass_through():
    from hydra.utils import get_object

    for old, new in MOVED.items():  # each lands on a target nasrun ships, so old runs pass the allow-list
        assert get_object(new) is not None and current_target(old) == new and new in shipped_names()
    assert current_target("nasrun.strategies.evolution.RegularizedEvolution").endswith("RegularizedEvolution")
    saved = {"space": {"_target_": "nasrun.spaces.morph.MorphSpace", "seed": "plain"}, "list": [{"_target_": "x"}]}
    assert upgrade_targets(saved) == {"space": {"_target_": "nasrun.spaces.morph.space.MorphSpace", "seed": "plain"},
                                      "list": [{"_target_": "x"}]}
    assert saved["space"]["_target_"] == "nasrun.spaces.morph.MorphSpace"  # a copy: the saved config is untouched


def test_the_saved_runs_name_the_old_paths():
    assert json.loads((LEGACY / "morph" / "best.json").read_text())["space"]["_target_"] in MOVED
    assert "nasrun.runner.Budget" in (LEGACY / "table" / ".hydra" / "config.yaml").read_text()


def test_an_old_trained_run_loads_its_best_model(legacy):
    model, info = load_best(legacy / "morph")
    assert info["key"] in {r["key"] for r in records(legacy / "morph") if r["status"] == "ok"}
    images = torch.zeros(2, info["in_channels"], info["image_size"], info["image_size"])
    assert model(images).shape == (2, info["num_classes"])


def test_an_old_table_run_resumes_to_the_uninterrupted_run(legacy, tmp_path):
    args = ["space=nb201", "evaluator=tabular", "seed=0"]
    assert run_cli(*args, "budget.trials=20", f"hydra.run.dir={tmp_path / 'now'}").returncode == 0
    old = records(legacy / "table")
    proc = run_cli(*args, "budget.trials=20", f"hydra.run.dir={legacy / 'table'}", "resume=true")
    assert proc.returncode == 0, proc.stderr
    resumed = records(legacy / "table")
    assert resumed[:len(old)] == old  # the old records are kept as they were written
    keys = [r["key"] for r in resumed if r["status"] == "ok"]
    assert keys == [r["key"] for r in records(tmp_path / "now") if r["status"] == "ok"]


def test_an_old_trained_run_resumes(legacy):
    args = ["space=morph", "space.seed=plain", "space.keep_weights=0", "dataset=synthetic", "budget=smoke",
            "strategy=random", "seed=0"]
    proc = run_cli(*args, "budget.trials=3", f"hydra.run.dir={legacy / 'morph'}", "resume=true")
    assert proc.returncode == 0, proc.stderr
    trials = [r for r in records(legacy / "morph") if r["status"] in ("ok", "failed")]
    assert len(trials) == 3
    load_best(legacy / "morph")


def test_an_old_table_run_reports_and_its_rebuilt_best_json_names_the_current_paths(legacy):
    (legacy / "table" / "best.json").write_text("{damaged")
    rows = report(legacy / "table")
    assert rows[0]["runs"] == 1
    rebuilt = json.loads((legacy / "table" / "best.json").read_text())
    assert rebuilt["space"]["_target_"] == "nasrun.spaces.nb201.NB201Space"
    assert rebuilt["key"] == max((r for r in records(legacy / "table") if r["status"] == "ok"),
                                 key=lambda r: r["metrics"]["val_acc"])["key"]
