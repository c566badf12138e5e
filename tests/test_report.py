"""`nasrun-report` over real sweeps of the NAS-Bench-201 presets (a table lookup: seconds, not GPU-days)."""

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from nasrun.checks import UserError
from nasrun.reports.table import report

from conftest import REPO, run_cli


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory, data_root):
    root = tmp_path_factory.mktemp("sweeps")
    rea = run_cli("-m", "+experiment=nb201_rea", "seed=0,1,2", f"hydra.sweep.dir={root / 'rea'}")
    assert rea.returncode == 0, rea.stderr
    short = run_cli("-m", "+experiment=nb201_random", "seed=0,1", "budget.simulated_seconds=3000",
                    f"hydra.sweep.dir={root / 'random_short'}")
    assert short.returncode == 0, short.stderr
    # A sweep prints one line per finished job (with its overrides and best trial), not a table each.
    assert [line.split(":")[0] for line in short.stdout.splitlines()] == [
        "job 0 (+experiment=nb201_random seed=0 budget.simulated_seconds=3000)",
        "job 1 (+experiment=nb201_random seed=1 budget.simulated_seconds=3000)"]
    return root


@pytest.fixture(scope="module")
def paired(sweeps, tmp_path_factory):
    """The 3-seed nb201_rea sweep beside a 3-seed nb201_random sweep with the same budget."""
    import shutil

    root = tmp_path_factory.mktemp("paired")
    shutil.copytree(sweeps / "rea", root / "rea")
    random = run_cli("-m", "+experiment=nb201_random", "seed=0,1,2", f"hydra.sweep.dir={root / 'random'}")
    assert random.returncode == 0, random.stderr
    return root


def test_checklist_of_rea_against_random_search_with_the_same_protocol(paired):
    report(paired)
    text = (paired / "checklist.md").read_text()
    assert "- nb201_rea: 3 run(s), seeds 0, 1, 2" in text and "- nb201_random: 3 run(s), seeds 0, 1, 2" in text
    for aspect in ("dataset", "space", "evaluator", "budget", "proxy"):
        assert f"(`{aspect}`): the same in every run" in text
    assert "- Yes: nb201_random (strategy=random)." in text
    assert "`anytime.png`" in text and (paired / "anytime.png").is_file()
    # The whole method's cost: simulated seconds within the 12000 s budget, and table lookups counted.
    row = next(line for line in text.splitlines() if line.startswith("| nb201_rea |"))
    runs, wall, simulated, trained, epochs, proxy, trials = row.split("|")[2:9]
    assert int(runs) == 3 and 11000 < float(simulated) <= 12000 and float(trained) == float(trials) > 50
    assert float(epochs) == 0 and float(proxy) == 0  # table lookups train no epochs here
    assert "`RegularizedEvolution`: `population_size=10`, `sample_size=3`, `mutation_prob=None`" in text
    import torch

    assert f"torch {torch.__version__}" in text and "6 run start(s)" in text
    assert "## Questions for the author" in text and "ablations" in text


def test_checklist_names_every_difference_against_a_sweep_with_another_budget(paired, sweeps, tmp_path):
    import shutil

    shutil.copytree(paired, tmp_path / "all")
    shutil.copytree(sweeps / "random_short", tmp_path / "all" / "random_short")
    report(tmp_path / "all")
    text = (tmp_path / "all" / "checklist.md").read_text()
    assert "- budget (`budget`) **differs**:" in text
    assert ("`budget.simulated_seconds`: 12000 in nb201_random, nb201_rea; 3000 in nb201_random "
            "budget.simulated_seconds=3000") in text
    assert "(`space`): the same in every run" in text and "(`dataset`): the same in every run" in text
    # Without random search among the runs the checklist says so.
    report(sweeps / "rea", tmp_path / "rea_only")
    assert "**No random-search baseline among these runs**" in (tmp_path / "rea_only" / "checklist.md").read_text()


