"""Image datasets held in memory as uint8 tensors on the training device, served by slicing.

Per-sample PIL transforms and DataLoader workers cost more than the small networks we train on a laptop CPU
(see `make bench`), so each dataset is read once into one uint8 tensor, split with the run's seed, and every
batch is a gather + normalise (+ batched crop/flip for CIFAR-10) on the device.

Each `dataset` config option targets one loader function below; all return an `ImageData`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Iterator

import numpy as np

from nasrun.checks import UserError, check_bool, check_float, check_int

log = logging.getLogger(__name__)


@dataclass
class ImageData:
    """Train / validation / test splits as uint8 NCHW tensors plus what is needed to serve batches."""

    name: str
    train_x: "torch.Tensor"
    train_y: "torch.Tensor"
    val_x: "torch.Tensor"
    val_y: "torch.Tensor"
    test_x: "torch.Tensor"
    test_y: "torch.Tensor"
    mean: "torch.Tensor"  # (1, C, 1, 1) float, per channel, from the training split
    std: "torch.Tensor"
    num_classes: int
    batch_size: int
    augment: bool = False  # random crop (pad 4) + horizontal flip on training batches

    @property
    def in_channels(self) -> int:
        return self.train_x.shape[1]

    @property
    def image_size(self) -> int:
        return self.train_x.shape[2]

    @property
    def device(self):
        return self.train_x.device

    def normalize(self, x):
        return (x.float() - self.mean) / self.std

    def train_batches(self, generator) -> Iterator[tuple]:
        """One epoch of shuffled, normalised (and augmented) training batches; `generator` is a CPU torch.Generator."""
        import torch

        order = torch.randperm(len(self.train_x), generator=generator).to(self.device)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            x = self.normalize(self.train_x[idx])
            if self.augment:
                x = crop_and_flip(x, generator)
            yield x, self.train_y[idx]

    def eval_batches(self, split: str, batch_size: int | None = None) -> Iterator[tuple]:
        """Batches of `val` or `test` in order, normalised, no augmentation."""
        x_all, y_all = {"val": (self.val_x, self.val_y), "test": (self.test_x, self.test_y)}[split]
        step = batch_size or max(self.batch_size, 500)
        for start in range(0, len(x_all), step):
            yield self.normalize(x_all[start:start + step]), y_all[start:start + step]


def crop_and_flip(x, generator, pad: int = 4):
    """Batched random crop (zero padding after normalisation, i.e. the mean colour) and horizontal flip."""
    import torch
    import torch.nn.functional as F

    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = torch.arange(w, device=x.device).expand(n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + dx[:, None]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols[:, None, None, :]]


def make_splits(name, read, num_classes, *, fraction, val_fraction, batch_size, seed, device,
                augment=False, rgb=False) -> ImageData:
    """Check the split options, then `read()` the arrays (train_x, train_y, test_x, test_y), hold out
    `val_fraction` of the training set (seeded), keep `fraction` of the rest, and move all to `device`.
    `rgb` copies a grey channel into three. Checking first means a typo costs no disk read or download."""
    import torch

    check_float("fraction", fraction, low=0.0, high=1.0, low_open=True)
    check_float("val_fraction", val_fraction, low=0.0, high=0.5, low_open=True)
    check_int("batch_size", batch_size, low=1)
    check_bool("rgb", rgb)
    train_x, train_y, test_x, test_y = read()
    train_x, train_y = torch.as_tensor(train_x), torch.as_tensor(train_y).long()
    if train_x.ndim == 3:  # grey images come as N x H x W
        train_x, test_x = train_x[:, None], torch.as_tensor(test_x)[:, None]
    test_x, test_y = torch.as_tensor(test_x), torch.as_tensor(test_y).long()
    if rgb and train_x.shape[1] == 1:
        train_x, test_x = train_x.expand(-1, 3, -1, -1), test_x.expand(-1, 3, -1, -1)
    order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(val_fraction * len(train_x)))
    val_idx, rest = order[:n_val], order[n_val:]
    n_train = max(1, round(fraction * len(rest)))
    train_idx = rest[:n_train]
    fit = train_x[train_idx].float()
    mean = fit.mean(dim=(0, 2, 3), keepdim=True)
    std = fit.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)
    data = ImageData(
        name=name,
        train_x=train_x[train_idx].contiguous().to(device), train_y=train_y[train_idx].to(device),
        val_x=train_x[val_idx].contiguous().to(device), val_y=train_y[val_idx].to(device),
        test_x=test_x.contiguous().to(device), test_y=test_y.to(device),
        mean=mean.to(device), std=std.to(device),
        num_classes=num_classes, batch_size=batch_size, augment=augment,
    )
    log.info("%s: %d train / %d val / %d test images of %s on %s", name, len(data.train_x), len(data.val_x),
             len(data.test_x), tuple(data.train_x.shape[1:]), device)
    return data


def _missing(name: str, folder: Path, files: list[str], err: Exception, download: bool,
             hint: str = "") -> UserError:
    why = "download failed: " + str(err).splitlines()[0] if download else "dataset.download=false"
    return UserError(
        f"{name} not found: expected {', '.join(files)} in {folder} ({why}{hint}); set dataset.root=DIR or "
        f"NASRUN_DATA=DIR to the folder that holds it, or dataset.download=true with internet access"
    )


def _torchvision_mnist(cls_name: str, folder_name: str, root, download):
    import torchvision

    check_bool("download", download)
    cls = getattr(torchvision.datasets, cls_name)
    files = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte"]
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except (RuntimeError, OSError) as err:  # torchvision: "Dataset not found"; urllib: no network
        raise _missing(cls_name, Path(root) / folder_name / "raw", files, err, download) from None
    return train.data, train.targets, test.data, test.targets


def fashion_mnist(root: str = "data", download: bool = True, fraction: float = 1.0, val_fraction: float = 0.1,
                  batch_size: int = 256, rgb: bool = False, *, seed: int = 0, device="cpu") -> ImageData:
    """Fashion-MNIST (Xiao et al. 2017): 28x28 grey, 10 classes, via torchvision's layout under `root`.
    rgb=true copies the grey channel into three, as Matos (2023) fed Fashion-MNIST to NAS-Bench-201 networks."""
    read = partial(_torchvision_mnist, "FashionMNIST", "FashionMNIST", root, download)
    return make_splits("fashion_mnist", read, 10, fraction=fraction, val_fraction=val_fraction,
                       batch_size=batch_size, seed=seed, device=device, rgb=rgb)


def mnist(root: str = "data", download: bool = True, fraction: float = 1.0, val_fraction: float = 0.1,
          batch_size: int = 256, rgb: bool = False, *, seed: int = 0, device="cpu") -> ImageData:
    """MNIST: 28x28 grey digits, 10 classes, via torchvision's layout under `root`; rgb=true: three channels."""
    read = partial(_torchvision_mnist, "MNIST", "MNIST", root, download)
    return make_splits("mnist", read, 10, fraction=fraction, val_fraction=val_fraction,
                       batch_size=batch_size, seed=seed, device=device, rgb=rgb)


