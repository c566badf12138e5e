"""`dataset=folder`: users' images in a torchvision ImageFolder layout.

The image files are decoded once, in parallel worker processes, resized and converted to one shape, and cached
as a uint8 tensor file keyed by the folder's file list, sizes and times, so the next run starts at once. Then
the data follows the built-in datasets' in-memory path. Bad input is one line naming the file and the fix; a
failed or interrupted build leaves nothing in the cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from functools import partial
from pathlib import Path

import numpy as np

from nasrun.checks import UserError, check_float, check_int
from nasrun.data.builtin import ImageData, make_splits
from nasrun.data.user import check_memory, existing_path, hold_out_test
from nasrun.rundir.atomic import atomic_path
from nasrun.training.device import usable_cores

log = logging.getLogger(__name__)

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
CACHE_VERSION = 1  # bump when the cache file's content changes
PARALLEL_FROM = 2000  # images; fewer are decoded in this process (see decode_all)


def folder(path: str, image_size: int | None = None, channels: int | None = None, test_fraction: float = 0.2,
           cache_dir: str | None = "outputs/dataset_cache", memory_limit_gb: float | None = None,
           fraction: float = 1.0, val_fraction: float = 0.1, val_size: int | None = None, batch_size: int = 64,
           eval_batch_size: int = 128, augment: bool = False, *, seed: int = 0, device="cpu") -> ImageData:
    """Images under `path/train/<class>/` (or `path/<class>/`), and `path/test/<class>/` when there is one;
    else `test_fraction` of the images is held out as the test set (the same for every run seed)."""
    root = existing_path("path", path)
    check_float("test_fraction", test_fraction, low=0.0, high=0.9, low_open=True)
    if image_size is not None:
        check_int("image_size", image_size, low=4)
    if channels is not None:
        check_int("channels", channels, low=1, high=3)
        if channels == 2:
            raise ValueError("channels=2: must be 1 (grey) or 3 (RGB)")
    train_dir = root / "train" if (root / "train").is_dir() else root
    classes, train_files = _list_classes(train_dir)
    test_files = None
    if (root / "test").is_dir() and train_dir != root:
        test_classes, test_files = _list_classes(root / "test")
        extra = sorted(set(test_classes) - set(classes))
        if extra:
            raise UserError(f"dataset.path: {root / 'test' / extra[0]} is a class with no training images in "
                            f"{train_dir}; give it training images or remove it")
        test_files = [(f, classes.index(test_classes[label])) for f, label in test_files]
    read = partial(_read_folder, root, classes, train_files, test_files, image_size, channels, test_fraction,
                   cache_dir, memory_limit_gb)
    return make_splits(root.name, read, len(classes), fraction=fraction, val_fraction=val_fraction,
                       batch_size=batch_size, seed=seed, device=device, augment=augment, val_size=val_size,
                       eval_batch_size=eval_batch_size, classes=tuple(classes))


def _list_classes(folder: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names (sorted sub-folders, as torchvision's ImageFolder) and (file, label) pairs in a fixed order."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise UserError(f"dataset.path: {folder} has {len(classes)} class folder(s); it needs one folder of images "
                        f"per class, at least two (e.g. {folder}/cat/*.png, {folder}/dog/*.png)")
    files = []
    for label, name in enumerate(classes):
        # os.walk and plain strings: pathlib's per-file objects cost more than the rest of a cached start.
        images = sorted(os.path.join(where, f) for where, _, names in os.walk(folder / name) for f in names
                        if os.path.splitext(f)[1].lower() in EXTENSIONS)
        if not images:
            raise UserError(f"dataset.path: class folder {folder / name} holds no images "
                            f"({', '.join(EXTENSIONS)}); add images or remove the folder")
        files += [(p, label) for p in images]
    return classes, files


def _fingerprint(root: Path, files: list, extra: tuple) -> str:
    """The cache key: every file's relative path, size and modification time, plus the decoding settings."""
    digest = hashlib.sha256(repr((CACHE_VERSION, extra)).encode())
    skip = len(str(root)) + 1
    for path, label in files:
        stat = os.stat(path)
        digest.update(f"{path[skip:]}\0{stat.st_size}\0{stat.st_mtime_ns}\0{label}\n".encode())
    return digest.hexdigest()[:24]


def _read_folder(root, classes, train_files, test_files, image_size, channels, test_fraction, cache_dir,
                 memory_limit_gb):
    import torch

    all_files = train_files + (test_files or [])
    first_size, first_channels = _probe(all_files[0][0])
    size = image_size or first_size
    channels = channels or first_channels
    check_memory(len(all_files), channels, size, str(root), memory_limit_gb, resizable=True)
    key = _fingerprint(root, all_files, (image_size, channels, size, classes, test_files is not None))
    cache = Path(cache_dir).expanduser() / f"{root.name}-{key}.pt" if cache_dir else None
    if cache is not None and cache.is_file():
        cached = _load_cache(cache, len(train_files), len(test_files or []), channels, size)
        if cached is not None:
            log.info("%s: %d images from the cache %s", root.name, len(all_files), cache)
            return _split(cached, test_files is not None, test_fraction)
    x = decode_all([f for f, _ in all_files], size, channels, fixed_size=image_size is None)
    y = np.array([label for _, label in all_files], dtype=np.int64)
    content = {"version": CACHE_VERSION, "x": torch.from_numpy(x), "y": torch.from_numpy(y),
               "n_train": len(train_files)}
    if cache is not None:
        _write_cache(cache, content)
    return _split(content, test_files is not None, test_fraction)


