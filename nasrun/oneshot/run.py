"""One one-shot search from the composed config (`oneshot=darts|gdas|rsps`): train the supernet in the run
directory (resumable, budgeted), then read the cell out of it.

DARTS and GDAS end with their α: the final epoch's argmax cell is best.json (trainable from scratch with
`nasrun-train arch=RUN_DIR`), and every epoch's cell is a record in trials.jsonl. Random paths (RSPS) have no
α: the run goes on as an ordinary search (`strategy=...`, whatever the budget allows) whose evaluator scores
cells on the trained supernet (`evaluator=supernet`), in the same run directory.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig, OmegaConf

from nasrun.checks import UserError
from nasrun.config.groups import build, check_keys, parameters
from nasrun.evaluators.tabular import load_table
from nasrun.oneshot.training import CHECKPOINT, identity, load, start, train_supernet
from nasrun.rundir.best import save_best
from nasrun.rundir.records import Status
from nasrun.rundir.trial_log import TrialWriter, read_trials
from nasrun.search.assembly import build_search
from nasrun.search.loop import SearchResult
from nasrun.search.runner import run_search

log = logging.getLogger(__name__)


@dataclass
class OneShotResult:
    """What the command prints: the supernet's stop reason, the final cell's record (DARTS, GDAS) or the
    search on the supernet (RSPS), and the run's per-epoch records."""

    stop_reason: str
    final: dict | None
    search: SearchResult | None
    records: list[dict]


def run_oneshot(cfg: DictConfig, seed: int, device, run_dir: Path, *, resume: bool,
                on_start: Callable[[], None] | None = None, on_trial=None,
                clock: Callable[[], float] = time.monotonic) -> OneShotResult:
    """Train the supernet `cfg.oneshot` describes in `run_dir` and read its cell out (see the module doc)."""
    for group in ("oneshot", "space", "dataset", "budget"):
        check_keys(group, cfg[group])
    method = build("oneshot", cfg.oneshot)
    space = build("space", cfg.space)
    if space.name != "nb201":
        raise UserError(f"oneshot={method.name}: the supernet is NAS-Bench-201's cell space; use space=nb201, "
                        f"not space={space.name}")
    budget = build("budget", cfg.budget)
    searches = not method.has_alpha
    if searches and "supernet" not in parameters("evaluator", cfg.evaluator):
        raise UserError(f"oneshot={method.name}: random-path training leaves the choice of cell to a search that "
                        f"scores cells on the supernet; use evaluator=supernet")
    if not searches:
        log.info("oneshot=%s: the cell is α's argmax; strategy=, evaluator= and budget.trials are not used",
                 method.name)
    # The run directory first (a wrong one is the likelier mistake), then the table and the data.
    log_path = run_dir / "trials.jsonl"
    logged = read_trials(log_path, space=space)
    checkpoint = run_dir / CHECKPOINT
    if not resume and (logged or checkpoint.exists()):
        raise UserError(f"{run_dir} holds a one-shot run already ({CHECKPOINT}, trials.jsonl); add resume=true to "
                        f"continue it, or choose a new hydra.run.dir")
    if resume and not checkpoint.exists():
        raise UserError(f"resume=true: {run_dir} holds no supernet to resume ({CHECKPOINT} is missing); check "
                        f"hydra.run.dir, or drop resume=true to start a new run")
    table = load_table(method.table) if method.table is not None else None
    data = build("dataset", cfg.dataset, seed=seed, device=device)
    run = start(method, space, data, seed)
    ident = identity(method, space, data, seed)
    if resume:
        load(run, checkpoint, ident)
        log.info("resuming the supernet after epoch %d of %d", run.epoch, method.epochs)
    epoch_records = [r for r in logged if "supernet" in r]
    if epoch_records != run.records[:len(epoch_records)]:
        raise UserError(f"{log_path} holds {len(epoch_records)} supernet epochs that {checkpoint} does not (it "
                        f"is from another run, or older); restore the run's own {CHECKPOINT}, or choose a new "
                        f"hydra.run.dir")
    if on_start is not None:
        on_start()
    with TrialWriter(log_path) as writer:
        for record in run.records[len(epoch_records):]:  # killed between the checkpoint and the log
            writer.append(record)
        # Returns at once when every epoch is done (a resumed run that had finished).
        reason = train_supernet(run, data, run_dir, ident, append=writer.append, seconds=budget.seconds,
                                clock=clock, table=table, on_epoch=on_trial)
        ended = bool(logged) and logged[-1]["status"] == Status.END and logged[-1].get("supernet_epochs") == run.epoch
        if not searches and not ended:  # RSPS's log is its search's: that search writes the end record
            writer.append({"status": Status.END.value, "stop_reason": reason, "supernet_epochs": run.epoch,
                           "trials": len(run.records), "elapsed": run.elapsed})
    if not searches:
        final = run.records[-1] if run.records else None
        if final is not None:
            model_info = {"space": OmegaConf.to_container(cfg.space, resolve=True), "space_name": space.name,
                          "dataset": data.name, "in_channels": data.in_channels, "image_size": data.image_size,
                          "num_classes": data.num_classes, "oneshot": method.name, "stop_reason": reason,
                          **({"table": method.table, "benchmark": method.benchmark} if table is not None else {})}
            save_best(run_dir, final, None, model_info)
        return OneShotResult(reason, final, None, run.records)
    # Trials in the log from an earlier start (the supernet's phase writes none): the search goes on from them.
    searched = any(r["status"] in (Status.OK, Status.FAILED) for r in logged)
    return OneShotResult(reason, None, _search_on_supernet(cfg, seed, device, run_dir, run, data, budget, clock,
                                                           on_trial, searched), run.records)


def _search_on_supernet(cfg, seed, device, run_dir: Path, run, data, budget, clock, on_trial,
                        searched: bool) -> SearchResult:
    """RSPS's second half: the configured strategy, the supernet as its evaluator, what the budget has left."""
    setup = build_search(cfg, seed, device, data=data, supernet=run.supernet)
    left = None if budget.seconds is None else budget.seconds - run.elapsed
    if left is not None and left <= 0:
        raise UserError(f"budget.seconds={budget.seconds:g}: the supernet's training used it all; raise "
                        f"budget.seconds to leave time for the search on it")
    setup = replace(setup, budget=replace(setup.budget, seconds=left))
    return run_search(setup.space, setup.strategy, setup.evaluator, setup.budget, run_dir, resume=searched,
                      model_info=setup.model_info, on_trial=on_trial, clock=clock)
