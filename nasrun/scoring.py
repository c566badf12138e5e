"""`ProxyScorer`: a zero-cost proxy applied to architectures of a space, with an on-disk cache.

A proxy (`nasrun.proxies`) is a function of (model, batch). The scorer supplies both: the network built for
the architecture and freshly initialised from (run seed, architecture), and one fixed minibatch of training
images chosen by the run seed. Scores are cached in a JSON-lines file keyed by (space config, dataset, proxy,
batch size, seed, architecture), so repeated searches and sweeps never compute a score twice, and an
interrupted scoring run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
from functools import partial
from pathlib import Path

from nasrun.checks import check_int
from nasrun.evaluators.train import trial_seed

log = logging.getLogger(__name__)


def proxy_name(proxy) -> str:
    """The proxy function's name (through functools.partial, which is what a config with `_partial_` gives)."""
    while isinstance(proxy, partial):
        proxy = proxy.func
    return proxy.__name__


class ProxyScorer:
    """score(arch) -> float. `cache_dir` null: no disk cache (scores are still memoised in memory)."""

    def __init__(self, proxy, space, data, seed: int, batch_size: int = 64, cache_dir: str | None = None,
                 space_config: dict | None = None):
        import torch

        self.proxy = proxy
        self.name = proxy_name(proxy)
        self.space = space
        self.data = data
        self.seed = seed
        self.batch_size = check_int("batch_size", batch_size, low=2, high=len(data.train_x))
        pick = torch.randperm(len(data.train_x), generator=torch.Generator().manual_seed(seed))[:batch_size]
        self.batch = (data.normalize(data.train_x[pick.to(data.device)]), data.train_y[pick.to(data.device)])
        self.computed = 0  # proxy evaluations actually run (cache misses)
        identity = json.dumps({"space": space_config or repr(space), "dataset": data.name, "proxy": self.name,
                               "batch_size": batch_size, "seed": seed}, sort_keys=True)
        self.cache_key = hashlib.sha256(identity.encode()).hexdigest()[:16]
        self.scores: dict[str, float] = {}
        self.cache_path = None
        if cache_dir is not None:
            self.cache_path = Path(cache_dir) / f"{self.name}-{self.cache_key}.jsonl"
            self.scores = self._read_cache()

    def _read_cache(self) -> dict[str, float]:
        scores = {}
        if self.cache_path.exists():
            for line in self.cache_path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by a kill: that architecture is simply scored again
                scores[entry["key"]] = entry["score"]
        return scores

    def __call__(self, arch) -> float:
        key = arch.key
        if key in self.scores:
            return self.scores[key]
        import torch

        cuda = [self.data.device] if self.data.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(trial_seed(self.seed, key))
            model = self.space.build(arch, self.data.in_channels, self.data.image_size, self.data.num_classes)
        score = float(self.proxy(model.to(self.data.device), self.batch))
        self.computed += 1
        self.scores[key] = score
        if self.cache_path is not None:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            # Flushed per score (a kill loses nothing); no fsync: a lost score is only recomputed.
            with open(self.cache_path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "score": score}) + "\n")
        return score
