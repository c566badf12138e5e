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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nasrun.checks import UserError
from nasrun.reports.checklist import write_checklist
from nasrun.rundir import atomic
from nasrun.rundir.atomic import atomic_path
from nasrun.rundir.best import read_best_json
from nasrun.rundir.environment import read_starts
from nasrun.rundir.lock import hold_run_dir
from nasrun.rundir.records import best_of, reported_accuracy, running_best
from nasrun.rundir.targets import upgrade_targets
from nasrun.rundir.trial_log import read_trials, split_log

log = logging.getLogger(__name__)

CONFIG_COLUMNS = ("experiment", "strategy", "space", "dataset", "evaluator", "proxy", "settings")
GROUPS = ("experiment", "strategy", "space", "dataset", "evaluator", "proxy", "budget")


@dataclass
class Run:
    path: Path
    config: dict  # the columns of CONFIG_COLUMNS
    records: list[dict]
    published: dict | None
    best: dict | None  # the trial the search selected (best validation accuracy)
    finished: bool = True  # trials.jsonl ends with the runner's end record (else: still running, or killed)
    table: bool = False  # the accuracies come from a benchmark table (NAS-Bench-201), not from training
    composed: dict = field(default_factory=dict)  # the run's whole composed config (.hydra/config.yaml)
    choices: dict = field(default_factory=dict)  # its group choices (strategy=evolution, ...)
    end: dict | None = None  # the end record: stop reason and counts
    starts: list = field(default_factory=list)  # run.json: versions and hardware at each start

    @property
    def reported(self) -> float | None:
        """The best trial's figure in the metric the preset publishes (test_acc unless it says val_acc)."""
        metric = (self.published or {}).get("metric", "test_acc")
        return reported_accuracy(self.best) if metric == "test_acc" or self.best is None else \
            self.best["metrics"].get(metric)

    @property
    def wall_seconds(self) -> float:
        return self.records[-1].get("elapsed", 0.0) if self.records else 0.0

    @property
    def clock(self) -> str:
        """The x axis of this run's anytime curve: simulated seconds for a benchmark table, else wall clock."""
        return "simulated" if self.records and all("simulated" in r for r in self.records) else "elapsed"

    def anytime(self) -> tuple[np.ndarray, np.ndarray]:
        """(time, reported accuracy of the best trial so far) after each trial."""
        xs, ys, clock = [], [], self.clock
        for record, best in running_best(self.records):
            xs.append(record.get(clock, 0.0))
            reported = reported_accuracy(best)
            ys.append(math.nan if reported is None else reported)
        return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def find_runs(root: Path) -> list[Path]:
    """Run directories under `root` (itself included): those holding a trials.jsonl, in natural order."""
    if not root.is_dir():
        raise UserError(f"{root}: no such directory; give a run directory or a multirun directory")
    found = sorted((p.parent for p in root.rglob("trials.jsonl")), key=_natural)
    if not found:
        raise UserError(f"{root}: no trials.jsonl in it or below it; is this a nasrun output directory?")
    return found


