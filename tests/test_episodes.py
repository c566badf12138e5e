"""The reward curve per episode (episode_size): mean and max validation accuracy, the best so far."""

import csv

import pytest

from nasrun.reports.episodes import episode_rows, write_episodes


def record(val, ok=True):
    return {"status": "ok", "metrics": {"val_acc": val}} if ok else {"status": "failed", "error": "x", "metrics": {}}


def test_rows_per_episode_count_failures_as_trials_without_reward(tmp_path):
    records = [record(10), record(30), record(0, ok=False), record(20), record(50)]
    rows = episode_rows(records, 2)
    assert [(r["episode"], r["trials"], r["ok"]) for r in rows] == [(1, 2, 2), (2, 2, 1), (3, 1, 1)]
    assert [r["mean_val_acc"] for r in rows] == pytest.approx([20, 20, 50])
    assert [r["max_val_acc"] for r in rows] == [30, 20, 50]
    assert [r["best_so_far"] for r in rows] == [30, 30, 50]
    write_episodes(tmp_path, records, 2)
    with open(tmp_path / "episodes.csv") as f:
        assert [row["max_val_acc"] for row in csv.DictReader(f)] == ["30", "20", "50"]
    assert (tmp_path / "episodes.png").read_bytes()[:4] == b"\x89PNG"
