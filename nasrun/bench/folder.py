"""dataset=folder against torchvision (part of `make bench`; see `nasrun.bench`).

Fashion-MNIST training images are written out as PNGs in the ImageFolder layout, then read three ways, side by
side in this process: nasrun's `folder()` decoding into its cache (a cold start), torchvision's `ImageFolder`
+ `DataLoader` (ToTensor, batch 64) for one epoch with 0 and with one worker per usable core, and nasrun's
second start from the cache. Figures are images/s and seconds; the ratios are what to compare.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from nasrun.data.folder import folder
from nasrun.training.device import usable_cores


def write_pngs(root: str, folder: Path, images: int) -> Path:
    import numpy as np
    from PIL import Image

    raw = Path(root) / "FashionMNIST" / "raw"
    x = np.fromfile(raw / "train-images-idx3-ubyte", dtype=np.uint8, offset=16).reshape(-1, 28, 28)[:images]
    y = np.fromfile(raw / "train-labels-idx1-ubyte", dtype=np.uint8, offset=8)[:images]
    for label in range(10):
        (folder / "train" / f"class{label}").mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(x, y)):
        Image.fromarray(image).save(folder / "train" / f"class{label}" / f"{i:06d}.png")
    return folder


def torchvision_epoch(folder: Path, workers: int) -> float:
    """One epoch of ImageFolder + DataLoader (grey, ToTensor, batch 64): images/s."""
    import torch
    import torchvision
    from torchvision import transforms

    dataset = torchvision.datasets.ImageFolder(str(folder / "train"), transform=transforms.Compose(
        [transforms.Grayscale(), transforms.ToTensor()]))
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(0))
    began = time.perf_counter()
    seen = sum(len(y) for _, y in loader)
    return seen / (time.perf_counter() - began)


def decode_and_cache(root: str, out: Path, images: int = 10000) -> dict:
    work = out / "folder-bench"
    pngs = write_pngs(root, work / "pngs", images)
    cache = work / "cache"
    cores = usable_cores()
    result: dict[str, float] = {"images": images, "cores": cores}
    began = time.perf_counter()
    folder(str(pngs), cache_dir=str(cache), val_size=1000, seed=0)
    result["nasrun cold start (decode + cache) images/s"] = images / (time.perf_counter() - began)
    result["torchvision ImageFolder + DataLoader, 0 workers, images/s"] = torchvision_epoch(pngs, 0)
    result[f"torchvision ImageFolder + DataLoader, {cores} workers, images/s"] = torchvision_epoch(pngs, cores)
    began = time.perf_counter()
    folder(str(pngs), cache_dir=str(cache), val_size=1000, seed=0)
    result["nasrun cached start seconds"] = time.perf_counter() - began
    result["nasrun cached start images/s"] = images / result["nasrun cached start seconds"]
    shutil.rmtree(work)  # 10,000 small files: not worth keeping beside bench.json
    return result


def print_results(results: dict, console) -> None:
    if "folder" not in results:
        return
    r = results["folder"]
    cold = r["nasrun cold start (decode + cache) images/s"]
    console.print(f"dataset=folder, {r['images']} Fashion-MNIST PNGs, {r['cores']} cores:", highlight=False)
    console.print(f"  nasrun cold start (decode + cache): {cold:,.0f} images/s", highlight=False)
    for name, value in r.items():
        if name.startswith("torchvision"):
            console.print(f"  {name.removesuffix(', images/s')}: {value:,.0f} images/s (nasrun's cold start: "
                          f"{cold / value:.2f}x)", highlight=False)
    cached = r["nasrun cached start seconds"]
    console.print(f"  nasrun cached start: {cached:.2f} s ({r['images'] / cold / cached:.1f}x faster than the cold "
                  f"start)", highlight=False)
