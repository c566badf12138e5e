"""What users' own datasets share (`dataset=folder` in `nasrun.data.folder`, `dataset=arrays` in
`nasrun.data.arrays`): checking the path, a fixed test hold-out, and refusing data that would not fit in memory
before reading it.

Both end in the same in-memory path as the built-in datasets (`nasrun.data.builtin.make_splits`): one uint8 tensor,
normalisation from the training split, a seeded validation hold-out, `fraction`, sliced batches. Bad input is
one line naming the file and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nasrun.checks import UserError, check_float


def existing_path(key: str, path, is_file: bool = False) -> Path:
    if path is None or str(path) in ("", "???"):
        raise UserError(f"dataset.{key}: not set; give dataset.{key}=" + ("FILE.npz" if is_file else "DIR"))
    path = Path(path).expanduser()
    if not (path.is_file() if is_file else path.is_dir()):
        raise UserError(f"dataset.{key}={path}: no such {'file' if is_file else 'folder'}")
    return path


def hold_out_test(x, y, test_fraction: float, seed: int = 0) -> tuple:
    """(train_x, train_y, test_x, test_y): a fixed, seeded share of the images becomes the test set. Fixed across
    run seeds, so runs with different seeds are measured on the same test images."""
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, round(test_fraction * len(x)))
    if n_test >= len(x):
        raise UserError(f"dataset.test_fraction={test_fraction}: {len(x)} images leave none to train on; "
                        f"add images or lower dataset.test_fraction")
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    return x[train], y[train], x[test], y[test]


def available_memory() -> int:
    """Bytes the kernel says a new allocation can get without swapping (MemAvailable), else physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(count: int, channels: int, side: int, source: str, limit_gb: float | None,
                 resizable: bool = False) -> None:
    """Refuse before loading when `count` uint8 images of side x side x channels would not fit: half the
    available memory (batches are gathered and normalised beside them), or `memory_limit_gb`."""
    if limit_gb is not None:
        check_float("memory_limit_gb", limit_gb, low=0.0, low_open=True)
    need = count * channels * side * side
    limit = limit_gb * 1e9 if limit_gb is not None else available_memory() / 2
    if need <= limit:
        return
    cap = f"dataset.memory_limit_gb={limit_gb}" if limit_gb is not None else \
        f"half the {_bytes(available_memory())} of memory available"
    fits = int((limit / (count * channels)) ** 0.5)
    fix = f"set dataset.image_size={fits} or lower" if resizable and fits >= 4 else \
        "use fewer or smaller images"
    raise UserError(f"dataset.path: {source}: {count:,} images need {_bytes(need)} as uint8 at "
                    f"{side}x{side}x{channels}, more than {cap}; {fix}")


def _bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} bytes"
