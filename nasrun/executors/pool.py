"""The pool executor: trials in `workers` processes on this machine, each keeping its evaluator between trials.

Each worker is a spawned process (no fork: CUDA and torch's thread pools do not survive one) that builds its
evaluator once, from the run's config, so the dataset is read once per worker, not once per trial. On CUDA,
`trials_per_gpu` workers share each visible GPU and each sees only its own (CUDA_VISIBLE_DEVICES); on the CPU
the workers split the cores between them (torch threads per worker), since oversubscribed OpenMP threads run
many times slower.

A worker is a process the main one can kill, so limits are hard: a trial past `trial_timeout` has its worker
killed and is recorded failed (`timeout`), and at the end of the wall-clock budget (`on_budget: cancel`) every
trial in flight is killed and recorded cancelled. A worker that dies mid-trial (SIGKILL, the OOM killer) is
replaced and its trial retried up to `max_retries` times, then recorded failed with the cause; nothing already
finished is touched. Workers never write the run directory: they send records back over a pipe.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait

from nasrun.checks import UserError, check_int
from nasrun.contracts import Outcome, Trial
from nasrun.executors import (
    check_executor_options,
    failed_outcome,
    run_trial,
    timeout_error,
    wait_seconds,
)
from nasrun.rundir.records import Status
from nasrun.training.device import usable_cores

log = logging.getLogger(__name__)


@dataclass
class Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection  # the main process's end of the pipe
    env: dict
    trial: Trial | None = None
    sent: float = 0.0  # time.monotonic() when its trial was sent
    started: float | None = None  # when the worker said it began the trial: trial_timeout counts from here


class ProcessPool:
    """workers: processes on the CPU. trials_per_gpu: on CUDA, workers per visible GPU (workers is then GPUs x
    trials_per_gpu). trial_timeout: seconds before a trial's worker is killed (null: no limit). max_retries:
    retries of a trial whose worker died. on_budget: wait | cancel, for trials in flight when budget.seconds
    runs out."""

    def __init__(self, make_evaluator, device=None, workers: int = 2, trials_per_gpu: int = 1,
                 trial_timeout: float | None = None, max_retries: int = 2, on_budget: str = "cancel"):
        self.make_evaluator = make_evaluator
        self.trial_timeout, self.on_budget = check_executor_options(trial_timeout, on_budget)
        self.max_retries = check_int("max_retries", max_retries, low=0)
        check_int("workers", workers, low=1)
        check_int("trials_per_gpu", trials_per_gpu, low=1)
        self.envs = worker_environments(device, workers, trials_per_gpu)
        self.slots = len(self.envs)
        self.workers: list[Worker] = []
        self.context = multiprocessing.get_context("spawn")
        self.payload = pickle.dumps(make_evaluator)  # pickled here, so an unpicklable factory fails at once

    # ----- the executor contract -----

    def submit(self, trial: Trial) -> None:
        if not self.workers:
            self.workers = [self._start(env) for env in self.envs]  # all at once: they start up in parallel
        worker = next(w for w in self.workers if w.trial is None)
        self._send(worker, trial)

    def completed(self, timeout: float | None = None) -> list[Outcome]:
        """Completed trials, waiting at most `timeout` seconds (None: until one completes). Deaths and timeouts
        are handled on the way: a retried trial is not completed yet."""
        until = None if timeout is None else time.monotonic() + timeout
        while True:
            busy = [w for w in self.workers if w.trial is not None]
            if not busy:
                return []
            began = [w.started for w in busy if w.started is not None]
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy],
                         timeout=wait_seconds(until, began, self.trial_timeout))
            outcomes = [o for w in busy if (o := self._collect(w, ready)) is not None]
            outcomes += self._timed_out(busy)
            if outcomes or (until is not None and time.monotonic() >= until):
                return outcomes

    def cancel(self) -> list[Outcome]:
        """Kill every busy worker; their trials are recorded cancelled."""
        outcomes = []
        for worker in self.workers:
            if worker.trial is not None:
                trial, seconds = worker.trial, time.monotonic() - worker.sent
                self._kill(worker)
                outcomes.append(failed_outcome(trial, "budget.seconds ran out; the trial's worker was stopped",
                                               seconds, status=Status.CANCELLED))
        return outcomes

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        for worker in self.workers:
            if worker.trial is None and worker.process.is_alive():
                try:
                    worker.conn.send(None)  # an idle worker exits at once
                except OSError:
                    pass
        for worker in self.workers:
            worker.process.join(timeout=5 if worker.trial is None else 0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self.workers = []

    # ----- workers -----

    def _start(self, env: dict) -> Worker:
        ours, theirs = self.context.Pipe()
        log_file = run_log_file()  # the run's nasrun.log, where a worker's warnings go too
        process = self.context.Process(target=worker_main, args=(theirs, self.payload, env, log_file), daemon=True,
                                       name="nasrun-worker")
        process.start()
        theirs.close()
        return Worker(process, ours, env)

    def _send(self, worker: Worker, trial: Trial) -> None:
        if not worker.process.is_alive():  # died while idle: its place is taken before the trial goes out
            self._replace(worker)
        worker.trial, worker.sent, worker.started = trial, time.monotonic(), None
        try:
            worker.conn.send(trial)
        except OSError:  # it died just now: the sentinel reports it, and the trial is retried like any other
            pass

    def _collect(self, worker: Worker, ready) -> Outcome | None:
        """The worker's outcome if it sent one; if it died instead, retry its trial or record the death."""
        if worker.conn in ready:
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                message = None
            if isinstance(message, Outcome):
                worker.trial = None
                return message
            if message == STARTED:  # the clock of trial_timeout starts: a worker's start-up is not the trial's
                worker.started = time.monotonic()
            if isinstance(message, str):  # the worker could not build its evaluator: a config or data problem
                raise UserError(message)
        if worker.process.sentinel not in ready and worker.process.is_alive():
            return None
        trial, seconds = worker.trial, time.monotonic() - worker.sent
        assert trial is not None, "a busy worker holds its trial"
        worker.process.join()
        cause = death_cause(worker.process.exitcode)
        self._replace(worker)
        if trial.attempt < self.max_retries:
            log.warning("trial of %s: its worker died (%s); retrying (%d of %d)", trial.arch.key, cause,
                        trial.attempt + 1, self.max_retries)
            self._send(worker, replace(trial, attempt=trial.attempt + 1))
            return None
        return failed_outcome(trial, f"WorkerDied: {cause} (tried {trial.attempt + 1} times; executor.max_retries="
                                     f"{self.max_retries})", seconds)

    def _timed_out(self, busy: list[Worker]) -> list[Outcome]:
        if self.trial_timeout is None:
            return []
        outcomes = []
        for worker in busy:
            if worker.trial is None or worker.started is None:
                continue
            seconds = time.monotonic() - worker.started
            if seconds >= self.trial_timeout:
                trial = worker.trial
                self._kill(worker)
                self._replace(worker)
                outcomes.append(failed_outcome(trial, timeout_error(self.trial_timeout, "; its worker was killed"),
                                               seconds))
        return outcomes

    def _kill(self, worker: Worker) -> None:
        worker.process.kill()
        worker.process.join()
        worker.trial = None

    def _replace(self, worker: Worker) -> None:
        """A fresh process in a dead or killed worker's place (same device and threads)."""
        worker.conn.close()
        fresh = self._start(worker.env)
        worker.process, worker.conn, worker.trial = fresh.process, fresh.conn, None


