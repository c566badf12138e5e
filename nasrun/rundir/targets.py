"""The code a run directory names, read back: a run directory is data, never code.

A saved config (best.json's `space`, `.hydra/config.yaml`) names the class or function it was built from, and
Hydra would import and call whatever it names (`builtins.open` with a path of the writer's choosing, say). So
every reader that builds something from a run's files first passes the saved node to `refuse_foreign`: each
`_target_` (and a space's `builder`, which GenericSpace imports) must be one that nasrun's own config groups
name, in the installed package's conf/, or one the caller allows (the builder a user names on their own
command line). Anything else is refused in one line naming the file, the key and the target, unless the
caller opts in to trusting whoever wrote the run (`trust`), which is logged.

Runs written before nasrun's modules moved (the package took its current layout in 0.3) name the old paths:
`current_target` maps each to where it lives now, and `upgrade_targets` applies it to a saved node.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from omegaconf import OmegaConf

from nasrun.checks import UserError
from nasrun.config.groups import conf_dir

log = logging.getLogger(__name__)

NAMING_KEYS = ("_target_", "builder")  # the keys whose value is code to import

# Old path -> its home since the layout change. Only targets a config group ever named need a line: those are
# the only paths a run directory can hold.
MOVED = {
    "nasrun.runner.Budget": "nasrun.search.budget.Budget",
    "nasrun.device.select_device": "nasrun.training.device.select_device",
    "nasrun.data.fashion_mnist": "nasrun.data.builtin.fashion_mnist",
    "nasrun.data.mnist": "nasrun.data.builtin.mnist",
    "nasrun.data.cifar10": "nasrun.data.builtin.cifar10",
    "nasrun.data.synthetic": "nasrun.data.builtin.synthetic",
    "nasrun.image_folder.folder": "nasrun.data.folder.folder",
    "nasrun.npz_arrays.arrays": "nasrun.data.arrays.arrays",
    "nasrun.spaces.morph.MorphSpace": "nasrun.spaces.morph.space.MorphSpace",
}


def current_target(target: str) -> str:
    """Where a saved `_target_` lives now."""
    return MOVED.get(target, target)


def upgrade_targets(node: Any) -> Any:
    """A copy of a saved config (plain dicts and lists) with every moved `_target_` named by its current path."""
    if isinstance(node, dict):
        return {key: current_target(value) if key == "_target_" and isinstance(value, str) else upgrade_targets(value)
                for key, value in node.items()}
    if isinstance(node, list):
        return [upgrade_targets(value) for value in node]
    return node


@lru_cache(maxsize=1)
def shipped_names() -> frozenset[str]:
    """Every `_target_` and `builder` that nasrun's own config groups name (the installed package's conf/)."""
    names: set[str] = set()
    for path in Path(conf_dir()).rglob("*.yaml"):
        _collect(OmegaConf.to_container(OmegaConf.load(path), resolve=False), names)
    return frozenset(names)


def _collect(node: Any, names: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in NAMING_KEYS and isinstance(value, str):
                names.add(value)
            else:
                _collect(value, names)
    elif isinstance(node, list):
        for value in node:
            _collect(value, names)


def refuse_foreign(node: Any, where: Path | str, opt_in: str, *, allowed: Iterable[str] = (), trust: bool = False,
                   keys: tuple[str, ...] = NAMING_KEYS, prefix: str = "") -> None:
    """Raise a UserError for the first `_target_` (or builder) in the saved `node` that nasrun does not ship and
    `allowed` does not hold, naming `where` (the file), the key and the target; `opt_in` is how the caller's
    user says they trust the run. trust=True: the caller's user did; each foreign name is logged instead."""
    allowed = set(allowed)
    for key_path, name in _names(node, keys, prefix):
        known = isinstance(name, str) and (current_target(name) in shipped_names() or name in allowed)
        if known:
            continue
        if trust:
            log.warning("%s: %s=%s is not nasrun's own; importing it because the run is trusted (%s)", where,
                        key_path, name, opt_in)
            continue
        raise UserError(f"{where}: {key_path}={name!r} names code that nasrun does not ship, and nasrun imports "
                        f"nothing a run directory names", f"if you trust whoever wrote this run, add {opt_in}",
                        path=where, key=key_path)


def _names(node: Any, keys: tuple[str, ...], prefix: str):
    """(dotted key, value) of every naming key in a nested dict/list."""
    if isinstance(node, dict):
        for key, value in node.items():
            dotted = f"{prefix}.{key}" if prefix else str(key)
            if key in keys:
                yield dotted, value
            else:
                yield from _names(value, keys, dotted)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _names(value, keys, f"{prefix}[{index}]")
