"""Shared test helpers: the real-data folder, and running the `nasrun` CLI as a user would."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
CONF_DIR = str(REPO / "conf")
IN_CI = os.environ.get("CI") == "true"


def _one_core_per_worker() -> None:
    """Under pytest-xdist (`make test` runs two workers), each worker and the processes it starts get a core of
    their own: torch then runs one thread per worker (nasrun takes the cores it may use), where two workers of
    two threads each on two cores would spin against each other."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None or not hasattr(os, "sched_getaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if len(cores) >= count > 1:
        index = int(worker.removeprefix("gw"))
        os.sched_setaffinity(0, cores[index::count])


_one_core_per_worker()


def real_data_root() -> Path:
    """Where the real datasets are: NASRUN_DATA, else ../shared/data beside the checkout.

    In CI the data must be there: a missing folder fails the test (never a skip). Elsewhere a missing folder
    falls back to ./data with torchvision's download, the path a user on the internet takes.
    """
    env = os.environ.get("NASRUN_DATA")
    root = Path(env) if env else REPO.parent / "shared" / "data"
    if (root / "FashionMNIST" / "raw").is_dir():
        return root
    if IN_CI:
        pytest.fail(f"real data not found in {root} (CI=true): set NASRUN_DATA to the shared data folder")
    return REPO / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    return real_data_root()


TRAIN_COMMAND = ["-c", "from nasrun.commands.train import main; main()"]  # what the nasrun-train script runs


def run_cli(*args: str, env: dict | None = None, timeout: float = 300, command=("-m", "nasrun"),
            new_process: bool = False) -> subprocess.CompletedProcess:
    """`nasrun ARGS` (or nasrun-train's, with command=TRAIN_COMMAND) from the repository root, as the console
    script would run it: its exit status, stdout and stderr. It runs in this process (a new interpreter costs
    seconds of imports), unless `new_process`: for what only a process shows (signals, its own threads)."""
    full_env = {"COLUMNS": "200", "NASRUN_DATA": str(real_data_root()), **(env or {})}
    if new_process:
        merged = {**os.environ, **full_env}
        merged.pop("HYDRA_FULL_ERROR", None)
        return subprocess.run([sys.executable, *command, *args], cwd=REPO, env=merged, capture_output=True,
                              text=True, timeout=timeout)
    import torch

    from nasrun.bench.faults.runner import invoke
    from nasrun.commands import search, train

    main = train.main if list(command) == TRAIN_COMMAND else search.main
    saved = {name: os.environ.get(name) for name in full_env}
    cwd, threads = os.getcwd(), torch.get_num_threads()
    os.environ.update(full_env)
    os.chdir(REPO)
    try:
        code, out, err = invoke(list(args), REPO, main=main)
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)  # device.threads=N sets it for the whole process
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return subprocess.CompletedProcess([*command, *args], code, out, err)


def compose(*overrides: str, config_name: str = "config"):
    """The composed config for `overrides`, as `nasrun` (or, with config_name="train", nasrun-train) would see
    it, without running anything."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def write_fake_mnist(root: Path, n_train: int = 200, n_test: int = 50) -> None:
    """A tiny MNIST in torchvision's raw idx layout, so the real MNIST loader runs offline."""
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images, labels = rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            with open(raw / f"{prefix}-{kind}-ubyte", "wb") as f:
                f.write(struct.pack(">II", 2049 if array.ndim == 1 else 2051, n))
                f.write(b"".join(struct.pack(">I", d) for d in array.shape[1:]))
                f.write(array.astype(np.uint8).tobytes())


def fashion_mnist_images(root: Path, n: int, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The first `n` real Fashion-MNIST images (uint8, N x 28 x 28) and labels of `split`, read from the raw
    idx files under `root` (the shared data folder)."""
    prefix = "train" if split == "train" else "t10k"
    raw = Path(root) / "FashionMNIST" / "raw"
    images = np.fromfile(raw / f"{prefix}-images-idx3-ubyte", dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    labels = np.fromfile(raw / f"{prefix}-labels-idx1-ubyte", dtype=np.uint8, offset=8).astype(np.int64)
    return images[:n].copy(), labels[:n].copy()


def write_image_folder(root: Path, data_root: Path, n_train: int = 120, n_test: int = 40,
                       classes: int = 3) -> Path:
    """Real Fashion-MNIST images written as PNGs in the ImageFolder layout: root/train/<class>/, root/test/...,
    `classes` classes (named by Fashion-MNIST's class names). Returns root."""
    from PIL import Image

    names = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
    for split, n in (("train", n_train), ("test", n_test)):
        if not n:
            continue
        x, y = fashion_mnist_images(data_root, 4 * n + 100, split)
        keep = np.flatnonzero(y < classes)[:n]
        for i in keep:
            folder = Path(root) / split / names[y[i]]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[i]).save(folder / f"{i:05d}.png")
    return Path(root)
