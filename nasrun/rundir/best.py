"""The best trial of a run on disk: best.json (what it is and how to rebuild it) and best.pt (its weights).

trials.jsonl is the source of truth; best.json and best.pt are derived from it. best.json records the SHA-256 of
best.pt, so damaged or replaced weights are caught when they are loaded and on resume, which rebuilds both
(retraining the best trial is deterministic for its seed).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from hydra.errors import InstantiationException
from hydra.utils import instantiate

from nasrun.checks import UserError
from nasrun.contracts import trains_in_segments
from nasrun.rundir.atomic import atomic_path, write_json
from nasrun.rundir.targets import refuse_foreign, upgrade_targets

log = logging.getLogger(__name__)

REQUIRED = ("trial", "key", "arch", "metrics")  # a trial record; the command adds how to rebuild it (space, shapes)


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_best_json(run_dir) -> dict:
    """best.json's content, checked; a missing or damaged file is a UserError naming it."""
    path = Path(run_dir) / "best.json"
    fix = "resume the run (resume=true) to rebuild it from trials.jsonl"
    if not path.is_file():
        raise UserError(f"{path} is missing", fix, path=path)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path} is not valid JSON (damaged)", fix, path=path) from None
    missing = [k for k in REQUIRED if not isinstance(info, dict) or k not in info]
    if missing:
        raise UserError(f"{path} is not a nasrun best.json (no {missing[0]!r})", fix, path=path, key=missing[0])
    return info


def weights_path(run_dir, info: dict) -> Path:
    """The weights file best.json names, which must be a plain file of the run directory: no folder, no `..`,
    no absolute path, no link (a path out of the run directory is refused, never followed)."""
    name = info.get("weights")
    where = Path(run_dir) / "best.json"
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name:
        raise UserError(f"{where}: weights={name!r} is not a file name in the run directory",
                        "restore the run's own best.json (resume=true rebuilds it)", path=where, key="weights")
    path = Path(run_dir) / name
    if path.is_symlink():
        raise UserError(f"{path} is a link (to {path.readlink()}); nasrun reads no file outside the run directory",
                        "replace it by the run's own weights file (resume=true retrains it)", path=path)
    return path


def weights_problem(run_dir, info: dict) -> str | None:
    """What is wrong with the weights best.json names (missing, damaged, replaced), or None when they are its
    own. Runs without weights (a table) and best.json files from before checksums have nothing to check."""
    if not info.get("weights"):
        return None
    path = weights_path(run_dir, info)
    if not path.is_file():
        return f"{path} is missing"
    expected = info.get("weights_sha256")
    if expected is not None and sha256_of(path) != expected:
        return f"{path} does not match the checksum in best.json (damaged or replaced)"
    return None


def cpu_weights(model) -> dict:
    """The model's state dict on the CPU, as best.pt keeps it (and as a worker sends it to the search)."""
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def save_best(run_dir: Path, record: dict, weights: dict | None, model_info: dict) -> None:
    """Write best.pt (the trial's CPU state dict), then best.json with its checksum (both atomically): best.json
    never names weights that are not on disk, and damaged weights are caught (`nasrun.rundir.best.weights_problem`)."""
    digest = None
    if weights is not None:  # evaluators that train nothing (a benchmark table) have no weights to keep
        import torch

        with atomic_path(run_dir / "best.pt") as tmp:
            torch.save(weights, tmp)
            digest = sha256_of(tmp)
    write_json(run_dir / "best.json", {**record, **model_info, "weights": "best.pt" if weights is not None else None,
                                        "weights_sha256": digest})


