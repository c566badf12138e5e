"""Every option of every config group, and every experiment preset, composes and builds (CONTRIBUTING.md rule 10)."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from nasrun.bench.worker_faults import Toy, ToyEvaluator
from nasrun.checks import UserError
from nasrun.commands.train import build_training
from nasrun.config.groups import build, parameters
from nasrun.config.validate import check_settings
from nasrun.contracts import Decision, Scheduler, Trial
from nasrun.data.builtin import ImageData, synthetic
from nasrun.evaluators.tabular import load_table
from nasrun.oneshot.supernet import Supernet
from nasrun.oneshot.training import start
from nasrun.proxies import zero_cost as proxies
from nasrun.proxies.scorer import ProxyScorer
from nasrun.search.assembly import build_search
from nasrun.search.budget import Budget
from nasrun.spaces.custom import CustomSpace
from nasrun.spaces.nb201 import NB201Space

from conftest import (
    CONF_DIR,
    compose,
    fashion_mnist_images,
    write_fake_mnist,
    write_image_folder,
)

GROUPS = sorted(p.name for p in Path(CONF_DIR).iterdir() if p.is_dir() and p.name not in ("hydra", "experiment"))
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((Path(CONF_DIR) / g).glob("*.yaml"))]
EXPERIMENTS = sorted(f.stem for f in (Path(CONF_DIR) / "experiment").glob("*.yaml"))


def runtime_values(group, option):
    """What the CLI passes at the call site for each group; a new group must be added here."""
    space = NB201Space() if option == "tabular" else CustomSpace()
    small = NB201Space(4, 1)  # a proxy-scored space small enough to score in milliseconds
    rgb = synthetic(channels=3, image_size=16)
    scorer = ProxyScorer(proxies.naswot, small, rgb, seed=0, batch_size=16)
    if group in ("strategy", "evaluator") and "scorer" in parameters(group, compose(f"{group}={option}")[group]):
        space = small
    supernet = None
    if (group, option) == ("evaluator", "supernet"):  # scores cells on a (here untrained) one-shot supernet
        space, supernet = small, Supernet(1, 4, 4, 1)
    return {
        "dataset": dict(seed=0, device=torch.device("cpu")),
        "space": {},
        "strategy": dict(space=space, seed=0, scorer=scorer),
        "proxy": dict(space=small, data=rgb, seed=0, space_config={"channels": 4}),
        "budget": {},
        "scheduler": {},
        "evaluator": dict(space=space, data=synthetic(), epochs=1, seed=0, scorer=scorer, supernet=supernet),
        "oneshot": {},
        "device": {},
        "executor": dict(evaluator=CostlyToy(), make_evaluator=Toy(), device=torch.device("cpu")),
        "latency": dict(space=NB201Space()),
    }[group]


class CostlyToy(ToyEvaluator):
    """A table-like evaluator with a cost, which the simulated executor needs."""

    reports_cost = True

    def __init__(self):
        super().__init__(Toy())

    def __call__(self, arch, deadline=None):
        metrics, model = super().__call__(arch, deadline)
        return {**metrics, "cost": 10.0}, model


def test_groups_are_the_documented_interface():
    assert set(GROUPS) >= {"dataset", "space", "strategy", "proxy", "budget", "evaluator", "device", "executor"}
    cfg = compose()
    assert cfg.seed == 0 and cfg.device.type == "auto" and cfg.resume is False and cfg.published is None


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_and_builds(group, option, data_root, tmp_path):
    overrides = [f"{group}={option}", f"dataset.root={data_root}"]
    if group == "dataset":
        if option == "mnist":  # not in the shared data: build the real loader on a tiny MNIST we write
            write_fake_mnist(tmp_path)
            overrides[-1] = f"dataset.root={tmp_path}"
        if option == "synthetic":
            overrides.pop()
        if option == "folder":  # users' own images: real Fashion-MNIST PNGs in a folder we write
            write_image_folder(tmp_path / "images", data_root, n_train=60, n_test=20)
            overrides[-1] = f"dataset.path={tmp_path / 'images'}"
            overrides.append(f"dataset.cache_dir={tmp_path / 'cache'}")
        if option == "arrays":
            x, y = fashion_mnist_images(data_root, 100)
            np.savez(tmp_path / "images.npz", x_train=x, y_train=y)
            overrides[-1] = f"dataset.path={tmp_path / 'images.npz'}"
        if option not in ("synthetic", "folder", "arrays"):
            overrides += ["dataset.download=false", "dataset.fraction=0.01"]
    if group == "proxy" and option != "none":
        overrides.append("proxy.cache_dir=null")  # no score files in the repository's outputs/
    if group == "scheduler":
        overrides.append("budget.epochs=9")  # a scheduler needs epochs to cut short (max_epochs follows)
    cfg = compose(*overrides)
    node = cfg[group]
    if node is None:  # `proxy=none` is the absence of a proxy
        assert option == "none"
        return
    runtime = runtime_values(group, option)
    if (group, option) == ("device", "cuda") and not torch.cuda.is_available():
        with pytest.raises(UserError, match="device=cuda: no CUDA device is visible"):
            build(group, node)
        return
    built = build(group, node, **{k: v for k, v in runtime.items() if k in parameters(group, node)})
    expected = {"dataset": ImageData, "budget": Budget, "device": torch.device}.get(group)
    if expected:
        assert isinstance(built, expected)
    if group == "device":
        assert built.type == (option if option != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
        assert torch.get_num_threads() == len(os.sched_getaffinity(0))  # threads: null
        build(group, compose(f"device={option}", "device.threads=1").device)
        assert torch.get_num_threads() == 1
        build(group, node)  # back to the default for the tests that follow
    if group == "strategy":
        arch = built.ask()
        built.tell(arch, 1.0)
    if group == "latency":  # a cell's measured latency on the default device, in ms
        assert 0 < built(NB201Space().sample(np.random.default_rng(0))) < 1000
    if group == "executor" and option != "ray":  # one trial through it (Ray's: tests/test_executors_ray.py)
        with built:
            built.submit(Trial(0, CustomSpace().sample(np.random.default_rng(0))))
            [outcome] = built.completed()
        assert outcome.record["status"] == "ok" and 50 <= outcome.record["metrics"]["val_acc"] < 100
    if group == "evaluator":
        metrics, _ = built(runtime["space"].sample(np.random.default_rng(0)))
        assert 0 <= metrics["val_acc"] <= 100 if "fitness" not in metrics else np.isfinite(metrics["fitness"])
    if group == "scheduler":  # one trial's first decision
        assert isinstance(built, Scheduler) and built.max_epochs == 9
        first = built.start("a")
        assert 1 <= first < 9
        decision, until = built.report("a", [50.0] * first)
        assert decision in (Decision.PAUSE, Decision.CONTINUE) and until >= first
    if group == "oneshot":  # one training step of a tiny supernet, whichever method
        run = start(built, NB201Space(4, 1), synthetic(seed=0), 0)
        data = synthetic(seed=0)
        batch = next(data.train_batches(torch.Generator().manual_seed(0)))
        out = built.step(run.supernet, run.alpha, run.w_opt, run.a_opt, batch, batch, built.lr, 0,
                         run.generators["draws"])
        assert np.isfinite(out["loss"]) and (built.derive(run.alpha) is None) == (option == "rsps")
    if group == "proxy":
        assert isinstance(built, ProxyScorer) and built.name == option and built.cache_path is None
        score = built(runtime["space"].sample(np.random.default_rng(1)))
        assert np.isfinite(score)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_preset_composes_builds_and_names_its_published_figure(experiment, data_root, tmp_path):
    shrink = []
    if experiment.startswith("zeroshot_ga_"):  # score 2 full-size cells, not 200, and write no cache files
        shrink = ["strategy.P=2", "strategy.S=1", "strategy.C=2", "proxy.cache_dir=null"]
    if experiment.startswith("nb201_rsps"):  # score a cell with one calibration batch and 64 images, not 25,000
        shrink = ["evaluator.calibration_batches=1", "evaluator.val_images=64"]
    trains_one = "arch" in OmegaConf.load(Path(CONF_DIR) / "experiment" / f"{experiment}.yaml")
    cfg = compose(f"+experiment={experiment}", f"dataset.root={data_root}", "dataset.download=false", *shrink,
                  config_name="train" if trains_one else "config")
    text = (Path(CONF_DIR) / "experiment" / f"{experiment}.yaml").read_text()
    reduced = "NOT the benchmark's protocol" in text or "NOT the paper's protocol" in text or \
        "reproduces no published figure" in text
    if reduced:  # a CPU-sized or new preset compares with nothing published; it says so in its comment
        assert cfg.published is None
    else:
        assert cfg.published.metric in ("test_acc", "val_acc") and 0 < cfg.published.mean < 100
        assert cfg.published.source
    if trains_one:  # a nasrun-train preset: its architecture, space, schedule and data
        space, arch, budget, evaluator, info, data = build_training(cfg, 0, torch.device("cpu"), tmp_path)
        with pytest.raises(UserError, match=f"arch={cfg.arch}: a setting of nasrun-train"):
            check_settings(compose(f"+experiment={experiment}"))  # `nasrun +experiment=...` says where it belongs
    elif cfg.oneshot is not None:  # a supernet preset: its method, and one step of its supernet on two images
        method, space = build("oneshot", cfg.oneshot), build("space", cfg.space)
        data = build("dataset", cfg.dataset, seed=0, device=torch.device("cpu"))
        run = start(method, space, data, 0)
        x, y = data.normalize(data.train_x[:2]), data.train_y[:2]
        assert np.isfinite(method.step(run.supernet, run.alpha, run.w_opt, run.a_opt, (x, y), (x, y), method.lr, 0,
                                       run.generators["draws"])["loss"])
        if method.table is not None:
            assert len(load_table(method.table)) == 15625
        if method.derive(run.alpha) is None:  # RSPS: the search on the supernet, and its evaluator
            setup = build_search(cfg, 0, torch.device("cpu"), data=data, supernet=run.supernet)
            metrics, _ = setup.evaluator(setup.strategy.ask())
            assert 0 <= metrics["val_acc"] <= 100 and metrics["test_acc"] > 0
    else:
        setup = build_search(cfg, 0, torch.device("cpu"))
        space, evaluator, arch = setup.space, setup.evaluator, setup.strategy.ask()
    if cfg.get("oneshot") is not None:
        pass
    elif evaluator.reports_cost or not hasattr(evaluator, "data"):
        metrics, model = evaluator(arch)  # a table lookup: instant
        assert model is None and metrics["test_acc"] > 0
    else:  # real training presets: check the network fits the data, without training it for minutes
        data = evaluator.data
        model = space.build(arch, data.in_channels, data.image_size, data.num_classes)
        with torch.no_grad():
            assert model(data.normalize(data.test_x[:2])).shape == (2, data.num_classes)
    first_line = (Path(CONF_DIR) / "experiment" / f"{experiment}.yaml").read_text().splitlines()[0]
    assert first_line == "# @package _global_"


@pytest.mark.parametrize("proxy", ["grad_norm", "snip", "synflow", "grasp", "fisher", "jacob_cov"])
def test_zeroshot_ga_presets_are_algorithm_1_on_the_table(proxy, data_root):
    cfg = compose(f"+experiment=zeroshot_ga_{proxy}", f"dataset.root={data_root}")
    assert (cfg.strategy.P, cfg.strategy.S, cfg.strategy.C) == (10, 5, 200) and cfg.budget.trials == 200
    assert cfg.proxy.proxy._target_ == f"nasrun.proxies.zero_cost.{proxy}" and cfg.proxy.batch_size == 64
    assert cfg.evaluator._target_.endswith("TabularEvaluator") and cfg.budget.simulated_seconds == 12000
    assert cfg.dataset._target_ == "nasrun.data.builtin.cifar10" and cfg.published.std > 0


def test_nb201_presets_use_the_benchmark_settings(data_root):
    rea = compose("+experiment=nb201_rea", f"dataset.root={data_root}")
    assert (rea.strategy.population_size, rea.strategy.sample_size) == (10, 3)
    assert rea.strategy.mutation_prob is None and rea.strategy.crossover is False
    assert rea.budget.simulated_seconds == 12000 and rea.evaluator.benchmark == "cifar10"
    nb = compose("+experiment=matos2023_nb201", f"dataset.root={data_root}")
    assert nb.dataset.rgb is True and nb.budget.trials == 6 and nb.budget.epochs == 3 and nb.dataset.batch_size == 64
    assert (nb.space.channels, nb.space.cells_per_stage) == (16, 5) and nb.evaluator.lr == 1e-3
    for matos in (nb, compose("+experiment=matos2023_custom", f"dataset.root={data_root}")):
        # NNI's evolution settings and a 10 % hold-out, whatever the defaults that `make run` tunes.
        assert (matos.strategy.population_size, matos.strategy.sample_size) == (30, 10)
        assert matos.dataset.val_size is None and matos.dataset.val_fraction == 0.1 and matos.dataset.fraction == 1.0


def test_one_shot_presets_use_the_benchmark_protocol(data_root):
    for name, method, epochs in (("nb201_darts", "DARTS", 50), ("nb201_darts_v2", "DARTS", 50),
                                 ("nb201_gdas", "GDAS", 250), ("nb201_rsps", "RSPS", 250)):
        cfg = compose(f"+experiment={name}", f"dataset.root={data_root}")
        assert cfg.oneshot._target_.endswith(method) and cfg.oneshot.epochs == epochs
        assert (cfg.dataset.val_fraction, cfg.dataset.batch_size, cfg.dataset.fraction) == (0.5, 64, 1.0)  # 25k/25k
        assert (cfg.space.channels, cfg.space.cells_per_stage) == (16, 5) and cfg.budget.seconds is None
        o = cfg.oneshot
        assert (o.lr, o.lr_min, o.momentum, o.nesterov, o.weight_decay, o.grad_clip) == (0.025, 0.001, 0.9, True,
                                                                                         5e-4, 5.0)
        if method != "RSPS":
            assert (o.arch_lr, list(o.arch_betas), o.arch_weight_decay) == (3e-4, [0.5, 0.999], 1e-3)
        assert cfg.published.mean == {"DARTS": 54.30, "GDAS": 93.61, "RSPS": 87.66}[method]
    assert compose("+experiment=nb201_darts_v2").oneshot.order == 2
    assert compose("+experiment=nb201_darts").oneshot.order == 1
    gdas = compose("+experiment=nb201_gdas").oneshot
    assert (gdas.tau_max, gdas.tau_min) == (10.0, 0.1)
    rsps = compose("+experiment=nb201_rsps")
    assert rsps.budget.trials == 100 and rsps.strategy._target_.endswith("RandomSearch")
    for cpu in ("nb201_gdas_cpu", "nb201_darts_cpu", "nb201_rsps_cpu"):  # reduced, and say so: no published figure
        cfg = compose(f"+experiment={cpu}")
        assert cfg.published is None and cfg.space.channels < 16
        assert "NOT the benchmark's protocol" in (Path(CONF_DIR) / "experiment" / f"{cpu}.yaml").read_text()


STRATEGY_PRESETS = sorted((f.parent.name, f.stem) for f in (Path(CONF_DIR) / "strategy" / "presets").glob("*/*.yaml"))


@pytest.mark.parametrize("strategy,experiment", STRATEGY_PRESETS)
def test_a_presets_own_strategy_settings_apply_to_that_strategy_only(strategy, experiment, data_root):
    # conf/strategy/presets/<strategy>/<preset>.yaml: a file whose name matches no preset or strategy would
    # silently never apply.
    assert experiment in EXPERIMENTS and (Path(CONF_DIR) / "strategy" / f"{strategy}.yaml").is_file()
    settings = OmegaConf.load(Path(CONF_DIR) / "strategy" / "presets" / strategy / f"{experiment}.yaml")
    small = [f"dataset.root={data_root}", "dataset.download=false", "dataset.fraction=0.005", "dataset.val_size=100"]
    cfg = compose(f"+experiment={experiment}", *small)
    assert cfg.strategy.items() >= settings.items() and "presets" not in cfg.strategy
    plain = compose(f"strategy={strategy}")
    assert any(plain.strategy[k] != v for k, v in settings.items())  # the file changes something
    baseline = compose(f"+experiment={experiment}", "strategy=random", *small)  # the preset's random baseline
    setup = build_search(baseline, 0, torch.device("cpu"))
    assert type(setup.strategy).__name__ == "RandomSearch" and setup.space.name == cfg.space._target_.split(".")[-2]
