"""The Ray executor: trials as Ray tasks, on this machine or across a Ray cluster (`pip install 'nasrun[ray]'`).

Ray does the distributed part: placement by `num_cpus`/`num_gpus` per trial, the object store, and retries of a
task whose worker process or node died (`max_retries`). The run's evaluator factory, dataset included, goes into
the object store once; each Ray worker process fetches it once and keeps the evaluator it builds for every later
trial. Results come back to the search's main process, the only writer of the run directory.
"""

from __future__ import annotations

import importlib
import logging
import time
from typing import Any

from nasrun.checks import UserError, check_float, check_int
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

_EVALUATORS: dict = {}  # in each Ray worker process: factory object id -> the evaluator built from it


def first_line(err: Exception) -> str:
    """Ray's errors run to many lines; the record and the message keep the first (or the error's type)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def evaluate_in_worker(factory_ref: list, trial: Trial, threads: int) -> Outcome:
    """The Ray task. `factory_ref` is wrapped in a list so Ray passes the reference, not the value: the factory
    (and its dataset) is fetched and deserialised only on a worker's first trial."""
    import ray
    import torch

    key = factory_ref[0].hex()
    if key not in _EVALUATORS:
        torch.set_num_threads(threads)
        device = torch.device("cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu")
        _EVALUATORS[key] = ray.get(factory_ref[0])(device)
    return run_trial(_EVALUATORS[key], trial)


class RayExecutor:
    """address: null (a local Ray instance, started here), `auto` or `ray://host:port`. num_cpus, num_gpus: Ray
    resources per trial (num_cpus is also the trial's torch threads). max_retries: Ray's retries of a trial
    whose worker died. trial_timeout: seconds before the trial's worker is killed (recorded failed, timeout).
    on_budget: wait | cancel, for trials in flight when budget.seconds runs out."""

    def __init__(self, make_evaluator, address: str | None = None, num_cpus: int = 1, num_gpus: float = 0,
                 max_retries: int = 2, trial_timeout: float | None = None, on_budget: str = "cancel"):
        try:  # checked here, before the run directory is touched; joining or starting Ray waits for first use
            importlib.import_module("ray")
        except ImportError:
            raise UserError("executor=ray needs Ray, an optional extra: pip install 'nasrun[ray]'") from None
        self.make_evaluator = make_evaluator
        self.address = address
        self.num_cpus = check_int("num_cpus", num_cpus, low=1)
        self.num_gpus = check_float("num_gpus", num_gpus, low=0.0)
        self.max_retries = check_int("max_retries", max_retries, low=0)
        self.trial_timeout, self.on_budget = check_executor_options(trial_timeout, on_budget)
        self.ray: Any = None  # the ray module, connected on first use: building the config option starts nothing
        self.running: dict = {}  # ObjectRef -> (trial, time.monotonic() at submission)
        self._slots: int | None = None

    @property
    def slots(self) -> int:
        """Trials the cluster can run at once with these resources per trial (asked once, when joining it)."""
        if self._slots is None:
            self._slots = self._count_slots()
        return self._slots

    def _count_slots(self) -> int:
        ray = self._connect()
        resources = ray.cluster_resources()
        slots = int(resources.get("CPU", 1) // self.num_cpus)
        if self.num_gpus > 0:
            slots = min(slots, int(resources.get("GPU", 0) / self.num_gpus + 1e-9))
            if slots < 1:
                raise UserError(f"executor.num_gpus={self.num_gpus:g}: the Ray cluster has "
                                f"{resources.get('GPU', 0):g} GPUs; set executor.num_gpus=0 to run on CPUs")
        return max(1, slots)

    def submit(self, trial: Trial) -> None:
        self._connect()
        task = self.task.options(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=self.max_retries)
        self.running[task.remote([self.factory], trial, self.num_cpus)] = (trial, time.monotonic())

    def completed(self, timeout: float | None = None) -> list[Outcome]:
        if not self.running:
            return []
        ray = self._connect()
        until = None if timeout is None else time.monotonic() + timeout
        while True:
            started = [began for _, began in self.running.values()]
            ready, _ = ray.wait(list(self.running), num_returns=1,
                                timeout=wait_seconds(until, started, self.trial_timeout))
            if ready:  # whatever else has finished by now comes along
                ready, _ = ray.wait(list(self.running), num_returns=len(self.running), timeout=0)
            outcomes = [self._result(ref) for ref in ready] + self._timed_out()
            if outcomes or (until is not None and time.monotonic() >= until):
                return outcomes

    def cancel(self) -> list[Outcome]:
        """Stop every trial in flight (Ray kills their workers); they are recorded cancelled."""
        outcomes = []
        for ref in list(self.running):
            trial, began = self.running.pop(ref)
            self.ray.cancel(ref, force=True)
            outcomes.append(failed_outcome(trial, "budget.seconds ran out; Ray stopped the trial",
                                           time.monotonic() - began, status=Status.CANCELLED))
        return outcomes

    def __enter__(self):
        self._connect()  # a cluster that cannot be joined stops the run before it writes anything
        return self

    def __exit__(self, *exc) -> None:
        if self.ray is None:
            return
        for ref in self.running:
            self.ray.cancel(ref, force=True)
        self.running.clear()
        if self.started_here:
            self.ray.shutdown()
        self.ray = None

    def _result(self, ref) -> Outcome:
        trial, began = self.running.pop(ref)
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as err:  # the worker or node died more than max_retries times
            return failed_outcome(trial, f"{type(err).__name__}: {first_line(err)} (executor.max_retries="
                                         f"{self.max_retries})",
                                  time.monotonic() - began)

    def _timed_out(self) -> list[Outcome]:
        if self.trial_timeout is None:
            return []
        outcomes = []
        for ref, (trial, began) in list(self.running.items()):
            seconds = time.monotonic() - began
            if seconds >= self.trial_timeout:
                del self.running[ref]
                self.ray.cancel(ref, force=True)
                outcomes.append(failed_outcome(trial, timeout_error(self.trial_timeout, "; Ray killed its worker"),
                                               seconds))
        return outcomes

    def _connect(self):
        """Import Ray, join or start its instance, and put the evaluator factory into the object store once."""
        if self.ray is not None:
            return self.ray
        import ray

        self.started_here = not ray.is_initialized()
        if self.started_here:
            try:
                if self.address is None:
                    ray.init(num_cpus=usable_cores(), include_dashboard=False, log_to_driver=False,
                             logging_level=logging.ERROR)
                else:
                    ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR)
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise UserError(f"executor.address={self.address}: cannot join a Ray cluster ({first_line(err)}); "
                                f"start one with `ray start --head`, or set executor.address=null for a local "
                                f"instance") from None
        self.task = ray.remote(evaluate_in_worker)
        self.factory = ray.put(self.make_evaluator)
        self.ray = ray
        return ray
