"""The tabular evaluator: look a NAS-Bench-201 cell up in the benchmark's results table instead of training it.

Fitness is the 12-epoch validation accuracy (what NAS-Bench-201's own searches select on), the reported figure
is the 200-epoch test accuracy, and for CIFAR-10 the cost is the 12 epochs' training time, which the runner
adds up on a simulated clock (`budget.simulated_seconds`). A lookup takes microseconds, so a whole search of
a simulated GPU-day runs in well under a second.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from nasrun.checks import UserError, check_choice
from nasrun.contracts import is_table_space
from nasrun.spaces.nb201 import TABLE_CELLS, TABLE_CHANNELS

BENCHMARKS = ("cifar10", "cifar100", "imagenet16")


@lru_cache(maxsize=4)
def _read_table(path: str, mtime_ns: int, size: int) -> MappingProxyType:
    """arch string -> row of floats. Cached per process (keyed by the file's identity), so a multirun of 30
    searches reads the 15625 rows once; the mapping is read-only, so no search can change another's table."""
    rows = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        needed = ["arch"] + [f"{b}_{col}" for b in BENCHMARKS for col in ("valid_acc12", "test_acc200")]
        missing = [c for c in needed + ["cifar10_valid_time12"] if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"evaluator.table: {path} lacks the column {missing[0]!r}; expected the NAS-Bench-201 "
                            f"table described in the README")
        for line, row in enumerate(reader, start=2):
            try:
                rows[row["arch"]] = MappingProxyType({k: float(v) for k, v in row.items() if k not in ("arch", "index")})
            except (TypeError, ValueError):
                raise UserError(f"evaluator.table: {path}:{line} holds a value that is not a number") from None
    return MappingProxyType(rows)


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

    def __init__(self, space, table: str, benchmark: str = "cifar10"):
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
