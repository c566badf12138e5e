"""The config groups are the registry: where they live (`conf_dir`), which options and top-level keys there are,
and how an option becomes an object (`build`: its `_target_` called with its keys plus runtime values).

User mistakes (a wrong key, an unknown option, a bad value) become `UserError`s with one line naming the key
and what is allowed; real bugs keep their traceback.
"""

from __future__ import annotations

import inspect
from difflib import SequenceMatcher
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import OmegaConf

from nasrun.checks import UserError


@lru_cache(maxsize=1)
def conf_dir() -> str:
    """The config groups' folder: the package `nasrun.conf` (the top-level conf/ shipped as package data; an
    editable install maps it to the checkout's conf/), found through importlib.resources."""
    try:
        folder = files("nasrun.conf")
    except ModuleNotFoundError:
        raise UserError("nasrun's config groups (package nasrun.conf) are not installed; install nasrun with "
                        "pip install . (or pip install -e . in a checkout)") from None
    if not isinstance(folder, Path) or not (folder / "config.yaml").is_file():
        raise UserError(f"nasrun's config groups are not on disk at {folder}; reinstall nasrun (pip install .)")
    return str(folder)


def build(group: str, node, **runtime):
    """The object a config group option describes: its `_target_` called with the option's keys plus the
    runtime values given here. Runtime objects (data tensors, the space) are passed at the call, never
    merged into the config. Constructor complaints become one-line errors naming the config key
    (`strategy.population_size=1: must be an integer >= 2`)."""
    check_keys(group, node, runtime)
    missing = [key for key in node if OmegaConf.is_missing(node, key)]
    if missing:
        raise UserError(f"{group}.{missing[0]}: required (??? in the config); add {group}.{missing[0]}=VALUE")
    try:
        factory = instantiate(node, _partial_=True)
    except InstantiationException as err:
        raise UserError(f"{group}._target_: {str(err).splitlines()[0]}") from None
    try:
        return factory(**runtime)
    except UserError:
        raise
    except ValueError as err:
        raise UserError(f"{group}.{err}") from None


# Passed at call sites, never set in a config.
RUNTIME_VALUES = {"space", "data", "seed", "device", "epochs", "scorer", "space_config", "evaluator", "make_evaluator",
                  "checkpoint", "supernet"}


def check_keys(group: str, node, runtime=()) -> None:
    """Every key of the option must be a parameter of its target (the constructor is the schema); checked
    before anything is built, so a typo fails before data is read."""
    params = parameters(group, node)
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    for key in node:
        if not str(key).startswith("_") and key not in params:
            allowed = [p for p, spec in params.items()
                       if p not in runtime and (p not in RUNTIME_VALUES or p in node) and spec.kind in kinds]
            raise UserError(f"{group}.{key}: unknown key; {group} accepts: "
                            f"{', '.join(closest_first(str(key), allowed)) or 'no keys'}")


def closest_first(name: str, options: list[str]) -> list[str]:
    """`options` ordered by likeness to a mistyped `name` (difflib's ratio), so the intended key comes first."""
    return sorted(options, key=lambda option: -SequenceMatcher(None, name, option).ratio())


def parameters(group: str, node) -> dict[str, inspect.Parameter]:
    """The parameters (name -> inspect.Parameter, in order) of the callable a config group option targets."""
    try:
        target = get_object(node._target_)
    except ImportError:
        raise UserError(f"{group}._target_={node._target_}: cannot be imported; check its module and name") from None
    return dict(inspect.signature(target).parameters)


@lru_cache(maxsize=1)
def default_choices() -> dict[str, str]:
    """conf/config.yaml's config groups and their default options, in its order (Hydra's own overrides left out)."""
    defaults = {}
    for entry in OmegaConf.load(Path(conf_dir()) / "config.yaml").defaults:
        if isinstance(entry, str) or not entry:
            continue
        group, option = next(iter(entry.items()))
        if "/" not in group and not group.startswith("override"):
            defaults[str(group)] = option
    return defaults


@lru_cache(maxsize=1)
def top_level_keys() -> frozenset:
    """The settings of conf/config.yaml and its config groups: all a composed config may hold at the top."""
    root = OmegaConf.load(Path(conf_dir()) / "config.yaml")
    return frozenset(set(default_choices()) | {str(k) for k in root if k not in ("defaults", "hydra")})


def proxy_options() -> list[str]:
    return sorted(p.stem for p in (Path(conf_dir()) / "proxy").glob("*.yaml") if p.stem != "none")