def _natural(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def load_run(path: Path) -> Run:
    hydra_dir = path / ".hydra"
    if not (hydra_dir / "config.yaml").is_file():
        raise UserError(f"{path}: no .hydra/config.yaml; nasrun-report reads the config Hydra saves with each run")
    cfg = OmegaConf.to_container(OmegaConf.load(hydra_dir / "config.yaml"))
    if not isinstance(cfg, dict):
        raise UserError(f"{hydra_dir / 'config.yaml'} is not a nasrun config (not a mapping)",
                        "remove that run from the folder, or restore its .hydra/", path=hydra_dir / "config.yaml")
    choices: dict = {}
    overrides: list = []
    if (hydra_dir / "hydra.yaml").is_file():
        hydra_cfg = OmegaConf.load(hydra_dir / "hydra.yaml")
        choices = dict(OmegaConf.to_container(hydra_cfg.hydra.runtime.choices))  # type: ignore[arg-type]
    if (hydra_dir / "overrides.yaml").is_file():
        overrides = list(OmegaConf.load(hydra_dir / "overrides.yaml"))
    logged = read_trials(path / "trials.jsonl", repair=False)  # the run may still be writing: read only
    records, _, end = split_log(logged)
    best = best_of(records)
    # The dataset the figures come from: what the evaluator described in best.json (a table's benchmark),
    # else the dataset group's choice.
    dataset = choices.get("dataset", "-")
    info = {}
    if best is not None:
        # best.json is derived from trials.jsonl: the report reads only where the figures come from, and a
        # damaged or missing one is rebuilt where that needs no data (a table run), else named in a warning.
        try:
            info = read_best_json(path)
        except UserError as err:
            info = rebuild_table_best(path, cfg, choices, best, end, err.problem)
    dataset = info.get("dataset", dataset)
    table = bool(info.get("table"))
    # Overrides other than the seed, resume and the group choices (already columns) set the configuration apart.
    settings = [o for o in overrides if not re.match(r"^\+?(seed|resume|hydra\.[\w.]+)=", o)
                and o.lstrip("+~").split("=")[0] not in GROUPS]
    config = {name: choices.get(name) or "-" for name in GROUPS}
    config.update(dataset=dataset, settings=" ".join(sorted(settings)))
    config.pop("budget")

    return Run(path, config, records, cfg.get("published"), best, finished=end is not None, table=table, composed=cfg,
               choices=choices, end=end, starts=read_starts(path))


def rebuild_table_best(path: Path, cfg: dict, choices: dict, best: dict, end: dict | None, problem: str) -> dict:
    """best.json of a table run, rebuilt from trials.jsonl and the run's saved config: a table run's best.json
    holds nothing else (no weights, no data statistics). Written under the run's lock, so never beside a live
    search (which writes its own). A trained run's best.json needs the data and maybe a retraining: a resume
    rebuilds it, and the report only says so."""
    if not str((cfg.get("evaluator") or {}).get("_target_", "")).endswith(".TabularEvaluator"):
        log.warning("%s; the report reads trials.jsonl instead; `nasrun ... hydra.run.dir=%s resume=true` rebuilds "
                    "it (retraining the best trial if best.pt is damaged too)", problem, path)
        return {}
    resolved: Any = cfg
    try:  # the table's path as the run resolved it (NASRUN_DATA may differ now: the unresolved form then)
        resolved = OmegaConf.to_container(OmegaConf.load(path / ".hydra" / "config.yaml"), resolve=True)
    except OmegaConfBaseException:
        pass
    evaluator = resolved["evaluator"]
    info = {**best, "space": upgrade_targets(resolved["space"]), "space_name": choices.get("space", "nb201"),
            "dataset": evaluator.get("benchmark", "cifar10"), "table": evaluator.get("table"), "weights": None,
            "weights_sha256": None}
    if end is not None:
        info.update(counts={k: end[k] for k in ("trials", "trained", "proxy_evaluations") if k in end},
                    stop_reason=end["stop_reason"])
    try:
        with hold_run_dir(path):
            atomic.write_json(path / "best.json", info)
    except UserError as err:  # a search holds the run (it writes best.json itself), or the folder is read-only
        log.warning("%s; not rebuilt: %s", problem, err)
        return info
    log.warning("%s; rebuilt best.json from trials.jsonl (trial %d)", problem, best["trial"])
    return info


def summarize(runs: list[Run]) -> list[dict]:
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(run.config[c] for c in CONFIG_COLUMNS), []).append(run)
    rows = []
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
            # Zero-cost proxy runs: distinct cells scored, counted apart from the trials (trainings).
            mean_proxy_evaluations=float(np.mean([max((t.get("proxy_evaluations", 0) for t in r.records), default=0)
                                                  for r in members])),
            mean_wall_s=float(np.mean([r.wall_seconds for r in members])),
            published=published.get("mean"),
            published_std=published.get("std"),
            diff=None if published.get("mean") is None or math.isnan(mean) else mean - published["mean"],
            source=published.get("source", ""),
            note=published.get("note", ""),
        )
        row["_runs"] = members
        rows.append(row)
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    columns = [c for c in rows[0] if not c.startswith("_")]
    blank = [{c: "" if row[c] is None or (isinstance(row[c], float) and math.isnan(row[c])) else row[c]
              for c in columns} for row in rows]
    atomic.write_csv(path, blank, columns)


def _pm(mean, std) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {std:.2f}"


