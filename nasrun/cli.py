"""The console scripts: `nasrun` (a search, through Hydra), `nasrun-train` (one architecture in full, through
Hydra), `nasrun-report` and `nasrun-score`.

Each is a thin entry point around a library function (`nasrun.config` composes and builds, `nasrun.runner`
searches, `nasrun.report` and `nasrun.proxies.correlation` summarise), and all three share `one_line_errors`:
a user mistake (a wrong key, an unknown option, a bad value, missing data) ends with one line on stderr and
exit status 2, an interrupt with one line and 130; real bugs keep their traceback. HYDRA_FULL_ERROR=1 shows
full tracebacks for everything.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from contextlib import contextmanager, nullcontext
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nasrun.checks import UserError, check_bool, check_int
from nasrun.records import is_ok, reported_accuracy
from nasrun.run_lock import hold_run_dir

USER_ERROR_EXIT = 2
INTERRUPTED_EXIT = 130  # 128 + SIGINT
TERMINATED_EXIT = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers and `docker stop` send), handled like Ctrl-C: the same unwinding (the trial log
    closed, no half-written file), the same resume hint, and exit status 143."""


def _raise_terminated(signum, frame):
    raise Terminated()


def handle_sigterm() -> None:
    import signal

    signal.signal(signal.SIGTERM, _raise_terminated)


@contextmanager
def one_line_errors(interrupted: str = "interrupted", describe=None, traceback: bool = False):
    """Report a UserError (and, through `describe`, Hydra's and OmegaConf's config errors, and an OSError on a
    named path) as one line and exit with status 2; an interrupt as the line `interrupted` (a string, or a function giving it then) and status
    130. traceback=True re-raises instead."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from nasrun.console import print_error

    config_errors = (HydraException, OmegaConfBaseException) if describe else ()
    try:
        yield
    except (UserError, *config_errors) as err:
        if traceback:
            raise
        message = str(err) if isinstance(err, UserError) else describe(err)
        log_traceback_to_file(message, err)
        print_error(message)
        sys.exit(USER_ERROR_EXIT)
    except OSError as err:
        # The environment (a full disk, a read-only folder, a file in the way) where nasrun's own writes did not
        # already name it, e.g. Hydra creating the run directory.
        if traceback or err.filename is None:
            raise
        from nasrun.atomic import environment_error

        message = str(environment_error(err.filename, err, "use"))
        log_traceback_to_file(message, err)
        print_error(message)
        sys.exit(USER_ERROR_EXIT)
    except KeyboardInterrupt as err:
        if traceback:
            raise
        message = interrupted() if callable(interrupted) else interrupted
        if isinstance(err, Terminated):
            print_error("terminated (SIGTERM)" + message.removeprefix("interrupted"))
            sys.exit(TERMINATED_EXIT)
        print_error(message)
        sys.exit(INTERRUPTED_EXIT)


def log_traceback_to_file(message: str, err: BaseException) -> None:
    """The debug detail of a one-line error, for the run's log file (nasrun.log) only: the console shows the line.
    A log file that cannot take it (the disk that is full, the folder that is read-only) is skipped silently:
    the line on the console already names the cause."""
    record = logging.LogRecord("nasrun", logging.ERROR, __file__, 0, "%s", (message,),
                               (type(err), err, err.__traceback__))
    raise_exceptions, logging.raiseExceptions = logging.raiseExceptions, False  # no "--- Logging error ---"
    try:
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.FileHandler):
                handler.handle(record)
    finally:
        logging.raiseExceptions = raise_exceptions


# ----- nasrun ---------------------------------------------------------------------------------------------

def search(cfg: DictConfig) -> dict:
    """One search from a composed config (the Hydra task's body): build, run, print, return the summary."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from nasrun.config import SEED_MAX, build, build_executor, build_search, check_settings
    from nasrun.console import print_job_line, print_top_trials, trial_progress
    from nasrun.environment import record_start
    from nasrun.runner import check_resumable, run_search
    from nasrun.sweep_resume import FINISHED, UNFINISHED, job_state

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweep = hydra_cfg.mode == RunMode.MULTIRUN
    if sweep:
        _console_warnings_only()
    check_settings(cfg)
    seed = _top_level(lambda: check_int("seed", cfg.seed, low=0, high=SEED_MAX))
    resume = _top_level(lambda: check_bool("resume", cfg.resume))
    episode_size = _top_level(lambda: None if cfg.episode_size is None else
                              check_int("episode_size", cfg.episode_size, low=1))
    device = build("device", cfg.device)  # checks its keys first, like every group
    import torch

    logging.getLogger(__name__).info("device: %s, %d CPU threads", device, torch.get_num_threads())
    overrides = list(hydra_cfg.overrides.task)
    with hold_run_dir(run_dir):  # one writer per run directory, from the first check to the last write
        if sweep and resume:  # finishing a stopped sweep: each job goes on from where it stopped
            state, logged = job_state(run_dir, overrides)
            if state == FINISHED:
                return _finished_job(hydra_cfg.job.num, overrides, logged, run_dir)
            resume = state == UNFINISHED
        elif resume:
            check_resumable(run_dir)  # before any data is read: a wrong directory is the likelier mistake
        search = build_search(cfg, seed, device)
        executor = build_executor(cfg, search, seed, device)
        label = f"{type(search.strategy).__name__} on {search.space.name}/{search.model_info['dataset']}"
        # A sweep prints one line per finished job, not a table each: 30 seeds would print 1,200 lines.
        with trial_progress(search.budget, label, transient=sweep) as on_trial:
            result = run_search(search.space, search.strategy, search.evaluator, search.budget, run_dir,
                                resume=resume, model_info=search.model_info, on_trial=on_trial, scorer=search.scorer,
                                on_start=lambda: record_start(run_dir, device, overrides), executor=executor)
    counts = result.counts(search.evaluator)
    if episode_size and result.records:
        from nasrun.episodes import write_episodes

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
    from nasrun.console import print_job_line
    from nasrun.records import best_of
    from nasrun.runner import SearchResult
    from nasrun.trial_log import split_log

    trials, _, end = split_log(logged)
    best = best_of(trials)
    result = SearchResult(trials, best, f"{end['stop_reason']} (finished before; skipped)", 0, len(trials))
    print_job_line(number, overrides, result, str(run_dir))
    return {"best_val_acc": best["metrics"].get("val_acc") if best else None, "best_test_acc": reported_accuracy(best),
            "skipped": True}


def _console_warnings_only() -> None:
    """In a sweep the console shows one line per job (and warnings); INFO lines still go to each job's
    nasrun.log. Hydra configures logging afresh for every job, so this lasts one job."""
    from rich.logging import RichHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, RichHandler):
            handler.setLevel(logging.WARNING)


