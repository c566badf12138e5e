"""Compose the config, check it, and build each group's object by its `_target_`: the library behind the
`nasrun`, `nasrun-score` and benchmark commands (their entry points are in `nasrun.cli`).

User mistakes (a wrong key, an unknown option, a bad value) become `UserError`s with one line naming the key
and what is allowed; real bugs keep their traceback.
"""

from __future__ import annotations

import inspect
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from omegaconf import DictConfig, OmegaConf

from nasrun.checks import INT64_MAX, UserError


@lru_cache(maxsize=1)
def conf_dir() -> str:
    """The config groups' folder: the package `nasrun.conf` (the top-level conf/ shipped as package data; an
    editable install maps it to the checkout's conf/), found through importlib.resources."""
    from importlib.resources import files

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
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

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
                  "checkpoint"}


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
                       if p not in runtime and p not in RUNTIME_VALUES and spec.kind in kinds]
            raise UserError(f"{group}.{key}: unknown key; {group} accepts: "
                            f"{', '.join(closest_first(str(key), allowed)) or 'no keys'}")


def closest_first(name: str, options: list[str]) -> list[str]:
    """`options` ordered by likeness to a mistyped `name` (difflib's ratio), so the intended key comes first."""
    from difflib import SequenceMatcher

    return sorted(options, key=lambda option: -SequenceMatcher(None, name, option).ratio())


def parameters(group: str, node) -> dict[str, inspect.Parameter]:
    """The parameters (name -> inspect.Parameter, in order) of the callable a config group option targets."""
    from hydra.utils import get_object

    try:
        target = get_object(node._target_)
    except ImportError:
        raise UserError(f"{group}._target_={node._target_}: cannot be imported; check its module and name") from None
    return dict(inspect.signature(target).parameters)


SEED_MAX = 2**32 - 1  # numpy's legacy seeding and other tools take 32-bit seeds; torch takes up to 64 bits


