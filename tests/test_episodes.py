"""The reward curve per episode (episode_size): mean and max validation accuracy, the best so far."""

import csv
import math

import pytest

from nasrun.reports.episodes import episode_rows, trend, write_episodes
from nasrun.reports.table import report

from conftest import run_cli


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


def test_trend_on_a_hand_made_episodes_csv_matches_the_least_squares_line_worked_by_hand(tmp_path):
    from scipy import stats

    # Five complete episodes of 4 trials, and a sixth cut short (2 trials): it must not count.
    (tmp_path / "episodes.csv").write_text("episode,trials,ok,mean_val_acc,max_val_acc,best_so_far\n"
                                           "1,4,4,40,44,44\n2,4,4,42,45,45\n3,4,3,47,50,50\n4,4,4,45,49,50\n"
                                           "5,4,4,51,55,55\n6,2,2,20,21,55\n")
    with open(tmp_path / "episodes.csv") as f:
        rows = [{"episode": int(r["episode"]), "trials": int(r["trials"]), "mean_val_acc": float(r["mean_val_acc"])}
                for r in csv.DictReader(f)]
    fit = trend(rows, 4)
    # By hand: x - 3 = -2..2, y - 45 = -5, -3, 2, 0, 6 -> slope 25 / 10 = 2.5; residuals 0, -0.5, 2, -2.5, 1 ->
    # s^2 = 11.5 / 3, se = sqrt(s^2 / 10), t = 2.5 / se on 3 degrees of freedom.
    t = 2.5 / math.sqrt(11.5 / 3 / 10)
    assert fit["slope"] == pytest.approx(2.5) and fit["intercept"] == pytest.approx(37.5) and fit["episodes"] == 5
    assert fit["p"] == pytest.approx(2 * stats.t.sf(t, 3)) and 0.02 < fit["p"] < 0.03
    assert (fit["first"], fit["last"]) == (40, 51)
    # Two episodes give a slope but no p-value (two points fit any line); flat means give no p either.
    assert trend(rows[:2], 4) == {"episodes": 2, "first": 40, "last": 42, "slope": 2.0, "intercept": 38.0,
                                  "p": None}
    assert trend([{**r, "mean_val_acc": 30.0} for r in rows[:4]], 4)["p"] is None
    assert trend(rows[:1], 4)["slope"] is None and trend([], 4)["episodes"] == 0


def test_episodes_csv_carries_the_trend_so_far_on_every_complete_row(tmp_path):
    records = [record(v) for v in (40, 40, 42, 42, 47, 47, 45, 45, 51, 51, 20)]
    write_episodes(tmp_path, records, 2)
    with open(tmp_path / "episodes.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["slope"] for r in rows] == ["", "2.0", "3.5", "2.0", "2.5", ""]
    assert rows[1]["slope_p"] == "" and float(rows[4]["slope_p"]) == pytest.approx(0.0273, abs=1e-3)


def test_a_short_zoph_cpu_run_and_its_random_baseline_write_the_slope_and_the_report_compares_them(tmp_path,
                                                                                                  data_root):
    # The CPU preset cut to 2 episodes of 2 children on 300 training images; random search is its baseline on
    # the same data, space and budget (REINFORCE's settings apply to REINFORCE only).
    small = ["+experiment=zoph_cpu", "budget.trials=4", "episode_size=2", "dataset.fraction=0.005",
             "dataset.val_size=200", "dataset.download=false", "device=cpu"]
    for strategy in ("reinforce", "random"):
        proc = run_cli(*small, f"strategy={strategy}", f"hydra.run.dir={tmp_path / strategy}")
        assert proc.returncode == 0, proc.stderr
        with open(tmp_path / strategy / "episodes.csv") as f:
            rows = list(csv.DictReader(f))
        assert list(rows[0]) == ["episode", "trials", "ok", "mean_val_acc", "max_val_acc", "best_so_far", "slope",
                                 "slope_p"]
        assert [r["trials"] for r in rows] == ["2", "2"] and rows[0]["slope"] == "" and rows[1]["slope_p"] == ""
        means = [float(r["mean_val_acc"]) for r in rows]
        assert float(rows[1]["slope"]) == pytest.approx(means[1] - means[0], abs=1e-3)
    config = (tmp_path / "reinforce" / ".hydra" / "config.yaml").read_text()
    assert "Reinforce" in config and "lr: 0.03" in config and "num_layers: 4" in config
    assert "RandomSearch" in (tmp_path / "random" / ".hydra" / "config.yaml").read_text()

    report(tmp_path)
    with open(tmp_path / "learning.csv") as f:
        learning = {r["configuration"].split()[-1]: r for r in csv.DictReader(f)}  # the preset, its overrides
    assert set(learning) == {"strategy=reinforce", "strategy=random"}  # two configurations: the strategy differs
    assert learning["strategy=random"]["episodes"] == "2" and learning["strategy=random"]["p"] == ""