def _top_level(check):
    """Top-level keys have no constructor; their checks' ValueErrors are user errors too."""
    try:
        return check()
    except ValueError as err:
        raise UserError(str(err)) from None


def check_override_syntax(args: list[str]) -> None:
    """What Hydra's parser reports unclearly (an empty argument) or not at all (`=5` reaches Hydra's defaults
    list and fails there with a traceback): an override is KEY=VALUE, +KEY=VALUE, ~KEY or a Hydra flag."""
    for arg in args:
        if not arg.strip():
            raise UserError("an empty argument: each override is KEY=VALUE (e.g. seed=1); check the quoting")
        if arg.lstrip("+~").startswith("="):
            raise UserError(f"{arg!r}: no key before '='; write KEY=VALUE, e.g. seed{arg.lstrip('+~')}")


def main() -> None:
    """`nasrun`: Hydra composes the config from the arguments and calls `search`, once per job."""
    from nasrun.config import help_text

    def hint(run_dir: str) -> str:
        if not (Path(run_dir) / "trials.jsonl").is_file():
            return "interrupted before the first trial ended"
        return (f"interrupted; finished trials are in {run_dir}/trials.jsonl; continue with: "
                f"nasrun <same overrides> hydra.run.dir={run_dir} resume=true")

    hydra_app("config", search, help_text, hint)


def hydra_app(config_name: str, body, help_text, hint) -> None:
    """Run `body(cfg)` as a Hydra app on conf/<config_name>.yaml, with one-line errors, the run directory locked
    first, and `hint(run_dir)` as the line of an interrupt."""
    import hydra

    from nasrun.config import conf_dir, describe_config_error

    args = sys.argv[1:]
    handle_sigterm()
    if any(arg in ("--help", "-h") for arg in args):
        with one_line_errors():
            print(help_text())
        return
    traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    # A log file on a full disk must not print "--- Logging error ---" tracebacks: the error that follows names
    # the disk in one line.
    logging.raiseExceptions = traceback
    # Hydra prints its own multi-line report of an error and exits, unless HYDRA_FULL_ERROR=1 makes it raise:
    # set it, so errors reach one_line_errors.
    os.environ["HYDRA_FULL_ERROR"] = "1"

    def task(cfg: DictConfig):
        # Errors inside a job are reported here: past this point Hydra would log "Error executing job" first.
        from hydra.core.hydra_config import HydraConfig

        run_dir = HydraConfig.get().runtime.output_dir
        with one_line_errors(lambda: hint(run_dir), traceback=traceback):
            return body(cfg)

    with one_line_errors(describe=lambda err: describe_config_error(err, args), traceback=traceback):
        check_override_syntax(args)
        config_dir = conf_dir()
        # Hydra writes .hydra/ and the log into the run directory before the task runs: lock it first, so a
        # second process on a directory in use stops before touching anything (the task's lock is re-entrant).
        run_dir = _explicit_run_dir(args)
        with hold_run_dir(run_dir) if run_dir else nullcontext():
            hydra.main(version_base="1.3", config_path=config_dir, config_name=config_name)(task)()


