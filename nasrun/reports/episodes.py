"""episodes.csv and episodes.png: a search's rewards per episode of `episode_size` trials, in completion order.

Zoph & Le and Tschopp report their controllers learning as the reward per episode (a batch of children)
rising; `episode_size=N` writes that curve for any strategy: per episode the mean and the maximum validation
accuracy of its trials, and the best so far. Rewritten at the end of every run (a resumed run included), from
the run's records.
"""

from __future__ import annotations

from pathlib import Path

from nasrun.rundir.atomic import atomic_path, write_csv
from nasrun.rundir.records import is_ok, ok_fitness

COLUMNS = ["episode", "trials", "ok", "mean_val_acc", "max_val_acc", "best_so_far"]


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
    return rows


def write_episodes(run_dir: Path, records: list[dict], size: int) -> list[dict]:
    """Write episodes.csv and episodes.png into `run_dir`; returns the rows."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none opened
    import matplotlib.pyplot as plt

    rows = episode_rows(records, size)
    write_csv(Path(run_dir) / "episodes.csv", rows, COLUMNS)
    episodes = [r["episode"] for r in rows if r["ok"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    try:
        for column, style in (("mean_val_acc", "o-"), ("max_val_acc", "s--"), ("best_so_far", ":")):
            ax.plot(episodes, [r[column] for r in rows if r["ok"]], style, label=column.replace("_", " "))
        ax.set_xlabel(f"episode ({size} trials each)")
        ax.set_ylabel("validation accuracy (%)")
        ax.legend()
        ax.grid(alpha=0.3)
        with atomic_path(Path(run_dir) / "episodes.png") as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
    return rows
