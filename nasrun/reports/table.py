"""`nasrun-report DIR`: summarise one run or a multirun sweep, beside the published figures it reproduces.

For each configuration (experiment, strategy, space, dataset, evaluator, proxy and any other override; the
seed is what varies inside one) it prints a rich table of the number of runs, mean +- std of the best trial's
reported accuracy, mean trials and wall seconds, and, when the run's preset carries `published`, the published
value and the difference. The same table goes to `report.csv` in DIR, and the anytime curves (best reported
accuracy so far against simulated or wall-clock seconds, mean and +-1 std band over seeds) to `anytime.png`,
and the NAS best-practice checklist answered from the logs to `checklist.md` (`nasrun.reports.checklist`).

The "best trial" is chosen as the search chose it, by validation accuracy (`nasrun.rundir.records.better`); the
reported figure is that trial's `test_acc`. Everything is read from the run directories: `trials.jsonl`,
`best.json`, `run.json` (versions and hardware) and Hydra's `.hydra/` record of the composed config, its group
choices and its overrides. The entry point is `nasrun.commands.report.main`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from nasrun.checks import UserError
from nasrun.reports.checklist import write_checklist
from nasrun.reports.convergence import plot_convergence
from nasrun.reports.episodes import LEARNING_COLUMNS, learning_rows, print_learning
from nasrun.reports.runs import CONFIG_COLUMNS, Group, Run, find_runs, load_run, plus_minus
from nasrun.reports.significance import compare, print_tests
from nasrun.reports.significance import rows as significance_rows
from nasrun.rundir import atomic
from nasrun.rundir.atomic import atomic_path

log = logging.getLogger(__name__)


def summarize(runs: list[Run]) -> list[Group]:
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(run.config[c] for c in CONFIG_COLUMNS), []).append(run)
    summary = []
    for key, members in groups.items():
        values = np.array([r.reported for r in members if r.reported is not None], dtype=float)
        published = members[0].published or {}
        mean = float(values.mean()) if len(values) else math.nan
        row = dict(zip(CONFIG_COLUMNS, key))
        row.update(
            runs=len(members),
            ok_runs=len(values),
            unfinished=sum(1 for r in members if not r.finished),
            mean=mean,
            std=float(values.std(ddof=1)) if len(values) > 1 else math.nan,
            mean_trials=float(np.mean([len(r.records) for r in members])),
            mean_epochs=float(np.mean([r.epochs_trained for r in members])),  # every epoch, rung segments too
            # Zero-cost proxy runs: distinct cells scored, counted apart from the trainings (or table lookups).
            mean_proxy_evaluations=float(np.mean([r.proxy_evaluations for r in members])),
            std_proxy_evaluations=_std([r.proxy_evaluations for r in members]),
            mean_trained=float(np.mean([r.trained for r in members])),
            std_trained=_std([r.trained for r in members]),
            mean_wall_s=float(np.mean([r.wall_seconds for r in members])),
            published=published.get("mean"),
            published_std=published.get("std"),
            diff=None if published.get("mean") is None or math.isnan(mean) else mean - published["mean"],
            published_cells_scored=_published_count(published, "cells_scored"),
            published_cells_trained=_published_count(published, "cells_trained"),
            source=published.get("source", ""),
            note=published.get("note", ""),
        )
        summary.append(Group(row, members))
    return summary


def _std(values: list) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def _published_count(published: dict, key: str) -> str:
    """A preset's published per-run count ({mean, std} or a number) as text for the table and report.csv."""
    value = published.get(key)
    if isinstance(value, dict):
        return plus_minus(value.get("mean"), value.get("std"), digits=0)
    return "" if value is None else str(value)


def write_csv(rows: list[dict], path: Path) -> None:
    columns = list(rows[0])
    blank = [{c: "" if row[c] is None or (isinstance(row[c], float) and math.isnan(row[c])) else row[c]
              for c in columns} for row in rows]
    atomic.write_csv(path, blank, columns)


