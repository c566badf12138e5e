"""space=choices / GenericSpace: a user's space from YAML choices and a build function, and the README's
example run end to end from a temporary directory (search, resume, load_best) with the installed console
script, as a user would."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from nasrun.checks import UserError
from nasrun.config.groups import build
from nasrun.spaces.generic import ChoiceArch, GenericSpace

from conftest import REPO, real_data_root

CHOICES = {"width": [8, 16], "act": ["relu", "gelu"], "bn": [True, False], "drop": [0.0, 0.5]}


def tiny(choices, in_channels, image_size, num_classes):
    from torch import nn

    return nn.Sequential(nn.Conv2d(in_channels, choices["width"], 3), nn.Flatten(), nn.LazyLinear(num_classes))


def test_architectures_are_immutable_values_with_one_canonical_string():
    space = GenericSpace(CHOICES, tiny, name="mine")
    assert len(space) == 16 == len(set(space)) == len({a.key for a in space})
    arch = space.make({"width": 16, "act": "gelu", "bn": False, "drop": 0.5})
    assert arch.key == "width=16,act=gelu,bn=false,drop=0.5" and isinstance(arch, ChoiceArch)
    assert space.from_json(arch.key) == arch == space.from_json(json.loads(json.dumps(arch.to_json())))
    assert hash(arch) == hash(space.from_key("width=16.0,act=gelu,bn=false,drop=0.5"))
    with pytest.raises(AttributeError):
        arch.items = ()
    rng = np.random.default_rng(0)
    for _ in range(50):
        child = space.mutate(arch, rng, None)
        assert sum(child[k] != arch[k] for k in CHOICES) == 1
    assert space.build(arch, 1, 8, 3)(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


@pytest.mark.parametrize("values,field", [({"width": 12, "act": "relu", "bn": True, "drop": 0.0}, "width=12"),
                                          ({"width": 8, "act": "tanh", "bn": True, "drop": 0.0}, "act='tanh'"),
                                          ({"width": 8, "act": "relu", "bn": 1, "drop": 0.0}, "bn=1"),
                                          ({"width": 8, "act": "relu", "bn": True}, "missing field 'drop'")])
def test_invalid_architectures_name_the_field(values, field):
    with pytest.raises(ValueError, match=re.escape(field)):
        GenericSpace(CHOICES, tiny).make(values)


@pytest.mark.parametrize("node,message", [
    (dict(choices={"w": []}, builder="test_spaces_generic.tiny"),
     "space.choices.w: the list of allowed values is empty"),
    (dict(choices={"w": 8}, builder="test_spaces_generic.tiny"), "space.choices.w=8: must be a list"),
    (dict(choices={"w": ["a,b"]}, builder="test_spaces_generic.tiny"), "space.choices.w: 'a,b'"),
    (dict(choices={"w": [1, 1.0]}, builder="test_spaces_generic.tiny"), "space.choices.w: 1.0 is listed twice"),
    (dict(choices={"w": [[1, 2]]}, builder="test_spaces_generic.tiny"), "is not a number, string or boolean"),
    (dict(choices={"w": [1]}, builder="nowhere_module.build"), "space.builder=nowhere_module.build: cannot import "
                                                              "nowhere_module .*put nowhere_module.py in the working"),
    (dict(choices={"w": [1]}, builder="test_spaces_generic.absent"), "has no function 'absent'"),
    (dict(choices={"w": [1]}, builder="test_spaces_generic.CHOICES"), "has no function 'CHOICES'"),
    (dict(choices={"w": [1]}, builder="test_spaces_generic.test_invalid_architectures_name_the_field"),
     "must take \\(choices, in_channels, image_size, num_classes\\)"),
])
def test_bad_spaces_are_one_line_errors_naming_the_key(node, message):
    cfg = OmegaConf.create({"_target_": "nasrun.spaces.generic.GenericSpace", **node})
    with pytest.raises(UserError, match=message) as err:
        build("space", cfg)
    assert "\n" not in str(err.value)


def readme_example() -> dict[str, str]:
    """The README's space example: its code blocks, by the file name on their first line."""
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```(?:yaml|python)\n# (\S+)\n(.*?)```", text, flags=re.S)
    files = {name: f"# {name}\n{body}" for name, body in blocks}
    assert {"myconf/space/tinyconv.yaml", "tinyconv.py"} <= set(files)
    assert sum(body.count("\n") for body in files.values()) <= 30  # about 20 lines, as promised
    return files


def test_the_readme_example_searches_resumes_and_loads_from_a_folder_of_its_own(tmp_path, monkeypatch):
    from nasrun.rundir.best import load_best

    for name, body in readme_example().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    # A preset of the user's own, beside the space.
    (tmp_path / "myconf" / "experiment").mkdir()
    (tmp_path / "myconf" / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /space: tinyconv\nbudget:\n  trials: 2\n")
    script = Path(sys.executable).parent / "nasrun"  # the console script: its sys.path lacks the working directory
    env = {**os.environ, "NASRUN_DATA": str(real_data_root()), "COLUMNS": "200"}
    env.pop("PYTHONPATH", None)
    args = [str(script), "--config-dir", "./myconf", "+experiment=mine", "dataset.fraction=0.01",
            "dataset.val_size=200", "hydra.run.dir=run", "device.threads=1"]
    first = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    second = subprocess.run(args + ["resume=true", "budget.trials=4"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    records = [json.loads(line) for line in (tmp_path / "run" / "trials.jsonl").read_text().splitlines()]
    trials = [r for r in records if r["status"] == "ok"]
    assert len(trials) == 4 and len({r["key"] for r in trials}) == 4
    assert all(re.fullmatch(r"width=\d+,depth=\d,kernel=\d,activation=(relu|gelu)", r["key"]) for r in trials)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UserError, match="space.builder='tinyconv.build' names code that nasrun does not ship"):
        load_best(tmp_path / "run")  # the run names it; the reader has not
    model, info = load_best(tmp_path / "run", builders=("tinyconv.build",))
    assert info["space_name"] == "tinyconv" and info["key"] in {r["key"] for r in trials}
    assert model(torch.zeros(4, 1, 28, 28)).shape == (4, 10)
