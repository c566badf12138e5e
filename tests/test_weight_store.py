"""Weight inheritance in a search on space=morph: the store keeps the fittest, children start from their
ancestor's weights, and a resumed run finds the weights on disk."""

import json

import torch

from nasrun.data.builtin import synthetic
from nasrun.evaluators.train import TrainingEvaluator
from nasrun.rundir.weight_store import WeightStore
from nasrun.search.budget import Budget
from nasrun.search.runner import run_search
from nasrun.spaces.morph.space import MorphSpace
from nasrun.strategies.bayesian import BayesianOptimization


def test_the_store_keeps_only_the_fittest(tmp_path):
    store = WeightStore(tmp_path, keep=2)
    for key, fit in (("a", 50.0), ("b", 70.0), ("c", 60.0), ("d", 40.0)):
        store.save(key, {"w": torch.full((2,), fit)}, fit)
    assert len(list(tmp_path.iterdir())) == 2
    assert store.load("a") is None and store.load("d") is None
    assert store.load("b")["w"][0] == 70.0 and store.load("c")["w"][0] == 60.0


def test_children_inherit_and_a_resumed_search_finds_the_kept_weights(tmp_path, caplog):
    space = MorphSpace("plain", max_morphs=1, keep_weights=3)
    data = synthetic(num_train=256, num_test=64, seed=0)

    def search(trials, resume=False):
        return run_search(space, BayesianOptimization(space, 0, initial=2, t_min=0.05), TrainingEvaluator(
            space, data, epochs=1, seed=0), Budget(trials=trials), tmp_path, resume=resume)

    search(3)
    assert len(list((tmp_path / "weights").iterdir())) == 3
    (tmp_path / "best.pt").unlink()  # an inherited best cannot be retrained alone: the kept copy restores it
    resumed = search(5, resume=True)
    assert "restored best.pt from the kept weights" in caplog.text
    inherited = [r for r in resumed.records if "inherited_from" in r["metrics"]]
    assert [r["trial"] for r in inherited][-2:] == [3, 4]  # the resumed run's children inherit too
    assert all(r["metrics"]["inherited_from"] in {x["key"] for x in resumed.records[:r["trial"]]} for r in inherited)
    assert len(list((tmp_path / "weights").iterdir())) == 3  # capped
    logged = [json.loads(line) for line in (tmp_path / "trials.jsonl").read_text().splitlines()]
    assert [r["metrics"]["morphs"] for r in logged if r.get("trial") == 4][0]  # the operations, in the log
