"""`make bench`: the speed figures the README and closing notes report, measured side by side in one process.

1. Trainer throughput (training images/s), this machine, for two cases: the custom space's architecture on
   Fashion-MNIST at batch 64 (`throughput`), and NAS-Bench-201's all-nor_conv_3x3 cell (C=16, N=5) on CIFAR-10
   at batch 128 (`nb201`). Variants:
   - nasrun's `train()` (uint8 tensors on the device, channels_last, bf16 autocast where native);
   - a minimal hand-written loop over the same in-memory float tensors, plain fp32 NCHW;
   - the same minimal loop with nasrun's precision and memory format (the fair test of nasrun's own overhead);
   - Fashion-MNIST only: the pipeline of Matos (2023), DataLoader over torchvision's FashionMNIST + ToTensor.
   CIFAR-10 is measured without augmentation in both, so the loops do the same work (nasrun's batched crop
   and flip is reported as one more variant). Rounds interleave the variants so machine noise hits all of
   them alike; the median round is reported.
2. `tabular` and `sweeps` (see `nasrun.bench_tabular`): the runner's own cost per trial over the
   NAS-Bench-201 table, and the 30-seed sweeps of the nb201_rea and nb201_random presets.
3. `search`: the default search (`make run`), wall time and best test accuracy.
4. `proxies` (see `nasrun.bench_proxies`): each zero-cost proxy's rank correlation with NAS-Bench-201's
   accuracies over sampled cells, beside the published values, and its seconds per cell.
5. `eval`, `phases` and `threads` (see `nasrun.bench_eval`): evaluation images/s against a minimal
   inference_mode loop; one trial's seconds by phase; proxy scoring beside a busy process, with and without
   `device.threads=1`.

Usage: python -m nasrun.bench [--only NAME] [--images N] [--rounds R] [--root DIR] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ARCH = {"conv3": 1, "num_block": 2, "conv5": 0, "feature": 128, "dropout": 0.5}
NB201_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
REPO = Path(__file__).resolve().parent.parent


def _model(case: str, seed: int = 0):
    import torch

    from nasrun.spaces.custom import CustomSpace
    from nasrun.spaces.nb201 import NB201Arch, NB201Space

    torch.manual_seed(seed)
    if case == "nb201":
        return NB201Space(16, 5).build(NB201Arch.from_key(NB201_CELL), 3, 32, 10)
    return CustomSpace().build(CustomSpace().make(ARCH), 1, 28, 10)


def nasrun_train(data, images: int, case: str, augment: bool = False) -> float:
    from nasrun.data import ImageData
    from nasrun.train import TrainConfig, train

    # Same training tensors, tiny val/test: train_seconds is then (almost) the training loop alone.
    subset = ImageData(**{**data.__dict__, "train_x": data.train_x[:images], "train_y": data.train_y[:images],
                          "val_x": data.val_x[:64], "val_y": data.val_y[:64],
                          "test_x": data.test_x[:64], "test_y": data.test_y[:64], "augment": augment})
    metrics = train(_model(case), subset, TrainConfig(epochs=1))
    return images / metrics["train_seconds"]


def minimal_loop(data, images: int, case: str, fast: bool) -> float:
    """What a user writes by hand: pre-normalised float tensors, a permutation, slices, Adam."""
    import torch
    import torch.nn.functional as F

    from nasrun.train import use_bf16

    x_all = data.normalize(data.train_x[:images])
    y_all = data.train_y[:images]
    model = _model(case)
    bf16 = fast and use_bf16(data.device, "auto")
    if fast:
        model = model.to(memory_format=torch.channels_last)
        x_all = x_all.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    start = time.perf_counter()
    order = torch.randperm(images, generator=torch.Generator().manual_seed(0))
    for i in range(0, images, data.batch_size):
        idx = order[i:i + data.batch_size]
        with torch.autocast(data.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    loss.item()
    return images / (time.perf_counter() - start)


def matos_pipeline(root: str, images: int) -> float:
    """Matos (2023): torchvision FashionMNIST + ToTensor through a DataLoader, batch 64, fp32, Adam 1e-3."""
    import torch
    import torch.nn.functional as F
    import torchvision
    from torchvision import transforms

    dataset = torchvision.datasets.FashionMNIST(root, train=True, download=False, transform=transforms.ToTensor())
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True)
    model = _model("custom")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    seen = 0
    start = time.perf_counter()
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(y)
        if seen >= images:
            break
    return seen / (time.perf_counter() - start)


def throughput(root: str, images: int, rounds: int, case: str = "custom") -> dict:
    import torch

    from nasrun.data import cifar10, fashion_mnist
    from nasrun.train import use_bf16

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if case == "nb201":
        data = cifar10(root=root, download=False, batch_size=128, augment=False, seed=0, device=device)
    else:
        data = fashion_mnist(root=root, download=False, batch_size=64, seed=0, device=device)
    variants = {
        "nasrun train()": lambda: nasrun_train(data, images, case),
        "minimal loop, fp32 NCHW": lambda: minimal_loop(data, images, case, fast=False),
        "minimal loop, nasrun's precision + channels_last": lambda: minimal_loop(data, images, case, fast=True),
    }
    if case == "nb201":
        variants["nasrun train() with crop + flip"] = lambda: nasrun_train(data, images, case, augment=True)
    else:
        variants["Matos 2023 DataLoader + ToTensor"] = lambda: matos_pipeline(root, images)
    for run in variants.values():  # warm-up: oneDNN kernel selection, page cache
        run()
    samples = {name: [] for name in variants}
    for r in range(rounds):
        for name, run in variants.items():
            samples[name].append(run())
            print(f"{case} round {r + 1}/{rounds} {name}: {samples[name][-1]:.0f} img/s", flush=True)
    median = {name: statistics.median(v) for name, v in samples.items()}
    ours = median["nasrun train()"]
    result = {
        "case": case, "dataset": data.name, "device": str(device), "bf16": use_bf16(device, "auto"),
        "images_per_round": images, "rounds": rounds, "batch_size": data.batch_size,
        "architecture": NB201_CELL if case == "nb201" else ARCH, "images_per_second": median, "samples": samples,
        "ratio_vs_minimal_fp32": ours / median["minimal loop, fp32 NCHW"],
        "ratio_vs_minimal_same_precision": ours / median["minimal loop, nasrun's precision + channels_last"],
    }
    if case != "nb201":
        result["ratio_vs_matos"] = ours / median["Matos 2023 DataLoader + ToTensor"]
    return result


def default_search(root: str, out: Path) -> dict:
    """`make run`'s search (the default config), timed from the command line as a user sees it: trials, how
    many were evolution's children (after the initial population), best accuracies, minutes."""
    run_dir = out / "default-search"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "nasrun", f"hydra.run.dir={run_dir}"], cwd=REPO,
                          env={**os.environ, "NASRUN_DATA": root}, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"default search failed:\n{proc.stderr[-2000:]}")
    from omegaconf import OmegaConf

    from nasrun.trial_log import read_trials, split_log

    best = json.loads((run_dir / "best.json").read_text())
    trials, cancelled, end = split_log(read_trials(run_dir / "trials.jsonl", repair=False))
    population = OmegaConf.load(run_dir / ".hydra" / "config.yaml").strategy.population_size
    return {"wall_seconds": wall, "trials": len(trials), "children": max(0, len(trials) - population),
            "cancelled": len(cancelled), "stop_reason": end["stop_reason"] if end else None,
            "best_key": best["key"], "best_trial": best["trial"],
            "best_val_acc": best["metrics"]["val_acc"], "best_test_acc": best["metrics"]["test_acc"],
            "test_passes": sum(1 for t in trials if "test_acc" in t.get("metrics", {}))}


