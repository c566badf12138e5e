"""A non-editable install must work on its own: the wheel carries the config groups (conf/ as nasrun/conf), and
the installed console scripts run a search, a report, a scoring and a training from a folder outside the
checkout."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import CONF_DIR, REPO, real_data_root


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(out), str(REPO)], capture_output=True, text=True, cwd=out)
    assert proc.returncode == 0, proc.stderr
    (built,) = out.glob("nasrun-*.whl")
    return built


def test_the_wheel_holds_every_config_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"nasrun/conf/{p.relative_to(CONF_DIR).as_posix()}" for p in Path(CONF_DIR).rglob("*.yaml")}
    assert "nasrun/conf/config.yaml" in expected and expected <= names


def test_the_wheel_holds_every_module_of_the_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "nasrun").rglob("*.py")}
    assert modules and not modules - names, "a package missing from pyproject.toml's [tool.setuptools] packages"


def test_the_installed_wheel_searches_reports_scores_and_trains_from_another_folder(wheel, tmp_path):
    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                           str(wheel)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # The installed copy, not the checkout: PYTHONPATH puts it ahead of the editable install.
    env = {**os.environ, "PYTHONPATH": str(target), "NASRUN_DATA": str(real_data_root()), "COLUMNS": "200"}
    env.pop("HYDRA_FULL_ERROR", None)

    def run(script, *args):
        return subprocess.run([sys.executable, str(target / "bin" / script), *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=300)

    where = subprocess.run([sys.executable, "-c", "import nasrun.config.groups as c; print(c.__file__, c.conf_dir())"],
                           cwd=elsewhere, env=env, capture_output=True, text=True)
    assert where.stdout.split() == [str(target / "nasrun" / "config" / "groups.py"), str(target / "nasrun" / "conf")]
    search = run("nasrun", "+experiment=nb201_rea", "budget.simulated_seconds=3000", "hydra.run.dir=run")
    assert search.returncode == 0, search.stderr
    best = json.loads((elsewhere / "run" / "best.json").read_text())
    assert best["space_name"] == "nb201" and best["metrics"]["test_acc"] > 80
    report = run("nasrun-report", "run")
    assert report.returncode == 0 and (elsewhere / "run" / "checklist.md").is_file(), report.stderr
    score = run("nasrun-score", "--proxies", "params", "-n", "3", "--out", "scores.csv", "space=nb201",
                "dataset=cifar10", "dataset.fraction=0.01", "proxy.cache_dir=null")
    assert score.returncode == 0, score.stderr
    assert len((elsewhere / "scores.csv").read_text().splitlines()) == 4
    trained = run("nasrun-train", "arch=3x3-24<0|1x5-24<1", "space=macro", "dataset=synthetic",
                  "dataset.num_train=128", "budget.epochs=1", "export=false", "hydra.run.dir=trained")
    assert trained.returncode == 0, trained.stderr
    assert {"best.pt", "last.pt", "trials.jsonl"} <= {p.name for p in (elsewhere / "trained").iterdir()}
    wrong = run("nasrun", "strategy=evolutoin")
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1 and "strategy=evolutoin" in wrong.stderr
