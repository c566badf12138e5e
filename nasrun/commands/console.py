"""The rich edges of the CLI: the progress bar, the final table of trials, one-line errors."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from nasrun.rundir.records import better, is_ok, ok_fitness


def print_error(message: str) -> None:
    # soft_wrap keeps the message on one line however narrow the terminal.
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)


@contextmanager
def trial_progress(budget, label: str, transient: bool = False) -> Iterator:
    """A progress bar over the budget; yields the callback the runner calls with each finished trial record.

    A simulated-time budget (a benchmark table) advances by each trial's simulated seconds; otherwise the bar
    counts trials (with no total when only wall-clock seconds bound the search). transient: the bar disappears
when the search ends (a sweep's jobs leave one line each instead), and is not drawn at all into a file or pipe."""
    simulated = budget.simulated_seconds is not None
    best: list[dict | None] = [None]
    count = TextColumn("{task.completed:.0f}/{task.total:.0f} simulated s") if simulated else MofNCompleteColumn()
    with Progress(TextColumn("{task.description}"), BarColumn(), count, TimeElapsedColumn(),
                  TextColumn("{task.fields[best]}"), transient=transient,
                  disable=transient and not Console().is_terminal) as progress:
        task = progress.add_task(label, total=budget.simulated_seconds if simulated else budget.trials, best="")

        reached: dict[int, int] = {}  # under a scheduler: trial -> the epochs it reached

        def on_trial(record: dict) -> None:
            if better(record, best[0]):
                best[0] = record
            shown = "" if best[0] is None else _best_label(best[0]["metrics"])
            if "epochs" in record:  # a scheduled trial's segment: the bar counts trials, the rungs their epochs
                new = record["trial"] not in reached
                reached[record["trial"]] = record["epochs"]
                shown = f"{_rungs(reached)} {shown}"
                progress.update(task, advance=1 if new else 0, best=shown)
            elif simulated:
                progress.update(task, completed=record.get("simulated", 0.0), best=shown)
            else:
                progress.update(task, advance=1, best=shown)

        yield on_trial


def _rungs(reached: dict[int, int]) -> str:
    """Rung occupancy: how many trials stand at each number of epochs now (`rungs 1:18 3:6 9:3`)."""
    levels = sorted(set(reached.values()))
    return "rungs " + " ".join(f"{e}:{sum(1 for r in reached.values() if r == e)}" for e in levels)


def _best_label(metrics: dict) -> str:
    if "fitness" in metrics:
        return f"best score {metrics['fitness']:.4g}"
    return f"best val {metrics['val_acc']:.2f}%"


def print_top_trials(records: list[dict], run_dir: str, stop_reason: str, top: int = 10,
                     counts: dict | None = None, cancelled: list[dict] | tuple = ()) -> None:
    ok = sorted((r for r in records if is_ok(r)), key=lambda r: -ok_fitness(r))
    failed = len(records) - len(ok)
    numbers = ", ".join(str(r["trial"]) for r in cancelled)
    cut = f"; trial{'s' if len(cancelled) > 1 else ''} {numbers} cancelled, run{'' if len(cancelled) > 1 else 's'} " \
          f"again on resume" if cancelled else ""
    table = Table(title=f"top {min(top, len(ok))} of {len(records)} trials ({failed} failed) - {stop_reason}{cut}")
    scored = any("proxy_score" in r for r in records)
    columns = ("trial", "architecture", "val acc %", "test acc %") + (("proxy score",) if scored else ()) + \
        ("params", "seconds")
    for column in columns:
        # The canonical string must stay readable in full: fold it rather than cut it with an ellipsis.
        table.add_column(column, justify="left" if column == "architecture" else "right",
                         overflow="fold" if column == "architecture" else "ellipsis")
    for r in ok[:top]:
        m = r["metrics"]
        test = m.get("test_acc")
        proxy = (f"{r['proxy_score']:.4g}" if "proxy_score" in r else "-",) if scored else ()
        table.add_row(str(r["trial"]), r["key"].replace(",", ", "), pct(m.get("val_acc")), pct(test), *proxy,
                      f"{m['params']:,}" if "params" in m else "-", _seconds(r))
    console = Console()
    console.print(table)
    if counts and counts.get("proxy_evaluations"):
        console.print(f"trained: {counts['trained']}, proxy evaluations: {counts['proxy_evaluations']}",
                      highlight=False)
    if any(is_ok(r) and "test_acc" not in r["metrics"] for r in records):
        console.print("test acc % is measured only for trials that became the best so far "
                      "(evaluator.test_every_trial=true: every trial)", highlight=False, soft_wrap=True)
    console.print(f"run directory: {run_dir}", highlight=False, soft_wrap=True)


def print_training(record: dict, exported: dict, run_dir: str) -> None:
    """nasrun-train's summary: the trained architecture, the epoch its weights are from, its accuracies, files."""
    m = record["metrics"]
    table = Table(title=f"nasrun-train: {m.get('epochs_run', '?')} epochs"
                        f"{' (stopped early)' if m.get('stopped_early') else ''}")
    for column in ("architecture", "weights of epoch", "val acc %", "test acc %", "params", "seconds"):
        table.add_column(column, justify="left" if column == "architecture" else "right",
                         overflow="fold" if column == "architecture" else "ellipsis")
    table.add_row(record["key"], str(m.get("epoch", "-")), pct(m.get("val_acc")), pct(m.get("test_acc")),
                  f"{m['params']:,}" if "params" in m else "-", _seconds(record))
    console = Console()
    console.print(table)
    files = ["best.pt", "last.pt"] + [f"{name} (checked: max |diff| {diff:.1g})" if diff is not None else name
                                      for name, diff in exported.items()]
    console.print(f"run directory: {run_dir} ({', '.join(files)})", highlight=False, soft_wrap=True)


def print_job_line(number: int, overrides: list[str], result, run_dir: str) -> None:
    """A sweep's job in one line: which job, its overrides, trials, the best trial's figures, its directory."""
    best = result.best
    figures = "no trial succeeded" if best is None else \
        f"{_best_label(best['metrics'])}, test {pct(best['metrics'].get('test_acc'))}%"
    elapsed = result.records[-1].get("elapsed", 0.0) if result.records else 0.0
    shown = [o.removeprefix("++") for o in overrides]  # as typed: `keys_of_swept_groups` added the ++
    Console().print(f"job {number} ({' '.join(shown) or 'defaults'}): {len(result.records)} trials, {figures}, "
                    f"{elapsed:.2f} s, {result.stop_reason} -> {run_dir}", highlight=False, soft_wrap=True)


def pct(value) -> str:
    """An accuracy for a table cell: two decimals, or a dash for none."""
    return "-" if value is None else f"{value:.2f}"


def _seconds(record: dict) -> str:
    cost = record["metrics"].get("cost")
    return f"{cost:.1f} sim" if cost is not None else f"{record['seconds']:.1f}"
