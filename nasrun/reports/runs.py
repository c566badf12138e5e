"""The runs under a folder, read back for the report: each run's config, group choices, trials and best (`Run`,
`load_run`), the runs of one configuration together (`Group`), and a table run's best.json rebuilt when it is
missing or damaged (it holds nothing the log and the saved config lack)."""

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
from nasrun.rundir import atomic
from nasrun.rundir.best import read_best_json
from nasrun.rundir.environment import read_starts
from nasrun.rundir.lock import hold_run_dir
from nasrun.rundir.records import Status, best_of, reported_accuracy, running_best
from nasrun.rundir.targets import refuse_foreign, upgrade_targets
from nasrun.rundir.trial_log import read_trials, split_log

log = logging.getLogger(__name__)

CONFIG_COLUMNS = ("experiment", "oneshot", "strategy", "space", "dataset", "evaluator", "proxy", "settings")
GROUPS = ("experiment", "strategy", "space", "dataset", "evaluator", "proxy", "budget", "oneshot")


@dataclass
class Run:
    path: Path
    config: dict  # the columns of CONFIG_COLUMNS
    records: list[dict]  # one per trial: its final record (under a scheduler, a waiting trial's latest result)
    published: dict | None
    best: dict | None  # the trial the search selected (best validation accuracy)
    finished: bool = True  # trials.jsonl ends with the runner's end record (else: still running, or killed)
    table: bool = False  # the accuracies come from a benchmark table (NAS-Bench-201), not from training
    composed: dict = field(default_factory=dict)  # the run's whole composed config (.hydra/config.yaml)
    choices: dict = field(default_factory=dict)  # its group choices (strategy=evolution, ...)
    end: dict | None = None  # the end record: stop reason and counts
    starts: list = field(default_factory=list)  # run.json: versions and hardware at each start
    results: list[dict] = field(default_factory=list)  # every result in log order (under a scheduler, each rung's)
    places: list[str] = field(default_factory=list)  # overrides that say only where things are (`PLACES`)

    @property
    def epochs_trained(self) -> int:
        """Epochs trained in the whole run: the end record's count under a scheduler, else every trial's."""
        if self.end is not None and "epochs_trained" in self.end:
            return int(self.end["epochs_trained"])
        return sum(len(r["metrics"].get("history", [])) for r in (self.results or self.records))

    @property
    def trained(self) -> int:
        """Trainings (or table lookups standing in for them) the run made: the end record's count, else the
        finished trials."""
        if self.end is not None and "trained" in self.end:
            return int(self.end["trained"])
        return sum(1 for r in self.records if r["status"] == Status.OK)

    @property
    def proxy_evaluations(self) -> int:
        """Distinct cells the run's zero-cost proxy scored (0 without a proxy)."""
        if self.end is not None and "proxy_evaluations" in self.end:
            return int(self.end["proxy_evaluations"])
        return max((r.get("proxy_evaluations", 0) for r in self.records), default=0)

    @property
    def reported(self) -> float | None:
        """The best trial's figure in the metric the preset publishes (test_acc unless it says val_acc)."""
        metric = (self.published or {}).get("metric", "test_acc")
        return reported_accuracy(self.best) if metric == "test_acc" or self.best is None else \
            self.best["metrics"].get(metric)

    @property
    def one_shot(self) -> bool:
        """Its records are a one-shot supernet's derived cell, epoch by epoch (`nasrun.oneshot`)."""
        return bool(self.records) and all("supernet" in r for r in self.records)

    @property
    def wall_seconds(self) -> float:
        return max((r.get("elapsed", 0.0) for r in (self.results or self.records)), default=0.0)

    @property
    def clock(self) -> str:
        """The x axis of this run's anytime curve: simulated seconds for a benchmark table, else wall clock."""
        return "simulated" if self.records and all("simulated" in r for r in self.records) else "elapsed"

    def anytime(self) -> tuple[np.ndarray, np.ndarray]:
        """(time, reported accuracy of the best trial so far) after each trial (each rung result, under a
        scheduler: every epoch trained counts; a one-shot run: its derived cell's, epoch by epoch)."""
        xs, ys, clock = [], [], self.clock
        # A one-shot run's current cell is not the best so far: the curve follows the cell each epoch derives.
        pairs = [(r, r) for r in self.records] if self.one_shot else running_best(self.results or self.records)
        for record, best in pairs:
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


