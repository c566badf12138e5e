"""`python -m nasrun.bench`: see the package docstring."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from nasrun.bench import (
    bayesian,
    evaluation,
    executors,
    folder,
    oneshot,
    proxies,
    reinforce,
    schedulers,
    shared_cache,
    soak,
    tabular,
    training,
)
from nasrun.bench.common import output_dir
from nasrun.bench.faults import runner as faults
from nasrun.training.device import select_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["throughput", "nb201", "tabular", "sweeps", "search", "proxies",
                                           "proxy_timing", "grasp", "eval",
                                           "phases", "threads", "folder", "faults", "executors", "reinforce",
                                           "nascnn15", "bayesian", "soak", "shared_cache", "schedulers", "oneshot"])
    parser.add_argument("--images", type=int, default=None,
                        help="training images per variant per round (default 3200; nb201: 1280)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=30, help="seeds per NAS-Bench-201 sweep")
    parser.add_argument("--cells", type=int, default=500, help="NAS-Bench-201 cells scored for the correlations")
    parser.add_argument("--root", default=os.environ.get("NASRUN_DATA", "data"), help="dataset folder")
    parser.add_argument("--soak-seconds", type=float, default=600.0,
                        help="--only soak: wall-clock seconds per executor (default 600)")
    parser.add_argument("--soak-trials", type=int, default=2000, help="--only soak: trials per executor at most")
    parser.add_argument("--soak-every", type=int, default=100, help="--only soak: trials between samples")
    parser.add_argument("--scheduler-seconds", type=float, default=300.0,
                        help="--only schedulers: wall-clock seconds per run (default 300)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads, as device.threads (default: the cores this process may use)")
    args = parser.parse_args()
    select_device("cpu", args.threads)  # the same thread setting every nasrun command applies
    out = output_dir()
    import torch

    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                           "torch": torch.__version__, "threads": torch.get_num_threads()}}

    def wanted(name: str) -> bool:
        return args.only in (None, name)

    if wanted("throughput"):
        results["throughput"] = training.throughput(args.root, args.images or 3200, args.rounds)
    if wanted("nb201"):
        results["nb201_throughput"] = training.throughput(args.root, args.images or 1280, args.rounds, case="nb201")
    if wanted("nascnn15"):
        results["nascnn15_throughput"] = training.throughput(args.root, args.images or 256, args.rounds,
                                                             case="nascnn15")
    if wanted("tabular"):
        results["tabular"] = tabular.runner_overhead(args.root)
    if wanted("sweeps"):
        results["sweeps"] = tabular.sweeps(args.root, out, args.seeds)
    if wanted("search"):
        results["default_search"] = training.default_search(args.root, out)
    if wanted("proxies") or args.only == "proxy_timing":  # proxy_timing: the seconds per cell alone
        results["proxy_timing"] = proxies.timing(args.root)
    if wanted("proxies"):
        results["proxy_correlation"] = proxies.correlation(args.root, args.cells)
    if wanted("proxies") or args.only == "grasp":
        results["grasp_exactness"] = proxies.grasp_exactness(args.root)
    if wanted("eval"):
        results["evaluation"] = evaluation.evaluation(args.root, args.rounds, args.images or 1000)
    if wanted("phases"):
        results["trial_phases"] = evaluation.trial_phases(args.root)
    if wanted("threads"):
        results["threads"] = evaluation.threads(args.root)
    if wanted("folder"):
        results["folder"] = folder.decode_and_cache(args.root, out, args.images or 10000)
    if wanted("faults"):
        results["faults"] = faults.bench(out, Path(args.root))
    if wanted("executors"):
        results["executor_overhead"] = executors.overhead(args.root)
        results["simulated_async"] = executors.simulated(args.root, args.seeds)
        results["executor_throughput"] = executors.throughput(args.root)
    if wanted("reinforce"):
        results["reinforce_toy"] = reinforce.toy()
        results["reinforce_overhead"] = reinforce.overhead()
    if args.only == "soak":  # tens of minutes: only when asked for
        results["soak"] = soak.soak(args.soak_trials, args.soak_seconds, args.soak_every)
    if args.only == "shared_cache":  # minutes of eight concurrent jobs: only when asked for
        results["shared_cache"] = shared_cache.shared_cache(args.root)
    if args.only == "schedulers":  # 7 configurations x 3 seeds of --scheduler-seconds: only when asked for
        results["schedulers"] = schedulers.bench(args.scheduler_seconds, seeds=3, folder=str(out / "schedulers"))
    if wanted("oneshot"):
        results["oneshot_epoch_seconds"] = oneshot.epoch_seconds(args.root, args.rounds)
        results["oneshot_memory"] = oneshot.darts_memory(args.root)
    if wanted("bayesian"):
        results["bayesian_overhead"] = bayesian.overhead(args.root)
        results["bayesian_toy"] = bayesian.toy()
        results["bayesian_inheritance"] = bayesian.inheritance(args.root)
        results["bayesian_morph"] = bayesian.morph_search(args.root)
    (out / "bench.json").write_text(json.dumps(results, indent=2))
    _print(results, out)


def _print(results: dict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for key in ("throughput", "nb201_throughput", "nascnn15_throughput"):
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
            table.add_row(name, f"{ips:.3g}", f"{ours / ips:.2f}x")
        console.print(table)
        if "nasrun_train_ratio_vs_minimal_same_precision" in t:
            console.print(f"nasrun-train against the minimal loop at the same precision: "
                          f"{t['nasrun_train_ratio_vs_minimal_same_precision']:.2f}x", highlight=False)
    tabular.print_results(results, console)
    bayesian.print_results(results, console)
    proxies.print_results(results, console)
    evaluation.print_results(results, console)
    folder.print_results(results, console)
    faults.print_results(results, console)
    executors.print_results(results, console)
    soak.print_results(results, console)
    shared_cache.print_results(results, console)
    if "schedulers" in results:
        schedulers.print_results(results["schedulers"])
    reinforce.print_results(results, console)
    oneshot.print_results(results, console)
    if "default_search" in results:
        s = results["default_search"]
        console.print(f"default search: {s['trials']} trials ({s['children']} children, {s['cancelled']} cancelled) "
                      f"in {s['wall_seconds']:.0f} s, best test accuracy {s['best_test_acc']:.2f} % (val "
                      f"{s['best_val_acc']:.2f} %, trial {s['best_trial']}, {s['best_key']}); {s['stop_reason']}")
    console.print(f"written to {out / 'bench.json'}")


if __name__ == "__main__":  # spawned decode workers import this module; they must not run the bench
    main()