def print_table(groups: list[Group], title: str) -> None:
    rows = [g.row for g in groups]
    from rich.table import Table

    shown = [c for c in CONFIG_COLUMNS if any(r[c] not in ("-", "") for r in rows)]
    table = Table(title=title)
    for column in shown:
        table.add_column(column, overflow="fold")
    scored = any(r["mean_proxy_evaluations"] for r in rows)
    epochs = any(r["mean_epochs"] for r in rows)
    for column in ("runs", "test acc %", "trials") + (("epochs",) if epochs else ()) + \
            (("cells scored",) if scored else ()) + ("wall s", "published", "diff"):
        table.add_column(column, justify="right", no_wrap=True)
    for r in rows:
        runs = str(r["runs"]) if r["ok_runs"] == r["runs"] else f"{r['ok_runs']}/{r['runs']} ok"
        if r["unfinished"]:
            runs += f" ({r['unfinished']} unfinished)"
        diff = "-" if r["diff"] is None else f"{r['diff']:+.2f}"
        proxy = (plus_minus(r["mean_proxy_evaluations"], r["std_proxy_evaluations"], digits=0),) if scored else ()
        trained = (f"{r['mean_epochs']:.1f}",) if epochs else ()
        table.add_row(*(str(r[c]) for c in shown), runs, plus_minus(r["mean"], r["std"]), f"{r['mean_trials']:.1f}",
                      *trained, *proxy, f"{r['mean_wall_s']:.2f}", plus_minus(r["published"], r["published_std"]), diff)
    console = wide_console()
    console.print(table)
    for r in rows:
        if r["source"] or r["note"]:
            label = r["experiment"] if r["experiment"] != "-" else r["strategy"]
            console.print(f"{label}: published: {r['source']}" + (f"; {r['note']}" if r["note"] else ""),
                          highlight=False, soft_wrap=True)
    for g in groups:
        r = g.row
        if r["published_cells_scored"] or r["published_cells_trained"]:
            cells = plus_minus(r["mean_proxy_evaluations"], r["std_proxy_evaluations"], 0)
            looked_up = plus_minus(r["mean_trained"], r["std_trained"], 0)
            console.print(f"{g.label}: per run, cells scored {cells} (published {r['published_cells_scored'] or '-'}),"
                          f" cells trained {looked_up} (published {r['published_cells_trained'] or '-'})",
                          highlight=False, soft_wrap=True)
    tables = any(run.table and not run.one_shot for g in groups for run in g.runs)
    if any(run.one_shot for g in groups for run in g.runs):
        console.print("one-shot runs (oneshot=darts|gdas): the test accuracy is the benchmark table's (200 epochs) "
                      "of the cell derived after the last epoch, whatever its supernet accuracy",
                      highlight=False, soft_wrap=True)
    console.print("test acc %: mean ± std over runs of the test accuracy of each run's trial with the best "
                  "validation accuracy" + (" (benchmark table: 200-epoch test, selected on 12-epoch validation)"
                                           if tables else ""), highlight=False, soft_wrap=True)
    if any(r["unfinished"] for r in rows):
        console.print("unfinished: the run's trials.jsonl has no end record (still running, or stopped); its "
                      "figures are those of the trials so far", highlight=False, soft_wrap=True)


