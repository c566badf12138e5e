"""`nasrun oneshot=darts|gdas|rsps`: the one-shot search's part of the command (the run directory already held):
train and read out, then print the derived cells epoch by epoch (or the search on the supernet)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from nasrun.checks import UserError
from nasrun.commands.console import pct, print_job_line, print_top_trials
from nasrun.oneshot.run import run_oneshot
from nasrun.rundir.environment import record_start
from nasrun.rundir.records import reported_accuracy


def oneshot_search(cfg, seed: int, device, run_dir: Path, resume: bool, overrides: list[str], job: int | None) -> dict:
    """One one-shot search; `job`: the sweep's job number (None for a single run): one line instead of a table."""
    result = run_oneshot(cfg, seed, device, run_dir, resume=resume,
                         on_start=lambda: record_start(run_dir, device, overrides))
    if result.search is not None:  # RSPS: an ordinary search on the supernet
        search = result.search
        if job is not None:
            print_job_line(job, overrides, search, str(run_dir))
        else:
            print_top_trials(search.records, str(run_dir), f"{result.stop_reason}; {search.stop_reason}")
        if search.best is None:
            raise UserError(f"no cell was scored on the supernet ({len(search.records)} trials); raise budget.trials")
        return {"best_val_acc": search.best["metrics"]["val_acc"], "best_test_acc": reported_accuracy(search.best),
                "supernet_epochs": len(result.records) or None}
    final = result.final
    if final is None:
        raise UserError("the supernet trained no epoch; raise budget.seconds")
    if job is None:
        _print_epochs(result.records, result.stop_reason, str(run_dir))
    else:
        Console().print(f"job {job} ({' '.join(overrides)}): cell {final['key']}, test acc "
                        f"{pct(reported_accuracy(final))} after {len(result.records)} epochs - {run_dir}",
                        highlight=False, soft_wrap=True)
    return {"cell": final["key"], "best_val_acc": final["metrics"]["val_acc"],
            "best_test_acc": reported_accuracy(final), "epochs": len(result.records)}


def _print_epochs(records: list[dict], stop_reason: str, run_dir: str, last: int = 10) -> None:
    table = Table(title=f"derived cell, last {min(last, len(records))} of {len(records)} epochs - {stop_reason}")
    for column in ("epoch", "cell", "search acc %", "table test acc %", "tau", "seconds"):
        table.add_column(column, justify="left" if column == "cell" else "right",
                         overflow="fold" if column == "cell" else "ellipsis")
    for record in records[-last:]:
        stats = record["supernet"]
        table.add_row(str(stats["epoch"]), record["key"], pct(record["metrics"]["val_acc"]),
                      pct(reported_accuracy(record)), f"{stats['tau']:.2f}" if "tau" in stats else "-",
                      f"{record['seconds']:.1f}")
    console = Console()
    console.print(table)
    console.print(f"best.json: the last epoch's cell (train it from scratch: nasrun-train arch={run_dir})",
                  highlight=False, soft_wrap=True)
    console.print(f"run directory: {run_dir}", highlight=False, soft_wrap=True)