def load_run(path: Path, trust: bool = False) -> Run:
    """One run read back. Its saved config is data: a `_target_` that nasrun's config groups do not name stops
    the report in one line (trust=True, `nasrun-report --trust`: logged instead), since a table run's best.json
    is rebuilt from that config and whatever it names would be imported when the run is loaded."""
    hydra_dir = path / ".hydra"
    if not (hydra_dir / "config.yaml").is_file():
        raise UserError(f"{path}: no .hydra/config.yaml; nasrun-report reads the config Hydra saves with each run")
    cfg = OmegaConf.to_container(OmegaConf.load(hydra_dir / "config.yaml"))
    if not isinstance(cfg, dict):
        raise UserError(f"{hydra_dir / 'config.yaml'} is not a nasrun config (not a mapping)",
                        "remove that run from the folder, or restore its .hydra/", path=hydra_dir / "config.yaml")
    refuse_foreign(cfg, hydra_dir / "config.yaml", "--trust to nasrun-report", trust=trust, keys=("_target_",))
    choices: dict = {}
    overrides: list = []
    if (hydra_dir / "hydra.yaml").is_file():
        hydra_cfg = OmegaConf.load(hydra_dir / "hydra.yaml")
        choices = dict(OmegaConf.to_container(hydra_cfg.hydra.runtime.choices))  # type: ignore[arg-type]
    if (hydra_dir / "overrides.yaml").is_file():
        overrides = list(OmegaConf.load(hydra_dir / "overrides.yaml"))
    logged = read_trials(path / "trials.jsonl", repair=False)  # the run may still be writing: read only
    _, _, end = split_log(logged)
    results = [r for r in logged if r["status"] in (Status.OK, Status.FAILED, Status.RUNG)]
    latest = {r["trial"]: r for r in results}  # a trial's last result stands for it (one per trial unscheduled)
    records = sorted(latest.values(), key=lambda r: r["trial"]) if len(latest) < len(results) else results
    # A one-shot run's records are its supernet's cell after each epoch: the last one is the cell it chose.
    one_shot = bool(results) and all("supernet" in r for r in results)
    best = results[-1] if one_shot else best_of(results)
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
    # Overrides that say only where things are or how the run ran do not set a configuration apart (checklist.md
    # lists them); `_sets_apart` says which do.
    places = [o for o in overrides if _is_place(o)]
    config = {name: choices.get(name) or "-" for name in GROUPS}
    settings = [o for o in overrides if _sets_apart(o, preset=config["experiment"] != "-")]
    if config["oneshot"] == "none":  # no supernet: no column (runs from before the group have none either)
        config["oneshot"] = "-"
    if one_shot:  # DARTS and GDAS choose by α: the run's strategy and evaluator options played no part
        config.update(strategy="-", evaluator="-")
    config.update(dataset=dataset, settings=" ".join(sorted(settings)))
    config.pop("budget")

    return Run(path, config, records, cfg.get("published"), best, finished=end is not None, table=table, composed=cfg,
               choices=choices, end=end, starts=read_starts(path), results=results, places=places)


# Settings that say where files are or how a run ran, not what it compares: a sweep run with dataset.root=DIR
# is the preset's group, not a group of its own.
PLACES = ("dataset.root", "dataset.download", "proxy.cache_dir", "device.threads", "oneshot.table",
          "evaluator.table", "episode_size")  # episode_size: how the rewards are grouped in episodes.csv only


def _sets_apart(override: str, preset: bool) -> bool:
    """Whether an override names a configuration of its own. Not the seed, resume or a place. A group choice
    is a column of its own, except beside a preset: there it departs from the preset
    (`+experiment=zoph_cpu strategy=random`, the preset's baseline), and two such sweeps must not share a name."""
    key = override.lstrip("+~").split("=")[0]
    if key in ("seed", "resume", "experiment") or _is_place(override):
        return False
    return preset or key not in GROUPS


def _is_place(override: str) -> bool:
    key = override.lstrip("+~").split("=")[0]
    return key in PLACES or key.startswith(("hydra.", "hydra/"))


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


def plus_minus(mean, std, digits: int = 2) -> str:
    """`mean ± std` for the table and checklist.md; `-` without a mean, the mean alone without a std."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def config_label(row: dict) -> str:
    """A configuration's name in the table's legend, the plots and checklist.md: its experiment (else its
    strategy) and the overrides that set it apart."""
    name = row["experiment"] if row["experiment"] != "-" else f"strategy={row['strategy']}"
    return f"{name} {row['settings']}".strip()


@dataclass
class Group:
    """The runs of one configuration (the seeds of one experiment, say) and their summary `row`: the columns
    of report.csv and of the table."""

    row: dict
    runs: list[Run]

    @property
    def label(self) -> str:
        return config_label(self.row)
