"""A search's pieces from the composed config: the space, budget, strategy, evaluator, proxy and dataset
(`build_search`), where its trials run (`build_executor`), and how a worker process rebuilds the evaluator
(`EvaluatorFromConfig`)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from nasrun.checks import UserError
from nasrun.config.groups import build, check_keys, parameters, proxy_options
from nasrun.contracts import Evaluator, Scheduler, Space, Strategy, trains_in_segments
from nasrun.hardware.cost import CostOf
from nasrun.objectives import Objectives
from nasrun.search.budget import Budget
from nasrun.search.goals import Goals
from nasrun.search.loop import SearchResult
from nasrun.search.runner import run_search

if TYPE_CHECKING:  # torch comes with these: imported for the types only, so `nasrun --help` stays quick
    from nasrun.data.builtin import ImageData
    from nasrun.proxies.scorer import ProxyScorer


@dataclass(frozen=True)
class SearchSetup:
    """Every object one search needs, built whole from the composed config by `build_search`."""

    space: Space
    budget: Budget
    strategy: Strategy
    evaluator: Evaluator
    model_info: dict[str, Any]  # what best.json needs besides the trial: the space's config, the data's shape
    scorer: ProxyScorer | None  # the proxy= option's scorer, or None
    data: ImageData | None  # the dataset, when the evaluator or the proxy reads one (else None)
    scheduler: Scheduler | None = None  # the scheduler= option (how far each trial trains), or None
    goals: Goals | None = None  # objectives, constraints, hardware metrics (None: val_acc alone, no metrics)

    def run(self, run_dir: Path, **options: Any) -> SearchResult:
        """`run_search` on these pieces; `options` are its keyword options (resume, executor, on_trial, ...)."""
        return run_search(self.space, self.strategy, self.evaluator, self.budget, run_dir,
                          model_info=self.model_info, scorer=self.scorer, scheduler=self.scheduler,
                          goals=self.goals, **options)


def build_search(cfg: DictConfig, seed: int, device, data=None, supernet=None) -> SearchSetup:
    """Every object a search needs, from the composed config. Every option's keys are checked first, so a
    typo fails before any data is read. `data`: the dataset already read (a worker gets the main process's,
    instead of reading it again), moved to `device`. `supernet`: a trained one-shot supernet, for an evaluator
    that scores cells on it (`oneshot=rsps`)."""
    groups = {"space": cfg.space, "budget": cfg.budget, "strategy": cfg.strategy, "evaluator": cfg.evaluator}
    if cfg.proxy is not None:
        groups["proxy"] = cfg.proxy
    if cfg.get("latency") is not None:
        groups["latency"] = cfg.latency
    if cfg.get("scheduler") is not None:
        groups["scheduler"] = cfg.scheduler
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
    scheduler = build("scheduler", cfg.scheduler) if "scheduler" in groups else None
    # Under a scheduler a trial trains up to its max_epochs, and the learning-rate schedule spans them.
    epochs = budget.epochs if scheduler is None else scheduler.max_epochs
    runtime = {"space": space, "epochs": epochs, "seed": seed, "run_seed": seed, "supernet": supernet,
               "space_config": OmegaConf.to_container(cfg.space, resolve=True)}
    proxy_seed = proxy_split_seed(cfg, None)
    readers = [group for group, params in wants.items() if "data" in params]
    split_seed = proxy_seed if readers == ["proxy"] and proxy_seed is not None else seed
    if readers:
        runtime["data"] = data.to(device) if data is not None else build("dataset", cfg.dataset, seed=split_seed,
                                                                         device=device)
    if cfg.proxy is not None:
        proxy_runtime = runtime
        if proxy_seed is not None and split_seed != proxy_seed and "data" in wants["proxy"]:
            proxy_runtime = {**runtime, "data": build("dataset", cfg.dataset, seed=proxy_seed, device=device)}
        runtime["scorer"] = build("proxy", cfg.proxy, **_wanted(proxy_runtime, wants["proxy"], cfg.proxy))
    strategy = build("strategy", cfg.strategy, **_wanted(runtime, wants["strategy"]))
    evaluator = build("evaluator", cfg.evaluator, **_wanted(runtime, wants["evaluator"]))
    if budget.simulated_seconds is not None and not evaluator.reports_cost:
        raise UserError(f"budget.simulated_seconds={budget.simulated_seconds}: this evaluator reports no cost to "
                        f"simulate (only evaluator=tabular with benchmark=cifar10 does); budget by budget.trials "
                        f"or budget.seconds instead")
    if scheduler is not None and not trains_in_segments(evaluator):
        raise UserError(f"scheduler: {cfg.scheduler._target_.rsplit('.', 1)[-1]} decides how many epochs each "
                        f"trial trains, and evaluator={cfg.evaluator._target_.rsplit('.', 1)[-1]} trains none; "
                        f"use evaluator=train, or scheduler=none")
    # What best.json needs besides the trial: the space to rebuild it, and where its figures came from.
    model_info = {"space": runtime["space_config"], "space_name": space.name, **evaluator.describe()}
    scorer = runtime.get("scorer")
    if scorer is not None:
        model_info.update(proxy=scorer.name, proxy_batch_size=scorer.batch_size)
    goals = build_goals(cfg, space, evaluator, runtime.get("data"))
    if not goals.objectives.plain:
        model_info.update(goals.objectives.describe())
    return SearchSetup(space, budget, strategy, evaluator, model_info, scorer, runtime.get("data"), scheduler, goals)


def build_goals(cfg: DictConfig, space, evaluator, data) -> Goals:
    """The search's objectives and constraints (`objectives`, `constraints`, `reference`), with what measures
    an architecture before training: its size on the data's image shape, and the latency= option."""
    def plain(key):
        value = cfg.get(key)
        return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value

    try:
        objectives = Objectives.from_config(plain("objectives"), plain("constraints"))
    except ValueError as err:
        raise UserError(str(err)) from None
    latency = build("latency", cfg.latency, space=space) if cfg.get("latency") is not None else None
    shape = input_shape(evaluator, data)
    cost = CostOf(space, *shape) if shape is not None else None
    reference = plain("reference")
    if reference is not None:
        numbers = isinstance(reference, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                      for v in reference)
        if not numbers or len(reference) != len(objectives.names):
            raise UserError(f"reference={reference!r}: give one number per objective "
                            f"({', '.join(objectives.names)}), e.g. reference='[85.0,12.5]'")
        reference = tuple(float(v) for v in reference)
    try:
        return Goals(objectives, cost, latency, reference)
    except ValueError as err:
        raise UserError(str(err)) from None