def print_table(rows: list[dict], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    shown = [c for c in CONFIG_COLUMNS if any(r[c] not in ("-", "") for r in rows)]
    table = Table(title=title)
    for column in shown:
        table.add_column(column, overflow="fold")
    scored = any(r["mean_proxy_evaluations"] for r in rows)
    for column in ("runs", "test acc %", "trials") + (("proxy evals",) if scored else ()) + \
            ("wall s", "published", "diff"):
        table.add_column(column, justify="right", no_wrap=True)
    for r in rows:
        runs = str(r["runs"]) if r["ok_runs"] == r["runs"] else f"{r['ok_runs']}/{r['runs']} ok"
        if r["unfinished"]:
            runs += f" ({r['unfinished']} unfinished)"
        diff = "-" if r["diff"] is None else f"{r['diff']:+.2f}"
        proxy = (f"{r['mean_proxy_evaluations']:.1f}",) if scored else ()
        table.add_row(*(str(r[c]) for c in shown), runs, _pm(r["mean"], r["std"]), f"{r['mean_trials']:.1f}", *proxy,
                      f"{r['mean_wall_s']:.2f}", _pm(r["published"], r["published_std"]), diff)
    console = Console()
    if not console.is_terminal:  # piped or redirected: no terminal width to respect, keep rows on one line
        console = Console(width=160)
    console.print(table)
    for r in rows:
        if r["source"] or r["note"]:
            label = r["experiment"] if r["experiment"] != "-" else r["strategy"]
            console.print(f"{label}: published: {r['source']}" + (f"; {r['note']}" if r["note"] else ""),
                          highlight=False, soft_wrap=True)
    tables = any(run.table for r in rows for run in r["_runs"])
    console.print("test acc %: mean ± std over runs of the test accuracy of each run's trial with the best "
                  "validation accuracy" + (" (benchmark table: 200-epoch test, selected on 12-epoch validation)"
                                           if tables else ""), highlight=False, soft_wrap=True)
    if any(r["unfinished"] for r in rows):
        console.print("unfinished: the run's trials.jsonl has no end record (still running, or stopped); its "
                      "figures are those of the trials so far", highlight=False, soft_wrap=True)


def plot_anytime(rows: list[dict], path: Path) -> dict:
    """One panel per clock (simulated, wall); per configuration the mean best-so-far accuracy over its runs
    on a common time grid, a +-1 std band, and the published mean as a dashed line when the preset has one.
    Configurations with unfinished runs are drawn dotted and say so in the legend. Returns what was drawn:
    the title, the legend labels and each panel's y-limits."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none opened
    import matplotlib.pyplot as plt

    clocks = sorted({run.clock for r in rows for run in r["_runs"]}, reverse=True)  # simulated first
    fig, axes = plt.subplots(1, len(clocks), figsize=(6.5 * len(clocks), 4.5), squeeze=False)
    published_drawn = False
    drawn: dict = {"labels": [], "ylim": {}}
    for ax, clock in zip(axes[0], clocks):
        shown = []  # every value drawn (curves, bands, published lines): the y-axis spans them all
        for i, r in enumerate(rows):
            runs = [run for run in r["_runs"] if run.clock == clock and run.records]
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


def report(root: Path, out_dir: Path | None = None) -> list[dict]:
    """Read every run under `root`, print the table, write report.csv, anytime.png and checklist.md to `out_dir`
    (default `root`). Returns the rows (without the runs)."""
    root = Path(root)
    out_dir = Path(out_dir) if out_dir else root
    runs = [load_run(p) for p in find_runs(root)]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {out_dir}: cannot create it ({err.strerror}); choose another folder") from None
    rows = summarize(runs)
    print_table(rows, f"{len(runs)} runs in {root}")

    try:
        write_csv(rows, out_dir / "report.csv")
        plot_anytime(rows, out_dir / "anytime.png")
        write_checklist(rows, root, out_dir / "checklist.md", anytime=out_dir / "anytime.png")
    except OSError as err:
        raise UserError(f"cannot write into {out_dir} ({err.strerror})", "give a writable folder with --out DIR",
                        path=out_dir) from None
    from rich.console import Console

    Console().print(f"wrote {out_dir / 'report.csv'}, {out_dir / 'anytime.png'} and {out_dir / 'checklist.md'}",
                    highlight=False, soft_wrap=True)
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
