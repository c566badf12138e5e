"""Check dataset files against their published sizes and md5 checksums before they are used.

A truncated CIFAR-10 batch file is still a whole number of records, so a reader alone would train on a smaller
set without a word; a flipped byte changes one image. The size check is free and runs every time. The md5
(about 0.4 s for CIFAR-10's 180 MB) runs once per file version: a file that passed is remembered by its path,
size, modification time and inode in `$XDG_CACHE_HOME/nasrun/verified.json` (default `~/.cache`), so later
runs pay only a stat. When that cache cannot be written the files are simply hashed again next time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from nasrun.checks import UserError
from nasrun.rundir.atomic import write_json

log = logging.getLogger(__name__)

# (size in bytes, md5) per file, relative to the dataset root, as published (../shared/data/README.md lists them).
PUBLISHED = {
    "FashionMNIST/raw/train-images-idx3-ubyte": (47040016, "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
    "FashionMNIST/raw/train-labels-idx1-ubyte": (60008, "9018921c3c673c538a1fc5bad174d6f9"),
    "FashionMNIST/raw/t10k-images-idx3-ubyte": (7840016, "8181f5470baa50b63fa0f6fddb340f0a"),
    "FashionMNIST/raw/t10k-labels-idx1-ubyte": (10008, "15d484375f8d13e6eb1aabb0c3f46965"),
    **{f"cifar-10-batches-bin/{name}": (30730000, md5) for name, md5 in (
        ("data_batch_1.bin", "5dd7e06a14cb22eb9f671a540d1b7c25"),
        ("data_batch_2.bin", "5ea93a67294ea407fff1d09f752e9692"),
        ("data_batch_3.bin", "942cd6a4bcdd0dd3c604fbe906cb4421"),
        ("data_batch_4.bin", "ae636b3ba5c66a11e91e8cb52e771fcb"),
        ("data_batch_5.bin", "53f37980c15c3d472c316c40844f3f0d"),
        ("test_batch.bin", "803d5f7f4d78ea53de84dbe85f74fb6d"),
    )},
}

_verified_here: set[str] = set()  # identities checked by this process (a multirun loads data once per job)


def verify_files(root: Path, names: list[str], fix: str) -> None:
    """Check `root/name` for each name against PUBLISHED; a mismatch raises a UserError naming the file, what
    differs and `fix` (how to get a good copy)."""
    identities = {}
    for name in names:
        path = Path(root) / name
        size, md5 = PUBLISHED[name]
        stat = path.stat()
        if stat.st_size != size:
            raise UserError(f"{path}: {stat.st_size:,} bytes, but the published file has {size:,} (truncated or "
                            f"replaced); {fix}")
        identities[name] = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"
    cache = _cache_path()
    known = _read_cache(cache)
    unchecked = [n for n in names
                 if identities[n] not in _verified_here and known.get(identities[n]) != PUBLISHED[n][1]]
    for name in unchecked:
        path = Path(root) / name
        digest = _md5(path)
        if digest != PUBLISHED[name][1]:
            raise UserError(f"{path}: md5 {digest}, but the published file's is {PUBLISHED[name][1]} (damaged); {fix}")
        known[identities[name]] = digest
    _verified_here.update(identities.values())
    if unchecked:
        log.info("checked %d files in %s against their published md5", len(unchecked), root)
        _write_cache(cache, known)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nasrun" / "verified.json"


def _read_cache(path: Path) -> dict:
    """The remembered checks; an unreadable or damaged cache is ignored (the files are hashed again)."""
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(known, dict):
        return {}
    return {k: v for k, v in known.items() if isinstance(k, str) and isinstance(v, str)}


def _write_cache(path: Path, known: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, known)
    except (OSError, UserError) as err:  # a read-only home: checks are only repeated next time
        log.debug("could not remember dataset checks in %s: %s", path, err)