def check_settings(cfg: DictConfig, extra_keys=()) -> None:
    """The composed config as a whole, before anything is built: every top-level key is one nasrun reads (a
    `+foo=1` would otherwise be ignored in silence), and every number is finite and fits 64 bits (no setting
    means infinity, and numpy and torch hold nothing bigger). `extra_keys`: nasrun-train's own settings. Group
    keys are checked against their constructors by `check_keys`, and each constructor checks its own ranges."""
    from omegaconf.errors import OmegaConfBaseException

    known = top_level_keys() | set(extra_keys)
    for key in cfg:
        if key == "arch" and key not in known:
            raise UserError(f"arch={cfg.get('arch')}: a setting of nasrun-train (it trains one architecture); run "
                            f"nasrun-train with these arguments")
        if key not in known:
            raise UserError(f"{key}: unknown key, nasrun reads no top-level setting of that name; drop +{key}, "
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


class Search(NamedTuple):
    space: object
    budget: object
    strategy: object
    evaluator: object
    model_info: dict
    scorer: object  # the proxy= option's ProxyScorer, or None
    data: object  # the dataset, when the evaluator or the proxy reads one (else None)


def build_search(cfg: DictConfig, seed: int, device, data=None) -> Search:
    """Every object a search needs, from the composed config. Every option's keys are checked first, so a
    typo fails before any data is read. `data`: the dataset already read (a worker gets the main process's,
    instead of reading it again), moved to `device`."""
    groups = {"space": cfg.space, "budget": cfg.budget, "strategy": cfg.strategy, "evaluator": cfg.evaluator}
    if cfg.proxy is not None:
        groups["proxy"] = cfg.proxy
    unread = {"dataset": cfg.dataset, **({"executor": cfg.executor} if cfg.get("executor") is not None else {})}
    for group, node in {**groups, **unread}.items():  # the dataset's too, even when not read
        check_keys(group, node)
    space = build("space", cfg.space)
    budget = build("budget", cfg.budget)
    # Constructors say which runtime values they take: a table lookup needs no images, so the dataset is read
    # only when the evaluator or the proxy asks for `data`; a scorer goes to whoever asks for `scorer`.
    wants = {group: parameters(group, node) for group, node in groups.items()}
    for group in ("strategy", "evaluator"):
        scorer_param = wants[group].get("scorer")
        if cfg.proxy is None and scorer_param is not None and scorer_param.default is inspect.Parameter.empty:
            raise UserError(f"{group}: {cfg[group]._target_.rsplit('.', 1)[-1]} ranks architectures with a "
                            f"zero-cost proxy; choose one with proxy=NAME ({', '.join(proxy_options())})")
    runtime = {"space": space, "epochs": budget.epochs, "seed": seed,
               "space_config": OmegaConf.to_container(cfg.space, resolve=True)}
    if any("data" in params for params in wants.values()):
        runtime["data"] = data.to(device) if data is not None else build("dataset", cfg.dataset, seed=seed,
                                                                         device=device)
    if cfg.proxy is not None:
        runtime["scorer"] = build("proxy", cfg.proxy, **_wanted(runtime, wants["proxy"]))
    strategy = build("strategy", cfg.strategy, **_wanted(runtime, wants["strategy"]))
    evaluator = build("evaluator", cfg.evaluator, **_wanted(runtime, wants["evaluator"]))
    if budget.simulated_seconds is not None and not evaluator.reports_cost:
        raise UserError(f"budget.simulated_seconds={budget.simulated_seconds}: this evaluator reports no cost to "
                        f"simulate (only evaluator=tabular with benchmark=cifar10 does); budget by budget.trials "
                        f"or budget.seconds instead")
    # What best.json needs besides the trial: the space to rebuild it, and where its figures came from.
    model_info = {"space": runtime["space_config"], "space_name": space.name, **evaluator.describe()}
    scorer = runtime.get("scorer")
    if scorer is not None:
        model_info.update(proxy=scorer.name, proxy_batch_size=scorer.batch_size)
    return Search(space, budget, strategy, evaluator, model_info, scorer, runtime.get("data"))


def build_executor(cfg: DictConfig, search: Search, seed: int, device):
    """The executor= option, given what its constructor asks for: the main process's evaluator (inline,
    simulated), or a picklable `make_evaluator(device)` that rebuilds it in each worker (pool, ray) from the
    run's config and the dataset already read."""
    from nasrun.executors.from_config import EvaluatorFromConfig

    params = parameters("executor", cfg.executor)  # build() checks the keys
    runtime = {"evaluator": search.evaluator, "device": device}
    if "make_evaluator" in params:
        data = None if search.data is None else search.data.to("cpu")
        runtime["make_evaluator"] = EvaluatorFromConfig(OmegaConf.to_container(cfg, resolve=True), seed, data)
    return build("executor", cfg.executor, **_wanted(runtime, params))


def _wanted(runtime: dict, params: dict) -> dict:
    return {k: v for k, v in runtime.items() if k in params}


def proxy_options() -> list[str]:
    return sorted(p.stem for p in (Path(conf_dir()) / "proxy").glob("*.yaml") if p.stem != "none")


def help_text() -> str:
    """`nasrun --help`: one screen, built from conf/ so it lists exactly the groups, options and presets there."""
    import textwrap

    defaults = default_choices()
    lines = ["usage: nasrun [-m] [GROUP=OPTION ...] [KEY=VALUE ...]    a search (-m: a sweep over comma lists)",
             "       nasrun-train arch=ARCH [OVERRIDES]                 train one architecture in full, export it",
             "       nasrun-report DIR [--out DIR]                      report.csv, anytime.png, checklist.md",
             "       nasrun-score [--proxies a,b] [-n N] OVERRIDES      proxy scores, rank correlations",
             "", "config groups (default first):"]
    for group, default in defaults.items():
        options = sorted((p.stem for p in (Path(conf_dir()) / group).glob("*.yaml")), key=lambda o: (o != default, o))
        lines.append(f"  {group + '=':11}{'|'.join(options)}")
    presets = ", ".join(sorted(p.stem for p in (Path(conf_dir()) / "experiment").glob("*.yaml")))
    lines += ["presets (+experiment=NAME):", *textwrap.wrap(presets, 94, initial_indent="  ", subsequent_indent="  "),
              "keys people change first:",
              "  budget.trials=N budget.seconds=S budget.epochs=E  trials, wall-clock cap, epochs per trial",
              "  device=cpu|cuda device.threads=N                  where trials run; CPU threads (1 if shared)",
              "  executor=pool executor.workers=N                  trials in parallel (ray: a cluster)",
              "  seed=N                                            data split, strategy, every trial",
              "  hydra.run.dir=DIR resume=true                     continue a stopped run in DIR",
              "  dataset.root=DIR, or NASRUN_DATA=DIR              where the datasets are (offline: README)",
              "outputs in outputs/DATE/TIME/ (or hydra.run.dir): trials.jsonl (every trial), best.json",
              "  (the best trial, how to rebuild it), best.pt (its weights), nasrun.log, .hydra/ (config)",
              "more: nasrun --cfg job (the composed config), nasrun --hydra-help (Hydra's help), README.md"]
    return "\n".join(lines)


def compose_config(overrides: list[str]) -> DictConfig:
    """The config `nasrun OVERRIDES` would run, composed without starting a Hydra app (for nasrun-score)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as err:
        raise UserError(describe_config_error(err, overrides)) from None
    check_settings(cfg)
    return cfg


def describe_config_error(err: Exception, overrides: list[str] = ()) -> str:
    """One line for Hydra's multi-line composition errors, naming the key or option and what is allowed.
    `overrides` are the command's arguments: their group choices decide which keys the hint lists."""
    from hydra.errors import MissingConfigException

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


def unknown_key_message(full_key: str, overrides: list[str] = ()) -> str:
    """`foo.bar: unknown key; keys of foo are: ...`, listing the keys of the default config at that level."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

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
