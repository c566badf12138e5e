"""episodes.csv and episodes.png: a search's rewards per episode of `episode_size` trials, in completion order.

Zoph & Le and Tschopp report their controllers learning as the reward per episode (a batch of children)
rising; `episode_size=N` writes that curve for any strategy: per episode the mean and the maximum validation
accuracy of its trials, and the best so far. Rewritten at the end of every run (a resumed run included), from
the run's records.

Whether the curve really rises is a regression: `trend` fits the episode means against the episode number by
least squares (`scipy.stats.linregress`) and gives the slope (accuracy points per episode) with its two-sided
p-value (null hypothesis: no slope). episodes.csv carries it per row, fitted over the episodes so far, so its
last row is the run's; `nasrun-report` prints it per run and its mean per configuration (`print_learning`).
Only complete episodes count: a run stopped mid-episode leaves a short one whose mean is a few trials'.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from nasrun.rundir.atomic import atomic_path, write_csv
from nasrun.rundir.records import is_ok, ok_fitness

COLUMNS = ["episode", "trials", "ok", "mean_val_acc", "max_val_acc", "best_so_far", "slope", "slope_p"]


def complete_means(rows: list[dict], size: int) -> list[tuple[int, float]]:
    """(episode, mean reward) of the episodes with all `size` trials and a reward: what `trend` fits."""
    return [(r["episode"], r["mean_val_acc"]) for r in rows if r["trials"] == size and r["mean_val_acc"] is not None]


def trend(rows: list[dict], size: int) -> dict:
    """The least-squares line through the complete episodes' mean rewards: `slope` (points per episode, None
    under 2 episodes) and `intercept`, `p` (two-sided, None under 3: two points fit any line), `episodes`
    fitted, and the `first` and `last` of those episodes' means."""
    points = complete_means(rows, size)
    fit = {"episodes": len(points), "first": points[0][1] if points else None,
           "last": points[-1][1] if points else None, "slope": None, "intercept": None, "p": None}
    if len(points) >= 2:
        from scipy.stats import linregress  # scipy: only when a curve is fitted

        line = linregress(*zip(*points))
        fit["slope"], fit["intercept"] = round(float(line.slope), 4), float(line.intercept)
        # Every mean equal: no spread to test against (linregress gives NaN); the p is then undefined.
        fit["p"] = float(line.pvalue) if len(points) >= 3 and line.pvalue == line.pvalue else None
    return fit


def episode_rows(records: list[dict], size: int) -> list[dict]:
    """One row per episode of `size` consecutive trials (the last may be partial); failed trials count as trials
    but carry no reward."""
    rows, best = [], None
    for start in range(0, len(records), size):
        rewards = [ok_fitness(r) for r in records[start:start + size] if is_ok(r)]
        if rewards:
            best = max(rewards) if best is None else max(best, max(rewards))
        rows.append({"episode": start // size + 1, "trials": len(records[start:start + size]), "ok": len(rewards),
                     "mean_val_acc": round(sum(rewards) / len(rewards), 4) if rewards else None,
                     "max_val_acc": max(rewards) if rewards else None, "best_so_far": best})
    for k, row in enumerate(rows, start=1):  # the trend so far: the last complete row's is the run's
        fit = trend(rows[:k], size) if row["trials"] == size else {"slope": None, "p": None}
        row.update(slope=fit["slope"], slope_p=None if fit["p"] is None else float(f"{fit['p']:.4g}"))
    return rows


def write_episodes(run_dir: Path, records: list[dict], size: int) -> list[dict]:
    """Write episodes.csv and episodes.png into `run_dir`; returns the rows."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none opened
    import matplotlib.pyplot as plt

    rows = episode_rows(records, size)
    write_csv(Path(run_dir) / "episodes.csv", rows, COLUMNS)
    episodes = [r["episode"] for r in rows if r["ok"]]
    fig, ax = plt.subplots(figsize=(6, 4.8))
    try:
        for column, style in (("mean_val_acc", "o-"), ("max_val_acc", "s--"), ("best_so_far", ":")):
            ax.plot(episodes, [r[column] for r in rows if r["ok"]], style, label=column.replace("_", " "))
        fit = trend(rows, size)
        if fit["slope"] is not None:  # the fitted line, over the complete episodes it was fitted to
            xs = [episode for episode, _ in complete_means(rows, size)]
            p = "" if fit["p"] is None else f", p = {fit['p']:.2g}"
            ax.plot([xs[0], xs[-1]], [fit["intercept"] + fit["slope"] * x for x in (xs[0], xs[-1])], "k-.",
                    linewidth=1, label=f"trend of the mean: {fit['slope']:+.2f} per episode{p}")
        ax.set_xlabel(f"episode ({size} trials each)")
        ax.set_ylabel("validation accuracy (%)")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)  # below: off the curves
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic_path(Path(run_dir) / "episodes.png") as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
    return rows


LEARNING_COLUMNS = ["configuration", "seed", "run", "episode_size", "episodes", "first_mean", "last_mean", "slope",
                    "p"]


def learning_rows(groups) -> list[dict]:
    """Per run with `episode_size` set: its trend (`trend`) over the episodes of its records, in log order (the
    order the rewards reached the strategy, as episodes.csv)."""
    rows = []
    for group in groups:
        for run in group.runs:
            size = run.composed.get("episode_size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                continue
            fit = trend(episode_rows(run.results or run.records, size), size)
            rows.append({"configuration": group.label, "seed": run.composed.get("seed"), "run": str(run.path),
                         "episode_size": size, "episodes": fit["episodes"], "first_mean": fit["first"],
                         "last_mean": fit["last"], "slope": fit["slope"], "p": fit["p"]})
    return rows


def print_learning(rows: list[dict], console) -> None:
    """The reward's trend per run and, per configuration, the mean slope over its runs (seeds)."""
    from rich.table import Table

    table = Table(title="reward per episode: least-squares slope of the episode means (points per episode)")
    for column in ("configuration", "seed", "episodes", "first mean", "last mean", "slope", "p"):
        table.add_column(column, justify="left" if column == "configuration" else "right", overflow="fold")
    for r in rows:
        table.add_row(r["configuration"], str(r["seed"]), str(r["episodes"]), _number(r["first_mean"]),
                      _number(r["last_mean"]), _number(r["slope"], "+.2f"), _number(r["p"], ".3g"))
    console.print(table)
    by_configuration: dict[str, list[dict]] = {}
    for r in rows:
        by_configuration.setdefault(r["configuration"], []).append(r)
    for label, members in by_configuration.items():
        slopes = [r["slope"] for r in members if r["slope"] is not None]
        if not slopes:
            continue
        rising = sum(1 for r in members if r["slope"] is not None and r["slope"] > 0 and r["p"] is not None
                     and r["p"] < 0.05)
        spread = f" ± {statistics.stdev(slopes):.2f}" if len(slopes) > 1 else ""
        console.print(f"{label}: mean slope {statistics.fmean(slopes):+.2f}{spread} points per episode over "
                      f"{len(slopes)} run(s); {rising} rising at p < 0.05", highlight=False, soft_wrap=True)


def _number(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)
