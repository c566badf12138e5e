"""The `device` group: where trials run, and how many CPU threads torch may use there.

Every command applies it before any tensor work (`nasrun`, `nasrun-score`, `make bench`, and worker processes
as they come). The thread count matters more than it looks: torch's OpenMP threads spin while they wait for
each other, so a process with more threads than the cores it actually gets (another search beside it, a
`taskset` or a container CPU quota) runs many times slower, not twice (see README, "Sharing a machine").
"""

from __future__ import annotations

import os

from nasrun.checks import UserError, check_choice, check_int


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), not all the machine has."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity masks
        return os.cpu_count() or 1


def cpu_threads() -> int:
    """The CPU threads torch uses now (what `select_device` set)."""
    import torch  # lazily: the commands import this module before they need torch

    return torch.get_num_threads()


def select_device(type: str = "auto", threads: int | None = None):
    """The torch.device trials run on (`auto`: CUDA when visible), after setting torch's CPU threads to
    `threads` (null: `usable_cores()`)."""
    import torch  # lazily: the commands import this module before they need torch

    check_choice("type", type, ("auto", "cpu", "cuda"))
    if threads is not None:
        check_int("threads", threads, low=1)
    torch.set_num_threads(threads or usable_cores())
    if type == "cuda" and not torch.cuda.is_available():
        raise UserError("device=cuda: no CUDA device is visible; use device=auto or device=cpu")
    if type == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(type)
