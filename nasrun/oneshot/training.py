"""The supernet's training, epoch by epoch, as a long job that survives what a long job meets.

After every epoch, `supernet.pt` (written atomically) holds everything the next epoch needs: the weights, α,
both optimisers, the three random generators (the weights' data order, α's data order, the method's draws)
and the records so far. `resume=true` loads it and goes on: the run ends with the same weights, α and records,
bit for bit, as one that was never stopped (the epoch that was cut short runs again from its start).

The derived cell of every epoch (DARTS and GDAS: α's argmax per edge) is a record in `trials.jsonl`, written
after the checkpoint: a kill between the two leaves a checkpoint whose last record the log lacks, and the resume
appends it from the checkpoint. A wall-clock budget (`budget.seconds`) stops the training at an epoch boundary:
an epoch that the last one's duration says would not fit is not started, and one that overruns anyway is
abandoned within a step and the supernet taken back to the last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from nasrun.checks import UserError
from nasrun.oneshot.evaluator import table_figures
from nasrun.oneshot.methods import ArchTraining, WeightTraining
from nasrun.oneshot.supernet import Supernet
from nasrun.rundir.atomic import write_json
from nasrun.rundir.records import Status
from nasrun.spaces.nb201 import EDGE_NAMES, OPERATIONS
from nasrun.training.checkpoint import save_payload

log = logging.getLogger(__name__)

FORMAT, VERSION = "nasrun-supernet", 1
CHECKPOINT = "supernet.pt"


class OutOfTime(Exception):
    """The wall-clock budget ran out inside an epoch."""


@dataclass
class SupernetRun:
    """The supernet, α and everything that moves them, for one run: built fresh (`start`) or from its checkpoint."""

    method: WeightTraining  # a `nasrun.oneshot.methods` option
    supernet: Supernet
    alpha: torch.Tensor | None
    w_opt: torch.optim.Optimizer
    a_opt: torch.optim.Optimizer | None
    generators: dict[str, torch.Generator]  # train (data order), arch (data order), draws (Gumbel noise, paths)
    epoch: int = 0  # epochs finished
    history: list[dict] = field(default_factory=list)  # per-epoch statistics, every method
    records: list[dict] = field(default_factory=list)  # per-epoch trial records of the derived cell
    elapsed: float = 0.0  # the run's seconds at the last epoch boundary

    def state(self) -> dict:
        return {"epoch": self.epoch, "history": self.history, "records": self.records, "elapsed": self.elapsed,
                "model": self.supernet.state_dict(), "alpha": None if self.alpha is None else self.alpha.detach(),
                "w_opt": self.w_opt.state_dict(), "a_opt": None if self.a_opt is None else self.a_opt.state_dict(),
                "generators": {k: g.get_state() for k, g in self.generators.items()}}

    def load(self, state: dict) -> None:
        self.supernet.load_state_dict(state["model"])
        if self.alpha is not None:
            with torch.no_grad():
                self.alpha.copy_(state["alpha"])
        self.w_opt.load_state_dict(state["w_opt"])
        if self.a_opt is not None:
            self.a_opt.load_state_dict(state["a_opt"])
        for name, generator in self.generators.items():
            generator.set_state(state["generators"][name])
        self.epoch, self.elapsed = state["epoch"], state["elapsed"]
        self.history, self.records = list(state["history"]), list(state["records"])


def start(method, space, data, seed: int) -> SupernetRun:
    """A fresh supernet for `data`'s shapes, initialised from `seed` (torch's default stream, forked, so no
    global state changes), α from its own generator."""
    generators = {name: torch.Generator().manual_seed(seed * 3 + k) for k, name in enumerate(("train", "arch",
                                                                                               "draws"))}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        supernet = Supernet(data.in_channels, data.num_classes, space.channels, space.cells_per_stage, method.affine)
    supernet.to(data.device)
    alpha = method.init_alpha(generators["draws"], data.device)
    w_opt = method.weight_optimizer(supernet)
    a_opt = method.arch_optimizer(alpha) if alpha is not None else None
    return SupernetRun(method, supernet, alpha, w_opt, a_opt, generators)


def identity(method, space, data, seed: int) -> dict:
    """What a checkpoint must agree on to be continued (as JSON values: tuples and lists compare equal)."""
    return json.loads(json.dumps({
        "oneshot": {"method": method.name, **dataclasses.asdict(method)},
        "space": {"channels": space.channels, "cells_per_stage": space.cells_per_stage},
        "dataset": {"name": data.name, "train": len(data.train_x), "val": len(data.val_x),
                    "batch_size": data.batch_size, "augment": data.augment},
        "seed": seed}))


def save(run: SupernetRun, path: Path, ident: dict) -> None:
    save_payload(path, {"format": FORMAT, "version": VERSION, "identity": ident, "state": run.state()})


def load(run: SupernetRun, path: Path, ident: dict) -> None:
    """Continue `run` from the checkpoint at `path`, checked against `ident`; a one-line error when it is not a
    supernet checkpoint of this run's settings."""
    import pickle

    fix = (f"choose a new hydra.run.dir, or delete {path} and {path.parent / 'trials.jsonl'} to train the "
           f"supernet from its first epoch")
    try:
        saved = torch.load(path, map_location=next(run.supernet.parameters()).device, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        raise UserError(f"{path} cannot be read ({str(err).splitlines()[0][:120]}); {fix}") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT or saved.get("version") != VERSION:
        raise UserError(f"{path} is not a nasrun supernet checkpoint (version {VERSION}); {fix}")
    for section, values in ident.items():
        before = saved["identity"].get(section)
        if before != values:
            if isinstance(values, dict) and isinstance(before, dict):
                key = next((k for k in values if values[k] != before.get(k)), "")
                raise UserError(f"{section}.{key}={values.get(key)}: the supernet in {path} was trained with "
                                f"{before.get(key)}; resume with the same setting, or {fix}")
            raise UserError(f"{section}={values}: the supernet in {path} was trained with {before}; resume with "
                            f"the same setting, or {fix}")
    try:
        run.load(saved["state"])
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        raise UserError(f"{path} is damaged ({str(err).splitlines()[0][:120]}); {fix}") from None


def train_supernet(run: SupernetRun, data, run_dir: Path, ident: dict, *, append: Callable[[dict], None],
                   seconds: float | None = None, clock: Callable[[], float] = time.monotonic, table=None,
                   on_epoch: Callable[[dict], None] | None = None) -> str:
    """Train `run` to its method's last epoch (or until `seconds` of the run's time), checkpointing each epoch
    and handing each derived cell's record to `append`; returns the stop reason."""
    method = run.method
    began, offset = clock(), run.elapsed
    path = Path(run_dir) / CHECKPOINT
    arch_data = replace(data, train_x=data.val_x, train_y=data.val_y)  # α learns on the other half

    def elapsed() -> float:
        return offset + clock() - began

    steps = min(-(-len(data.train_x) // data.batch_size), -(-len(data.val_x) // data.batch_size))
    log.info("supernet (%s): weights on %d training images, %s on %d validation images; %d steps an epoch (the "
             "shorter split's batches)", method.name, len(data.train_x), "α" if run.alpha is not None else
             "nothing", len(data.val_x), steps)

    while run.epoch < method.epochs:
        # The last epoch's length says whether the next fits (the first always starts, and stops if it overruns).
        if seconds is not None and run.history and elapsed() + run.history[-1]["seconds"] > seconds:
            return (f"budget.seconds reached: stopped after epoch {run.epoch} of {method.epochs} (the next would "
                    f"end past {seconds:g} s)")
        epoch_began = clock()
        try:
            stats = run_epoch(run, data, arch_data, lambda: seconds is not None and elapsed() > seconds)
        except OutOfTime:
            if run.epoch == 0:
                raise UserError(f"budget.seconds={seconds:g}: the supernet's first epoch did not finish in time; "
                                f"raise budget.seconds") from None
            load(run, path, ident)  # the epoch cut short is dropped whole: back to the last boundary
            return (f"budget.seconds reached: stopped after epoch {run.epoch} of {method.epochs} (epoch "
                    f"{run.epoch + 1} was cut short and dropped)")
        run.epoch += 1
        run.elapsed = elapsed()
        stats["seconds"] = clock() - epoch_began
        run.history.append(stats)
        record = epoch_record(run, stats, table)
        if record is not None:
            run.records.append(record)
        save(run, path, ident)  # before the log: a record in trials.jsonl always has its checkpoint
        write_json(Path(run_dir) / "supernet.json", {"method": method.name, "epochs": method.epochs,
                                                      "history": run.history})
        if record is not None:
            append(record)
        log.info("supernet epoch %d/%d: loss %.3f, train acc %.2f%%%s, %.1f s%s", run.epoch, method.epochs,
                 stats["train_loss"], stats["train_acc"],
                 f", search acc {stats['search_acc']:.2f}%" if "search_acc" in stats else "", stats["seconds"],
                 f", cell {record['key']}" if record else "")
        if on_epoch is not None:
            on_epoch(stats)
    return f"trained {method.epochs} supernet epochs"


def run_epoch(run: SupernetRun, data, arch_data, out_of_time: Callable[[], bool]) -> dict:
    """One pass over the weights' half (paired batch by batch with α's half); the epoch's statistics."""
    method, epoch = run.method, run.epoch
    lr = method.learning_rate(epoch)
    for group in run.w_opt.param_groups:
        group["lr"] = lr
    run.supernet.train()
    totals = {"loss": 0.0, "correct": 0, "arch_loss": 0.0, "arch_correct": 0, "seen": 0, "steps": 0}
    counts = torch.zeros((len(EDGE_NAMES), len(OPERATIONS)))
    for train, arch in zip(data.train_batches(run.generators["train"]),
                           arch_data.train_batches(run.generators["arch"])):
        if out_of_time():
            raise OutOfTime
        out = method.step(run.supernet, run.alpha, run.w_opt, run.a_opt, train, arch, lr, epoch,
                          run.generators["draws"])
        n = len(train[1])
        totals["loss"] += out["loss"] * n
        totals["correct"] += out["correct"]
        totals["arch_loss"] += out.get("arch_loss", 0.0) * n
        totals["arch_correct"] += out.get("arch_correct", 0)
        totals["seen"] += n
        totals["steps"] += 1
        if "path" in out:
            counts[range(len(EDGE_NAMES)), out["path"]] += 1
        if not math.isfinite(out["loss"]):  # a float already (the step synchronised for it): free to check
            raise UserError(f"oneshot: the supernet's loss is {out['loss']} at epoch {epoch + 1}; lower oneshot.lr")
    seen = max(1, totals["seen"])
    stats: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, "steps": totals["steps"],
                             "train_loss": totals["loss"] / seen, "train_acc": 100.0 * totals["correct"] / seen}
    if isinstance(method, ArchTraining):
        stats.update(search_loss=totals["arch_loss"] / seen, search_acc=100.0 * totals["arch_correct"] / seen)
        preferences = method.preferences(run.alpha)
        if hasattr(method, "tau"):
            stats["tau"] = method.tau(epoch)
    else:  # random paths: how often each operation was drawn on each edge
        preferences = counts / counts.sum(dim=1, keepdim=True).clamp_min(1)
    stats["preferences"] = {edge: {op: round(float(p), 6) for op, p in zip(OPERATIONS, row)}
                            for edge, row in zip(EDGE_NAMES, preferences.tolist())}
    if run.alpha is not None:
        stats["alpha"] = [[float(a) for a in row] for row in run.alpha.detach().cpu().tolist()]
    return stats


def epoch_record(run: SupernetRun, stats: dict, table) -> dict | None:
    """The trial record of the epoch's derived cell (None for a method without α): its supernet accuracy on
    α's half as val_acc, the table's accuracies when a table is given, and the epoch's statistics."""
    arch = run.method.derive(run.alpha)
    if arch is None:
        return None
    metrics = {"val_acc": stats["search_acc"]}
    if table is not None:
        metrics.update(table_figures(table, arch, run.method.benchmark))
    return {"trial": stats["epoch"] - 1, "key": arch.key, "arch": arch.to_json(), "status": Status.OK.value,
            "metrics": metrics, "seconds": stats["seconds"], "elapsed": run.elapsed,
            "supernet": {"method": run.method.name, **{k: v for k, v in stats.items() if k != "seconds"}}}