def read_cifar10_binary(folder: Path) -> tuple:
    """The official binary layout: records of 1 label byte then 3x1024 bytes (R, G, B planes, row-major)."""
    def read(names):
        raw = np.concatenate([np.fromfile(folder / n, dtype=np.uint8) for n in names])
        if raw.size % 3073:
            raise UserError(f"{folder}: file sizes are not a multiple of 3073-byte CIFAR-10 records")
        records = raw.reshape(-1, 3073)
        return records[:, 1:].reshape(-1, 3, 32, 32).copy(), records[:, 0].astype(np.int64)

    train_x, train_y = read([f"data_batch_{i}.bin" for i in range(1, 6)])
    test_x, test_y = read(["test_batch.bin"])
    return train_x, train_y, test_x, test_y


def cifar10(root: str = "data", download: bool = True, fraction: float = 1.0, val_fraction: float = 0.1,
            batch_size: int = 256, augment: bool = True, *, seed: int = 0, device="cpu") -> ImageData:
    """CIFAR-10: 32x32 RGB, 10 classes. Reads `cifar-10-batches-bin/` (official binary) or torchvision's python
    layout `cifar-10-batches-py/`, downloading the latter when allowed."""
    check_bool("augment", augment)
    check_bool("download", download)
    return make_splits("cifar10", partial(_read_cifar10, Path(root), download), 10, fraction=fraction,
                       val_fraction=val_fraction, batch_size=batch_size, seed=seed, device=device, augment=augment)


def _read_cifar10(root: Path, download: bool) -> tuple:
    binary = root / "cifar-10-batches-bin"
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    if all((binary / n).is_file() for n in names):
        return read_cifar10_binary(binary)
    import torchvision

    try:
        train = torchvision.datasets.CIFAR10(str(root), train=True, download=download)
        test = torchvision.datasets.CIFAR10(str(root), train=False, download=download)
    except (RuntimeError, OSError) as err:
        raise _missing("CIFAR-10", binary, names, err, download,
                       "; torchvision's cifar-10-batches-py/ works too") from None
    # torchvision keeps NHWC numpy arrays
    return (train.data.transpose(0, 3, 1, 2), np.array(train.targets),
            test.data.transpose(0, 3, 1, 2), np.array(test.targets))


def synthetic(num_train: int = 512, num_test: int = 256, image_size: int = 16, channels: int = 1,
              num_classes: int = 4, fraction: float = 1.0, val_fraction: float = 0.1, batch_size: int = 64, *,
              seed: int = 0, device="cpu") -> ImageData:
    """Small random images with a learnable signal, for smoke tests: each class adds its own fixed blocky
    pattern to Gaussian noise, so a network that learns the patterns approaches 100 % accuracy."""
    check_int("num_train", num_train, low=4)
    check_int("num_test", num_test, low=1)
    check_int("image_size", image_size, low=16)
    check_int("channels", channels, low=1)
    check_int("num_classes", num_classes, low=2)
    rng = np.random.default_rng(12345)  # the task is fixed; the run seed only splits it
    # Coarse (4x4, upsampled) patterns: a small CNN picks them up within a few dozen steps.
    coarse = rng.uniform(-70, 70, size=(num_classes, channels, 4, 4))
    reps = -(-image_size // 4)
    patterns = coarse.repeat(reps, axis=2).repeat(reps, axis=3)[:, :, :image_size, :image_size]

    def make(n):
        y = rng.integers(num_classes, size=n)
        x = rng.normal(128, 40, size=(n, channels, image_size, image_size)) + patterns[y]
        return np.clip(x, 0, 255).astype(np.uint8), y

    return make_splits("synthetic", lambda: (*make(num_train), *make(num_test)), num_classes,
                       fraction=fraction, val_fraction=val_fraction, batch_size=batch_size, seed=seed, device=device)
