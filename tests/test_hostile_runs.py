"""A run directory is data, never code: hostile run directories (a colleague's, a paper's artefacts, a folder
copied from a cluster) are refused in one line by every reader, and nothing outside the run directory is
created or changed. Each row damages a copy of a real run, then hands it to a reader."""

import json
import os
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from nasrun.checks import UserError
from nasrun.commands import report as report_command
from nasrun.rundir.best import load_best

from conftest import TRAIN_COMMAND, run_cli

SMALL = ["dataset=synthetic", "budget=smoke", "budget.trials=1", "strategy=random", "seed=0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A trained run (best.json, best.pt) and a table run (for the report), made once."""
    root = tmp_path_factory.mktemp("runs")
    assert run_cli(*SMALL, f"hydra.run.dir={root / 'trained'}").returncode == 0
    assert run_cli("space=nb201", "evaluator=tabular", "budget.trials=3", f"hydra.run.dir={root / 'table'}"
                   ).returncode == 0
    return root


def edit_best(change):
    def damage(run: Path, outside: Path) -> None:
        info = json.loads((run / "best.json").read_text())
        change(info, outside)
        (run / "best.json").write_text(json.dumps(info))
    return damage


def space(node):
    return edit_best(lambda info, outside: info.update(space=node(outside)))


def link_weights(run: Path, outside: Path) -> None:
    (outside / "secret.pt").write_bytes((run / "best.pt").read_bytes())
    (run / "best.pt").unlink()
    (run / "best.pt").symlink_to(outside / "secret.pt")


def huge_weights(run: Path, outside: Path) -> None:
    os.truncate(run / "best.pt", 100 * 2**30)  # 100 GB, sparse: refused before a byte is read


def foreign_report_target(run: Path, outside: Path) -> None:
    config = OmegaConf.load(run / ".hydra" / "config.yaml")
    config.evaluator._target_ = "evil_module.TabularEvaluator"  # would pass a check of the name's end alone
    OmegaConf.save(config, run / ".hydra" / "config.yaml")
    (run / "best.json").unlink()  # the report would rebuild it from that config


# (case, the run it damages, damage(run, outside), the readers it must be refused by, what the line says)
CASES = [
    ("the builtins.open gadget", "trained",
     space(lambda outside: {"_target_": "builtins.open", "file": str(outside / "victim"), "mode": "w"}),
     ("load_best", "train"), "space._target_='builtins.open' names code that nasrun does not ship"),
    ("a standard-library function", "trained",
     space(lambda outside: {"_target_": "os.makedirs", "name": str(outside / "made")}),
     ("load_best", "train"), "space._target_='os.makedirs'"),
    ("a module that does not exist", "trained", space(lambda outside: {"_target_": "no_such_module.Space"}),
     ("load_best", "train"), "space._target_='no_such_module.Space'"),
    ("a space builder that is not nasrun's", "trained",
     space(lambda outside: {"_target_": "nasrun.spaces.generic.GenericSpace", "choices": {"a": [1, 2]},
                            "builder": "os.system"}),
     ("load_best", "train"), "space.builder='os.system'"),
    ("a nested _target_", "trained",
     space(lambda outside: {"_target_": "nasrun.spaces.custom.CustomSpace", "extra": {"_target_": "os.getcwd"}}),
     ("load_best", "train"), "space.extra._target_='os.getcwd'"),
    ("weights: a path out of the run", "trained", edit_best(lambda info, outside: info.update(weights="../x.pt")),
     ("load_best",), "weights='../x.pt' is not a file name in the run directory"),
    ("weights: an absolute path", "trained", edit_best(lambda info, outside: info.update(weights="/etc/passwd")),
     ("load_best",), "weights='/etc/passwd' is not a file name"),
    ("best.pt: a link out of the run", "trained", link_weights, ("load_best",), "best.pt is a link"),
    ("best.pt: 100 GB", "trained", huge_weights, ("load_best",), "107,374,182,400 bytes, but the network"),
    ("num_classes=10**9", "trained", edit_best(lambda info, outside: info.update(num_classes=10**9)),
     ("load_best",), "num_classes=1000000000 is not a network nasrun builds"),
    ("image_size: a terabyte of pixels", "trained", edit_best(lambda info, outside: info.update(image_size=10**6)),
     ("load_best",), "image_size=1000000"),
    ("in_channels as a string", "trained", edit_best(lambda info, outside: info.update(in_channels="3")),
     ("load_best",), "in_channels='3'"),
    (".hydra/config.yaml: a foreign target for the report", "table", foreign_report_target, ("report",),
     "evaluator._target_='evil_module.TabularEvaluator'"),
]


def read(reader: str, run: Path, tmp_path: Path, capsys) -> str:
    """The one line `reader` refuses the run with."""
    if reader == "load_best":
        with pytest.raises(UserError) as caught:
            load_best(run)
        return str(caught.value)
    if reader == "train":
        proc = run_cli(f"arch={run}", "dataset=synthetic", "budget.epochs=1", f"hydra.run.dir={tmp_path / 'train'}",
                       command=TRAIN_COMMAND)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        return proc.stderr.strip().removeprefix("error: ")
    with pytest.raises(SystemExit) as exited:
        report_command.main([str(run)])
    assert exited.value.code == 2
    return capsys.readouterr().err.strip().removeprefix("error: ")


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case,kind,damage,readers,says", CASES, ids=[c[0] for c in CASES])
def test_each_hostile_run_is_refused_in_one_line_and_touches_nothing_outside(runs, tmp_path, capsys, case, kind,
                                                                             damage, readers, says):
    outside = tmp_path / "outside"  # where a gadget would write; nothing may appear or change here
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    run = tmp_path / "run"
    shutil.copytree(runs / kind, run, symlinks=True)
    damage(run, outside)
    before = snapshot(outside)
    for reader in readers:
        line = read(reader, run, tmp_path, capsys)
        assert says in line and "\n" not in line, f"{reader}: {line}"
        assert snapshot(outside) == before and not (outside / "victim").exists() and not (outside / "made").exists()


def test_the_users_own_builder_and_an_explicit_trust_are_let_through(runs, tmp_path, caplog):
    run = tmp_path / "run"
    shutil.copytree(runs / "trained", run)
    info = json.loads((run / "best.json").read_text())
    choices = {k: [v] for k, v in info["arch"].items()}
    info["space"] = {"_target_": "nasrun.spaces.generic.GenericSpace", "choices": choices,
                     "builder": "nasrun.spaces.custom.build"}  # shipped: conf/space/choices.yaml names it
    (run / "best.json").write_text(json.dumps(info))
    load_best(run)
    info["space"]["builder"] = "test_hostile_runs.build_like_custom"  # a user's own, not shipped
    (run / "best.json").write_text(json.dumps(info))
    with pytest.raises(UserError, match="space.builder='test_hostile_runs.build_like_custom'"):
        load_best(run)
    load_best(run, builders=("test_hostile_runs.build_like_custom",))  # named by the user: allowed
    load_best(run, trust=True)  # trusted: imported, and said so in the log
    assert "importing it because the run is trusted" in caplog.text


def build_like_custom(values, in_channels, image_size, num_classes):
    from nasrun.spaces.custom import build

    return build(values, in_channels, image_size, num_classes)
