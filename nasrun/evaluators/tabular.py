"""The tabular evaluator: look a NAS-Bench-201 cell up in the benchmark's results table instead of training it.

Fitness is the 12-epoch validation accuracy (what NAS-Bench-201's own searches select on), the reported figure
is the 200-epoch test accuracy, and for CIFAR-10 the cost is the 12 epochs' training time, which the runner
adds up on a simulated clock (`budget.simulated_seconds`). A lookup takes microseconds, so a whole search of
a simulated GPU-day runs in well under a second.
"""

from __future__ import annotations

import csv
import logging
import math
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from nasrun.checks import UserError, check_choice
from nasrun.contracts import is_table_space
from nasrun.spaces.nb201 import CELL, TABLE_CELLS, TABLE_CHANNELS, NB201Arch, NB201Space

log = logging.getLogger(__name__)

BENCHMARKS = ("cifar10", "cifar100", "imagenet16")
PUBLISHED_MD5 = "21ff69c585256983c95714fdd2b7d2bd"  # nb201.csv as ../shared/data/README.md lists it


@lru_cache(maxsize=4)
def _read_table(path: str, mtime_ns: int, size: int) -> MappingProxyType:
    """arch string -> row of floats. Cached per process (keyed by the file's identity), so a multirun of 30
    searches reads the 15625 rows once; the mapping is read-only, so no search can change another's table.
    Every row is checked before any is used: a NaN accuracy would otherwise become an ok trial, and a
    negative time would run the simulated clock backwards."""
    rows: dict[str, Mapping[str, float]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        needed = ["arch"] + [f"{b}_{col}" for b in BENCHMARKS for col in ("valid_acc12", "test_acc200")]
        missing = [c for c in needed + ["cifar10_valid_time12"] if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"evaluator.table: {path} lacks the column {missing[0]!r}; expected the NAS-Bench-201 "
                            f"table described in the README")
        try:
            for line, row in enumerate(reader, start=2):
                problem, values = _row_problem(row, rows)
                if problem is not None:
                    raise UserError(f"evaluator.table: {path}:{line} {problem}; repair that row or use the "
                                    f"published table (md5 {PUBLISHED_MD5})")
                rows[row["arch"]] = MappingProxyType(values)
        except (csv.Error, UnicodeDecodeError) as err:
            raise UserError(f"evaluator.table: {path}:{reader.line_num} is not a CSV row ({err}); use the "
                            f"published table (md5 {PUBLISHED_MD5})") from None
    if len(rows) < len(NB201Space()):
        log.warning("evaluator.table: %s holds %d of the %d NAS-Bench-201 cells; searches that propose a missing "
                    "cell record it as a failed trial", path, len(rows), len(NB201Space()))
    return MappingProxyType(rows)


def _row_problem(row: dict, seen: dict) -> tuple[str | None, dict]:
    """(what is wrong with one table row or None, its numbers)."""
    if None in row or None in row.values():
        return "has the wrong number of fields", {}
    if not CELL.fullmatch(row["arch"]):  # one regex per row: parsing each cell would triple the read time
        try:
            NB201Arch.from_key(row["arch"])
        except ValueError as err:
            return f"arch: {err}", {}
    if row["arch"] in seen:
        return f"repeats the cell {row['arch']}", {}
    values = {}
    for column, text in row.items():
        if column in ("arch", "index"):
            continue
        try:
            value = values[column] = float(text)
        except ValueError:
            return f"{column}={text!r} is not a number", {}
        low, high = (0.0, math.inf) if "_time" in column else (0.0, 100.0)  # times in seconds, accuracies in %
        if not math.isfinite(value) or not low <= value <= high:
            what = "a time must be finite and >= 0" if "_time" in column else "an accuracy must be in [0, 100]"
            return f"{column}={text}: {what}", {}
    return None, values


def load_table(path) -> MappingProxyType:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"evaluator.table: {path} not found; set dataset.root=DIR or NASRUN_DATA=DIR to the folder "
                        f"holding nasbench201/nb201.csv, or evaluator.table=FILE")
    stat = path.stat()
    return _read_table(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


class TabularEvaluator:
    """benchmark: which of the table's datasets to read (cifar10 | cifar100 | imagenet16).
    table: the CSV file, one row per cell with `<benchmark>_valid_acc12`, `<benchmark>_test_acc200` and, for
    CIFAR-10, `cifar10_valid_time12`."""

    def __init__(self, space, table: str | Path, benchmark: str = "cifar10"):
        self.benchmark = check_choice("benchmark", benchmark, BENCHMARKS)
        if space.name != "nb201":
            raise UserError(f"evaluator=tabular looks cells up in the NAS-Bench-201 table; it needs space=nb201, "
                            f"not space={space.name}")
        if not is_table_space(space):
            raise UserError(f"evaluator=tabular: the table was measured with space.channels={TABLE_CHANNELS} and "
                            f"space.cells_per_stage={TABLE_CELLS}; got {space.channels} and {space.cells_per_stage}")
        self.table = load_table(table)
        self.path = str(table)
        # Only CIFAR-10 has training times; searches on the other two are budgeted by trial count.
        self.reports_cost = self.benchmark == "cifar10"
        self._columns = (f"{self.benchmark}_valid_acc12", f"{self.benchmark}_test_acc200",
                         f"{self.benchmark}_test_acc12")
        # The images the table's networks were trained on: what their size (params, flops) is counted for.
        self.input_shape = {"cifar10": (3, 32, 10), "cifar100": (3, 32, 100), "imagenet16": (3, 16, 120)}[benchmark]

    def __call__(self, arch, deadline: float | None = None):
        """(metrics, None): a lookup takes microseconds, so the wall-clock deadline never bites here."""
        row = self.table.get(arch.key)
        if row is None:
            raise KeyError(f"{arch.key} is not in {self.path}")
        valid12, test200, test12 = self._columns
        metrics = {"val_acc": row[valid12], "test_acc": row[test200], "test_acc12": row.get(test12)}
        if self.reports_cost:
            metrics["cost"] = row["cifar10_valid_time12"]
        return metrics, None

    def describe(self) -> dict:
        """What best.json records about where the figures come from."""
        return {"dataset": self.benchmark, "table": self.path}
