import json
from functools import partial

import numpy as np
import pytest

from nasrun.data.builtin import synthetic
from nasrun.proxies import zero_cost as proxies
from nasrun.proxies.scorer import ProxyScorer, proxy_name
from nasrun.spaces.nb201 import NB201Space

SPACE = NB201Space(4, 1)


def scorer(tmp_path, seed=0, proxy=proxies.naswot):
    return ProxyScorer(proxy, SPACE, synthetic(channels=3, image_size=16), seed=seed, batch_size=16,
                       cache_dir=tmp_path)


def test_scores_are_deterministic_and_cache_hits_skip_computation(tmp_path):
    archs = [SPACE.sample(np.random.default_rng(i)) for i in range(5)]
    first = scorer(tmp_path)
    scores = [first(a) for a in archs]
    assert first.computed == len({a.key for a in archs})
    again = [first(a) for a in archs]
    assert again == scores and first.computed == len({a.key for a in archs})
    fresh = scorer(tmp_path)  # a new process: the disk cache answers
    assert [fresh(a) for a in archs] == scores and fresh.computed == 0
    no_cache = ProxyScorer(proxies.naswot, SPACE, synthetic(channels=3, image_size=16), seed=0, batch_size=16)
    assert [no_cache(a) for a in archs] == scores  # recomputed from scratch: the same values


def test_the_cache_is_keyed_by_seed_and_proxy(tmp_path):
    arch = SPACE.sample(np.random.default_rng(0))
    a, b = scorer(tmp_path, seed=0), scorer(tmp_path, seed=1)
    a(arch), b(arch)
    assert b.computed == 1 and a.cache_path != b.cache_path
    c = scorer(tmp_path, proxy=partial(proxies.jacob_cov, eps=1e-5))
    assert proxy_name(c.proxy) == "jacob_cov" and c.cache_path != a.cache_path


def test_a_torn_cache_line_is_recomputed_not_fatal(tmp_path):
    arch = SPACE.sample(np.random.default_rng(3))
    first = scorer(tmp_path)
    value = first(arch)
    first.cache_path.write_text(first.cache_path.read_text() + '{"key": "|x')
    again = scorer(tmp_path)
    assert again(arch) == value and again.computed == 0
    other = SPACE.sample(np.random.default_rng(4))
    again(other)  # appended after the torn line, not glued to it
    assert scorer(tmp_path).entries.keys() == {arch.key, other.key}


@pytest.mark.parametrize("bad", ['{"key": "|x', '[1, 2]', '{"key": 5, "score": 1.0, "seconds": 0.1}',
                                 '{"key": "a", "score": NaN, "seconds": 0.1}',
                                 '{"key": "a", "score": "1", "seconds": 0}',
                                 '{"key": "a", "score": 1.0, "seconds": -1}', '{"key": "a", "score": null}'])
def test_bad_cache_lines_are_skipped_and_counted_in_one_warning(tmp_path, caplog, bad):
    archs = [SPACE.sample(np.random.default_rng(i)) for i in range(3)]
    first = scorer(tmp_path)
    values = [first(a) for a in archs]
    lines = first.cache_path.read_bytes().splitlines()
    first.cache_path.write_bytes(b"\n".join([lines[0], bad.encode(), b"\xff\xfe", lines[1], lines[2]]) + b"\n")
    again = scorer(tmp_path)
    assert [again(a) for a in archs] == values and again.computed == 0
    assert caplog.text.count("skipped 2 bad lines") == 1 and str(first.cache_path) in caplog.text


def test_an_unwritable_cache_falls_back_to_memory_with_a_warning(tmp_path, caplog):
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    arch = SPACE.sample(np.random.default_rng(0))
    stuck = scorer(tmp_path / "cache")
    value = stuck(arch)
    assert stuck(arch) == value and stuck.computed == 1 and stuck.cache_path is None
    assert "a file is in the way" in caplog.text and "keeping the proxy's scores in memory" in caplog.text
    assert str(tmp_path / "cache") in caplog.text


