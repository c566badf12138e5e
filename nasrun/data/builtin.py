"""Image datasets held in memory as uint8 tensors on the training device, served by slicing.

Per-sample PIL transforms and DataLoader workers cost more than the small networks we train on a laptop CPU
(see `make bench`), so each dataset is read once into one uint8 tensor, split with the run's seed, and every
batch is a gather + normalise (+ batched crop/flip for CIFAR-10) on the device.

Each `dataset` config option targets one loader function below; all return an `ImageData`.
"""

from __future__ import annotations

import logging
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from nasrun.checks import UserError, check_bool, check_float, check_int
from nasrun.data.checksums import verify_files

if TYPE_CHECKING:
    import torch

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
    eval_batch_size: int = 128  # validation and test batches (see nasrun.training.train.evaluate for why not larger)
    classes: tuple[str, ...] | None = None  # class names by label, when the data has them (a folder's)

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

    def to(self, device) -> "ImageData":
        """The same splits on another device (a worker's GPU, or the CPU to send them to workers)."""
        import torch

        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self)
                 if isinstance(getattr(self, f.name), torch.Tensor)}
        return replace(self, **moved)

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
        step = batch_size or self.eval_batch_size
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
                augment=False, rgb=False, val_size=None, eval_batch_size=128, classes=None) -> ImageData:
    """Check the split options, then `read()` the arrays (train_x, train_y, test_x, test_y), hold out
    `val_size` images (else `val_fraction` of the training set; seeded), keep `fraction` of the rest, and move
    all to `device`. `rgb` copies a grey channel into three. Checking first means a typo costs no disk read or
    download."""
    import torch

    check_float("fraction", fraction, low=0.0, high=1.0, low_open=True)
    check_float("val_fraction", val_fraction, low=0.0, high=0.5, low_open=True)
    if val_size is not None:
        check_int("val_size", val_size, low=1)
    check_int("batch_size", batch_size, low=1)
    check_int("eval_batch_size", eval_batch_size, low=1)
    check_bool("rgb", rgb)
    train_x, train_y, test_x, test_y = read()
    train_x, train_y = torch.as_tensor(train_x), torch.as_tensor(train_y).long()
    if train_x.ndim == 3:  # grey images come as N x H x W
        train_x, test_x = train_x[:, None], torch.as_tensor(test_x)[:, None]
    test_x, test_y = torch.as_tensor(test_x), torch.as_tensor(test_y).long()
    if rgb and train_x.shape[1] == 1:
        train_x, test_x = train_x.expand(-1, 3, -1, -1), test_x.expand(-1, 3, -1, -1)
    order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))
    n_val = val_size if val_size is not None else max(1, round(val_fraction * len(train_x)))
    if n_val >= len(train_x):
        raise UserError(f"dataset.val_size={n_val}: the training set has only {len(train_x)} images; "
                        f"hold out fewer")
    val_idx, rest = order[:n_val], order[n_val:]
    n_train = max(1, round(fraction * len(rest)))
    train_idx = rest[:n_train]
    mean, std = channel_stats(train_x[train_idx])
    data = ImageData(
        name=name,
        train_x=train_x[train_idx].contiguous().to(device), train_y=train_y[train_idx].to(device),
        val_x=train_x[val_idx].contiguous().to(device), val_y=train_y[val_idx].to(device),
        test_x=test_x.contiguous().to(device), test_y=test_y.to(device),
        mean=mean.to(device), std=std.to(device),
        num_classes=num_classes, batch_size=batch_size, augment=augment, eval_batch_size=eval_batch_size,
        classes=classes,
    )
    log.info("%s: %d train / %d val / %d test images of %s on %s", name, len(data.train_x), len(data.val_x),
             len(data.test_x), tuple(data.train_x.shape[1:]), device)
    return data


def channel_stats(x, chunk: int = 4096):
    """Per-channel mean and std (as (1, C, 1, 1) floats) of images. uint8 images are counted per value (a
    histogram of 256 bins per channel: the same exact integer sums, five times faster than summing them); others
    are summed in float64 chunks, since a float copy of a large training split at once would take four times
    its memory."""
    import torch

    total = torch.zeros(x.shape[1], dtype=torch.float64)
    squares = torch.zeros(x.shape[1], dtype=torch.float64)
    if x.dtype == torch.uint8:
        values = torch.arange(256, dtype=torch.float64)
        for c in range(x.shape[1]):
            counts = torch.bincount(x[:, c].reshape(-1), minlength=256).double()
            total[c], squares[c] = (counts * values).sum(), (counts * values * values).sum()
    for start in range(0, len(x) if x.dtype != torch.uint8 else 0, chunk):
        part = x[start:start + chunk].double()
        total += part.sum(dim=(0, 2, 3))
        squares += (part * part).sum(dim=(0, 2, 3))
    count = len(x) * x.shape[2] * x.shape[3]
    mean = total / count
    var = (squares - count * mean * mean) / max(count - 1, 1)  # unbiased, as torch.std
    std = var.clamp_min(0).sqrt().clamp_min(1e-3)
    return mean.float().view(1, -1, 1, 1), std.float().view(1, -1, 1, 1)


