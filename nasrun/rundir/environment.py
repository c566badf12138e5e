"""What a run ran on: nasrun, Python and torch versions, the device and the CPU, recorded at each start.

Written to `run.json` in the run directory (a list of starts: a resumed run may continue on another machine),
so `nasrun-report`'s checklist can state the hardware and library versions behind each figure.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import time
from pathlib import Path

from nasrun import __version__
from nasrun.rundir.atomic import write_json
from nasrun.training.device import usable_cores

log = logging.getLogger(__name__)


def describe(device, overrides: list[str] | None = None) -> dict:
    import torch

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "nasrun": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "device_name": name,
        "cpu": cpu_model(),
        "cpus": usable_cores(),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "argv": sys.argv[1:],
        "overrides": list(overrides) if overrides is not None else None,  # this job's own (a sweep's argv is all)
    }


def cpu_model() -> str:
    """The CPU's marketing name (Linux's /proc/cpuinfo), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def read_starts(run_dir: Path) -> list[dict]:
    """The starts recorded in run_dir/run.json (none for runs made before it existed). The file only describes
    the environment, so a damaged one costs that description, with a warning, never the run."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        return []
    try:
        content = json.loads(path.read_bytes())
    except ValueError:  # not JSON, or not UTF-8
        content = None
    starts = content.get("starts") if isinstance(content, dict) else None
    if not isinstance(starts, list) or not all(isinstance(s, dict) and "torch" in s for s in starts):
        log.warning("%s is damaged (not a list of starts); the record of earlier starts is lost", path)
        return []
    return starts


def record_start(run_dir: Path, device, overrides: list[str] | None = None) -> None:
    """Append this start to run.json, atomically, under a name unique to this process."""
    run_dir = Path(run_dir)
    starts = read_starts(run_dir) + [describe(device, overrides)]
    write_json(run_dir / "run.json", {"starts": starts})
