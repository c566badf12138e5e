"""Fault injection: damage a run's files, its inputs, its environment or its command line, run `nasrun` as a
user would, and classify what the user gets.

Every case must end in one of two outcomes:
- RECOVERED: exit status 0, and the run's trials (keys, metrics, proxy scores), best.json's trial and best.pt's
  tensors equal those of the same run never damaged;
- ONE_LINE: a non-zero exit with one line on stderr, no traceback, and the run's files as they were (Hydra's
  `.hydra/` and `nasrun.log`, rewritten at every start, and the lock file aside). A case with a `fix` then
  undoes the cause and resumes, and must recover.
Anything else is counted against us: a TRACEBACK, a SILENTLY_WRONG result (exit 0 but a different result),
an UNCLEAR message (several lines), or CHANGED files.

The cases are in `nasrun.bench.faults.cases`; tests/test_faults.py asserts each one and
`make bench ARGS="--only faults"` prints the table with the counts. Most cases run `nasrun.commands.search.main` in this
process (a fifth of a second each, instead of three for a new interpreter); those that need a real process
(a signal, another user) run `python -m nasrun`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from nasrun.bench.faults.case import (
    CHANGED,
    KINDS,
    ONE_LINE,
    RECOVERED,
    SILENTLY_WRONG,
    SKIPPED,
    TRACEBACK,
    UNCLEAR,
    Case,
    Skip,
)
from nasrun.bench.faults.cases import CASES
from nasrun.commands import search as cli
from nasrun.rundir.trial_log import read_trials, split_log
from nasrun.spaces.nb201 import NB201Space


@dataclass
class Env:
    root: Path  # scratch folder of the whole suite
    data: Path  # the shared data folder
    cleanups: list = field(default_factory=list)  # undo mounts, stop helper processes
    holder: subprocess.Popen | None = None  # the other writer of the "two writers" case

    def cleanup(self) -> None:
        while self.cleanups:
            self.cleanups.pop()()


@dataclass
class Outcome:
    outcome: str
    message: str


def merge(base: list[str], extra: list[str]) -> list[str]:
    """base overrides with those of `extra` replacing the same key (Hydra refuses a group given twice)."""
    keys = {arg.split("=", 1)[0].lstrip("+") for arg in extra}
    return [a for a in base if a.split("=", 1)[0].lstrip("+") not in keys] + extra


def invoke(args: list[str], cwd: Path, process: dict | None = None, run_dir: Path | None = None,
           main: Callable[[], None] = cli.main):
    """(exit status, stdout, stderr) of `nasrun ARGS`: in this process, or a new one when `process` says so.
    `main`: another console script's entry point to run in process (nasrun-train's, say)."""
    if process:
        return _in_new_process(args, cwd, process, run_dir)
    argv, full_error, raise_exceptions = sys.argv, os.environ.get("HYDRA_FULL_ERROR"), logging.raiseExceptions
    sigterm = signal.getsignal(signal.SIGTERM)
    handlers, level = logging.getLogger().handlers[:], logging.getLogger().level
    out, err = io.StringIO(), io.StringIO()
    code = 0

    os.environ.pop("HYDRA_FULL_ERROR", None)
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "400"  # rich wraps at the terminal width: keep each warning on one line
    sys.argv = ["nasrun", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except Exception:  # what a user would see as a traceback: that is the finding
        err.write(traceback.format_exc())
        code = 1
    finally:
        sys.argv, logging.raiseExceptions = argv, raise_exceptions
        signal.signal(signal.SIGTERM, sigterm)
        for name, value in (("HYDRA_FULL_ERROR", full_error), ("COLUMNS", columns)):
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        root = logging.getLogger()
        for handler in root.handlers[:]:  # Hydra's handlers for this run (its log file, its console)
            if handler not in handlers:
                handler.close()
                root.removeHandler(handler)
        for handler in handlers:  # and the caller's again (pytest's log capture, say), which Hydra replaced
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)
    return code, out.getvalue(), err.getvalue()


def _in_new_process(args, cwd, process, run_dir):
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["COLUMNS"] = "200"
    command = [sys.executable, "-m", "nasrun", *args]
    if process.get("obey_permissions") and os.geteuid() == 0:  # root ignores permission bits unless it drops these
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--", *command]
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    after = process.get("sigterm_after")
    if after is not None:
        deadline = time.monotonic() + 240
        log_path = run_dir / "trials.jsonl"
        while proc.poll() is None and time.monotonic() < deadline and _lines(log_path) < after:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def _lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.is_file() else 0


def snapshot(run_dir: Path) -> dict:
    """The run's own files and their bytes (Hydra's .hydra/ and nasrun.log, and the lock, left out)."""
    if not run_dir.is_dir():
        return {}
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name not in ("nasrun.log", "run.lock") and ".hydra" not in p.parts}


def result_of(run_dir: Path) -> dict:
    """What 'the same result' means: every finished trial's key, status, metrics and proxy score, the trial
    best.json names, and best.pt's tensors."""
    import json

    import torch

    trials, _, _ = split_log(read_trials(run_dir / "trials.jsonl", repair=False))
    best = json.loads((run_dir / "best.json").read_text())
    weights = torch.load(run_dir / "best.pt") if (run_dir / "best.pt").is_file() else None
    return {"trials": [(r["trial"], r["key"], r["status"], r["metrics"].get("val_acc"), r["metrics"].get("test_acc"),
                        r.get("proxy_score")) for r in trials],
            "best": best["key"], "weights": None if weights is None else {k: v.tolist() for k, v in weights.items()}}