def test_scoring_together_equals_scoring_apart_and_fills_each_cache(tmp_path):
    from nasrun.proxies.scorer import score_together

    data = synthetic(channels=3, image_size=16)
    names = ["grad_norm", "snip", "grasp", "fisher", "jacob_cov", "synflow"]
    together = [ProxyScorer(getattr(proxies, n), SPACE, data, seed=0, batch_size=16, cache_dir=tmp_path / "a")
                for n in names]
    apart = [ProxyScorer(getattr(proxies, n), SPACE, data, seed=0, batch_size=16) for n in names]
    for arch in [SPACE.sample(np.random.default_rng(i)) for i in range(3)]:
        entries = score_together(together, arch)
        for name, entry, scorer in zip(names, entries, apart):
            assert entry["score"] == pytest.approx(scorer(arch), rel=1e-6), name
            assert entry.get("shared") == (5 if name != "synflow" else None)
            if name != "synflow":  # the shared pass once, the proxy's own work apart
                assert entry["shared_seconds"] == entries[0]["shared_seconds"] > 0 and entry["seconds"] >= 0
    again = [ProxyScorer(getattr(proxies, n), SPACE, data, seed=0, batch_size=16, cache_dir=tmp_path / "a")
             for n in names]
    score_together(again, SPACE.sample(np.random.default_rng(0)))
    assert sum(s.computed for s in again) == 0  # every proxy's own cache file answers


def test_a_proxy_whose_definition_changed_never_reads_its_old_scores(tmp_path):
    from nasrun.proxies.scorer import DEFINITION_VERSIONS

    data = synthetic(channels=3, image_size=16)
    fisher = ProxyScorer(proxies.fisher, SPACE, data, seed=0, batch_size=16, cache_dir=tmp_path)
    snip = ProxyScorer(proxies.snip, SPACE, data, seed=0, batch_size=16, cache_dir=tmp_path)
    assert DEFINITION_VERSIONS["fisher"] >= 2
    DEFINITION_VERSIONS["fisher"] += 1
    try:
        newer = ProxyScorer(proxies.fisher, SPACE, data, seed=0, batch_size=16, cache_dir=tmp_path)
    finally:
        DEFINITION_VERSIONS["fisher"] -= 1
    assert newer.cache_path != fisher.cache_path  # a new file: the old scores are not read back
    assert ProxyScorer(proxies.snip, SPACE, data, seed=0, batch_size=16, cache_dir=tmp_path).cache_path == \
        snip.cache_path


WRITER = """
import sys, numpy as np
from nasrun.data.builtin import synthetic
from nasrun.proxies import zero_cost as proxies
from nasrun.proxies.scorer import ProxyScorer
from nasrun.spaces.nb201 import NB201Space
space = NB201Space(4, 1)
archs = [space.sample(np.random.default_rng(i)) for i in range(24)]
if sys.argv[2] == "reversed":
    archs.reverse()
scorer = ProxyScorer(proxies.naswot, space, synthetic(channels=3, image_size=16), seed=0, batch_size=16,
                     cache_dir=sys.argv[1])
for arch in archs:
    scorer(arch)
print(scorer.computed)
"""


