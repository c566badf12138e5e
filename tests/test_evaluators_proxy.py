"""evaluator=proxy: training-free search whose fitness is the proxy score, with accuracies from the table."""

import json

import numpy as np
import pytest
import torch

from nasrun.checks import UserError
from nasrun.evaluators.proxy import ProxyEvaluator
from nasrun.proxies import zero_cost as proxies
from nasrun.proxies.scorer import ProxyScorer
from nasrun.search.assembly import build_search
from nasrun.search.budget import Budget
from nasrun.search.runner import run_search
from nasrun.spaces.nb201 import NB201Space
from nasrun.strategies.random import RandomSearch

from conftest import compose


def test_real_cifar10_and_table_fitness_is_the_score_and_accuracy_comes_from_the_table(data_root, tmp_path):
    cfg = compose("space=nb201", "dataset=cifar10", "evaluator=proxy", "proxy=synflow", "strategy=random",
                  f"dataset.root={data_root}", "dataset.download=false", f"proxy.cache_dir={tmp_path / 'cache'}",
                  "budget.trials=8")
    search = build_search(cfg, 0, torch.device("cpu"))
    assert isinstance(search.evaluator, ProxyEvaluator) and search.scorer is search.evaluator.scorer
    result = run_search(search.space, search.strategy, search.evaluator, search.budget, tmp_path / "run",
                        model_info=search.model_info, scorer=search.scorer)
    ok = [r for r in result.records if r["status"] == "ok"]
    assert len(ok) == 8
    table = search.evaluator.lookup.table
    for r in ok:
        assert r["metrics"]["fitness"] == r["proxy_score"] == search.scorer(search.space.from_json(r["arch"]))
        assert r["metrics"]["test_acc"] == table[r["key"]]["cifar10_test_acc200"]
        assert "cost" not in r["metrics"]
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert best["key"] == max(ok, key=lambda r: r["proxy_score"])["key"]  # selected by score, not accuracy
    assert best["counts"] == {"trials": 8, "trained": 0, "proxy_evaluations": 8} and best["proxy"] == "synflow"
    # A second search with the same key reads every score from the disk cache.
    again = build_search(cfg, 0, torch.device("cpu"))
    run_search(again.space, RandomSearch(again.space, 0), again.evaluator, again.budget, tmp_path / "run2",
               scorer=again.scorer)
    assert again.scorer.computed == 0 and again.scorer.evaluations == 8


def test_a_failing_proxy_is_a_failed_trial_not_a_failed_search(tmp_path):
    from nasrun.data.builtin import synthetic

    space = NB201Space(4, 1)

    def fragile(model, batch):
        if next(model.parameters()).sum() > 0:  # about half the initialisations
            raise ValueError("singular kernel")
        return 1.0

    scorer = ProxyScorer(fragile, space, synthetic(channels=3, image_size=16), seed=0, batch_size=8)
    result = run_search(space, RandomSearch(space, 0), ProxyEvaluator(space, scorer, table=None), Budget(trials=12),
                        tmp_path, scorer=scorer)
    statuses = {r["status"] for r in result.records}
    assert statuses == {"ok", "failed"} and len(result.records) == 12
    failed = next(r for r in result.records if r["status"] == "failed")
    assert "singular kernel" in failed["error"] and "singular kernel" in failed["proxy_error"]


def test_no_table_for_other_spaces_and_a_proxy_is_required(data_root):
    from nasrun.data.builtin import synthetic

    small = NB201Space(4, 1)
    scorer = ProxyScorer(proxies.params, small, synthetic(channels=3, image_size=16), seed=0, batch_size=8)
    metrics, model = ProxyEvaluator(small, scorer, table=str(data_root / "nasbench201" / "nb201.csv"))(
        small.sample(np.random.default_rng(0)))
    assert model is None and set(metrics) == {"fitness", "proxy_score"}  # a 4-channel cell is not in the table
    for group in ("evaluator=proxy", "strategy=guided_evolution"):
        cfg = compose(group, "space=nb201", "dataset=synthetic", "evaluator.table=null" if "evaluator" in group
                      else "evaluator=train")
        with pytest.raises(UserError, match="zero-cost proxy; choose one with proxy=NAME .*synflow"):
            build_search(cfg, 0, torch.device("cpu"))
