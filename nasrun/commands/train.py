"""`nasrun-train`: train one fixed architecture in full, with the same config groups as a search.

The architecture is a canonical string of the space, a name the space knows (`nascnn15`), or a search's run
directory (its best.json gives the architecture and the space it came from). The run is a one-trial search:
`run_search` with a strategy that only ever asks for that architecture, so the outputs, the lock, the budget and
resume are the search's own (trials.jsonl with the per-epoch history, best.json, best.pt with the best epoch's
weights). On top, the training evaluator saves last.pt after every epoch (`nasrun.training.checkpoint`), so a killed
training goes on from its last epoch with `resume=true`, and the trained model is exported (`nasrun.training.export`).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from nasrun.checks import UserError, check_bool
from nasrun.commands.app import hydra_app, run_settings, top_level
from nasrun.commands.console import print_training, trial_progress
from nasrun.config.groups import build, check_keys, parameters
from nasrun.contracts import named_architectures
from nasrun.rundir.best import load_best, read_best_json
from nasrun.rundir.environment import record_start
from nasrun.rundir.lock import hold_run_dir
from nasrun.rundir.targets import refuse_foreign, upgrade_targets
from nasrun.search.runner import check_resumable, run_search
from nasrun.training.export import export_model

log = logging.getLogger(__name__)

TRAIN_KEYS = ("arch", "export", "trust_run")  # nasrun-train's top-level settings (conf/train.yaml), beside nasrun's


class OneArchitecture:
    """The strategy of a one-trial run: it asks for the architecture to train, and has nothing to learn."""

    def __init__(self, arch):
        self.arch = arch

    def ask(self):
        return self.arch

    def tell(self, arch, result) -> None:
        pass


def architecture_source(cfg: DictConfig) -> tuple[DictConfig, object, dict | None]:
    """(the space's config, the architecture as given, the best.json it came from or None) for `cfg.arch`."""
    text = cfg.arch
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"arch={text!r}: give a canonical architecture string, a named architecture (nascnn15) or "
                        f"a run directory with a best.json")
    folder = Path(text).expanduser()
    if folder.is_dir():
        info = read_best_json(folder)
        if not isinstance(info.get("space"), dict) or "_target_" not in info["space"]:
            raise UserError(f"{folder / 'best.json'} does not say which space its architecture is in (no 'space'); "
                            f"give the architecture string and space=... instead")
        # The run directory is data: its space must be nasrun's own, or use the builder the user names here.
        own = OmegaConf.to_container(cfg.space, resolve=True)
        builders = [own["builder"]] if isinstance(own, dict) and isinstance(own.get("builder"), str) else []
        trust = top_level(lambda: check_bool("trust_run", cfg.trust_run))
        refuse_foreign(info["space"], folder / "best.json", "trust_run=true", allowed=builders, trust=trust,
                       prefix="space")
        log.info("training trial %s of %s (space %s)", info["trial"], folder, info.get("space_name"))
        return OmegaConf.create(upgrade_targets(info["space"])), info["arch"], info
    if "/" in text and "<" not in text and "|" not in text:
        raise UserError(f"arch={text}: no such run directory; give a run directory holding best.json, a named "
                        f"architecture or a canonical string")
    return cfg.space, text, None


def resolve_architecture(space, given):
    """The space's architecture for a name it knows, a canonical string or a JSON form (best.json's)."""
    named = named_architectures(space)
    name = given.lower() if isinstance(given, str) and given.lower() in named else None
    try:
        return space.from_json(named[name] if name else given)
    except ValueError as err:
        hint = f"; named architectures of space={space.name}: {', '.join(named)}" if named else \
            "; for NASCNN15 use +experiment=nascnn15 (space=macro space.num_layers=15)"
        raise UserError(f"arch={name or given}: {err}{hint}") from None


def build_training(cfg: DictConfig, seed: int, device, run_dir: Path):
    """(space, architecture, budget, evaluator, model_info, data) of the training `cfg` describes."""
    space_cfg, given, searched = architecture_source(cfg)
    if "checkpoint" not in parameters("evaluator", cfg.evaluator):
        raise UserError(f"evaluator={cfg.evaluator._target_.rsplit('.', 1)[-1]}: nasrun-train trains the "
                        f"architecture; use evaluator=train (the default)")
    for group, node in (("space", space_cfg), ("budget", cfg.budget), ("evaluator", cfg.evaluator),
                        ("dataset", cfg.dataset)):
        check_keys(group, node)
    space = build("space", space_cfg)
    arch = resolve_architecture(space, given)
    budget = build("budget", cfg.budget)
    if budget.trials != 1:
        raise UserError(f"budget.trials={budget.trials}: nasrun-train trains one architecture; drop budget.trials")
    budget = replace(budget, simulated_seconds=None)
    data = build("dataset", cfg.dataset, seed=seed, device=device)
    if searched is not None and searched.get("dataset") not in (None, data.name):
        log.warning("the search that found this architecture ran on %s; training it on %s", searched["dataset"],
                    data.name)
    evaluator = build("evaluator", cfg.evaluator, space=space, data=data, epochs=budget.epochs, seed=seed,
                      checkpoint=str(run_dir / "last.pt"))
    model_info = {"space": OmegaConf.to_container(space_cfg, resolve=True), "space_name": space.name,
                  **evaluator.describe()}
    return space, arch, budget, evaluator, model_info, data