def test_two_processes_share_one_cache_without_torn_lines_or_lost_scores(tmp_path):
    import json
    import subprocess
    import sys

    from conftest import REPO

    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), order], cwd=REPO, text=True,
                              stdout=subprocess.PIPE) for order in ("forward", "reversed")]
    computed = [int(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    [cache] = tmp_path.glob("naswot-*.jsonl")
    lines = cache.read_bytes().splitlines()
    entries = [json.loads(line) for line in lines]  # every line whole: none torn, none interleaved
    keys = {SPACE.sample(np.random.default_rng(i)).key for i in range(24)}
    assert {e["key"] for e in entries} == keys  # no score lost
    assert len(entries) == sum(computed) < 2 * len(keys)  # each computed score written once, some shared
    scores = {}
    for e in entries:  # a score computed twice (both missed at once) is the same score
        assert scores.setdefault(e["key"], e["score"]) == e["score"]
    fresh = scorer(tmp_path)
    assert fresh.entries.keys() == keys and fresh.computed == 0


def test_one_gradient_pass_fills_all_five_gradient_proxies_with_their_one_by_one_values(tmp_path):
    data = synthetic(channels=3, image_size=16)
    archs = [SPACE.sample(np.random.default_rng(i)) for i in range(4)]
    first = ProxyScorer(proxies.jacob_cov, SPACE, data, seed=0, batch_size=16, cache_dir=tmp_path)
    for arch in archs:
        first(arch)
    assert first.computed == len({a.key for a in archs})
    for name in ("grad_norm", "snip", "grasp", "fisher"):
        filled = ProxyScorer(getattr(proxies, name), SPACE, data, seed=0, batch_size=16, cache_dir=tmp_path)
        alone = ProxyScorer(getattr(proxies, name), SPACE, data, seed=0, batch_size=16)  # no cache: one proxy
        for arch in archs:
            assert filled(arch) == pytest.approx(alone(arch), rel=1e-6, abs=1e-12), name
        assert filled.computed == 0, name  # every score came from the jacob_cov pass
    # jacob_cov's config writes its default eps out; a pass started by another proxy uses the same default:
    # both name one file.
    written_out = ProxyScorer(partial(proxies.jacob_cov, eps=1e-5), SPACE, data, seed=0, batch_size=16,
                              cache_dir=tmp_path)
    assert written_out.cache_path == first.cache_path
    other_eps = ProxyScorer(partial(proxies.jacob_cov, eps=1e-3), SPACE, data, seed=0, batch_size=16,
                            cache_dir=tmp_path)
    assert other_eps.cache_path != first.cache_path


def test_a_users_function_named_like_a_gradient_proxy_fills_nothing(tmp_path):
    def grad_norm(model, batch):  # not nasrun's grad_norm: its scores must not stand for the other four
        return 1.0

    data = synthetic(channels=3, image_size=16)
    ProxyScorer(grad_norm, SPACE, data, seed=0, batch_size=16, cache_dir=tmp_path)(SPACE.sample(
        np.random.default_rng(0)))
    assert [p.name.split("-")[0] for p in tmp_path.glob("*.jsonl")] == ["grad_norm"]


def test_proxy_seed_makes_runs_of_different_seeds_score_alike_and_share_one_cache(tmp_path, data_root):
    from nasrun.search.assembly import build_search

    from conftest import compose, run_cli

    arch = NB201Space().sample(np.random.default_rng(7))
    shared, own = [], []
    for seed in (0, 1):
        cfg = compose("+experiment=zeroshot_ga_snip", f"dataset.root={data_root}", "dataset.fraction=0.05",
                      "proxy.cache_dir=null", "proxy.batch_size=16", f"seed={seed}")
        shared.append(build_search(cfg, seed, "cpu").scorer(arch))
        cfg = compose("+experiment=zeroshot_ga_snip", f"dataset.root={data_root}", "dataset.fraction=0.05",
                      "proxy.cache_dir=null", "proxy.batch_size=16", "proxy.seed=null", f"seed={seed}")
        own.append(build_search(cfg, seed, "cpu").scorer(arch))
    assert shared[0] == shared[1]  # the same network initialisation and the same images
    assert own[0] != own[1] and own[0] == shared[0]  # per-run seeds: run 0 happens to use seed 0 too

    cache = tmp_path / "cache"
    scores: dict = {}
    for seed in (0, 1):
        result = run_cli("+experiment=zeroshot_ga_snip", "strategy.C=4", "strategy.P=2", "strategy.S=1",
                         "dataset.fraction=0.05", "proxy.batch_size=16", f"proxy.cache_dir={cache}", f"seed={seed}",
                         f"hydra.run.dir={tmp_path / f'run{seed}'}")
        assert result.returncode == 0, result.stderr
        for line in (tmp_path / f"run{seed}" / "trials.jsonl").read_text().splitlines():
            record = json.loads(line)
            if "proxy_score" in record:
                assert scores.setdefault(record["key"], record["proxy_score"]) == record["proxy_score"]
    files = sorted(p.name.split("-")[0] for p in cache.glob("*.jsonl"))
    assert files == ["fisher", "grad_norm", "grasp", "jacob_cov", "snip"]  # one file per proxy, both runs
    for path in cache.glob("*.jsonl"):
        keys = [json.loads(line)["key"] for line in path.read_text().splitlines()]
        assert len(keys) == len(set(keys)), path.name  # run 1 read run 0's scores, never computed one again
    snip_file = next(cache.glob("snip-*.jsonl"))
    cached = {e["key"]: e["score"] for e in map(json.loads, snip_file.read_text().splitlines())}
    assert all(cached[key] == score for key, score in scores.items())


def test_fill_false_scores_only_the_proxy_asked_for(tmp_path):
    data = synthetic(channels=3, image_size=16)
    alone = ProxyScorer(proxies.snip, SPACE, data, seed=0, batch_size=16, cache_dir=tmp_path, fill=False)
    arch = SPACE.sample(np.random.default_rng(0))
    filled = ProxyScorer(proxies.snip, SPACE, data, seed=0, batch_size=16, cache_dir=tmp_path / "f")
    assert alone(arch) == pytest.approx(filled(arch), rel=1e-6)
    assert [p.name.split("-")[0] for p in tmp_path.iterdir() if p.is_file()] == ["snip"]
    assert len(list((tmp_path / "f").glob("*.jsonl"))) == 5
