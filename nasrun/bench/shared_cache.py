"""Several searches sharing one proxy cache under load (part of `make bench`; `--only shared_cache`).

Eight jobs of a zeroshot_ga sweep run at once through Hydra's joblib launcher (one CPU thread each), all
writing one `proxy.cache_dir`; two seeds, so four writers append to each cache file at once. The same sweep
runs twice. Checked: every cache line is whole and valid; the second round computes no score (the cache files
do not change); and every job's trials (architectures, accuracies, proxy scores) equal those of the same job
run alone with a cache of its own. The sweep is Algorithm 1 shrunk to C=40 trained cells, so a round takes
minutes rather than an hour.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nasrun.proxies.scorer import entry_problem
from nasrun.rundir.jsonl import decode_lines

SWEEP = {"seed": ["0", "1"], "strategy.S": ["2", "3", "4", "5"]}
COMMON = ["+experiment=zeroshot_ga_synflow", "strategy.C=40", "device.threads=1", "proxy.batch_size=32"]


def _nasrun(args: list[str], root: str) -> float:
    began = time.perf_counter()
    env = {**os.environ, "NASRUN_DATA": root}
    proc = subprocess.run([sys.executable, "-m", "nasrun", *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"nasrun {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return time.perf_counter() - began


def _trials(run: Path) -> list[tuple]:
    records = [json.loads(line) for line in (run / "trials.jsonl").read_text().splitlines()]
    return [(r["key"], r["metrics"].get("val_acc"), r.get("proxy_score")) for r in records if r["status"] == "ok"]


def _cache(folder: Path) -> dict[str, Any]:
    files = sorted(folder.glob("*.jsonl"))
    lines, bad, keys = 0, 0, []
    for path in files:
        for _, entry in decode_lines(path.read_bytes().splitlines()):
            lines += 1
            if entry_problem(entry):
                bad += 1
            else:
                keys.append(entry["key"])
    return {"files": len(files), "lines": lines, "bad_lines": bad, "distinct_keys": len(set(keys)),
            "computed_twice": len(keys) - len(set(keys)), "bytes": {p.name: p.read_bytes() for p in files}}


def shared_cache(root: str) -> dict[str, Any]:
    jobs = [(seed, s) for seed in SWEEP["seed"] for s in SWEEP["strategy.S"]]
    out: dict[str, Any] = {"jobs": len(jobs), "sweep": " ".join(COMMON)}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        sweep = ["-m", *COMMON, f"seed={','.join(SWEEP['seed'])}", f"strategy.S={','.join(SWEEP['strategy.S'])}",
                 f"proxy.cache_dir={cache}", "hydra/launcher=joblib", f"hydra.launcher.n_jobs={len(jobs)}"]
        out["round1_seconds"] = _nasrun([*sweep, f"hydra.sweep.dir={tmp}/round1"], root)
        first = _cache(cache)
        out["round2_seconds"] = _nasrun([*sweep, f"hydra.sweep.dir={tmp}/round2"], root)
        second = _cache(cache)
        out["cache_after_round1"] = {k: v for k, v in first.items() if k != "bytes"}
        out["second_round_changed_the_cache"] = second["bytes"] != first["bytes"]
        began = time.perf_counter()
        equal = []
        for number, (seed, s) in enumerate(jobs):  # Hydra numbers jobs in this order
            lone = Path(tmp) / "lone" / str(number)
            _nasrun([*COMMON, f"seed={seed}", f"strategy.S={s}", f"proxy.cache_dir={lone}/cache",
                     f"hydra.run.dir={lone}"], root)
            alone = _trials(lone)
            equal.append(alone == _trials(Path(tmp) / "round1" / str(number)) == _trials(Path(tmp) / "round2" /
                                                                                      str(number)))
        out["lone_seconds"] = time.perf_counter() - began
        out["jobs_equal_to_lone_runs"] = sum(equal)
    print(f"shared cache: {out}", flush=True)
    return out


def print_results(results: dict, console) -> None:
    r = results.get("shared_cache")
    if not r:
        return
    c = r["cache_after_round1"]
    console.print(f"shared proxy cache, {r['jobs']} concurrent jobs ({r['sweep']}): round 1 {r['round1_seconds']:.0f} "
                  f"s, round 2 {r['round2_seconds']:.0f} s; {c['files']} cache files, {c['lines']} lines, "
                  f"{c['bad_lines']} bad, {c['computed_twice']} scores computed twice by racing writers; second round "
                  f"{'changed' if r['second_round_changed_the_cache'] else 'left'} the cache; "
                  f"{r['jobs_equal_to_lone_runs']}/{r['jobs']} jobs equal to their lone runs", highlight=False)
