"""The `_target_`s a run directory names, read back: runs written before nasrun's modules moved (the package
took its current layout in one change) name the old paths, and still load, resume and report.

A saved config (best.json's `space`, `.hydra/config.yaml`) names the class or function it was built from.
`current_target` maps each path that moved to where it lives now; every reader that builds something from a
run's files passes the node through `upgrade_targets` first. Paths that never moved pass through unchanged.
"""

from __future__ import annotations

from typing import Any

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