def main() -> None:
    from nasrun import bench_eval, bench_proxies, bench_tabular
    from nasrun.device import select_device

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["throughput", "nb201", "tabular", "sweeps", "search", "proxies", "eval",
                                           "phases", "threads"])
    parser.add_argument("--images", type=int, default=None,
                        help="training images per variant per round (default 3200; nb201: 1280)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=30, help="seeds per NAS-Bench-201 sweep")
    parser.add_argument("--cells", type=int, default=500, help="NAS-Bench-201 cells scored for the correlations")
    parser.add_argument("--root", default=os.environ.get("NASRUN_DATA", "data"), help="dataset folder")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads, as device.threads (default: the cores this process may use)")
    args = parser.parse_args()
    select_device("cpu", args.threads)  # the same thread setting every nasrun command applies
    out = REPO / "outputs" / f"bench-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True)
    import torch

    results = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "torch": torch.__version__,
                           "threads": torch.get_num_threads()}}

    def wanted(name: str) -> bool:
        return args.only in (None, name)

    if wanted("throughput"):
        results["throughput"] = throughput(args.root, args.images or 3200, args.rounds)
    if wanted("nb201"):
        results["nb201_throughput"] = throughput(args.root, args.images or 1280, args.rounds, case="nb201")
    if wanted("tabular"):
        results["tabular"] = bench_tabular.runner_overhead(args.root)
    if wanted("sweeps"):
        results["sweeps"] = bench_tabular.sweeps(args.root, out, args.seeds)
    if wanted("search"):
        results["default_search"] = default_search(args.root, out)
    if wanted("proxies"):
        results["proxy_timing"] = bench_proxies.timing(args.root)
        results["proxy_correlation"] = bench_proxies.correlation(args.root, args.cells)
    if wanted("eval"):
        results["evaluation"] = bench_eval.evaluation(args.root, args.rounds, args.images or 1000)
    if wanted("phases"):
        results["trial_phases"] = bench_eval.trial_phases(args.root)
    if wanted("threads"):
        results["threads"] = bench_eval.threads(args.root)
    (out / "bench.json").write_text(json.dumps(results, indent=2))
    _print(results, out)


def _print(results: dict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from nasrun import bench_eval, bench_proxies, bench_tabular

    console = Console()
    for key in ("throughput", "nb201_throughput"):
        if key not in results:
            continue
        t = results[key]
        table = Table(title=f"training throughput, {t['dataset']}, batch {t['batch_size']}, {t['device']} "
                            f"(bf16: {t['bf16']})")
        table.add_column("pipeline")
        table.add_column("images/s (median)", justify="right")
        table.add_column("nasrun ratio", justify="right")
        ours = t["images_per_second"]["nasrun train()"]
        for name, ips in t["images_per_second"].items():
            table.add_row(name, f"{ips:.0f}", f"{ours / ips:.2f}x")
        console.print(table)
    bench_tabular.print_results(results, console)
    bench_proxies.print_results(results, console)
    bench_eval.print_results(results, console)
    if "default_search" in results:
        s = results["default_search"]
        console.print(f"default search: {s['trials']} trials ({s['children']} children, {s['cancelled']} cancelled) "
                      f"in {s['wall_seconds']:.0f} s, best test accuracy {s['best_test_acc']:.2f} % (val "
                      f"{s['best_val_acc']:.2f} %, trial {s['best_trial']}, {s['best_key']}); {s['stop_reason']}")
    console.print(f"written to {out / 'bench.json'}")


if __name__ == "__main__":
    main()