def ensure_best_weights(run_dir: Path, best: dict, evaluator, space, model_info: dict, kept=None) -> None:
    """On resume, trials.jsonl decides the best trial; best.json and best.pt must match it. They may not: a kill
    between the log and the save, or a damaged, missing or replaced file. Training is seeded per architecture,
    so evaluating the best one again restores exactly its weights; an evaluator without weights (a table) only
    has best.json rewritten. `kept(key)`: the run's weight store (space=morph), whose copy is used first: a
    child that inherited its weights cannot be retrained alone."""
    problem: str | None
    try:
        on_disk = read_best_json(run_dir)
    except UserError as err:
        problem = err.problem
    else:
        problem = weights_problem(run_dir, on_disk) if on_disk["key"] == best["key"] else \
            f"best.json names trial {on_disk['trial']}, not the best trial {best['trial']}"
        if problem is None:
            return
    weights = kept(best["key"]) if kept is not None else None
    if weights is not None:
        log.warning("%s; restored best.pt from the kept weights of trial %d", problem, best["trial"])
        save_best(run_dir, best, weights, model_info)
        return
    arch = space.from_json(best["arch"])
    if "epochs" in best and trains_in_segments(evaluator):  # a scheduler's best: to the epochs it reached
        metrics, model, _ = evaluator.train_segment(arch, best["epochs"], None)
    else:
        metrics, model = evaluator(arch)
    if model is None:
        log.warning("%s; rewrote best.json from trials.jsonl (trial %d)", problem, best["trial"])
    else:
        log.warning("%s; retrained trial %d (%s) to restore best.json and best.pt", problem, best["trial"],
                    best["key"])
    save_best(run_dir, best, None if model is None else cpu_weights(model), model_info)


# What best.json may ask for before anything is built: no network of nasrun's needs more, and a hostile file
# must not make the reader allocate memory it never had.
SHAPE_LIMITS = {"in_channels": (1, 64), "image_size": (1, 4096), "num_classes": (2, 100_000)}


def load_best(run_dir, device: str = "cpu", *, trust: bool = False, builders: tuple[str, ...] = ()):
    """Return `(model, info)` for the best trial of the run in `run_dir`.

    `model` is the trained network in eval mode, built from `best.json` (space config, architecture, input
    shape, classes) and loaded with `best.pt` (checked against best.json's checksum). It expects images
    normalised as in training: `(x - mean) / std` per channel on the 0-255 pixel scale (`normalize` below);
    `info` is best.json's content (metrics included), so `info["metrics"]["test_acc"]` is what the run measured
    on the test set.

    The run directory is data: its space must be one of nasrun's config groups (`builders`: the dotted paths
    of your own space builders it may name; `trust=True` imports whatever it names, for a run you trust), its
    shapes within `SHAPE_LIMITS`, and its weights a file of the run directory itself, no larger than the
    network they are for.
    """
    import torch

    run_dir = Path(run_dir)
    info = read_best_json(run_dir)
    if not info.get("weights"):
        raise UserError(f"{run_dir}: this run kept no weights (a benchmark-table run); nothing to load")
    if "space" not in info:
        raise UserError(f"{run_dir / 'best.json'} does not say how to rebuild the network (no 'space'); it was "
                        f"written by run_search without model_info, not by the nasrun command")
    where = run_dir / "best.json"
    refuse_foreign(info["space"], where, "trust=True (load_best)", allowed=builders, trust=trust, prefix="space")
    for key, (low, high) in SHAPE_LIMITS.items():
        value = info.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise UserError(f"{where}: {key}={value!r} is not a network nasrun builds (an integer in [{low}, "
                            f"{high}])", "restore the run's own best.json (resume=true rebuilds it)", path=where,
                            key=key)
    weights = weights_path(run_dir, info)
    if not weights.is_file():
        raise UserError(f"{weights} is missing", "resume the run (resume=true) to retrain the best trial",
                        path=weights)
    try:
        space = instantiate(upgrade_targets(info["space"]))
        arch = space.from_json(info["arch"])
    except (InstantiationException, ValueError, TypeError) as err:
        raise UserError(f"{where}: its space or arch cannot be rebuilt ({str(err).splitlines()[0][:200]})",
                        "restore the run's own best.json (resume=true rebuilds it)", path=where) from None
    model = space.build(arch, info["in_channels"], info["image_size"], info["num_classes"])
    expected = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    if weights.stat().st_size > 2 * expected + (1 << 20):  # a state dict's file is its tensors and a little more
        raise UserError(f"{weights}: {weights.stat().st_size:,} bytes, but the network it is for holds "
                        f"{expected:,}", "restore the run's own best.pt (resume=true retrains it)", path=weights)
    problem = weights_problem(run_dir, info)  # its checksum: read only once its size is known to be sane
    if problem:
        raise UserError(f"{problem}; resume the run (resume=true) to retrain the best trial")
    state = torch.load(weights, map_location=device, weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval(), info


def normalize(images, info: dict):
    """Normalise uint8 NCHW images the way the run's training did."""
    import torch

    mean = torch.tensor(info["mean"], device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(info["std"], device=images.device).view(1, -1, 1, 1)
    return (images.float() - mean) / std