def _missing(name: str, folder: Path, files: list[str], err: Exception, download: bool,
             hint: str = "") -> UserError:
    """The dataset is not there: the files that are missing named first (all of them, or the few of a folder
    that holds the rest), then why no download replaced them, then the fix."""
    why = "download failed: " + str(err).splitlines()[0] if download else "dataset.download=false"
    missing = [f for f in files if not (folder / f).is_file()]
    if missing and len(missing) < len(files):  # a folder with a file or two gone: name just those
        return UserError(f"{name}: {folder} lacks {', '.join(missing)} ({len(files) - len(missing)} of "
                         f"{len(files)} files are there; {why})",
                         f"copy {'it' if len(missing) == 1 else 'them'} there from the official archive, or set "
                         f"dataset.root=DIR (or NASRUN_DATA=DIR) to a folder with all {len(files)}", path=folder)
    return UserError(
        f"{name} not found: expected {', '.join(files)} in {folder} ({why}{hint})",
        "put those files there, or set dataset.root=DIR or NASRUN_DATA=DIR to the folder that holds them, or "
        "dataset.download=true with internet access", path=folder)


@contextmanager
def _nothing_left_on_failure(root: Path, folder: str):
    """Undo what a failed load or download created: new folders (`./data` itself, `FashionMNIST/raw`) and
    partial files, at the top of `root` and inside `root/folder`. Files that were there before are kept."""
    root = Path(root)
    topmost_new = None  # the highest folder on the way to root that does not exist yet
    for path in (root, *root.parents):
        if path.exists():
            break
        topmost_new = path
    top = set(root.iterdir()) if root.is_dir() else set()
    inner_dir = root / folder
    inner = set(inner_dir.rglob("*")) if inner_dir.is_dir() else set()
    try:
        yield
    except BaseException:
        if topmost_new is not None:
            shutil.rmtree(topmost_new, ignore_errors=True)
        elif root.is_dir():
            for path in set(root.iterdir()) - top:
                _remove(path)
            if inner_dir in top and inner_dir.is_dir():
                for path in sorted(set(inner_dir.rglob("*")) - inner, reverse=True):  # children first
                    _remove(path)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte"]


def _torchvision_mnist(cls_name: str, folder_name: str, root, download, verify: bool = False):
    import torchvision

    check_bool("download", download)
    cls = getattr(torchvision.datasets, cls_name)
    names = [f"{folder_name}/raw/{n}" for n in MNIST_FILES]
    # torchvision checks the archives it downloads, not the files it then reads: check those already here first
    # (a truncated file would fail inside torchvision with a message about something else).
    present = all((Path(root) / n).is_file() for n in names)
    if verify and present:
        verify_files(root, names, DAMAGED_FIX)
    try:
        with _nothing_left_on_failure(Path(root), folder_name):
            train = cls(str(root), train=True, download=download)
            test = cls(str(root), train=False, download=download)
            if verify and not present:
                verify_files(root, names, DAMAGED_FIX)
    except (RuntimeError, OSError) as err:  # torchvision: "Dataset not found" or a short file; urllib: no network
        if present:
            raise UserError(f"{Path(root) / folder_name / 'raw'}: torchvision could not read the {cls_name} files "
                            f"({str(err).splitlines()[0]}); {DAMAGED_FIX.split(';')[0]}") from None
        raise _missing(cls_name, Path(root) / folder_name / "raw", MNIST_FILES, err, download) from None
    return train.data, train.targets, test.data, test.targets


DAMAGED_FIX = ("delete it and let torchvision download it again (dataset.download=true), or copy a good one; "
               "dataset.verify=false uses it as it is")


def fashion_mnist(root: str = "data", download: bool = True, fraction: float = 1.0, val_fraction: float = 0.1,
                  batch_size: int = 256, rgb: bool = False, val_size: int | None = None,
                  eval_batch_size: int = 128, verify: bool = True, *, seed: int = 0, device="cpu") -> ImageData:
    """Fashion-MNIST (Xiao et al. 2017): 28x28 grey, 10 classes, via torchvision's layout under `root`.
    rgb=true copies the grey channel into three, as Matos (2023) fed Fashion-MNIST to NAS-Bench-201 networks.
    verify: check the files against their published sizes and md5 (`nasrun.data.checksums`)."""
    check_bool("verify", verify)
    read = partial(_torchvision_mnist, "FashionMNIST", "FashionMNIST", root, download, verify)
    return make_splits("fashion_mnist", read, 10, fraction=fraction, val_fraction=val_fraction,
                       batch_size=batch_size, seed=seed, device=device, rgb=rgb, val_size=val_size,
                       eval_batch_size=eval_batch_size)


