"""`nasrun --help`: one screen, built from conf/ so it lists exactly the groups, options and presets there."""

from __future__ import annotations

import textwrap
from pathlib import Path

from nasrun.config.groups import conf_dir, default_choices


def help_text() -> str:
    """`nasrun --help`: one screen, built from conf/ so it lists exactly the groups, options and presets there."""
    defaults = default_choices()
    lines = ["usage: nasrun [-m] [GROUP=OPTION ...] [KEY=VALUE ...]    a search (-m: a sweep over comma lists)",
             "       nasrun-train arch=ARCH [OVERRIDES]                 train one architecture in full, export it",
             "       nasrun-report DIR [--out DIR]                      report.csv, anytime.png, checklist.md",
             "       nasrun-score [--proxies a,b] [-n N] OVERRIDES      proxy scores, rank correlations",
             "config groups (default first):"]
    for group, default in defaults.items():
        options = sorted((p.stem for p in (Path(conf_dir()) / group).glob("*.yaml")), key=lambda o: (o != default, o))
        lines.append(f"  {group + '=':11}{'|'.join(options)}")
    presets = " ".join(sorted(p.stem for p in (Path(conf_dir()) / "experiment").glob("*.yaml")))
    lines += [*textwrap.wrap(presets, 99, initial_indent="presets (+experiment=NAME): ", subsequent_indent="  "),
              "keys people change first:",
              "  budget.trials=N budget.seconds=S budget.epochs=E  trials, wall-clock cap, epochs per trial",
              "  device=cpu|cuda device.threads=N                  where trials run; CPU threads (1 if shared)",
              "  executor=pool executor.workers=N                  trials in parallel (ray: a cluster)",
              "  seed=N  hydra.run.dir=DIR resume=true             seeds everything; continue a stopped run",
              "  objectives=[val_acc,latency_ms] latency=table     Pareto search (+constraints.METRIC=BOUND)",
              "  dataset.root=DIR, or NASRUN_DATA=DIR              where the datasets are (offline: README)",
              "outputs in outputs/DATE/TIME/ (or hydra.run.dir): trials.jsonl, best.json, best.pt, pareto.json",
              "more: nasrun --cfg job (the config), nasrun --hydra-help, README.md; logs: nasrun.log"]
    return "\n".join(lines)

