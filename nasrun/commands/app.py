"""What the console scripts share: one-line errors and exit codes, SIGTERM handled like Ctrl-C, and the Hydra app
that runs a command's body with its run directory locked first.

A user mistake (a wrong key, an unknown option, a bad value, missing data) ends with one line on stderr and
exit status 2, an interrupt with one line and 130; real bugs keep their traceback. HYDRA_FULL_ERROR=1 shows
full tracebacks for everything.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from nasrun.checks import UserError, check_bool, check_int
from nasrun.commands.console import print_error
from nasrun.config.groups import build, conf_dir
from nasrun.config.validate import SEED_MAX, check_settings, describe_config_error
from nasrun.rundir.atomic import environment_error
from nasrun.rundir.lock import hold_run_dir

USER_ERROR_EXIT = 2
INTERRUPTED_EXIT = 130  # 128 + SIGINT
TERMINATED_EXIT = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers and `docker stop` send), handled like Ctrl-C: the same unwinding (the trial log
    closed, no half-written file), the same resume hint, and exit status 143."""


def _raise_terminated(signum, frame):
    raise Terminated()


def handle_sigterm() -> None:
    signal.signal(signal.SIGTERM, _raise_terminated)


@contextmanager
def one_line_errors(interrupted: str | Callable[[], str] = "interrupted", describe=None, traceback: bool = False):
    """Report a UserError (and, through `describe`, Hydra's and OmegaConf's config errors, and an OSError on a
    named path) as one line and exit with status 2; an interrupt as the line `interrupted` (a string, or a
    function giving it then) and status 130. traceback=True re-raises instead."""
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


def top_level(check):
    """Top-level keys have no constructor; their checks' ValueErrors are user errors too."""
    try:
        return check()
    except ValueError as err:
        raise UserError(str(err)) from None


@dataclass(frozen=True)
class RunSettings:
    """The top-level settings every command reads before it builds anything, checked."""

    seed: int
    resume: bool
    device: Any  # the torch.device trials run on (torch's CPU threads set on the way)


def run_settings(cfg: DictConfig, extra_keys: tuple[str, ...] = ()) -> RunSettings:
    """The composed config checked as a whole (`extra_keys`: a command's own top-level settings), then the
    seed, resume and device (which checks its keys first, like every group)."""
    check_settings(cfg, extra_keys=extra_keys)
    seed = top_level(lambda: check_int("seed", cfg.seed, low=0, high=SEED_MAX))
    resume = top_level(lambda: check_bool("resume", cfg.resume))
    return RunSettings(seed, resume, build("device", cfg.device))


def check_override_syntax(args: list[str]) -> None:
    """What Hydra's parser reports unclearly (an empty argument) or not at all (`=5` reaches Hydra's defaults
    list and fails there with a traceback; two modes such as -m and --cfg): an override is KEY=VALUE, +KEY=VALUE,
    ~KEY or a Hydra flag."""
    for arg in args:
        if not arg.strip():
            raise UserError("an empty argument: each override is KEY=VALUE (e.g. seed=1); check the quoting")
        if arg.lstrip("+~").startswith("="):
            raise UserError(f"{arg!r}: no key before '='; write KEY=VALUE, e.g. seed{arg.lstrip('+~')}")
    # Hydra refuses two of these with a bare ValueError (a traceback here): one mode per command.
    modes = [arg for arg in args if arg in HYDRA_MODES]
    if len(modes) > 1:
        raise UserError(f"{' and '.join(modes)}: one at a time; -m/--multirun runs a sweep, --cfg job prints the "
                        f"composed config of one run")


HYDRA_MODES = ("-m", "--multirun", "-r", "--run", "-c", "--cfg", "-i", "--info", "-sc", "--shell-completion")


def hydra_app(config_name: str, body, help_text, hint) -> None:
    """Run `body(cfg)` as a Hydra app on conf/<config_name>.yaml, with one-line errors, the run directory locked
    first, and `hint(run_dir)` as the line of an interrupt."""
    args = sys.argv[1:]
    handle_sigterm()
    if any(arg in ("--help", "-h") for arg in args):
        with one_line_errors():
            print_help(help_text())
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
        run_dir = HydraConfig.get().runtime.output_dir
        with one_line_errors(lambda: hint(run_dir), traceback=traceback):
            return body(cfg)

    with one_line_errors(describe=lambda err: describe_config_error(err, args), traceback=traceback):
        check_override_syntax(args)
        config_dir = conf_dir()
        sys.argv[1:] = args = keys_of_swept_groups(args, config_dir)
        # Hydra writes .hydra/ and the log into the run directory before the task runs: lock it first, so a
        # second process on a directory in use stops before touching anything (the task's lock is re-entrant).
        run_dir = _explicit_run_dir(args)
        with hold_run_dir(run_dir) if run_dir else nullcontext():
            hydra.main(version_base="1.3", config_path=config_dir, config_name=config_name)(task)()


def keys_of_swept_groups(args: list[str], config_dir: str) -> list[str]:
    """`args` with `GROUP.KEY=VALUE` written `++GROUP.KEY=VALUE` in a sweep that chooses options or presets
    (`-m +experiment=a,b proxy.cache_dir=X`). Hydra composes a sweep's config once without its swept choices
    before any job, and there the key may not exist yet (the default proxy is none; strategy.C exists only in
    guided_evolution): a plain override would fail as an unknown key although every job has it. `++` sets the
    key in each job all the same; a misspelt key still fails, in the job, where the group's constructor checks
    its keys."""
    if not any(arg in ("-m", "--multirun") for arg in args):
        return args
    groups = {p.name for p in Path(config_dir).iterdir() if p.is_dir()}
    swept = [arg for arg in args if re.fullmatch(r"\+{0,2}([\w/]+)=.*(,|range\(|choice\(|glob\().*", arg) and
             arg.lstrip("+").split("=")[0].split("/")[0] in groups]
    if not swept:
        return args
    return [f"++{arg}" if re.fullmatch(r"\w+\.[\w.]+=.*", arg) and arg.split(".")[0] in groups - {"hydra"} else arg
            for arg in args]


def print_help(text: str) -> None:
    """Print `--help`; a reader that stops early (`nasrun --help | head`) ends it quietly, without a traceback."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Python would report the broken pipe again when it flushes stdout at exit: point stdout at /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _explicit_run_dir(args: list[str]) -> Path | None:
    """The `hydra.run.dir=DIR` of a single run, when given literally (a sweep locks each job's own folder)."""
    if any(arg in ("-m", "--multirun") for arg in args):
        return None
    dirs = [arg.split("=", 1)[1] for arg in args if arg.startswith("hydra.run.dir=")]
    return Path(dirs[-1]) if dirs and dirs[-1] and "${" not in dirs[-1] else None

