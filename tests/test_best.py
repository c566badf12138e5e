"""best.json and best.pt are derived from trials.jsonl: each damage below is either recovered on resume (the
files end equal to the undamaged run's) or, for load_best, one line naming the file."""

import json

import pytest
import torch

from nasrun.checks import UserError
from nasrun.rundir.best import load_best, read_best_json, sha256_of
from nasrun.search.budget import Budget
from nasrun.search.runner import run_search
from nasrun.spaces.custom import CustomSpace
from nasrun.strategies.random import RandomSearch

SPACE = CustomSpace()


class SeededEvaluator:
    """Deterministic 'training': a small network whose weights follow from the architecture alone."""

    def __init__(self):
        self.trained = []

    def __call__(self, arch, deadline=None):
        self.trained.append(arch.key)
        torch.manual_seed(sum(map(ord, arch.key)))
        model = torch.nn.Linear(4, 2)
        v = arch.to_json()
        score = 10.0 * v["conv3"] + v["num_block"] + v["feature"] / 100 - v["dropout"]
        return {"val_acc": score, "test_acc": score - 1}, model

    def describe(self):
        return {"dataset": "toy"}


def search(run_dir, trials, resume=False):
    evaluator = SeededEvaluator()
    run_search(SPACE, RandomSearch(SPACE, seed=0), evaluator, Budget(trials=trials), run_dir, resume=resume,
               model_info={"space": {"_target_": "nasrun.spaces.custom.CustomSpace"}, "in_channels": 1,
                           "image_size": 28, "num_classes": 10})
    return evaluator


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference")
    search(run_dir, 6)
    return run_dir


def _flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {
    "best.json truncated": lambda d: (d / "best.json").write_text((d / "best.json").read_text()[:40]),
    "best.json bytes flipped": lambda d: _flip(d / "best.json"),
    "best.json deleted": lambda d: (d / "best.json").unlink(),
    "best.json valid JSON of the wrong shape": lambda d: (d / "best.json").write_text("[1, 2, 3]"),
    "best.json names another trial": lambda d: (d / "best.json").write_text(json.dumps(
        {**json.loads((d / "best.json").read_text()), "key": "conv3=0,num_block=1,conv5=0,feature=64,dropout=0.25",
         "trial": 99})),
    "best.pt truncated": lambda d: (d / "best.pt").write_bytes((d / "best.pt").read_bytes()[:100]),
    "best.pt bytes flipped": lambda d: _flip(d / "best.pt"),
    "best.pt deleted": lambda d: (d / "best.pt").unlink(),
    "best.pt replaced by other valid weights": lambda d: torch.save(torch.nn.Linear(4, 2).state_dict(), d / "best.pt"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_resume_recovers_best_json_and_best_pt_from_the_log(reference, tmp_path, damage, caplog):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    DAMAGE[damage](run_dir)
    evaluator = search(run_dir, 6, resume=True)
    assert len(evaluator.trained) == 1 and "retrained trial" in caplog.text  # only the best trial, once
    for name in ("best.pt",):
        assert sha256_of(run_dir / name) == sha256_of(reference / name)
    fixed, original = read_best_json(run_dir), read_best_json(reference)
    assert fixed["key"] == original["key"] and fixed["weights_sha256"] == original["weights_sha256"]
    assert fixed["metrics"] == original["metrics"]


def test_an_undamaged_resume_retrains_nothing(reference, tmp_path):
    import shutil

    shutil.copytree(reference, tmp_path / "run")
    assert search(tmp_path / "run", 6, resume=True).trained == []


@pytest.mark.parametrize("damage,message", [
    ("best.json truncated", "best.json is not valid JSON"),
    ("best.json deleted", "best.json is missing"),
    ("best.json valid JSON of the wrong shape", "is not a nasrun best.json"),
    ("best.pt truncated", "best.pt does not match the checksum in best.json"),
    ("best.pt replaced by other valid weights", "best.pt does not match the checksum"),
    ("best.pt deleted", "best.pt is missing"),
])
def test_load_best_names_the_damaged_file_in_one_line(reference, tmp_path, damage, message):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    DAMAGE[damage](run_dir)
    with pytest.raises(UserError, match=message) as err:
        load_best(run_dir)
    assert "\n" not in str(err.value) and "resume=true" in str(err.value)
