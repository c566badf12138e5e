"""NAS-Bench-201's measured latencies: `nb201_latency.csv`, one row per cell, one column per device setting, in
milliseconds per forward pass of the CIFAR-size network (HW-NAS-Bench, Li et al. 2021; HELP, Lee et al. 2021;
see ../shared/data/README.md). Read like `nb201.csv`: every row is checked before any is used, and a malformed,
non-finite or negative value is one line naming the row."""

from __future__ import annotations

import csv
import math
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from nasrun.checks import UserError
from nasrun.spaces.nb201 import CELL, NB201Arch, NB201Space

PUBLISHED_MD5 = "b69c122ca133d4e980b23b37bd7b01a3"  # nb201_latency.csv as ../shared/data/README.md lists it
SUFFIX = "_ms"


@lru_cache(maxsize=4)
def _read(path: str, mtime_ns: int, size: int) -> tuple[tuple[str, ...], MappingProxyType]:
    """(device names, arch string -> read-only tuple of latencies in device order). Cached per process, keyed by
    the file's identity, so a sweep reads the 15,625 rows once."""
    rows: dict[str, tuple[float, ...]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            if not header or header[:2] != ["index", "arch"] or len(header) < 3:
                raise UserError(f"latency.table: {path} does not start with the columns index,arch,<device>_ms,...; "
                                f"expected NAS-Bench-201's latency table (md5 {PUBLISHED_MD5})")
            bad = [c for c in header[2:] if not c.endswith(SUFFIX) or len(c) <= len(SUFFIX)]
            if bad or len(set(header)) != len(header):
                what = f"the column {bad[0]!r} is not <device>_ms" if bad else "a column is repeated"
                raise UserError(f"latency.table: {path}: {what}; expected NAS-Bench-201's latency table "
                                f"(md5 {PUBLISHED_MD5})")
            devices = tuple(c[:-len(SUFFIX)] for c in header[2:])
            for row in reader:
                problem = _row_problem(row, header, rows)
                if problem is None:
                    rows[row[1]] = tuple(float(v) for v in row[2:])
                    continue
                raise UserError(f"latency.table: {path}:{reader.line_num} {problem}; repair that row or use the "
                                f"published table (md5 {PUBLISHED_MD5})")
        except (csv.Error, UnicodeDecodeError) as err:
            raise UserError(f"latency.table: {path}:{reader.line_num} is not a CSV row ({err}); use the published "
                            f"table (md5 {PUBLISHED_MD5})") from None
    if not rows:
        raise UserError(f"latency.table: {path} holds no rows; use the published table (md5 {PUBLISHED_MD5})")
    return devices, MappingProxyType(rows)


def _row_problem(row: list[str], header: list[str], seen: dict) -> str | None:
    if len(row) != len(header):
        return f"has {len(row)} fields, the header {len(header)}"
    arch = row[1]
    if not CELL.fullmatch(arch):
        try:
            NB201Arch.from_key(arch)
        except ValueError as err:
            return f"arch: {err}"
    if arch in seen:
        return f"repeats the cell {arch}"
    for column, text in zip(header[2:], row[2:]):
        try:
            value = float(text)
        except ValueError:
            return f"{column}={text!r} is not a number"
        if not math.isfinite(value) or value < 0:
            return f"{column}={text}: a latency must be a finite number of milliseconds >= 0"
    return None


def read_latency_table(path) -> tuple[tuple[str, ...], MappingProxyType]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"latency.table: {path} not found; set dataset.root=DIR or NASRUN_DATA=DIR to the folder "
                        f"holding nasbench201/nb201_latency.csv, or latency.table=FILE")
    stat = path.stat()
    return _read(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


class TableLatency:
    """latency=table: a cell's latency on `device` from NAS-Bench-201's measured table (needs space=nb201, whose
    cells the table lists). `latency(arch)` in ms; a cell missing from the table raises KeyError."""

    measured_here = False

    def __init__(self, space, device: str, table: str | Path):
        if space.name != "nb201":
            raise UserError(f"latency=table looks cells up in NAS-Bench-201's latency table; it needs space=nb201, "
                            f"not space={space.name}")
        if not getattr(space, "is_table_space", lambda: False)():
            raise UserError("latency=table: the latencies were measured on the benchmark's network size; use "
                            "space.channels=16 space.cells_per_stage=5")
        devices, rows = read_latency_table(table)
        if device not in devices:
            raise UserError(f"latency.device={device!r} is not in {table}; choose one of: {', '.join(devices)}")
        self.device, self.path = device, str(table)
        self._column = devices.index(device)
        self._rows = rows
        if len(rows) < len(NB201Space()):
            raise UserError(f"latency.table: {table} holds {len(rows)} of the {len(NB201Space())} cells; use the "
                            f"published table (md5 {PUBLISHED_MD5})")

    def __call__(self, arch) -> float:
        return self._rows[arch.key][self._column]

    def all(self) -> dict[str, float]:
        """Every cell's latency on the device: arch string -> ms (the true front's input)."""
        return {key: values[self._column] for key, values in self._rows.items()}

    def describe(self) -> dict:
        return {"latency": "table", "latency_device": self.device, "latency_table": self.path}
