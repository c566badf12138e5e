"""What a finished trial adds to its record and says in the log: its proxy score beside the evaluator's result,
and its one log line (shared by the plain loop and the scheduled one)."""

from __future__ import annotations

import logging

from nasrun.rundir.records import is_ok

log = logging.getLogger("nasrun.search.loop")  # the logger these lines always came from

QUIET_BELOW_SECONDS = 0.1  # trials evaluated faster than this are logged at DEBUG, not INFO


def log_trial(record: dict) -> None:
    """One log line per finished trial (or segment); trials faster than QUIET_BELOW_SECONDS (table lookups, by
    the thousand a second) go to DEBUG: a console line costs about 1 ms through rich, more than such a trial."""
    number, metrics = record["trial"], record["metrics"]
    if not is_ok(record):
        log.warning("trial %d failed: %s", number, record["error"])
        return
    level = logging.INFO if record["seconds"] >= QUIET_BELOW_SECONDS else logging.DEBUG
    proxy = f" proxy_score={metrics['proxy_score']:.4g}" if "proxy_score" in metrics else ""
    state = "ok" if "decision" not in record else f"{record['decision']} at epoch {record['epochs']}"
    log.log(level, "trial %d %s: val_acc=%s test_acc=%s%s params=%s %s", number, state, _fmt(metrics.get("val_acc")),
            _fmt(metrics.get("test_acc")), proxy, metrics.get("params", "-"), record["key"])


def record_proxy_score(record: dict, scorer, arch) -> None:
    """Add the proxy's score of the trial's architecture (memoised: free when the strategy or the evaluator
    already scored it) and the running count of proxy evaluations. A proxy failure is noted on the trial."""
    try:
        record["proxy_score"] = scorer(arch)
    except ValueError as err:
        record["proxy_error"] = str(err)
    record["proxy_evaluations"] = scorer.evaluations


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"