def _explicit_run_dir(args: list[str]) -> Path | None:
    """The `hydra.run.dir=DIR` of a single run, when given literally (a sweep locks each job's own folder)."""
    if any(arg in ("-m", "--multirun") for arg in args):
        return None
    dirs = [arg.split("=", 1)[1] for arg in args if arg.startswith("hydra.run.dir=")]
    return Path(dirs[-1]) if dirs and dirs[-1] and "${" not in dirs[-1] else None


# ----- nasrun-train ---------------------------------------------------------------------------------------

def train(cfg: DictConfig) -> dict:
    """One training from a composed conf/train.yaml (the Hydra task's body): train, export, print, summarise."""
    from hydra.core.hydra_config import HydraConfig

    from nasrun.config import SEED_MAX, build, check_settings
    from nasrun.console import print_training
    from nasrun.train_command import TRAIN_KEYS, train_one

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    if OmegaConf.is_missing(cfg, "arch"):
        raise UserError("arch: required; nasrun-train arch=ARCH trains a canonical string of the space, a named "
                        "architecture (nascnn15) or a run directory's best.json (nasrun-train --help)")
    check_settings(cfg, extra_keys=TRAIN_KEYS)
    seed = _top_level(lambda: check_int("seed", cfg.seed, low=0, high=SEED_MAX))
    resume = _top_level(lambda: check_bool("resume", cfg.resume))
    device = build("device", cfg.device)
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


def train_main() -> None:
    """`nasrun-train`: Hydra composes conf/train.yaml (nasrun's config plus `arch`) and calls `train`."""
    from nasrun.train_command import train_help_text

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


# ----- nasrun-report --------------------------------------------------------------------------------------

def report_main(argv: list[str] | None = None) -> None:
    """`nasrun-report DIR`: the table, report.csv, anytime.png and checklist.md of the runs under DIR."""
    from nasrun import report

    parser = argparse.ArgumentParser(prog="nasrun-report", description=report.__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="a run directory or a multirun directory")
    parser.add_argument("--out", type=Path, default=None, help="where report.csv, anytime.png and checklist.md go "
                        "(default: the directory)")
    args = parser.parse_args(argv)
    handle_sigterm()
    with one_line_errors():
        report.report(args.directory, args.out)


# ----- nasrun-score ---------------------------------------------------------------------------------------

def score_main(argv: list[str] | None = None) -> None:
    """`nasrun-score`: zero-cost proxy scores of sampled architectures and their rank correlations."""
    import numpy as np

    from nasrun.proxies import correlation

    parser = argparse.ArgumentParser(prog="nasrun-score", description=correlation.__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proxies", default=",".join(correlation.SIX),
                        help="comma-separated proxy options (default: the six of Abdelfattah et al.)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("-n", "--num", type=int, default=500, help="architectures to sample uniformly (default 500)")
    size.add_argument("--all", action="store_true", help="score every architecture of the space")
    parser.add_argument("--out", type=Path, help="CSV to write (default outputs/scores/<space>-<data>-...csv)")
    parser.add_argument("--target", help="table column to correlate with (default <dataset>_test_acc200)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. space=nb201 dataset=cifar10 seed=0")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    handle_sigterm()
    hint = "interrupted; the scores so far are cached and in the CSV; rerun the same command to go on"
    with one_line_errors(hint):
        if not args.all and args.num < 1:
            raise UserError(f"--num={args.num}: must be at least 1")
        rows, results, out, target = correlation.score_space(
            args.overrides, [p for p in args.proxies.split(",") if p], None if args.all else args.num, args.out,
            args.target)
    shared = [r["shared_seconds"] for r in rows if r.get("shared_seconds") is not None]
    if results:
        correlation.print_correlations(results, target, out, float(np.mean(shared)) if shared else None)
    else:
        print(f"scores: {out} (no benchmark table for this space: no correlations)")