class Suite:
    """Runs cases in `root`; each kind's undamaged run and part run are made once and copied per case."""

    def __init__(self, root: Path, data: Path):
        self.env = Env(Path(root), Path(data))
        self._made: dict[str, Path] = {}

    def args(self, kind: str, run_dir: Path, trials: int) -> list[str]:
        base, _, _ = KINDS[kind]
        return [a.format(data=self.env.data, run=run_dir) for a in base] + \
            [f"budget.trials={trials}", f"hydra.run.dir={run_dir}"]

    def made(self, kind: str, what: str) -> Path:
        """The kind's `full` (undamaged) or `part` run directory, made on first use."""
        name = f"{kind}-{what}"
        if name not in self._made:
            run_dir = self.env.root / "made" / name
            _, full, part = KINDS[kind]
            code, out, err = invoke(self.args(kind, run_dir, full if what == "full" else part), self.env.root)
            if code != 0:
                raise RuntimeError(f"the undamaged {name} run failed: {err or out}")
            self._made[name] = run_dir
        return self._made[name]

    def run(self, case: Case, number: int) -> Outcome:
        run_dir = self.env.root / "cases" / f"{number:02d}"
        _, full, _ = KINDS[case.kind]
        try:
            if case.part:
                shutil.copytree(self.made(case.kind, "part"), run_dir, symlinks=True)
            extra = case.damage(run_dir, self.env)
            before = snapshot(run_dir)
            args = merge(self.args(case.kind, run_dir, full) + (["resume=true"] if case.part else []), extra)
            code, out, err = invoke(args, self.env.root, case.process, run_dir)
            outcome = self.classify(case, code, out, err, run_dir, before)
            if outcome.outcome == ONE_LINE and case.fix is not None:
                case.fix(run_dir, self.env)
                code, out, err = invoke(merge(self.args(case.kind, run_dir, full) + ["resume=true"], extra),
                                        self.env.root)
                after = self.classify(case, code, out, err, run_dir, before, fixed=True)
                if after.outcome != RECOVERED:
                    return Outcome(after.outcome, f"after the fix: {after.message}")
            return outcome
        except Skip as why:
            return Outcome(SKIPPED, str(why))
        finally:
            self.env.cleanup()

    def classify(self, case, code, out, err, run_dir, before, fixed=False) -> Outcome:
        lines = [line for line in err.splitlines() if line.strip()]
        if "Traceback (most recent call last)" in err + out:
            return Outcome(TRACEBACK, f"{len(err.splitlines())} lines: {lines[-1] if lines else ''}")
        if code == 0:
            same = result_of(run_dir) == result_of(self.made(case.kind, "full"))
            return Outcome(RECOVERED if same else SILENTLY_WRONG, _warnings(out + err))
        if len(lines) != 1:
            return Outcome(UNCLEAR, " / ".join(lines[-3:]) or f"exit status {code} and nothing on stderr")
        if case.unchanged and not fixed and snapshot(run_dir) != before:
            return Outcome(CHANGED, lines[0])
        return Outcome(ONE_LINE, lines[0].removeprefix("error: "))


