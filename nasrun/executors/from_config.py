"""How a worker process gets the run's evaluator: rebuilt from the run's config, with the dataset the main
process already read (so no worker reads or checks the files again)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EvaluatorFromConfig:
    """A picklable `make_evaluator(device)`: the composed config (resolved, as plain containers), the run's
    seed and the dataset on the CPU (None when the evaluator reads none, a table say)."""

    config: dict
    seed: int
    data: object = field(default=None, repr=False)

    def __call__(self, device):
        from omegaconf import OmegaConf

        from nasrun.config import build_search

        return build_search(OmegaConf.create(self.config), self.seed, device, data=self.data).evaluator
