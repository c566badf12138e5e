"""`nasrun-report DIR`: the table, report.csv, anytime.png and checklist.md of the runs under DIR."""

from __future__ import annotations

import argparse
from pathlib import Path

from nasrun.commands.app import handle_sigterm, one_line_errors
from nasrun.reports import table as report


def main(argv: list[str] | None = None) -> None:
    """`nasrun-report DIR`: the table, report.csv, anytime.png and checklist.md of the runs under DIR."""
    parser = argparse.ArgumentParser(prog="nasrun-report", description=report.__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="a run directory or a multirun directory")
    parser.add_argument("--out", type=Path, default=None, help="where report.csv, anytime.png and checklist.md go "
                        "(default: the directory)")
    parser.add_argument("--trust", action="store_true", help="read runs whose saved configs name code nasrun does "
                        "not ship (a colleague's own strategy, say): only for runs you trust")
    args = parser.parse_args(argv)
    handle_sigterm()
    with one_line_errors():
        report.report(args.directory, args.out, trust=args.trust)

