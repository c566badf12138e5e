"""nasrun-score: real CIFAR-10 batches, NAS-Bench-201 accuracies, rank correlations, a resumable cache."""

import csv

import numpy as np
import pytest
from scipy.stats import spearmanr

from nasrun.checks import UserError
from nasrun.commands.score import main
from nasrun.proxies.correlation import correlations, sample_architectures, score_space
from nasrun.spaces.nb201 import NB201Space


def overrides(data_root, tmp_path, *extra):
    return ["space=nb201", "dataset=cifar10", f"dataset.root={data_root}", "dataset.download=false",
            f"proxy.cache_dir={tmp_path / 'cache'}", "device=cpu", *extra]


def test_scores_csv_correlations_and_resume_from_the_cache(data_root, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    rows, results, path, target = score_space(overrides(data_root, tmp_path), ["synflow", "params"], 6, out, None,
                                              progress=False)
    assert path == out and target == "cifar10_test_acc200" and len(rows) == 6
    with open(out, newline="") as f:
        written = list(csv.DictReader(f))
    assert [r["arch"] for r in written] == [r["arch"] for r in rows]
    assert {"synflow", "synflow_seconds", "params", "params_seconds", "cifar10_test_acc200",
            "cifar100_test_acc200", "imagenet16_test_acc200", "shared_seconds"} <= set(written[0])
    assert written[0]["shared_seconds"] == ""  # neither proxy shares a gradient pass
    rho = spearmanr([r["params"] for r in rows], [r[target] for r in rows]).statistic
    assert next(r for r in results if r["proxy"] == "params")["spearman"] == pytest.approx(rho)
    # Interrupted after 6 and rerun for 10: the first 6 are the same draws and come from the cache.
    main(["--proxies", "synflow,params", "-n", "10", "--out", str(out), *overrides(data_root, tmp_path)])
    printed = capsys.readouterr().out
    assert "Spearman" in printed and "synflow" in printed
    with open(out, newline="") as f:
        again = list(csv.DictReader(f))
    assert [r["arch"] for r in again[:6]] == [r["arch"] for r in rows] and len(again) == 10
    cache_lines = (tmp_path / "cache").glob("synflow-*.jsonl")
    assert sum(len(p.read_text().splitlines()) for p in cache_lines) == 10  # 6 + 4 new, none recomputed


def test_samples_are_distinct_uniform_and_prefix_stable():
    space = NB201Space()
    ten, twenty = sample_architectures(space, 10, 3), sample_architectures(space, 20, 3)
    assert twenty[:10] == ten and len({a.key for a in twenty}) == 20
    assert len(sample_architectures(NB201Space(), None, 0)) == 15625


def test_correlations_skip_failed_scores():
    rows = [{"p": s, "p_seconds": 0.1, "acc": a} for s, a in [(1, 10), (2, 20), (None, 5), (3, 30), (4, 25)]]
    (result,) = correlations(rows, ["p"], "acc")
    assert result["cells"] == 4 and result["failed"] == 1 and result["spearman"] == pytest.approx(0.8)


def test_user_errors(data_root, tmp_path):
    with pytest.raises(UserError, match="--proxies: no proxy 'synflw'"):
        score_space(overrides(data_root, tmp_path), ["synflw"], 2, None, None)
    with pytest.raises(UserError, match="--proxies a,b,c"):
        score_space(overrides(data_root, tmp_path, "proxy=snip"), ["synflow"], 2, None, None)
    with pytest.raises(UserError, match="--target=nope"):
        score_space(overrides(data_root, tmp_path), ["params"], 2, None, "nope")
    assert np.isnan(correlations([], ["p"], "acc")[0]["spearman"])


def test_a_shared_gradient_pass_is_reported_once_and_each_proxy_apart(data_root, tmp_path, capsys):
    out = tmp_path / "grad.csv"
    main(["--proxies", "grad_norm,snip", "-n", "3", "--out", str(out), *overrides(data_root, tmp_path)])
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        shared, own = float(row["shared_seconds"]), float(row["grad_norm_seconds"]) + float(row["snip_seconds"])
        assert shared > own  # the build, forward and backward dominate; the two reductions are tiny
    printed = capsys.readouterr().out
    assert "shared gradient pass" in printed and "counted once" in printed


def test_shards_score_the_space_between_them_and_a_whole_run_reads_them_back(data_root, tmp_path):
    from nasrun.commands.score import parse_shard

    parts = []
    for k in (1, 2):
        out = tmp_path / f"shard{k}.csv"
        main(["--proxies", "params", "-n", "7", "--shard", f"{k}/2", "--out", str(out),
              *overrides(data_root, tmp_path)])
        with open(out, newline="") as f:
            parts.append([r["arch"] for r in csv.DictReader(f)])
    assert [len(p) for p in parts] == [4, 3] and not set(parts[0]) & set(parts[1])
    first_seven = [a.key for a in sample_architectures(NB201Space(), 7, 0)]
    assert sorted(parts[0] + parts[1]) == sorted(first_seven)
    main(["--proxies", "params", "-n", "7", "--out", str(tmp_path / "all.csv"), *overrides(data_root, tmp_path)])
    cache = next((tmp_path / "cache").glob("params-*.jsonl"))
    assert len(cache.read_text().splitlines()) == 7  # the whole run computed nothing again
    assert parse_shard(" 2 / 3 ") == (2, 3)
    for bad in ("0/2", "3/2", "1", "a/b"):
        with pytest.raises(UserError, match=f"--shard={bad}: expected K/N"):
            parse_shard(bad)


def test_nasrun_score_with_the_presets_proxy_seed_fills_the_cache_their_runs_read(data_root, tmp_path):
    from nasrun.search.assembly import build_search

    from conftest import compose

    cache = tmp_path / "cache"
    score_space(overrides(data_root, tmp_path, "proxy.seed=0", "seed=5"), ["synflow"], 1, tmp_path / "s.csv", None,
                progress=False)
    cfg = compose("+experiment=zeroshot_ga_synflow", f"dataset.root={data_root}", f"proxy.cache_dir={cache}",
                  "seed=11")
    scorer = build_search(cfg, 11, "cpu").scorer
    assert [p.name for p in cache.glob("*.jsonl")] == [scorer.cache_path.name]  # one key: the precomputed scores
    assert len(scorer.entries) == 1


def test_workers_fill_exactly_the_cache_that_one_process_fills(data_root, tmp_path):
    """--all with two processes sharing the work: every cell scored once, the same scores as one process."""
    import json

    def run(folder, workers):
        args = ["space=macro", "space.num_layers=2", "space.sizes=[1,3]", "space.filters=[4]",
                "dataset=fashion_mnist", f"dataset.root={data_root}", "dataset.fraction=0.01",
                f"proxy.cache_dir={folder}", "device=cpu", "device.threads=1"]
        rows, _, _, _ = score_space(args, ["grad_norm", "grasp", "synflow"], None, tmp_path / f"{workers}.csv",
                                    None, progress=False, workers=workers)
        caches = {}
        for path in folder.glob("*.jsonl"):
            entries = [json.loads(line) for line in path.read_text().splitlines()]
            caches[path.name] = {e["key"]: (e["score"], e.get("error")) for e in entries}
            assert len(caches[path.name]) == len(entries) == len(rows)  # no cell computed twice
        return caches, rows

    alone, rows = run(tmp_path / "alone", 1)
    together, rows_together = run(tmp_path / "together", 2)
    assert len(alone) == 6 and together == alone  # the five gradient proxies' files and synflow's
    assert [r["arch"] for r in rows_together] == [r["arch"] for r in rows]
    assert len({r["arch"] for r in rows}) == len(rows)  # --all lists each cell once
    assert not list((tmp_path / "together" / "claims").iterdir())


def test_workers_need_a_disk_cache_and_a_count(data_root, tmp_path):
    from nasrun.commands.score import parse_workers

    with pytest.raises(UserError, match="--workers=2: several processes share their work through the disk cache"):
        score_space(overrides(data_root, tmp_path, "proxy.cache_dir=null"), ["params"], 2, None, None, workers=2)
    assert parse_workers("auto") is None and parse_workers("3") == 3
    for bad in ("0", "-1", "two"):
        with pytest.raises(UserError, match=f"--workers={bad}: expected a whole number >= 1, or auto"):
            parse_workers(bad)


def test_an_interrupted_fill_still_writes_the_cells_scored_so_far(data_root, tmp_path, monkeypatch):
    from nasrun.proxies import correlation

    real_fill = correlation.fill

    def interrupted(scorers, archs):
        real_fill(scorers, list(archs)[:2])
        raise KeyboardInterrupt

    monkeypatch.setattr(correlation, "fill", interrupted)
    out = tmp_path / "part.csv"
    with pytest.raises(KeyboardInterrupt):
        score_space(overrides(data_root, tmp_path), ["params", "synflow"], 5, out, None, progress=False)
    with open(out, newline="") as f:
        assert [r["arch"] for r in csv.DictReader(f)] == [a.key for a in sample_architectures(NB201Space(), 2, 0)]
