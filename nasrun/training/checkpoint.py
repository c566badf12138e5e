"""last.pt: the training state of one architecture after its latest epoch, so a killed `nasrun-train` goes on
where it stopped (`resume=true`) and ends with the same weights as an uninterrupted run.

Written atomically after every epoch (a kill mid-write leaves the previous epoch's file). Read back with
`weights_only=True` (no pickled code runs) and checked: it must be a nasrun training state for the same
architecture, data and training settings, or the resume stops with one line saying what differs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from nasrun.checks import UserError
from nasrun.rundir.atomic import atomic_path
from nasrun.training.train import STATE_KEYS

FORMAT = "nasrun-training-state"
VERSION = 1


def identity(key: str, config, data) -> dict:
    """What a checkpoint must agree on to be continued: the architecture, every training setting, the data."""
    return {"key": key, "config": dataclasses.asdict(config),
            "data": {"name": data.name, "train": len(data.train_x), "val": len(data.val_x),
                     "batch_size": data.batch_size, "augment": data.augment}}


def save_checkpoint(path: Path, state: dict, ident: dict) -> None:
    save_payload(path, checkpoint_payload(state, ident))


def save_payload(path: Path, payload: dict) -> None:
    """Write a checkpoint file atomically (a kill mid-write leaves the previous one); a full or read-only disk
    is a one-line error."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path, ident: dict, device) -> dict | None:
    """The training state in `path` (None when there is none yet), checked against `ident`."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        return None
    restart = f"delete {path} to train from the first epoch"
    fix = f"{restart}, or choose a new hydra.run.dir"
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        raise UserError(f"{path} cannot be read ({str(err).splitlines()[0][:120]}); {fix}") from None
    return check_saved(saved, ident, path, fix, restart)


def check_saved(saved, ident: dict, where, fix: str, restart: str) -> dict:
    """The training state in a checkpoint read back (`saved`), checked against `ident`; a UserError naming
    `where` (the file) and the fix when it is not a nasrun training state of this architecture and setting."""
    path = where
    if not isinstance(saved, dict) or saved.get("format") != FORMAT or not isinstance(saved.get("state"), dict):
        raise UserError(f"{path} is not a nasrun training state; {fix}")
    if saved.get("version") != VERSION:
        raise UserError(f"{path} is version {saved.get('version')} of the training state, this nasrun reads "
                        f"{VERSION}; {fix}")
    missing = [k for k in STATE_KEYS if k not in saved["state"]]
    if missing:
        raise UserError(f"{path} is incomplete (no {missing[0]!r}); {fix}")
    if saved.get("key") != ident["key"]:
        raise UserError(f"{path} trains architecture {saved.get('key')}, not {ident['key']}; {fix}")
    for section in ("config", "data"):
        for name, value in ident[section].items():
            before = saved.get(section, {}).get(name)
            if before != value:
                where = "evaluator" if section == "config" else "dataset"
                raise UserError(f"{where}.{name}={value}: the training in {path} used {before}; resume with the "
                                f"same setting, or {restart}")
    return saved["state"]


def checkpoint_payload(state: dict, ident: dict) -> dict:
    """What a checkpoint file holds: the training state beside what it must agree on to be continued."""
    return {"format": FORMAT, "version": VERSION, **ident, "state": state}


def read_payload(path: Path) -> dict:
    """A segment checkpoint written by the runner, read back with weights_only=True (no pickled code runs);
    the worker that continues it checks it against its own training (`check_saved`)."""
    import pickle

    import torch

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        raise UserError(f"{path} cannot be read ({str(err).splitlines()[0][:120]})",
                        "delete it (the trial then trains again from its first epoch) or choose a new "
                        "hydra.run.dir", path=path) from None
    if not isinstance(saved, dict):
        raise UserError(f"{path} is not a nasrun training state", "delete it", path=path)
    return saved