def mnist(root: str = "data", download: bool = True, fraction: float = 1.0, val_fraction: float = 0.1,
          batch_size: int = 256, rgb: bool = False, val_size: int | None = None, eval_batch_size: int = 128, *,
          seed: int = 0, device="cpu") -> ImageData:
    """MNIST: 28x28 grey digits, 10 classes, via torchvision's layout under `root`; rgb=true: three channels."""
    read = partial(_torchvision_mnist, "MNIST", "MNIST", root, download)
    return make_splits("mnist", read, 10, fraction=fraction, val_fraction=val_fraction,
                       batch_size=batch_size, seed=seed, device=device, rgb=rgb, val_size=val_size,
                       eval_batch_size=eval_batch_size)


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
            batch_size: int = 256, augment: bool = True, val_size: int | None = None, eval_batch_size: int = 128,
            verify: bool = True, *, seed: int = 0, device="cpu") -> ImageData:
    """CIFAR-10: 32x32 RGB, 10 classes. Reads `cifar-10-batches-bin/` (official binary) or torchvision's python
    layout `cifar-10-batches-py/`, downloading the latter when allowed. verify: check the binary files against
    their published sizes and md5 (`nasrun.data.checksums`; torchvision checks its own layout)."""
    check_bool("augment", augment)
    check_bool("download", download)
    check_bool("verify", verify)
    return make_splits("cifar10", partial(_read_cifar10, Path(root), download, verify), 10, fraction=fraction,
                       val_fraction=val_fraction, batch_size=batch_size, seed=seed, device=device, augment=augment,
                       val_size=val_size, eval_batch_size=eval_batch_size)


def _read_cifar10(root: Path, download: bool, verify: bool = False) -> tuple:
    binary = root / "cifar-10-batches-bin"
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    if all((binary / n).is_file() for n in names):
        if verify:
            verify_files(root, [f"cifar-10-batches-bin/{n}" for n in names],
                         "copy a good one from the official binary archive, or delete the folder to read "
                         "torchvision's cifar-10-batches-py/; dataset.verify=false uses it as it is")
        return read_cifar10_binary(binary)
    import torchvision

    try:
        with _nothing_left_on_failure(root, "cifar-10-batches-py"):
            train = torchvision.datasets.CIFAR10(str(root), train=True, download=download)
            test = torchvision.datasets.CIFAR10(str(root), train=False, download=download)
    except (RuntimeError, OSError) as err:
        raise _missing("CIFAR-10", binary, names, err, download,
                       "; torchvision's cifar-10-batches-py/ works too") from None
    # torchvision keeps NHWC numpy arrays
    return (train.data.transpose(0, 3, 1, 2), np.array(train.targets),
            test.data.transpose(0, 3, 1, 2), np.array(test.targets))


def synthetic(num_train: int = 1024, num_test: int = 256, image_size: int = 16, channels: int = 1,
              num_classes: int = 4, fraction: float = 1.0, val_fraction: float = 0.1, batch_size: int = 32,
              val_size: int | None = None, eval_batch_size: int = 128, rgb: bool = False, *, seed: int = 0,
              device="cpu") -> ImageData:
    """Small random images with a learnable signal, for smoke tests: each class brightens its own quadrant of
    the image over Gaussian noise. Any network that works learns that in one epoch (the smallest `custom`
    network reaches well above the 25 % chance level; a test holds it to that), so a smoke run near chance
    means a broken trainer, not a weak network. `rgb` copies a grey channel into three, as for Fashion-MNIST."""
    check_int("num_train", num_train, low=4)
    check_int("num_test", num_test, low=1)
    check_int("image_size", image_size, low=16)
    check_int("channels", channels, low=1)
    check_int("num_classes", num_classes, low=2)
    rng = np.random.default_rng(12345)  # the task is fixed; the run seed only splits it
    # Class k lights a fixed block of the image (a grid of num_classes blocks): a large, position-coded signal
    # that convolutions, pooling and a linear read-out all pick up within a few dozen steps.
    grid = int(np.ceil(np.sqrt(num_classes)))
    block = image_size // grid
    patterns = np.zeros((num_classes, channels, image_size, image_size))
    for k in range(num_classes):
        row, col = divmod(k, grid)
        patterns[k, :, row * block:(row + 1) * block, col * block:(col + 1) * block] = 20.0

    def make(n):
        y = rng.integers(num_classes, size=n)
        x = rng.normal(100, 50, size=(n, channels, image_size, image_size)) + patterns[y]
        return np.clip(x, 0, 255).astype(np.uint8), y

    return make_splits("synthetic", lambda: (*make(num_train), *make(num_test)), num_classes,
                       fraction=fraction, val_fraction=val_fraction, batch_size=batch_size, seed=seed, device=device,
                       val_size=val_size, eval_batch_size=eval_batch_size, rgb=rgb)
