"""`nasrun-score`: zero-cost proxy scores of sampled architectures and their rank correlations."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import numpy as np

from nasrun.checks import UserError
from nasrun.commands.app import handle_sigterm, one_line_errors
from nasrun.proxies import correlation


def main(argv: list[str] | None = None) -> None:
    """`nasrun-score`: zero-cost proxy scores of sampled architectures and their rank correlations."""

    parser = argparse.ArgumentParser(prog="nasrun-score", description=correlation.__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proxies", default=",".join(correlation.SIX),
                        help="comma-separated proxy options (default: the six of Abdelfattah et al.)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("-n", "--num", type=int, default=500, help="architectures to sample uniformly (default 500)")
    size.add_argument("--all", action="store_true", help="score every architecture of the space")
    parser.add_argument("--shard", default="1/1", metavar="K/N",
                        help="score only every N-th architecture from the K-th: N processes with K=1..N share the "
                             "cache and score the space between them (then one run without --shard writes the "
                             "whole CSV from the cache)")
    parser.add_argument("--workers", default="auto",
                        help="processes that score together, one CPU thread each, sharing the cells out through the "
                             "cache (default auto: one per usable core on a CPU, 1 on a GPU)")
    parser.add_argument("--out", type=Path, help="CSV to write (default outputs/scores/<space>-<data>-...csv)")
    parser.add_argument("--target", help="table column to correlate with (default <dataset>_test_acc200)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. space=nb201 dataset=cifar10 seed=0")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    handle_sigterm()
    hint = "interrupted; the scores so far are cached and in the CSV; rerun the same command to go on"
    with one_line_errors(hint):
        if not args.all and args.num < 1:
            raise UserError(f"--num={args.num}: must be at least 1")
        shard = parse_shard(args.shard)
        rows, results, out, target = correlation.score_space(
            args.overrides, [p for p in args.proxies.split(",") if p], None if args.all else args.num, args.out,
            args.target, shard=shard, workers=parse_workers(args.workers))
    shared = [r["shared_seconds"] for r in rows if r.get("shared_seconds") is not None]
    if results:
        correlation.print_correlations(results, target, out, float(np.mean(shared)) if shared else None)
    else:
        print(f"scores: {out} (no benchmark table for this space: no correlations)")



def parse_workers(text: str) -> int | None:
    """`auto` -> None, else a whole number >= 1."""
    if text == "auto":
        return None
    if not re.fullmatch(r"\s*\d+\s*", text) or int(text) < 1:
        raise UserError(f"--workers={text}: expected a whole number >= 1, or auto")
    return int(text)


def parse_shard(text: str) -> tuple[int, int]:
    """`K/N` -> (K, N), 1 <= K <= N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise UserError(f"--shard={text}: expected K/N with 1 <= K <= N, e.g. --shard 1/2 and --shard 2/2 in two "
                        f"processes")
    return int(match.group(1)), int(match.group(2))
