"""The search loop: ask -> deduplicate -> evaluate -> tell -> log, until the budget is spent.

The runner owns everything a strategy must not: the budget, deduplication, the trial log, resume, the best
model on disk. It knows nothing of Hydra; `nasrun.cli` builds the pieces from the config and calls `run_search`.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from nasrun.atomic import atomic_path, write_json
from nasrun.best import read_best_json, sha256_of, weights_problem
from nasrun.checks import UserError, check_float, check_int
from nasrun.contracts import measures_test_apart, trains
from nasrun.deadline import TrialCancelled
from nasrun.run_lock import hold_run_dir
from nasrun.records import CANCELLED, END, FAILED, OK, best_of, better, fitness, is_ok, record_problem
from nasrun.trial_log import TrialWriter, read_trials, split_log

log = logging.getLogger(__name__)

MAX_REPEATS = 1000  # consecutive already-evaluated proposals before we conclude the strategy is stuck
QUIET_BELOW_SECONDS = 0.1  # trials evaluated faster than this are logged at DEBUG, not INFO


@dataclass(frozen=True)
class Budget:
    """When the search stops: after `trials` evaluated architectures, after `seconds` of wall clock (a trial
    still running then is cancelled between two batches and run again on resume), or when the evaluators'
    summed cost would pass `simulated_seconds` (NAS-Bench-201's protocol: the trial that would cross it is not
    counted). Any of them may be null; at least one must be set. `epochs` is the training length per trial."""

    trials: int | None = 20
    epochs: int = 1
    seconds: float | None = None
    simulated_seconds: float | None = None

    def __post_init__(self):
        if self.trials is not None:
            check_int("trials", self.trials, low=1)
        check_int("epochs", self.epochs, low=1)
        if self.seconds is not None:
            check_float("seconds", self.seconds, low=0.0, low_open=True)
        if self.simulated_seconds is not None:
            check_float("simulated_seconds", self.simulated_seconds, low=0.0, low_open=True)
        if self.trials is None and self.seconds is None and self.simulated_seconds is None:
            raise ValueError("trials=null: with seconds and simulated_seconds null too the search would never "
                             "stop; set budget.trials, budget.seconds or budget.simulated_seconds")

    def trials_reached(self, count: int) -> bool:
        return self.trials is not None and count >= self.trials


@dataclass
class SearchResult:
    records: list[dict]  # every trial of the run, resumed ones included, in trial order
    best: dict | None  # the best ok trial by val_acc
    stop_reason: str
    evaluated: int  # trials evaluated by this process (not replayed from the log)
    replayed: int  # trials taken from trials.jsonl on resume
    repeats: int = 0  # proposals of already-evaluated architectures, answered from the records
    proxy_evaluations: int = 0  # distinct architectures the proxy scored (strategy, evaluator and log together)
    cancelled: dict | None = None  # the trial the wall-clock budget cut short (recorded, run again on resume)

    def counts(self, evaluator) -> dict:
        """Trainings (or table lookups standing in for them) and proxy evaluations, counted apart."""
        trained = sum(1 for r in self.records if is_ok(r)) if trains(evaluator) else 0
        return {"trials": len(self.records), "trained": trained, "proxy_evaluations": self.proxy_evaluations}


def save_best(run_dir: Path, record: dict, model, model_info: dict) -> None:
    """Write best.pt, then best.json with its checksum (both atomically): best.json never names weights that are
    not on disk, and damaged weights are caught (`nasrun.best.weights_problem`)."""
    digest = None
    if model is not None:  # evaluators that train nothing (a benchmark table) have no weights to keep
        import torch

        weights = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        with atomic_path(run_dir / "best.pt") as tmp:
            torch.save(weights, tmp)
            digest = sha256_of(tmp)
    write_json(run_dir / "best.json", {**record, **model_info, "weights": "best.pt" if model is not None else None,
                                        "weights_sha256": digest})


def run_search(space, strategy, evaluator, budget: Budget, run_dir: Path, *, resume: bool = False,
               model_info: dict | None = None, on_trial: Callable[[dict], None] | None = None,
               clock: Callable[[], float] = time.monotonic, scorer=None,
               on_start: Callable[[], None] | None = None) -> SearchResult:
    """Run one search in `run_dir` and return every trial.

    resume: replay `trials.jsonl` into the fresh `strategy`, then go on. Replay feeds the strategy the same
    ask/tell sequence the first run made (recorded results stand in for evaluation), so a seeded strategy
    proposes exactly what the uninterrupted run would have, and no recorded trial is evaluated again.
    model_info: what best.json needs besides the trial to rebuild the network (space config, shapes).
    scorer: the run's zero-cost proxy (or None); every trial records its score beside the evaluator's result.
    on_start: called once the log has been read and checked, before anything is written (the command records
    the environment there, so a refused resume leaves the run directory as it was).
    """
    run_dir = Path(run_dir)
    with hold_run_dir(run_dir):  # one writer per run directory (re-entrant: the command holds it already)
        return _run_search(space, strategy, evaluator, budget, run_dir, resume, model_info, on_trial, clock, scorer,
                           on_start)


def _run_search(space, strategy, evaluator, budget, run_dir, resume, model_info, on_trial, clock, scorer, on_start):
    log_path = run_dir / "trials.jsonl"
    model_info = model_info or {}
    logged = read_trials(log_path, space=space)  # every record checked, its arch by the space
    if logged and not resume:
        raise UserError(f"{log_path} already holds {len(logged)} records; add resume=true to continue that run, "
                        f"or choose a new hydra.run.dir")
    # Cancelled trials run again and end records are only marks: what resumes is the finished trials.
    previous, _, _ = split_log(logged)
    if resume and not logged:
        check_resumable(run_dir)
    if resume:
        log.info("resuming %s: %d recorded trials", run_dir, len(previous))
    if on_start is not None:
        on_start()
    best_recorded = best_of(previous)
    if resume and best_recorded is not None:
        # Before any new trial: the log decides the best so far, and best.json and best.pt must match it.
        ensure_best_weights(run_dir, best_recorded, evaluator, space, model_info)
    pending = {rec["key"]: rec for rec in previous}  # recorded trials not yet replayed
    records: list[dict] = []
    done: dict[str, dict] = {}  # key -> record, for deduplication
    best = None
    cancelled = None
    evaluated = replayed = repeats = streak = 0
    offset = logged[-1].get("elapsed", 0.0) if logged else 0.0
    simulated = 0.0  # summed cost of the trials so far, for evaluators that report one (a benchmark table)
    start = clock()
    # The wall-clock budget as a deadline on the same clock: trials check it between batches.
    deadline = None if budget.seconds is None else start + budget.seconds - offset
    stop_reason = "budget.trials reached"

    def finish(arch, record):
        nonlocal best, simulated
        records.append(record)
        done[record["key"]] = record
        simulated = max(simulated, record.get("simulated", 0.0))
        strategy.tell(arch, fitness(record))
        if better(record, best):
            best = record
        if on_trial:
            on_trial(record)

    with TrialWriter(log_path) as writer:
        while True:
            if budget.trials_reached(len(records)):
                break
            if deadline is not None and clock() >= deadline:
                stop_reason = "budget.seconds reached"
                break
            if budget.simulated_seconds is not None and simulated >= budget.simulated_seconds:
                stop_reason = "budget.simulated_seconds reached"
                break
            if len(done) >= len(space):
                stop_reason = f"space exhausted: all {len(space)} architectures evaluated"
                break
            arch = strategy.ask()
            key = arch.key
            if key in done:
                # Not evaluated again (and free on the simulated clock): the strategy hears the recorded result
                # and asks again.
                repeats += 1
                streak += 1
                strategy.tell(arch, fitness(done[key]))
                if streak >= MAX_REPEATS:
                    stop_reason = f"the strategy proposed {MAX_REPEATS} evaluated architectures in a row"
                    break
                continue
            streak = 0
            if key in pending:
                finish(arch, pending.pop(key))
                replayed += 1
                continue
            if pending:
                # The strategy no longer retraces the recorded run (its config changed, or trials ran in
                # parallel). Keep every recorded trial anyway: tell them all, then go on from here.
                log.warning("resumed run diverges from its log at trial %d; replaying the remaining %d recorded "
                            "trials as they are", len(records), len(pending))
                for rec in list(pending.values()):
                    finish(space.from_json(rec["arch"]), rec)
                    replayed += 1
                pending.clear()
                if budget.trials_reached(len(records)):
                    break
            record, model = evaluate_trial(evaluator, arch, len(records), deadline,
                                           wants_test=lambda rec: better(rec, best))
            if scorer is not None and record["status"] != CANCELLED:
                record_proxy_score(record, scorer, arch)
            record["elapsed"] = offset + clock() - start
            if record["status"] == CANCELLED:
                # Recorded (the time was spent) but never ok and never the best; a resume runs it again.
                writer.append(record)
                cancelled = record
                stop_reason = "budget.seconds reached"
                log.info("trial %d cancelled: %s", record["trial"], record["error"])
                break
            cost = record["metrics"].get("cost")
            if cost is not None or budget.simulated_seconds is not None:
                if cost is None and is_ok(record):
                    raise UserError(f"budget.simulated_seconds: the evaluator reported no cost for trial "
                                    f"{record['trial']}; budget by budget.trials or budget.seconds instead")
                cost = cost or 0.0  # a failed trial costs nothing on the simulated clock
                if budget.simulated_seconds is not None and simulated + cost > budget.simulated_seconds:
                    # NAS-Bench-201's protocol: the evaluation that would cross the budget does not count.
                    stop_reason = "budget.simulated_seconds reached"
                    log.debug("trial %d would end at %.0f simulated s; not counted", record["trial"], simulated + cost)
                    break
                record["simulated"] = simulated + cost
            evaluated += 1
            writer.append(record)
            if better(record, best):
                save_best(run_dir, record, model, model_info)
            finish(arch, record)

        log.info("search stopped: %s (%d trials, %d evaluated now, %d replayed, %d repeats answered from records)",
                 stop_reason, len(records), evaluated, replayed, repeats)
        result = SearchResult(records, best, stop_reason, evaluated, replayed, repeats,
                              scorer.evaluations if scorer is not None else 0, cancelled)
        if best is not None:
            # The search's totals beside its best trial: trainings and proxy evaluations counted apart.
            path = run_dir / "best.json"
            info = {**read_best_json(run_dir), "counts": result.counts(evaluator), "stop_reason": stop_reason}
            write_json(path, info)
        # The end record: the run finished (a report marks runs without one as unfinished).
        writer.append({"status": END, "stop_reason": stop_reason, **result.counts(evaluator),
                       "cancelled": cancelled["trial"] if cancelled else None, "elapsed": offset + clock() - start})
    return result


def check_resumable(run_dir: Path) -> None:
    """resume=true needs a run directory whose trials.jsonl holds at least one record."""
    log_path = Path(run_dir) / "trials.jsonl"
    if not log_path.is_file() or not log_path.read_bytes().strip():
        raise UserError(f"resume=true: {run_dir} holds no trials to resume (trials.jsonl is "
                        f"{'empty' if log_path.is_file() else 'missing'}); check hydra.run.dir, or drop "
                        f"resume=true to start a new run")


def record_proxy_score(record: dict, scorer, arch) -> None:
    """Add the proxy's score of the trial's architecture (memoised: free when the strategy or the evaluator
    already scored it) and the running count of proxy evaluations. A proxy failure is noted on the trial."""
    try:
        record["proxy_score"] = scorer(arch)
    except ValueError as err:
        record["proxy_error"] = str(err)
    record["proxy_evaluations"] = scorer.evaluations


def evaluate_trial(evaluator, arch, number: int, deadline: float | None = None,
                   wants_test: Callable[[dict], bool] = lambda record: False) -> tuple[dict, object]:
    """Evaluate one architecture; any exception (NaN loss, out of memory, a build error) makes a failed record,
    the wall-clock deadline a cancelled one. A trial that `wants_test` (the best so far) is also measured on the
    test split when the evaluator left that out (`evaluator.test`)."""
    began = time.perf_counter()
    record = {"trial": number, "arch": arch.to_json(), "key": arch.key}
    try:
        metrics, model = evaluator(arch, deadline=deadline)
        record.update(status=OK, metrics=metrics, seconds=0.0)
        problem = record_problem(record)
        if problem is not None:  # never log what a resume could not read back: a NaN accuracy, a negative cost
            raise ValueError(f"the evaluator returned {problem}")
        if "test_acc" not in metrics and measures_test_apart(evaluator) and model is not None and wants_test(record):
            metrics.update(evaluator.test(model, deadline=deadline))
    except TrialCancelled as err:
        record.update(status=CANCELLED, metrics={}, seconds=time.perf_counter() - began, error=str(err))
        return record, None
    except Exception as err:  # a failing trial must not end the search; the record keeps the error
        log.warning("trial %d failed: %s: %s", number, type(err).__name__, err)
        log.debug("".join(traceback.format_exception(err)))
        _release_cuda_memory()
        record.update(status=FAILED, metrics={}, seconds=time.perf_counter() - began,
                      error=f"{type(err).__name__}: {err}")
        return record, None
    record["seconds"] = time.perf_counter() - began
    # A table lookup makes thousands of trials a second; a console line each would cost more than the trial
    # (about 1 ms through rich). Those go to DEBUG: trials.jsonl holds every trial anyway.
    level = logging.INFO if record["seconds"] >= QUIET_BELOW_SECONDS else logging.DEBUG
    proxy = f" proxy_score={metrics['proxy_score']:.4g}" if "proxy_score" in metrics else ""
    log.log(level, "trial %d ok: val_acc=%s test_acc=%s%s params=%s %s", number, _fmt(metrics.get("val_acc")),
            _fmt(metrics.get("test_acc")), proxy, metrics.get("params", "-"), arch.key)
    return record, model


def ensure_best_weights(run_dir: Path, best: dict, evaluator, space, model_info: dict) -> None:
    """On resume, trials.jsonl decides the best trial; best.json and best.pt must match it. They may not: a kill
    between the log and the save, or a damaged, missing or replaced file. Training is seeded per architecture,
    so evaluating the best one again restores exactly its weights; an evaluator without weights (a table) only
    has best.json rewritten."""
    try:
        on_disk = read_best_json(run_dir)
    except UserError as err:
        problem = str(err).split(";")[0]
    else:
        problem = weights_problem(run_dir, on_disk) if on_disk["key"] == best["key"] else \
            f"best.json names trial {on_disk['trial']}, not the best trial {best['trial']}"
        if problem is None:
            return
    metrics, model = evaluator(space.from_json(best["arch"]))
    if model is None:
        log.warning("%s; rewrote best.json from trials.jsonl (trial %d)", problem, best["trial"])
    else:
        log.warning("%s; retrained trial %d (%s) to restore best.json and best.pt", problem, best["trial"],
                    best["key"])
    save_best(run_dir, best, model, model_info)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _release_cuda_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
