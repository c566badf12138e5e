"""Proxy-guided evolution (Algorithm 1 of Centurión Funes et al.): who is scored, who is trained, and how often."""

import json

import numpy as np
import pytest

from nasrun.search.budget import Budget
from nasrun.search.runner import run_search
from nasrun.spaces.nb201 import NB201Space
from nasrun.strategies.guided_evolution import GuidedEvolution

SPACE = NB201Space(4, 1)


def code(arch) -> float:
    """A deterministic stand-in for an accuracy: each operation index counts, with per-edge weights."""
    ops = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    return float(sum((i + 1) * ops.index(op) for i, op in enumerate(arch.ops)))


class CountingScorer:
    """A fake proxy: counts every call; scores correlate with `code` but are not equal to it."""

    def __init__(self, fail=()):
        self.calls = []
        self.fail = set(fail)
        self.evaluations = 0

    def __call__(self, arch, deadline=None):
        self.calls.append(arch.key)
        self.evaluations = len(set(self.calls))
        if arch.key in self.fail:
            raise ValueError("singular kernel")
        return code(arch) + (sum(map(ord, arch.key)) % 7) / 10


class Fitness:
    def __call__(self, arch, deadline=None):
        return {"val_acc": code(arch), "test_acc": code(arch)}, None


def test_counts_c_scored_then_best_p_trained_then_p_scored_and_one_trained_per_cycle():
    scorer = CountingScorer()
    ga = GuidedEvolution(SPACE, seed=0, scorer=scorer, P=4, S=2, C=20)
    first = ga.ask()
    assert len(scorer.calls) == 20 and len(set(scorer.calls)) == 20  # C distinct random architectures scored
    initial = sorted(dict.fromkeys(scorer.calls), key=lambda k: -scorer(SPACE.from_json(k)))  # ties: earlier
    scorer.calls.clear()
    trained = [first] + [ga.ask() for _ in range(3)]
    assert scorer.calls == []  # the P best are trained without scoring anything more
    assert [a.key for a in trained] == initial[:4]
    for arch in trained:
        ga.tell(arch, code(arch))
    for _cycle in range(5):
        before = len(scorer.calls)
        child = ga.ask()
        cycle_calls = scorer.calls[before:]
        assert len(cycle_calls) == 4 == len(set(cycle_calls))  # P distinct children scored ...
        assert child.key == max(cycle_calls, key=lambda k: scorer(SPACE.from_json(k)))  # ... the best one trained
        parents = [a for a, _ in ga.population]
        assert any(sum(x != y for x, y in zip(child.ops, p.ops)) == 1 for p in parents)  # one edge from a member
        ga.tell(child, code(child))
        assert len(ga.population) == 4  # the oldest left as the child joined


def test_through_the_runner_trains_c_and_counts_proxy_evaluations_apart(tmp_path):
    scorer = CountingScorer()
    ga = GuidedEvolution(SPACE, seed=1, scorer=scorer, P=4, S=2, C=20)
    result = run_search(SPACE, ga, Fitness(), Budget(trials=20), tmp_path, scorer=scorer)
    assert len(result.records) == 20
    counts = result.counts(Fitness())
    assert counts["trained"] == 20 and counts["proxy_evaluations"] == len(set(scorer.calls))
    # At least C initial scores plus P per cycle, less the children scored before (the memo counts each once).
    assert counts["proxy_evaluations"] > 20
    records = [json.loads(line) for line in (tmp_path / "trials.jsonl").read_text().splitlines()][:-1]  # - end
    assert all("proxy_score" in r and r["proxy_evaluations"] <= counts["proxy_evaluations"] for r in records)
    assert json.loads((tmp_path / "best.json").read_text())["counts"] == counts
    # Guidance works on this toy: the best trained cell beats the best of 20 random ones.
    rng = np.random.default_rng(1)
    assert result.best["metrics"]["val_acc"] > max(code(SPACE.sample(rng)) for _ in range(20))


def test_same_seed_same_search_and_unscorable_candidates_are_skipped(tmp_path):
    def keys(seed, fail=()):
        ga = GuidedEvolution(SPACE, seed=seed, scorer=CountingScorer(fail), P=3, S=2, C=10)
        out = []
        for _ in range(12):
            arch = ga.ask()
            out.append(arch.key)
            ga.tell(arch, code(arch))
        return out

    assert keys(0) == keys(0) and keys(0) != keys(1)
    unscorable = set(keys(0)[:2])  # the two best-scoring initial cells now fail to score
    assert unscorable.isdisjoint(keys(0, fail=unscorable))  # so they are never trained


@pytest.mark.parametrize("bad,message", [(dict(S=11), "S=11"), (dict(C=5), "C=5"), (dict(P=0), "P=0"),
                                         (dict(mutation_prob=1.5), "mutation_prob=1.5")])
def test_bad_settings_name_the_key(bad, message):
    with pytest.raises(ValueError, match=message):
        GuidedEvolution(SPACE, seed=0, scorer=CountingScorer(), **{"P": 10, "S": 5, "C": 200, **bad})
