"""Finishing a stopped multirun: the same command plus `hydra.sweep.dir=<the sweep's folder> resume=true`.

Hydra numbers a sweep's jobs in the order of its parameter combinations, so the same command maps each job to
the same folder again. Each job then looks at its own folder: a job whose log ends with an end record finished
and is skipped (its line is printed again), one with trials but no end record resumes, and one that never
wrote a trial starts. A job whose folder was made by different overrides (the command changed) is refused:
resuming it would mix two configurations in one log.
"""

from __future__ import annotations

from pathlib import Path

from nasrun.checks import TextEnum, UserError
from nasrun.rundir.environment import read_starts
from nasrun.rundir.trial_log import read_trials, split_log


class JobState(TextEnum):
    """Where one job of a sweep being resumed stands (not a trial's status: see `nasrun.rundir.records.Status`)."""

    NEW = "new"  # never wrote a trial: it starts
    UNFINISHED = "unfinished"  # trials but no end record: it resumes
    FINISHED = "finished"  # its log ends with an end record: it is skipped


def comparable(overrides) -> list[str]:
    """The overrides that choose what a job computes (not resume=, not hydra.* output settings)."""
    return sorted(o for o in overrides if not o.startswith(("resume=", "hydra.")))


def job_state(run_dir: Path, overrides: list[str]) -> tuple[JobState, list[dict]]:
    """(the job's state, the records so far) of one job of a sweep being resumed."""
    log_path = Path(run_dir) / "trials.jsonl"
    if not log_path.is_file() or not log_path.read_bytes().strip():
        return JobState.NEW, []
    starts = read_starts(run_dir)
    first = starts[0].get("overrides") if starts else None
    if first is not None and comparable(first) != comparable(overrides):
        raise UserError(f"{run_dir} holds a job run with '{' '.join(comparable(first))}', but this sweep gives it "
                        f"'{' '.join(comparable(overrides))}'; resume a sweep with the command that started it, "
                        f"plus hydra.sweep.dir=DIR resume=true")
    records = read_trials(log_path)  # a resumed job checks its architectures against the space as it starts
    _, _, end = split_log(records)
    return (JobState.FINISHED if end is not None else JobState.UNFINISHED), records
