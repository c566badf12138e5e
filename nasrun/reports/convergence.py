"""`convergence.png`: the best reported accuracy so far against iterations of the search loop, mean ± std over
each configuration's runs, one line per configuration (Figure 3 of Centurión Funes et al. plots its Algorithm 1
this way). An iteration is one trial the search ran (a training or a table lookup; under a scheduler each rung
result); a run that stopped earlier than others (a simulated-time budget spent sooner) keeps its final best
for the iterations it did not run, as its result stands from then on. The anytime plot against seconds
(`anytime.png`) answers the other question: what a run gets for its time."""

from __future__ import annotations

import math
import warnings

import numpy as np

from nasrun.reports.runs import Group, Run
from nasrun.rundir.atomic import atomic_path
from nasrun.rundir.records import reported_accuracy, running_best


def best_so_far(run: Run) -> np.ndarray:
    """The reported accuracy of the run's best trial after each of its trials, in log order (NaN while no
    trial has one); for a one-shot run, of the cell each epoch derived (its choice, not the best so far)."""
    chosen = run.records if run.one_shot else [best for _, best in running_best(run.results or run.records)]
    values = [reported_accuracy(best) for best in chosen]
    return np.array([math.nan if v is None else v for v in values], dtype=float)


def curves(group: Group) -> np.ndarray:
    """runs x iterations: each run's best so far, its last value carried to the longest run's length."""
    per_run = [best_so_far(run) for run in group.runs if run.records]
    length = max((len(c) for c in per_run), default=0)
    return np.array([np.concatenate([c, np.full(length - len(c), c[-1] if len(c) else math.nan)])
                     for c in per_run]).reshape(len(per_run), length)


def plot_convergence(groups: list[Group], path) -> dict:
    """Write the plot; returns what was drawn: each line's label and its final mean."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none opened
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn: dict = {"labels": [], "final": {}}
    for i, group in enumerate(groups):
        values = curves(group)
        if values.size == 0:
            continue
        color = f"C{i % 10}"
        iterations = np.arange(1, values.shape[1] + 1)
        with warnings.catch_warnings():  # an iteration where no run has an accuracy yet stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
        label = f"{group.label} ({len(values)} runs)"
        ax.plot(iterations, mean, color=color, label=label)
        ax.fill_between(iterations, mean - std, mean + std, color=color, alpha=0.15, linewidth=0)
        published = group.row.get("published")
        if published is not None:
            ax.axhline(published, color=color, linestyle="--", linewidth=1)
        drawn["labels"].append(label)
        drawn["final"][group.label] = float(mean[-1])
    ax.set_xlabel("iterations of the search loop (trials: trainings or table lookups)")
    ax.set_ylabel("test accuracy % of the best trial so far")
    ax.set_title("convergence (mean ± 1 std over runs; dashed: published)", fontsize=10)
    ax.grid(alpha=0.3)
    if drawn["labels"]:
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
    return drawn
