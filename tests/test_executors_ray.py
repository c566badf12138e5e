"""The Ray executor on a local Ray instance (the `ray` extra; `make test` installs it, and CI fails without it)."""

import sys

import pytest

from nasrun.bench.worker_faults import Toy
from nasrun.checks import UserError
from nasrun.executors.ray_tasks import RayExecutor
from nasrun.search.budget import Budget
from nasrun.search.runner import run_search
from nasrun.spaces.custom import CustomSpace
from nasrun.strategies.evolution import RegularizedEvolution
from nasrun.strategies.random import RandomSearch

from conftest import IN_CI

SPACE = CustomSpace()


@pytest.fixture
def ray():
    if IN_CI:
        import ray  # CI installs the extra: a missing Ray is a failure there, not a skip
    else:
        ray = pytest.importorskip("ray")
    return ray


def test_a_small_search_on_local_ray_survives_killed_workers(tmp_path, ray):
    strategy = RandomSearch(SPACE, 2)
    keys = [strategy.ask().key for _ in range(6)]
    # keys[1] kills its worker once (Ray runs it again); keys[3] on every attempt (recorded failed).
    toy = Toy(delay=0.05, kill=(keys[1],), marker_dir=str(tmp_path), kill_always=(keys[3],))
    executor = RayExecutor(toy, max_retries=1)
    evolution = RegularizedEvolution(SPACE, 2, population_size=6, sample_size=2)
    result = run_search(SPACE, evolution, None, Budget(trials=8), tmp_path / "run", executor=executor)
    status = {r["key"]: r for r in result.records}
    assert len(result.records) == 8 == len(status) and set(keys) <= set(status)
    assert status[keys[1]]["status"] == "ok"
    assert status[keys[3]]["status"] == "failed" and "executor.max_retries=1" in status[keys[3]]["error"]
    assert sum(r["status"] == "ok" for r in result.records) == 7
    assert not ray.is_initialized()  # the executor shut down the instance it started


def test_without_ray_executor_ray_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as it does without the extra
    with pytest.raises(UserError, match=r"executor=ray needs Ray, an optional extra: pip install 'nasrun\[ray\]'"):
        RayExecutor(Toy())  # at construction: before the run directory is touched


def test_asha_under_ray_promotes_from_checkpoints(tmp_path, ray):
    """Promotions are new Ray tasks that carry the trial's checkpoint: every result is the trial's curve at the
    epochs it reached, and every promotion goes on from the rung below, never from scratch."""
    from nasrun.bench.worker_faults import SegmentToy, toy_curve
    from nasrun.search.asha import ASHA

    result = run_search(SPACE, RandomSearch(SPACE, 3), None, Budget(trials=9), tmp_path / "ray",
                        executor=RayExecutor(SegmentToy(delay=0.01)), scheduler=ASHA(9, 1, 3))
    assert len(result.records) == 9 and max(r["epochs"] for r in result.records) == 9
    for record in result.records:
        assert record["metrics"]["val_acc"] == toy_curve(record["key"], record["epochs"], 9)
        assert record["metrics"]["resumed_from"] == (0 if record["epochs"] == 1 else record["epochs"] // 3)