def _split(content: dict, has_test: bool, test_fraction: float) -> tuple:
    x, y, n_train = content["x"].numpy(), content["y"].numpy(), content["n_train"]
    if has_test:
        return x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    return hold_out_test(x, y, test_fraction)


def _probe(path: str) -> tuple[int, int]:
    """The first image's side and channels: the defaults for dataset.image_size and dataset.channels."""
    image = _open(path)
    width, height = image.size
    if width != height:
        raise UserError(f"dataset.path: {path} is {width}x{height}, not square; set dataset.image_size=N to resize "
                        f"every image to NxN")
    return width, 1 if image.mode in ("1", "L", "LA", "I", "I;16", "F") else 3


def _open(path: str):
    from PIL import Image

    try:
        image = Image.open(path)
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        # PIL: UnidentifiedImageError (an OSError) for a file that is no image, OSError for a truncated one.
        raise UserError(f"dataset.path: cannot read the image {path} ({err}); replace or remove the file") from None
    return image


def decode_one(path: str, size: int, channels: int, fixed_size: bool) -> np.ndarray:
    """One image as a (channels, size, size) uint8 array."""
    from PIL import Image

    image = _open(path)
    if image.size != (size, size):
        if fixed_size:
            raise UserError(f"dataset.path: {path} is {image.size[0]}x{image.size[1]} but the first image is "
                            f"{size}x{size}; set dataset.image_size=N to resize every image to NxN")
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    image = image.convert("L" if channels == 1 else "RGB")
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def _worker_setup(parent: int) -> None:
    """A decode worker ignores Ctrl-C (nasrun handles it and reports one line, without a traceback per worker)
    and ends when nasrun does, even by SIGKILL: otherwise it would wait for work forever as an orphan (Linux's
    PR_SET_PDEATHSIG; the parent may have died before the call, hence the check after it)."""
    import ctypes
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def decode_chunk(paths: list[str], size: int, channels: int, fixed_size: bool) -> np.ndarray:
    out = np.empty((len(paths), channels, size, size), dtype=np.uint8)
    for i, path in enumerate(paths):
        out[i] = decode_one(path, size, channels, fixed_size)
    return out


def decode_all(paths: list[str], size: int, channels: int, fixed_size: bool, workers: int | None = None):
    """Every image decoded into one (N, C, size, size) uint8 array, in chunks over worker processes.

    Processes, not threads: opening a small PNG is mostly Python work under the GIL (threads measured slower
    than one thread on 28x28 images). Workers are forked: spawned ones would re-import the caller's main
    module (running a user's unguarded script again). Forking a process that has imported torch is safe here
    because the workers only run PIL and numpy (no torch, no OpenMP, no logging). Without fork (macOS,
    Windows), or below PARALLEL_FROM images, where start-up costs more than it saves, decoding stays here."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if workers is None:
        workers = usable_cores()
    fork = "fork" in multiprocessing.get_all_start_methods() and sys.platform == "linux"
    if workers <= 1 or len(paths) < PARALLEL_FROM or not fork:
        return decode_chunk(paths, size, channels, fixed_size)
    out = np.empty((len(paths), channels, size, size), dtype=np.uint8)
    # Several chunks per worker even out slow files; at most 256 images each, so an interrupted or failed decode
    # waits for little more than the chunks already running.
    step = min(256, max(16, -(-len(paths) // (8 * workers))))
    starts = range(0, len(paths), step)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_worker_setup, initargs=(os.getpid(),))
    try:
        chunks = pool.map(decode_chunk, [paths[s:s + step] for s in starts], [size] * len(starts),
                          [channels] * len(starts), [fixed_size] * len(starts))
        for start, chunk in zip(starts, chunks):  # re-raises a worker's error (a UserError naming the file)
            out[start:start + len(chunk)] = chunk
    except BaseException:  # Ctrl-C or a bad file: drop the queued chunks instead of decoding them all first
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return out


def _write_cache(path: Path, content: dict) -> None:
    """Atomically, under a name unique to this process: a killed or failing write leaves no partial cache."""
    import torch

    try:
        with atomic_path(path) as tmp:
            torch.save(content, tmp)
    except UserError as err:  # the cache only saves time: the run goes on without it
        log.warning("dataset cache not written (%s); the images are decoded again next run", err)


def _load_cache(path: Path, n_train: int, n_test: int, channels: int, size: int) -> dict | None:
    """The cached tensors, checked against what the folder holds; None (and a warning) when damaged."""
    import pickle

    import torch

    try:
        content = torch.load(path, weights_only=True)
        x, y = content["x"], content["y"]
        if content.get("version") != CACHE_VERSION or x.dtype != torch.uint8 or \
                tuple(x.shape) != (n_train + n_test, channels, size, size) or tuple(y.shape) != (n_train + n_test,) \
                or content.get("n_train") != n_train:
            raise ValueError("unexpected content")
        return content
    except (OSError, RuntimeError, ValueError, KeyError, TypeError, EOFError, pickle.UnpicklingError) as err:
        log.warning("%s is damaged (%s); decoding the images again", path, err)
        return None