def test_three_seed_nb201_rea_sweep_is_reported_beside_the_published_figure(sweeps):
    rows = report(sweeps / "rea")
    assert len(rows) == 1
    row = rows[0]
    best = [json.loads((sweeps / "rea" / str(i) / "best.json").read_text()) for i in range(3)]
    reported = [b["metrics"]["test_acc"] for b in best]
    assert (row["experiment"], row["strategy"], row["space"], row["dataset"]) == ("nb201_rea", "evolution", "nb201",
                                                                                   "cifar10")
    assert row["runs"] == 3 and row["mean"] == pytest.approx(sum(reported) / 3)
    assert row["published"] == 93.92 and row["published_std"] == 0.30
    assert row["diff"] == pytest.approx(row["mean"] - 93.92)
    assert 92.5 < row["mean"] <= 94.37  # the table's best CIFAR-10 cell is 94.37
    trials = [len((sweeps / "rea" / str(i) / "trials.jsonl").read_text().splitlines()) - 1 for i in range(3)]  # - end
    assert row["mean_trials"] == pytest.approx(sum(trials) / 3)
    with open(sweeps / "rea" / "report.csv", newline="") as f:
        written = list(csv.DictReader(f))
    assert len(written) == 1 and float(written[0]["mean"]) == pytest.approx(row["mean"])
    png = (sweeps / "rea" / "anytime.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_the_seed_varies_within_a_row_other_overrides_make_their_own(sweeps):
    rows = {r["experiment"]: r for r in report(sweeps)}
    assert rows["nb201_rea"]["runs"] == 3 and rows["nb201_random"]["runs"] == 2
    assert rows["nb201_random"]["settings"] == "budget.simulated_seconds=3000"
    assert rows["nb201_random"]["mean_trials"] < rows["nb201_rea"]["mean_trials"]


def test_records_carry_the_simulated_clock_for_anytime_curves(sweeps):
    records = [json.loads(l) for l in (sweeps / "random_short" / "0" / "trials.jsonl").read_text().splitlines()]
    end = records.pop()
    assert end["status"] == "end" and end["stop_reason"] == "budget.simulated_seconds reached"
    clock = [r["simulated"] for r in records]
    assert clock == sorted(clock) and clock[-1] <= 3000
    assert math.isclose(clock[-1], sum(r["metrics"]["cost"] for r in records), rel_tol=1e-9)


def test_report_command_on_a_single_run_and_on_a_wrong_directory(sweeps, tmp_path):
    env_cmd = [str(Path(sys.executable).parent / "nasrun-report")]  # the console script
    single = subprocess.run([*env_cmd, str(sweeps / "rea" / "0")], cwd=REPO, capture_output=True, text=True)
    assert single.returncode == 0, single.stderr
    assert "nb201_rea" in single.stdout and "93.92" in single.stdout
    assert (sweeps / "rea" / "0" / "report.csv").is_file()
    empty = subprocess.run([*env_cmd, str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert empty.returncode == 2 and "no trials.jsonl" in empty.stderr
    assert len(empty.stderr.strip().splitlines()) == 1
    with pytest.raises(UserError, match="no such directory"):
        report(tmp_path / "missing")


def test_report_reads_a_run_that_is_still_writing_without_touching_its_log(sweeps, tmp_path):
    import shutil

    run = tmp_path / "live"
    shutil.copytree(sweeps / "rea" / "1", run)
    log = run / "trials.jsonl"
    complete = log.read_text()
    log.write_text(complete + '{"trial": 999, "arch": "|no')  # a record half-written at this instant
    rows = report(run)
    assert rows[0]["mean_trials"] == len(complete.splitlines()) - 1  # the end record is not a trial
    assert log.read_text().endswith('"|no')  # left as it was: the search will finish the line


def test_the_report_checks_every_record_and_rebuilds_a_table_runs_best_json(sweeps, tmp_path, caplog):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(sweeps / "rea" / "1", run)
    lines = (run / "trials.jsonl").read_text().splitlines()
    bad = json.loads(lines[3])
    bad["metrics"]["val_acc"] = float("nan")
    (run / "trials.jsonl").write_text("\n".join(lines[:3] + [json.dumps(bad)] + lines[4:]) + "\n")
    with pytest.raises(UserError, match=r"trials.jsonl:4 is not a valid nasrun trial record: metrics.val_acc=nan"):
        report(run)
    (run / "trials.jsonl").write_text("\n".join(lines) + "\n")
    original = json.loads((run / "best.json").read_text())
    (run / "best.json").write_text("{damaged")
    rows = report(run)  # a table run's best.json holds nothing the log and the config lack: rebuilt
    assert rows[0]["runs"] == 1 and "best.json is not valid JSON (damaged); rebuilt best.json from" in caplog.text
    rebuilt = json.loads((run / "best.json").read_text())
    # The table's path is resolved in the report's environment (NASRUN_DATA may differ from the run's).
    assert rebuilt.pop("table").endswith("nasbench201/nb201.csv") and original.pop("table")
    assert rebuilt == original


def test_unfinished_runs_are_marked_in_the_table_the_csv_and_the_plot(sweeps, tmp_path, capsys):
    import shutil

    for i in range(2):
        shutil.copytree(sweeps / "rea" / str(i), tmp_path / str(i))
    log = tmp_path / "1" / "trials.jsonl"
    log.write_text("".join(log.read_text().splitlines(keepends=True)[:-1]))  # killed: no end record
    rows = report(tmp_path)
    assert rows[0]["runs"] == 2 and rows[0]["unfinished"] == 1
    printed = capsys.readouterr().out
    assert "2 (1 unfinished)" in printed and "no end record" in printed
    with open(tmp_path / "report.csv", newline="") as f:
        assert next(csv.DictReader(f))["unfinished"] == "1"
    figure = _figure(tmp_path)
    assert any("1 unfinished" in label for label in figure["labels"])


def _figure(root):
    from nasrun.reports.runs import find_runs, load_run
    from nasrun.reports.table import plot_anytime, summarize

    return plot_anytime(summarize([load_run(p) for p in find_runs(root)]), root / "again.png")


def test_the_plot_spans_every_curve_and_names_the_published_line_only_when_drawn(sweeps):
    from nasrun.reports.runs import find_runs, load_run

    figure = _figure(sweeps)
    (low, high), = figure["ylim"].values()
    curves = [load_run(p).anytime()[1] for p in find_runs(sweeps)]
    values = [v for ys in curves for v in ys if not math.isnan(v)] + [93.92, 93.70]
    assert low <= min(values) and high >= max(values)
    assert "dashed: published" in figure["title"]


def test_out_creates_the_folder_and_an_unwritable_one_is_one_line(sweeps, tmp_path):
    out = tmp_path / "new" / "reports"
    report(sweeps / "rea", out)
    assert (out / "report.csv").is_file() and (out / "anytime.png").is_file()
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="--out"):
        report(sweeps / "rea", tmp_path / "file" / "sub")


def test_three_seed_nb201_reinforce_sweep_is_reported_beside_the_published_figure(tmp_path):
    proc = run_cli("-m", "+experiment=nb201_reinforce", "seed=0,1,2", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    [row] = report(tmp_path)
    assert (row["experiment"], row["strategy"], row["runs"]) == ("nb201_reinforce", "reinforce", 3)
    assert (row["published"], row["published_std"]) == (93.85, 0.37)
    assert 92.5 < row["mean"] <= 94.37 and row["mean_trials"] > 50


def test_convergence_and_significance_of_a_two_group_sweep(paired, tmp_path):
    from nasrun.reports.convergence import curves, plot_convergence
    from nasrun.reports.runs import find_runs, load_run
    from nasrun.reports.table import summarize

    report(paired)
    png = (paired / "convergence.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    groups = summarize([load_run(p) for p in find_runs(paired)])
    drawn = plot_convergence(groups, tmp_path / "convergence.png")
    assert sorted(drawn["labels"]) == ["nb201_random (3 runs)", "nb201_rea (3 runs)"]
    for g in groups:
        values = curves(g)
        assert values.shape[0] == 3 and values.shape[1] == max(len(run.records) for run in g.runs)
        # Each run's curve ends at its reported figure (the best is chosen on validation, so its test accuracy
        # may fall on the way), and a shorter run keeps that figure to the end.
        assert sorted(values[:, -1]) == pytest.approx(sorted(run.reported for run in g.runs))
        assert drawn["final"][g.label] == pytest.approx(g.row["mean"])  # where each run ends: its reported figure
    with open(paired / "significance.csv", newline="") as f:
        tests = list(csv.DictReader(f))
    assert [t["test"] for t in tests] == ["anova", "tukey_hsd", "welch"]
    assert (tests[2]["a"], tests[2]["b"]) == ("nb201_rea", "nb201_random")  # against the random baseline
    for t in tests:
        assert 0 <= float(t["p"]) <= 1
    text = (paired / "checklist.md").read_text()
    assert "## Statistical significance" in text and "One-way ANOVA over 2 groups" in text
    assert "Welch's t-test, nb201_rea vs nb201_random" in text and "`convergence.png`" in text


def test_where_files_are_is_a_detail_not_part_of_a_groups_name(sweeps, tmp_path):
    import shutil

    shutil.copytree(sweeps / "rea", tmp_path / "rea")
    for run in ("0", "1", "2"):
        overrides = tmp_path / "rea" / run / ".hydra" / "overrides.yaml"
        overrides.write_text(overrides.read_text() + f"- dataset.root=/data/{run}\n- proxy.cache_dir=/cache\n"
                             "- hydra/launcher=joblib\n- device.threads=1\n")
    rows = report(tmp_path / "rea")
    assert len(rows) == 1 and rows[0]["settings"] == "" and rows[0]["runs"] == 3
    text = (tmp_path / "rea" / "checklist.md").read_text()
    assert "**nb201_rea** (3 runs)" in text
    assert "`dataset.root=/data/1` in nb201_rea" in text and "`hydra/launcher=joblib` in nb201_rea" in text


def test_runs_with_episodes_get_their_slope_per_run_and_the_mean_slope_per_configuration(tmp_path, capsys):
    for preset in ("nb201_reinforce", "nb201_random"):
        proc = run_cli("-m", f"+experiment={preset}", "seed=0,1", "episode_size=20",
                       f"hydra.sweep.dir={tmp_path / preset}")
        assert proc.returncode == 0, proc.stderr
    report(tmp_path)
    out = capsys.readouterr().out
    with open(tmp_path / "learning.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["configuration"], r["seed"]) for r in rows] == [
        ("nb201_random", "0"), ("nb201_random", "1"), ("nb201_reinforce", "0"), ("nb201_reinforce", "1")]
    for r in rows:  # the run's own episodes.csv: its last complete episode carries the same fit
        with open(Path(r["run"]) / "episodes.csv") as f:
            last = [e for e in csv.DictReader(f) if e["trials"] == "20"][-1]
        assert (r["slope"], r["episodes"], r["last_mean"]) == (last["slope"], last["episode"], last["mean_val_acc"])
        assert float(r["p"]) == pytest.approx(float(last["slope_p"]), rel=1e-3) and int(r["episodes"]) > 3
    for preset in ("nb201_reinforce", "nb201_random"):
        slopes = [float(r["slope"]) for r in rows if r["configuration"] == preset]
        assert f"{preset}: mean slope {sum(slopes) / 2:+.2f} ± " in out
    assert "wrote report.csv, anytime.png, convergence.png, significance.csv, learning.csv and checklist.md" in out
