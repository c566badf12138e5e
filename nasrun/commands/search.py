"""`nasrun`: one search (or one job of a sweep) from the composed config: build, run, print."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from rich.logging import RichHandler

from nasrun.checks import UserError, check_int
from nasrun.commands.app import hydra_app, run_settings, top_level
from nasrun.commands.console import print_job_line, print_top_trials, trial_progress
from nasrun.commands.help import help_text
from nasrun.commands.oneshot import oneshot_search
from nasrun.reports.episodes import write_episodes
from nasrun.rundir.environment import record_start
from nasrun.rundir.lock import hold_run_dir
from nasrun.rundir.records import best_of, is_ok, reported_accuracy
from nasrun.rundir.sweep_resume import JobState, job_state
from nasrun.rundir.trial_log import split_log
from nasrun.search.assembly import build_executor, build_search
from nasrun.search.loop import SearchResult
from nasrun.search.runner import check_resumable
from nasrun.training.device import cpu_threads

log = logging.getLogger(__name__)


def search(cfg: DictConfig) -> dict:
    """One search from a composed config (the Hydra task's body): build, run, print, return the summary."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweep = hydra_cfg.mode == RunMode.MULTIRUN
    if sweep:
        _console_warnings_only()
    settings = run_settings(cfg)
    seed, resume, device = settings.seed, settings.resume, settings.device
    episode_size = top_level(lambda: None if cfg.episode_size is None else
                             check_int("episode_size", cfg.episode_size, low=1))
    log.info("device: %s, %d CPU threads", device, cpu_threads())
    overrides = list(hydra_cfg.overrides.task)
    with hold_run_dir(run_dir):  # one writer per run directory, from the first check to the last write
        if sweep and resume:  # finishing a stopped sweep: each job goes on from where it stopped
            state, logged = job_state(run_dir, overrides)
            if state is JobState.FINISHED:
                return _finished_job(hydra_cfg.job.num, overrides, logged, run_dir)
            # A supernet killed before its first record has a checkpoint and an empty log: it goes on too.
            resume = state is JobState.UNFINISHED or (cfg.get("oneshot") is not None and
                                                      (run_dir / "supernet.pt").is_file())
        elif resume and cfg.get("oneshot") is None:
            check_resumable(run_dir)  # before any data is read: a wrong directory is the likelier mistake
        if cfg.get("oneshot") is not None:  # a supernet, trained and read out: nasrun.oneshot
            return oneshot_search(cfg, seed, device, run_dir, resume, overrides, hydra_cfg.job.num if sweep else None)
        search = build_search(cfg, seed, device)
        executor = build_executor(cfg, search, seed, device)
        label = f"{type(search.strategy).__name__} on {search.space.name}/{search.model_info['dataset']}"
        # A sweep prints one line per finished job, not a table each: 30 seeds would print 1,200 lines.
        with trial_progress(search.budget, label, transient=sweep) as on_trial:
            result = search.run(run_dir, resume=resume, on_trial=on_trial, executor=executor,
                                on_start=lambda: record_start(run_dir, device, overrides))
    counts = result.counts(search.evaluator)
    if episode_size and result.records:
        write_episodes(run_dir, result.records, episode_size)
    if sweep:
        print_job_line(hydra_cfg.job.num, overrides, result, str(run_dir))
    else:
        print_top_trials(result.records, str(run_dir), result.stop_reason, counts=counts, cancelled=result.cancelled)
    if result.best is None and result.cancelled and not result.records:
        raise UserError(f"budget.seconds={search.budget.seconds}: the first trial did not finish in time (cancelled; "
                        f"resume=true hydra.run.dir={run_dir} runs it again); raise budget.seconds")
    if result.best is None:
        first = next((r.get("error") for r in result.records if not is_ok(r)), "no trials ran")
        raise UserError(f"no trial succeeded ({len(result.records)} failed); first error: {first}")
    return {"best_val_acc": result.best["metrics"].get("val_acc"), "best_test_acc": reported_accuracy(result.best),
            **counts}


def _finished_job(number: int, overrides: list[str], logged: list[dict], run_dir: Path) -> dict:
    """A job that finished before the sweep was stopped: its line again, from its log, and nothing run."""
    trials, _, end = split_log(logged)
    assert end is not None, "a finished job's log ends with its end record"
    best = best_of(trials)
    result = SearchResult(trials, best, f"{end['stop_reason']} (finished before; skipped)", 0, len(trials))
    print_job_line(number, overrides, result, str(run_dir))
    return {"best_val_acc": best["metrics"].get("val_acc") if best else None, "best_test_acc": reported_accuracy(best),
            "skipped": True}


def _console_warnings_only() -> None:
    """In a sweep the console shows one line per job (and warnings); INFO lines still go to each job's
    nasrun.log. Hydra configures logging afresh for every job, so this lasts one job."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, RichHandler):
            handler.setLevel(logging.WARNING)


def main() -> None:
    """`nasrun`: Hydra composes the config from the arguments and calls `search`, once per job."""
    def hint(run_dir: str) -> str:
        if not (Path(run_dir) / "trials.jsonl").is_file():
            return "interrupted before the first trial ended"
        return (f"interrupted; finished trials are in {run_dir}/trials.jsonl; continue with: "
                f"nasrun <same overrides> hydra.run.dir={run_dir} resume=true")

    hydra_app("config", search, help_text, hint)