def input_shape(evaluator, data) -> tuple[int, int, int] | None:
    """(in_channels, image_size, num_classes) of the networks a search builds: the data's, or the benchmark's
    that a table evaluator stands for; None when neither is known."""
    if data is not None:
        return data.in_channels, data.image_size, data.num_classes
    shape = getattr(evaluator, "input_shape", None)
    return tuple(shape) if shape is not None else None


def build_executor(cfg: DictConfig, search: SearchSetup, seed: int, device):
    """The executor= option, given what its constructor asks for: the main process's evaluator (inline,
    simulated), or a picklable `make_evaluator(device)` that rebuilds it in each worker (pool, ray) from the
    run's config and the dataset already read."""
    params = parameters("executor", cfg.executor)  # build() checks the keys
    runtime = {"evaluator": search.evaluator, "device": device}
    if "make_evaluator" in params:
        data = None if search.data is None else search.data.to("cpu")
        runtime["make_evaluator"] = EvaluatorFromConfig(plain_dict(cfg), seed, data)
    return build("executor", cfg.executor, **_wanted(runtime, params))


def proxy_split_seed(cfg: DictConfig, run_seed):
    """The seed of the training split the proxy scores from: with `proxy.seed` set, every run must score the
    same images normalised alike (so runs share scores), hence that seed's split, not the run's (`run_seed`)."""
    proxy_seed = cfg.proxy.get("seed") if cfg.proxy is not None else None
    return run_seed if proxy_seed is None else proxy_seed


def _wanted(runtime: dict, params: dict, node=None) -> dict:
    """The runtime values a constructor takes, except those its config sets itself: `proxy.seed` is an option
    of the proxy, and the run's seed reaches the scorer as `run_seed`."""
    return {k: v for k, v in runtime.items() if k in params and (node is None or k not in node)}



@dataclass(frozen=True)
class EvaluatorFromConfig:
    """How a worker process gets the run's evaluator: a picklable `make_evaluator(device)` holding the composed
    config (resolved, as plain containers), the run's seed and the dataset the main process already read, on
    the CPU (None when the evaluator reads none, a table say), so no worker reads or checks the files again."""

    config: dict
    seed: int
    data: ImageData | None = field(default=None, repr=False)

    def __call__(self, device) -> Evaluator:
        return build_search(OmegaConf.create(self.config), self.seed, device, data=self.data).evaluator


def plain_dict(cfg: DictConfig) -> dict:
    """The composed config resolved into plain dicts and lists (what pickles into a worker)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    return container
