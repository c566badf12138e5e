"""`checklist.md`: the NAS best-practice checklist of Lindauer & Hutter (2020, JMLR 21(243)) answered, with
evidence, for the runs `nasrun-report` read, as far as their logs can answer it.

Answered from the logs: seeds per configuration; whether the compared configurations share benchmark, data and
splits, space, evaluator and training settings, and budget (every difference named); whether random search is
among them; the whole method's cost (wall and simulated seconds, trainings, proxy evaluations); the anytime
curves; each method's hyper-parameters; hardware and library versions. The items only the author can answer
(ablations, how hyper-parameters were tuned, ...) are listed as questions.
"""

from __future__ import annotations

from pathlib import Path

from nasrun.reports.runs import Group, config_label, plus_minus
from nasrun.reports.significance import Tests, summary_lines
from nasrun.rundir.atomic import write_text

# What a configuration is compared on: the composed config's sections, and keys that change no result
# (where files are, how big evaluation batches are, caches) which are left out of the comparison.
ASPECTS = {"benchmark, dataset and splits": "dataset", "search space": "space",
           "evaluator and training settings": "evaluator", "budget": "budget", "zero-cost proxy": "proxy"}
NO_EFFECT = {"download", "cache_dir", "eval_batch_size", "memory_limit_gb", "root", "fill"}

QUESTIONS = [
    "Did you release the code of the training pipeline, the search space and the NAS method (and the configs "
    "under .hydra/ of these runs)?",
    "How were the hyper-parameters of each method (above) and of the training pipeline tuned, on what data, and "
    "with how much time and compute? Is that cost included in the comparison?",
    "Which ablations show which parts of the method matter?",
    "Was the test split used only for the final report (nasrun selects on validation accuracy; a table "
    "benchmark's test column is the 200-epoch result)?",
    "For results not from these logs: were all methods run with this same code base and evaluation pipeline?",
]


def _flatten(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: node}


_label = config_label


def _section(run, group: str) -> dict:
    flat = _flatten(run.composed.get(group) or {}, group)
    return {k: v for k, v in flat.items() if k.rsplit(".", 1)[-1] not in NO_EFFECT}


def differences(groups: list[Group], group: str) -> list[str]:
    """Every key of `group` whose value differs between (or within) configurations, as readable lines."""
    values: dict[str, dict] = {}  # key -> value (as text) -> configuration labels
    for config in groups:
        for run in config.runs:
            section = _section(run, group)
            for key in set(values) | set(section):
                text = repr(section.get(key, "(unset)"))
                values.setdefault(key, {}).setdefault(text, set()).add(_label(config.row))
    # A key absent from runs seen before it was added is unset there too.
    lines = []
    for key, by_value in sorted(values.items()):
        if len(by_value) > 1:
            shown = "; ".join(f"{value} in {', '.join(sorted(labels))}" for value, labels in sorted(by_value.items()))
            lines.append(f"`{key}`: {shown}")
    return lines


def _cost(run) -> dict:
    trials = run.records
    simulated = max((r.get("simulated", 0.0) for r in trials), default=0.0)
    return {"wall": run.wall_seconds, "simulated": simulated, "trained": run.trained, "proxy": run.proxy_evaluations,
            "trials": len(trials), "epochs": run.epochs_trained}


def proxy_protocol(run) -> str | None:
    """How the run's zero-cost proxy scored cells, in words (None without a proxy)."""
    proxy = run.composed.get("proxy")
    if not isinstance(proxy, dict):
        return None
    seed = proxy.get("seed")
    if seed is None:
        return "each run scored cells with its own seed (proxy.seed=null: initialisation and batch vary by run)"
    return (f"every run scored a cell alike (proxy.seed={seed}: one initialisation and batch for all runs, "
            f"which share one cache)")