def worker_environments(device, workers: int, trials_per_gpu: int) -> list[dict]:
    """Per worker: the environment it starts with (its GPU, or its share of the CPU cores)."""
    if device is not None and getattr(device, "type", device) == "cuda":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        import torch

        gpus = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
        if not gpus:
            raise UserError("executor=pool on CUDA: no GPU is visible; use device=cpu")
        return [{"CUDA_VISIBLE_DEVICES": gpu, "NASRUN_WORKER_DEVICE": "cuda", "NASRUN_WORKER_THREADS": "1"}
                for gpu in gpus for _ in range(trials_per_gpu)]
    threads = max(1, usable_cores() // workers)
    return [{"CUDA_VISIBLE_DEVICES": "", "NASRUN_WORKER_DEVICE": "cpu", "NASRUN_WORKER_THREADS": str(threads)}
            for _ in range(workers)]


def death_cause(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


STARTED = ("started",)  # a worker's message as it begins a trial


def run_log_file() -> str | None:
    """The file this process logs to (Hydra's nasrun.log in the run directory; the latest file handler, should
    an embedding program have its own too), or None."""
    for handler in reversed(logging.getLogger().handlers):
        if isinstance(handler, logging.FileHandler):
            return handler.baseFilename
    return None


def log_to_run_file(path: str | None) -> None:
    """A worker's warnings (its own, and Python's `warnings`) go to the run's log file, marked with its pid: a
    spawned process starts with no logging set up, and its stderr is the console's, not the run's."""
    if path is None:
        return
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] worker %(process)d: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.captureWarnings(True)


def worker_main(conn, payload: bytes, env: dict, log_file: str | None = None) -> None:
    """A worker's life: take its device, build the evaluator once, then evaluate trials until told to stop."""
    os.environ.update(env)  # before torch is imported: CUDA reads CUDA_VISIBLE_DEVICES once
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle; it stops the workers
    die_with_parent()
    log_to_run_file(log_file)
    import torch

    torch.set_num_threads(int(env["NASRUN_WORKER_THREADS"]))
    device = torch.device(env["NASRUN_WORKER_DEVICE"])
    try:
        evaluator = pickle.loads(payload)(device)
    except Exception as err:  # a config or data problem: the main process reports it in one line and stops
        conn.send(f"executor: a worker could not build the evaluator: {err}")
        return
    while True:
        try:
            trial = conn.recv()
        except EOFError:  # the main process is gone
            return
        if trial is None:
            return
        conn.send(STARTED)
        conn.send(run_trial(evaluator, trial))


def die_with_parent() -> None:
    """Ask Linux to kill this worker when the search's process dies (even by SIGKILL), so no orphan keeps
    training; elsewhere the closed pipe stops it after its trial."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