def wide_console():
    """rich's console at the terminal's width, or 160 columns when piped or redirected: no terminal width to
    respect there, so rows stay on one line."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


def plot_anytime(groups: list[Group], path: Path) -> dict:
    """One panel per clock (simulated, wall); per configuration the mean best-so-far accuracy over its runs
    on a common time grid, a +-1 std band, and the published mean as a dashed line when the preset has one.
    Configurations with unfinished runs are drawn dotted and say so in the legend. Returns what was drawn:
    the title, the legend labels and each panel's y-limits."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none opened
    import matplotlib.pyplot as plt

    clocks = sorted({run.clock for g in groups for run in g.runs}, reverse=True)  # simulated first
    fig, axes = plt.subplots(1, len(clocks), figsize=(6.5 * len(clocks), 4.5), squeeze=False)
    published_drawn = False
    drawn: dict = {"labels": [], "ylim": {}}
    for ax, clock in zip(axes[0], clocks):
        shown = []  # every value drawn (curves, bands, published lines): the y-axis spans them all
        for i, group in enumerate(groups):
            r = group.row
            runs = [run for run in group.runs if run.clock == clock and run.records]
            if not runs:
                continue
            color = f"C{i % 10}"
            anytime = [run.anytime() for run in runs]
            grid = np.linspace(0.0, max(xs.max() for xs, _ in anytime), 300)
            curves = np.array([_step_at(xs, ys, grid) for xs, ys in anytime])
            # The curve starts once every run has a trial (NaN before): a mean over the few early runs would
            # dip and jump.
            mean, std = curves.mean(axis=0), curves.std(axis=0)
            label = " ".join(str(r[c]) for c in ("experiment", "strategy", "settings") if r[c] not in ("-", ""))
            unfinished = sum(1 for run in runs if not run.finished)
            note = f", {unfinished} unfinished" if unfinished else ""
            ax.plot(grid, mean, color=color, linestyle=":" if unfinished else "-",
                    label=f"{label or 'search'} ({len(runs)} runs{note})")
            ax.fill_between(grid, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
            shown += [mean - std, mean + std]
            if r["published"] is not None:
                ax.axhline(r["published"], color=color, linestyle="--", linewidth=1)
                shown.append(np.array([r["published"]]))
                published_drawn = True
        ax.set_xlabel("simulated training seconds" if clock == "simulated" else "wall-clock seconds")
        ax.set_ylabel("test accuracy % of the best trial so far")
        finite = np.concatenate(shown) if shown else np.array([])
        finite = finite[np.isfinite(finite)]
        if finite.size:
            low, high = finite.min(), finite.max()
            margin = max(0.05 * (high - low), 0.25)
            ax.set_ylim(low - margin, high + margin)
            drawn["ylim"][clock] = (low - margin, high + margin)
        drawn["labels"] += ax.get_legend_handles_labels()[1]
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    title = "anytime performance (mean ± 1 std over seeds" + ("; dashed: published)" if published_drawn else ")")
    axes[0][0].set_title(title, fontsize=10)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return {**drawn, "title": title}


def _step_at(xs: np.ndarray, ys: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The best-so-far curve (constant between trials) read at `grid`; NaN before the first trial."""
    idx = np.searchsorted(xs, grid, side="right") - 1
    return np.where(idx >= 0, ys[np.clip(idx, 0, None)], np.nan)


def report(root: Path, out_dir: Path | None = None, trust: bool = False) -> list[dict]:
    """Read every run under `root`, print the table, write report.csv, anytime.png and checklist.md to `out_dir`
    (default `root`). Returns the summary rows. trust: read runs whose saved configs name code nasrun does not
    ship (`nasrun.rundir.targets`)."""
    root = Path(root)
    out_dir = Path(out_dir) if out_dir else root
    runs = [load_run(p, trust) for p in find_runs(root)]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {out_dir}: cannot create it ({err.strerror}); choose another folder") from None
    groups = summarize(runs)
    print_table(groups, f"{len(runs)} runs in {root}")
    tests = compare(groups)
    print_tests(tests)
    learning = learning_rows(groups)  # runs with episode_size: does the reward per episode rise?
    if learning:
        print_learning(learning, wide_console())
    rows = [g.row for g in groups]
    written = ["report.csv", "anytime.png", "convergence.png", "significance.csv", "checklist.md"]
    if learning:
        written.insert(-1, "learning.csv")
    try:
        write_csv(rows, out_dir / "report.csv")
        plot_anytime(groups, out_dir / "anytime.png")
        plot_convergence(groups, out_dir / "convergence.png")
        atomic.write_csv(out_dir / "significance.csv", significance_rows(tests),
                         ["test", "a", "b", "difference", "statistic", "p"])
        if learning:
            atomic.write_csv(out_dir / "learning.csv", learning, LEARNING_COLUMNS)
        write_checklist(groups, root, out_dir / "checklist.md", anytime=out_dir / "anytime.png", tests=tests)
    except OSError as err:
        raise UserError(f"cannot write into {out_dir} ({err.strerror})", "give a writable folder with --out DIR",
                        path=out_dir) from None
    from rich.console import Console

    Console().print(f"wrote {', '.join(written[:-1])} and {written[-1]} in {out_dir}", highlight=False,
                    soft_wrap=True)
    return rows