def checklist(groups: list[Group], root: Path, anytime: Path | None, tests: Tests | None = None) -> str:
    rows = [g.row for g in groups]
    lines = [f"# NAS best-practice checklist for {root}", "",
             "Lindauer & Hutter (2020), \"Best Practices for Scientific Research on Neural Architecture Search\": the "
             "items these runs' logs answer, with the evidence, then the questions only the author can answer.", "",
             "Configurations: " + "; ".join(f"**{_label(r)}** ({r['runs']} runs)" for r in rows), ""]

    lines += ["## Multiple runs and their seeds", ""]
    for row, runs in ((g.row, g.runs) for g in groups):
        seeds = sorted(int(run.composed.get("seed") or 0) for run in runs)
        unfinished = f", {row['unfinished']} unfinished" if row["unfinished"] else ""
        lines.append(f"- {_label(row)}: {len(seeds)} run(s){unfinished}, seeds {', '.join(map(str, seeds))}")
    if any(r["runs"] < 2 for r in rows):
        lines.append("- **A configuration has a single run**: report more seeds before comparing.")
    lines.append("")

    lines += ["## Same evaluation protocol for every configuration", ""]
    for aspect, group in ASPECTS.items():
        found = differences(groups, group)
        if not found:
            lines.append(f"- {aspect} (`{group}`): the same in every run")
        else:
            lines.append(f"- {aspect} (`{group}`) **differs**:")
            lines += [f"  - {line}" for line in found]
    protocols = {(g.label, p) for g in groups for run in g.runs if (p := proxy_protocol(run)) is not None}
    for label, protocol in sorted(protocols):
        lines.append(f"- zero-cost proxy protocol of {label}: {protocol}")
    places = sorted({(g.label, place) for g in groups for run in g.runs for place in run.places})
    if places:
        lines.append("- Settings that say only where files are or how the runs ran (not part of the configurations' "
                     "names): " + "; ".join(f"`{place}` in {label}" for label, place in places))
    lines.append("")

    lines += ["## Comparison with random search", ""]
    baselines = [g.row for g in groups if any(run.choices.get("strategy") == "random" for run in g.runs)]
    if baselines:
        lines.append("- Yes: " + ", ".join(_label(r) for r in baselines) + " (strategy=random).")
    else:
        lines.append("- **No random-search baseline among these runs**: add `strategy=random` with the same "
                     "settings (or the `nb201_random` preset).")
    lines.append("")

    lines += ["## Cost of the whole method", "",
              "| configuration | runs | wall s (mean) | simulated s (mean) | trainings (mean) | epochs trained (mean) "
              "| proxy evaluations (mean) | trials (mean) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row, runs in ((g.row, g.runs) for g in groups):
        costs = [_cost(run) for run in runs]
        mean = {k: sum(c[k] for c in costs) / len(costs) for k in costs[0]}
        lines.append(f"| {_label(row)} | {len(costs)} | {mean['wall']:.2f} | {mean['simulated']:.0f} | "
                     f"{mean['trained']:.1f} | {mean['epochs']:.1f} | {mean['proxy']:.1f} | {mean['trials']:.1f} |")
    lines += ["", "Wall seconds are the search's own (trials.jsonl's elapsed), data loading and start-up excluded; "
              "simulated seconds are a benchmark table's training times; a table lookup counts as a training. Epochs "
              "trained count every epoch of every trial (under a scheduler, a trial stopped or paused at a rung "
              "counts the epochs it reached).", ""]

    counted = [g for g in groups if any(run.proxy_evaluations for run in g.runs)]
    if counted:
        lines += ["Per run (mean ± std over runs), beside the figures the preset publishes:", "",
                  "| configuration | cells scored by the proxy | published | cells trained | published |",
                  "| --- | --- | --- | --- | --- |"]
        for g in counted:
            r = g.row
            scored = plus_minus(r["mean_proxy_evaluations"], r["std_proxy_evaluations"], 0)
            trained = plus_minus(r["mean_trained"], r["std_trained"], 0)
            lines.append(f"| {g.label} | {scored} | {r['published_cells_scored'] or '-'} | {trained} | "
                         f"{r['published_cells_trained'] or '-'} |")
        lines.append("")

    lines += ["## Statistical significance", ""]
    found = summary_lines(tests) if tests is not None else []
    if found:
        lines += ["Over each run's reported accuracy (`significance.csv` has every test): one-way ANOVA "
                  "(`scipy.stats.f_oneway`), Tukey's HSD for every pair (`scipy.stats.tukey_hsd`), and Welch's "
                  "t-test against random search of the same space and dataset (`scipy.stats.ttest_ind`, unequal "
                  "variances).", ""] + found
    else:
        lines.append("- A single configuration: nothing to compare.")
    lines.append("")

    lines += ["## Performance over time", ""]
    if anytime is not None and anytime.is_file():
        lines.append(f"- Anytime curves (best-so-far test accuracy against wall or simulated seconds, mean ± std "
                     f"over seeds): `{anytime.name}`.")
        if (anytime.parent / "convergence.png").is_file():
            lines.append("- The same against iterations of the search loop (trials): `convergence.png`.")
    else:
        lines.append("- **No anytime plot written.**")
    lines.append("")

    lines += ["## Hyper-parameters of each method", ""]
    for row, runs in ((g.row, g.runs) for g in groups):
        run = runs[0]
        for group in ("strategy", "proxy"):
            flat = _flatten(run.composed.get(group) or {}, group)
            if not flat or flat == {group: None}:
                continue
            target = str(flat.pop(f"{group}._target_", "?")).rsplit(".", 1)[-1]
            settings = ", ".join(f"`{k.split('.', 1)[1]}={v}`" for k, v in flat.items()
                                 if k.rsplit(".", 1)[-1] not in NO_EFFECT)
            lines.append(f"- {_label(row)}, {group} `{target}`: {settings or 'no hyper-parameters'}")
    lines.append("")

    lines += ["## Hardware and library versions", ""]
    seen: dict[tuple, list] = {}
    missing = []
    for config in groups:
        for run in config.runs:
            if not run.starts:
                missing.append(run.path.name)
            for start in run.starts:
                key = (start.get("nasrun"), start.get("torch"), start.get("python"), start.get("device"),
                       start.get("device_name"), start.get("cpu"), start.get("threads"))
                seen.setdefault(key, []).append(run)
    for (nasrun, torch, python, device, name, cpu, threads), runs in seen.items():
        where = f"{device}: {cpu}, {threads} threads" if device == "cpu" else \
            f"{device}: {name} (host CPU {cpu}, {threads} threads)"
        lines.append(f"- nasrun {nasrun}, torch {torch}, Python {python}; {where}: {len(runs)} run start(s)")
    if missing:
        lines.append(f"- Not recorded (no run.json; runs made before nasrun 0.2): {len(missing)} run(s)")
    lines.append("")

    lines += ["## Questions for the author", "", "The logs cannot answer these:", ""]
    lines += [f"- [ ] {q}" for q in QUESTIONS]
    return "\n".join(lines) + "\n"


def write_checklist(groups: list[Group], root: Path, path: Path, anytime: Path | None = None,
                    tests: Tests | None = None) -> None:
    """Write checklist.md atomically, under a name unique to this process."""
    write_text(path, checklist(groups, Path(root), anytime, tests))
