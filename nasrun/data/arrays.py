"""`dataset=arrays`: users' images as numpy arrays in an .npz file.

The arrays' shapes and dtypes are read from the .npy headers first, so a wrong layout or dtype, or data too
big for memory, is refused before anything is loaded. Then the data follows the built-in datasets' in-memory
path.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from nasrun.checks import UserError, check_float, check_int
from nasrun.data.builtin import ImageData, make_splits
from nasrun.data.user import check_memory, existing_path, hold_out_test


def arrays(path: str, num_classes: int | None = None, test_fraction: float = 0.2,
           memory_limit_gb: float | None = None, fraction: float = 1.0, val_fraction: float = 0.1,
           val_size: int | None = None, batch_size: int = 64, eval_batch_size: int = 128, augment: bool = False, *,
           seed: int = 0, device="cpu") -> ImageData:
    """An .npz with uint8 images `x_train` (N x H x W, N x H x W x C or N x C x H x W) and integer labels
    `y_train`, optionally `x_test` and `y_test` (else `test_fraction` is held out, the same for every seed).
    num_classes: null counts them from the labels (largest + 1)."""
    file = existing_path("path", path, is_file=True)
    check_float("test_fraction", test_fraction, low=0.0, high=0.9, low_open=True)
    if num_classes is not None:
        check_int("num_classes", num_classes, low=2)
    shapes = _npz_shapes(file)
    if "x_train" not in shapes or "y_train" not in shapes:
        raise UserError(f"dataset.path: {file} holds {', '.join(sorted(shapes)) or 'no arrays'}; it needs x_train "
                        f"and y_train (and optionally x_test, y_test), e.g. np.savez(file, x_train=..., y_train=...)")
    if ("x_test" in shapes) != ("y_test" in shapes):
        raise UserError(f"dataset.path: {file} has only one of x_test and y_test; give both or neither")
    for key in ("x_train", "x_test"):
        if key in shapes:
            _check_image_array(file, key, *shapes[key])
    count = sum(shapes[k][0][0] for k in ("x_train", "x_test") if k in shapes)
    side, channels = _side_and_channels(shapes["x_train"][0])
    check_memory(count, channels, side, str(file), memory_limit_gb)
    with np.load(file, allow_pickle=False) as npz:
        x_train, y_train = _nchw(npz["x_train"]), npz["y_train"]
        x_test, y_test = (_nchw(npz["x_test"]), npz["y_test"]) if "x_test" in shapes else (None, None)
    _check_labels(file, "y_train", y_train, len(x_train), num_classes)
    num_classes = num_classes or int(y_train.max()) + 1
    if num_classes < 2:
        raise UserError(f"dataset.path: {file}: y_train holds a single class; a classifier needs at least two")
    if x_test is not None and y_test is not None:
        _check_labels(file, "y_test", y_test, len(x_test), num_classes)
        if x_test.shape[1:] != x_train.shape[1:]:
            raise UserError(f"dataset.path: {file}: x_test images are {_shape(x_test)} but x_train images are "
                            f"{_shape(x_train)}; give both the same shape")

    def read():
        if x_test is not None:
            return x_train, y_train, x_test, y_test
        return hold_out_test(x_train, y_train, test_fraction)

    return make_splits(file.stem, read, num_classes, fraction=fraction, val_fraction=val_fraction,
                       batch_size=batch_size, seed=seed, device=device, augment=augment, val_size=val_size,
                       eval_batch_size=eval_batch_size)


def _npz_shapes(file: Path) -> dict[str, tuple[tuple, np.dtype]]:
    """Each array's (shape, dtype) from the .npy headers inside the .npz, without loading any data."""
    shapes = {}
    try:
        with zipfile.ZipFile(file) as archive:
            for name in archive.namelist():
                if not name.endswith(".npy"):
                    continue
                with archive.open(name) as fp:
                    version = np.lib.format.read_magic(fp)
                    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _, dtype = reader(fp)
                shapes[name[:-4]] = (shape, dtype)
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise UserError(f"dataset.path: {file} is not a readable .npz ({err}); write it with numpy.savez") from None
    return shapes


def _check_image_array(file: Path, key: str, shape: tuple, dtype: np.dtype) -> None:
    fix = f"dataset.path: {file}: {key}"
    if dtype != np.uint8:
        raise UserError(f"{fix} has dtype {dtype}; images must be uint8 in 0-255, e.g. "
                        f"(x * 255).round().astype(np.uint8) for floats in [0, 1]")
    if len(shape) not in (3, 4) or (len(shape) == 4 and 1 not in (shape[1], shape[3]) and
                                    3 not in (shape[1], shape[3])):
        raise UserError(f"{fix} has shape {shape}; give N x H x W (grey), N x H x W x C or N x C x H x W with "
                        f"C = 1 or 3")
    height, width = _hw(shape)
    if height != width:
        raise UserError(f"{fix} holds {height}x{width} images; the spaces need square images, so crop or resize "
                        f"them")


def _hw(shape: tuple) -> tuple[int, int]:
    return (shape[1], shape[2]) if len(shape) == 3 or shape[3] in (1, 3) else (shape[2], shape[3])


def _side_and_channels(shape: tuple) -> tuple[int, int]:
    channels = 1 if len(shape) == 3 else shape[3] if shape[3] in (1, 3) else shape[1]
    return _hw(shape)[0], channels


def _nchw(x: np.ndarray) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x.shape[3] in (1, 3) else x


def _shape(x) -> str:
    return "x".join(str(d) for d in x.shape[1:])


def _check_labels(file: Path, key: str, y: np.ndarray, count: int, num_classes: int | None) -> None:
    fix = f"dataset.path: {file}: {key}"
    if y.ndim != 1 or len(y) != count:
        raise UserError(f"{fix} has shape {y.shape}; it needs one label per image ({count})")
    if not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{fix} has dtype {y.dtype}; labels must be integers 0 .. classes-1")
    if len(y) and (y.min() < 0 or (num_classes is not None and y.max() >= num_classes)):
        bad = int(y.min()) if y.min() < 0 else int(y.max())
        allowed = f"0 .. {num_classes - 1}" if num_classes is not None else "0 or more"
        raise UserError(f"{fix} holds the label {bad}, out of range {allowed}; relabel, or set dataset.num_classes")
