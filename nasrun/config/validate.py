"""Checks of the composed config as a whole, and Hydra's and OmegaConf's errors rewritten as one line naming
the key or option and what is allowed."""

from __future__ import annotations

import math
import re
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nasrun.checks import INT64_MAX, UserError
from nasrun.config.groups import closest_first, conf_dir, top_level_keys

SEED_MAX = 2**32 - 1  # numpy's legacy seeding and other tools take 32-bit seeds; torch takes up to 64 bits


def check_settings(cfg: DictConfig, extra_keys=()) -> None:
    """The composed config as a whole, before anything is built: every top-level key is one nasrun reads (a
    `+foo=1` would otherwise be ignored in silence), and every number is finite and fits 64 bits (no setting
    means infinity, and numpy and torch hold nothing bigger). `extra_keys`: nasrun-train's own settings. Group
    keys are checked against their constructors by `check_keys`, and each constructor checks its own ranges."""
    known = top_level_keys() | set(extra_keys)
    for key in cfg:
        if key == "arch" and key not in known:
            raise UserError(f"arch={cfg.get('arch')}: a setting of nasrun-train (it trains one architecture); run "
                            f"nasrun-train with these arguments")
        if key not in known:
            raise UserError(f"{key!s}: unknown key, nasrun reads no top-level setting of that name; drop +{key!s}, "
                            f"or use one of: {', '.join(closest_first(str(key), sorted(known)))}")
    try:
        values = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        raise UserError(describe_config_error(err)) from None
    for key, value in _leaves(values):
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{key}={value}: must be a finite number (use null for no limit where a setting allows)")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX:
            raise UserError(f"{key}={value}: too large; integers must be within +-{INT64_MAX}")


def _leaves(node, prefix: str = ""):
    """(dotted key, value) for every scalar in a nested dict/list."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        name = f"{prefix}{key}" if not prefix else f"{prefix}.{key}"
        if isinstance(value, (dict, list)):
            yield from _leaves(value, name)
        else:
            yield name, value


def compose_config(overrides: list[str]) -> DictConfig:
    """The config `nasrun OVERRIDES` would run, composed without starting a Hydra app (for nasrun-score)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as err:
        raise UserError(describe_config_error(err, overrides)) from None
    check_settings(cfg)
    return cfg


def describe_config_error(err: Exception, overrides: list[str] | tuple = ()) -> str:
    """One line for Hydra's multi-line composition errors, naming the key or option and what is allowed.
    `overrides` are the command's arguments: their group choices decide which keys the hint lists."""
    if isinstance(err, MissingConfigException) and err.missing_cfg_file and err.options:
        group, _, option = err.missing_cfg_file.rpartition("/")
        return f"{group}={option}: no such option; choose one of: {', '.join(sorted(err.options))}"
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    cause = err.__cause__
    missing_key = re.search(r"Key '([^']+)' is not in struct", str(cause) if cause else text)
    if missing_key:
        full_key = re.search(r"full_key: (\S+)", str(cause) if cause else text)
        return unknown_key_message(full_key.group(1) if full_key else missing_key.group(1), overrides)
    if cause is not None:
        text += " " + " ".join(line.strip() for line in str(cause).splitlines() if line.strip())
    return text


def unknown_key_message(full_key: str, overrides: list[str] | tuple = ()) -> str:
    """`foo.bar: unknown key; keys of foo are: ...`, listing the keys of the default config at that level."""
    parent, _, _ = full_key.rpartition(".")
    groups = {p.name for p in Path(conf_dir()).iterdir() if p.is_dir()}
    choices = [a for a in overrides if re.fullmatch(r"[A-Za-z_]+=[\w.-]+", a) and a.split("=")[0] in groups]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
            cfg = compose(config_name="config", overrides=choices)
        node = OmegaConf.select(cfg, parent) if parent else cfg
        keys = [k for k in node.keys() if k != "_target_"] if isinstance(node, DictConfig) else []
    except Exception:  # the hint is a courtesy; the message below stands without it
        keys = []
    where = f"keys of {parent}" if parent else "top-level keys"
    name = full_key.rpartition(".")[2]
    hint = f"; {where} are: {', '.join(closest_first(name, [str(k) for k in keys]))}" if keys else ""
    return f"{full_key}: unknown key{hint}"