def _warnings(text: str) -> str:
    """The warnings a recovered run printed (what the user was told), on one line."""
    found = [line.split("WARNING", 1)[1].strip() for line in text.splitlines() if "WARNING" in line]
    return " / ".join(found) or "(no warning)"


def run_all(root: Path, data: Path) -> list[tuple[str, Outcome, str]]:
    """(case name, outcome, expected outcome) of every case."""

    suite = Suite(root, data)
    return [(case.name, suite.run(case, i), case.expect) for i, case in enumerate(CASES)]


def bench(out: Path, data: Path, trials: int = 10_000, rounds: int = 5) -> dict:
    """The suite's table and counts, and what checking the log costs when resuming a `trials`-trial table run:
    reading trials.jsonl with every record validated (schema and architecture) beside parsing it alone, and
    beside the whole resume command, measured side by side (medians of `rounds`)."""
    import json
    import statistics

    root = out / "faults"
    rows = run_all(root, data)
    counts: dict[str, int] = {}
    for _, outcome, _ in rows:
        counts[outcome.outcome] = counts.get(outcome.outcome, 0) + 1
    run_dir = root / f"table-{trials}"
    args = ["space=nb201", "evaluator=tabular", f"dataset.root={data}", "strategy=random", f"budget.trials={trials}",
            f"hydra.run.dir={run_dir}"]
    code, _, err = invoke(args, root)
    if code != 0:
        raise RuntimeError(f"the {trials}-trial table run failed: {err}")
    log_path = run_dir / "trials.jsonl"
    space = NB201Space()
    timings: dict[str, list[float]] = {"parse only": [], "parse and validate": [], "whole resume command": []}
    for _ in range(rounds):
        began = time.perf_counter()
        [json.loads(line) for line in log_path.read_bytes().splitlines()]
        timings["parse only"].append(time.perf_counter() - began)
        began = time.perf_counter()
        read_trials(log_path, repair=False, space=space)
        timings["parse and validate"].append(time.perf_counter() - began)
        began = time.perf_counter()
        invoke(args + ["resume=true"], root)
        timings["whole resume command"].append(time.perf_counter() - began)
    ms = {name: 1000 * statistics.median(values) for name, values in timings.items()}
    return {"rows": [{"case": name, "outcome": o.outcome, "expected": expected, "message": o.message}
                     for name, o, expected in rows],
            "counts": counts, "resume_trials": trials, "resume_ms": ms,
            "validation_ms": ms["parse and validate"] - ms["parse only"]}


def print_results(results: dict, console) -> None:
    if "faults" not in results:
        return
    from rich.table import Table

    r = results["faults"]
    table = Table(title="fault injection: what the user gets", show_lines=False)
    for column in ("case", "outcome", "message (the line, or the warnings of a recovered run)"):
        table.add_column(column, overflow="fold")
    for row in r["rows"]:
        mark = "" if row["outcome"] in (row["expected"], SKIPPED) else f" (expected {row['expected']})"
        table.add_row(row["case"], row["outcome"] + mark, row["message"])
    console.print(table)
    counts = r["counts"]
    console.print(f"{len(r['rows'])} cases: " + ", ".join(f"{n} {name}" for name, n in counts.items()) +
                  f"; tracebacks {counts.get(TRACEBACK, 0)}, silently wrong {counts.get(SILENTLY_WRONG, 0)}",
                  highlight=False)
    ms = r["resume_ms"]
    console.print(f"resuming a {r['resume_trials']:,}-trial table run: parsing trials.jsonl {ms['parse only']:.0f} ms, "
                  f"parsing and validating {ms['parse and validate']:.0f} ms (validation {r['validation_ms']:.0f} ms, "
                  f"{r['validation_ms'] / ms['whole resume command']:.1%} of the whole resume command, "
                  f"{ms['whole resume command']:.0f} ms)", highlight=False)