def train_one(cfg: DictConfig, run_dir: Path, seed: int, resume: bool, device, overrides: list[str]):
    """Train the architecture of `cfg` in `run_dir`; returns (the run's SearchResult, the exported files)."""
    try:
        export = check_bool("export", cfg.export)
    except ValueError as err:
        raise UserError(str(err)) from None
    logged = (run_dir / "trials.jsonl").is_file() and (run_dir / "trials.jsonl").stat().st_size > 0
    state = (run_dir / "last.pt").is_file()
    if resume and not (logged or state):
        check_resumable(run_dir)  # says what is missing
    if state and not resume:
        raise UserError(f"{run_dir / 'last.pt'} holds a training in progress; add resume=true to continue it, or "
                        f"choose a new hydra.run.dir")
    space, arch, budget, evaluator, model_info, data = build_training(cfg, seed, device, run_dir)
    log.info("training %s (%s) for %d epochs", arch.key, space.name, budget.epochs)
    with trial_progress(budget, f"nasrun-train on {space.name}/{model_info['dataset']}") as on_trial:
        result = run_search(space, OneArchitecture(arch), evaluator, budget, run_dir, resume=resume and logged,
                            model_info=model_info, on_trial=on_trial,
                            on_start=lambda: record_start(run_dir, device, overrides))
    exported = {}
    if export and result.best is not None:
        model, info = load_best(run_dir)
        exported = export_model(model, info, run_dir, data.val_x[:16])
    return result, exported


def train_help_text() -> str:
    """`nasrun-train --help`."""
    return "\n".join([
        "usage: nasrun-train arch=ARCH [GROUP=OPTION ...] [KEY=VALUE ...]    train one architecture in full",
        "",
        "ARCH: a canonical string of the space (quoted for the shell: 'arch=3x3-36<0|5x5-48<0.1' space=macro),",
        "      a named architecture (nascnn15, with space=macro space.num_layers=15),",
        "      or a search's run directory (its best.json gives the architecture and the space)",
        "presets: nasrun-train +experiment=nascnn15   (NASCNN15 on CIFAR-10, Zoph & Le's schedule)",
        "the schedule (evaluator.KEY=VALUE): optimizer=sgd|adam lr momentum nesterov weight_decay",
        "  schedule=constant|cosine|step warmup_epochs step_epochs gamma patience restore_best label_smoothing",
        "  budget.epochs=E (training length), budget.seconds=S (wall-clock cap), dataset.augment (crop + flip)",
        "outputs in outputs/train/DATE/TIME/ (or hydra.run.dir): trials.jsonl (the trial and its epochs),",
        "  best.json, best.pt (the best epoch's weights), last.pt (the state after the last epoch),",
        "  model.pt2 (torch.export; model.onnx with pip install 'nasrun[onnx]'), nasrun-train.log",
        "continue a killed training: nasrun-train <same overrides> hydra.run.dir=DIR resume=true",
    ])


def train(cfg: DictConfig) -> dict:
    """One training from a composed conf/train.yaml (the Hydra task's body): train, export, print, summarise."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    if OmegaConf.is_missing(cfg, "arch"):
        raise UserError("arch: required; nasrun-train arch=ARCH trains a canonical string of the space, a named "
                        "architecture (nascnn15) or a run directory's best.json (nasrun-train --help)")
    settings = run_settings(cfg, extra_keys=TRAIN_KEYS)
    seed, resume, device = settings.seed, settings.resume, settings.device
    with hold_run_dir(run_dir):
        result, exported = train_one(cfg, run_dir, seed, resume, device, list(hydra_cfg.overrides.task))
    if result.best is None and result.cancelled:
        raise UserError(f"budget.seconds={cfg.budget.seconds}: the training stopped at the wall-clock cap (it counts "
                        f"the whole run); {run_dir}/last.pt holds its last finished epoch; continue with: nasrun-train "
                        f"<same overrides> hydra.run.dir={run_dir} resume=true budget.seconds=null (or more)")
    if result.best is None and not result.records:  # a resume whose wall clock was already used up
        raise UserError(f"budget.seconds={cfg.budget.seconds}: the run has used it up ({result.stop_reason}); raise "
                        f"budget.seconds (or set it to null) to go on from {run_dir}/last.pt with resume=true")
    if result.best is None:
        raise UserError(f"the training failed: {result.records[0].get('error')}")
    print_training(result.best, exported, str(run_dir))
    metrics = result.best["metrics"]
    return {"val_acc": metrics.get("val_acc"), "test_acc": metrics.get("test_acc"), "epoch": metrics.get("epoch")}


def main() -> None:
    """`nasrun-train`: Hydra composes conf/train.yaml (nasrun's config plus `arch`) and calls `train`."""
    def hint(run_dir: str) -> str:
        if not (Path(run_dir) / "last.pt").is_file():
            return "interrupted before the first epoch ended"
        return (f"interrupted; {run_dir}/last.pt holds the last finished epoch; continue with: "
                f"nasrun-train <same overrides> hydra.run.dir={run_dir} resume=true")

    sys.argv[1:] = [quote_arch(arg) for arg in sys.argv[1:]]
    hydra_app("train", train, train_help_text, hint)


def quote_arch(arg: str) -> str:
    """`arch=VALUE` as one quoted string for Hydra: canonical strings hold characters its override grammar
    reserves (`<`, `|`, `,`, `[`), and the shell's quotes are gone by now. An already quoted value is kept."""
    key, sep, value = arg.partition("=")
    if key.lstrip("+") != "arch" or not sep or value[:1] in ("'", '"'):
        return arg
    return f"{key}='{value.replace(chr(92), chr(92) * 2).replace(chr(39), chr(92) + chr(39))}'"

