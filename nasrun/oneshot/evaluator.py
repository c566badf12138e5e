"""The trained supernet as a cheap evaluator (`evaluator=supernet`, for `oneshot=rsps`): a cell's fitness is
the validation accuracy of its path through the shared weights.

BatchNorm's running statistics are the trouble (AutoDL-Projects#70): accumulated over thousands of random
paths, they fit no single one, and every cell scored with them looks alike. So each cell gets its own: the
statistics are reset and recomputed from `calibration_batches` training batches through that cell's path (the
same batches for every cell), then the validation split is scored in eval mode. The supernet's weights never
change; the run's statistics are put back afterwards.
"""

from __future__ import annotations

import torch

from nasrun.checks import UserError, check_choice, check_int
from nasrun.evaluators.tabular import BENCHMARKS, load_table
from nasrun.oneshot.supernet import indices, one_hot


def table_figures(table, arch, benchmark: str) -> dict:
    """The NAS-Bench-201 table's figures for `arch`: the 200-epoch test accuracy (the benchmark's reported
    figure) and the 12-epoch validation accuracy (what its searches select on)."""
    row = table.get(arch.key)
    if row is None:
        return {}
    return {"test_acc": row[f"{benchmark}_test_acc200"], "table_val_acc12": row[f"{benchmark}_valid_acc12"]}


def _buffer(tensor) -> torch.Tensor:
    """A BatchNorm statistic, there since the supernet's BatchNorms track running statistics."""
    assert tensor is not None, "the supernet's BatchNorm layers track running statistics"
    return tensor


class SupernetEvaluator:
    """Scores a cell by the supernet's validation accuracy along its path, BatchNorm recalibrated per cell.
    `val_images`: how many validation images (null: all); `table`: the NAS-Bench-201 table, whose test
    accuracy becomes the trial's reported figure (the supernet's own figure is only a ranking)."""

    reports_cost = False
    trains = False  # a forward pass through shared weights: counted apart from trainings

    def __init__(self, space, data, supernet, seed: int = 0, calibration_batches: int = 20,
                 val_images: int | None = None, table: str | None = None, benchmark: str = "cifar10"):
        if space.name != "nb201":
            raise UserError(f"evaluator=supernet scores NAS-Bench-201 cells; it needs space=nb201, not "
                            f"space={space.name}")
        if supernet is None:
            raise UserError("evaluator=supernet scores cells on a trained supernet; train one first with "
                            "oneshot=rsps (e.g. +experiment=nb201_rsps)")
        self.supernet, self.data, self.seed = supernet, data, seed
        self.calibration_batches = check_int("calibration_batches", calibration_batches, low=1)
        self.val_images = None if val_images is None else check_int("val_images", val_images, low=1)
        self.benchmark = check_choice("benchmark", benchmark, BENCHMARKS)
        self.table = None if table is None else load_table(table)
        self.table_path = table

    def __call__(self, arch, deadline: float | None = None):
        weights, path = one_hot(arch, self.data.device), indices(arch)
        norms = [m for m in self.supernet.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        saved = [(_buffer(m.running_mean).clone(), _buffer(m.running_var).clone(),
                  _buffer(m.num_batches_tracked).clone(), m.momentum) for m in norms]
        try:
            for m in norms:  # a cumulative average over the calibration batches (momentum None)
                m.reset_running_stats()
                m.momentum = None
            self.supernet.train()
            batches = self.data.train_batches(torch.Generator().manual_seed(self.seed))
            with torch.no_grad():
                for _, (x, _y) in zip(range(self.calibration_batches), batches):
                    self.supernet(x, weights, path)
            self.supernet.eval()
            correct = seen = 0
            with torch.inference_mode():
                for x, y in self.data.eval_batches("val"):
                    if self.val_images is not None and seen >= self.val_images:
                        break
                    if self.val_images is not None:
                        x, y = x[:self.val_images - seen], y[:self.val_images - seen]
                    correct += int((self.supernet(x, weights, path).argmax(1) == y).sum())
                    seen += len(y)
        finally:
            for m, (mean, var, count, momentum) in zip(norms, saved):
                _buffer(m.running_mean).copy_(mean)
                _buffer(m.running_var).copy_(var)
                _buffer(m.num_batches_tracked).copy_(count)
                m.momentum = momentum
        metrics = {"val_acc": 100.0 * correct / max(1, seen)}
        if self.table is not None:
            metrics.update(table_figures(self.table, arch, self.benchmark))
        return metrics, None

    def describe(self) -> dict:
        return {"dataset": self.data.name, "evaluator": "supernet",
                **({"table": self.table_path, "benchmark": self.benchmark} if self.table is not None else {})}
