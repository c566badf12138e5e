"""`ProxyScorer`: a zero-cost proxy applied to architectures of a space, with an on-disk cache.

A proxy (`nasrun.proxies.zero_cost`) is a function of (model, batch). The scorer supplies both: the network built for
the architecture and freshly initialised from (seed, architecture), and one fixed minibatch of training images
chosen by the seed. The seed is the run's own (`proxy.seed: null`), or `proxy.seed` when set: then every run
scores a cell alike, so runs that differ only in the search's seed share their scores (the protocol of
Abdelfattah et al.'s reference code, which scores each NAS-Bench-201 cell once with one seed).

Scores are cached in a JSON-lines file per (space config, dataset and the exact batch, proxy and its options,
batch size, seed), one line per architecture, so repeated searches and sweeps never compute a score twice and an
interrupted scoring run resumes where it stopped. The five gradient proxies share one forward and backward
pass: whichever of them scores a cell writes all five scores, each to its own proxy's file, so a jacob_cov
search leaves grad_norm, snip, grasp and fisher computed for every cell it visited. The device is not part of
the key: a cache filled on a GPU serves a CPU run (scores agree to float rounding).
"""

from __future__ import annotations

import fcntl
import hashlib
import inspect
import json
import logging
import math
import os
import time
from functools import partial
from pathlib import Path

from nasrun.checks import check_bool, check_int
from nasrun.evaluators.train import trial_seed
from nasrun.proxies.claims import UNCLAIMED, Claim, Claims
from nasrun.rundir.atomic import environment_error
from nasrun.rundir.jsonl import decode_lines, encode_line

log = logging.getLogger(__name__)


def proxy_name(proxy) -> str:
    """The proxy function's name (through functools.partial, which is what a config with `_partial_` gives)."""
    while isinstance(proxy, partial):
        proxy = proxy.func
    return proxy.__name__


def _proxy_options(proxy) -> dict:
    """Keyword options bound by functools.partial (e.g. jacob_cov's eps): they change scores, so key the cache."""
    options: dict = {}
    while isinstance(proxy, partial):
        options = {**proxy.keywords, **options}
        proxy = proxy.func
    return options


def _keyed_options(proxy) -> dict:
    """The options that key the cache: the function's keyword defaults overlaid with those bound, so a proxy
    built with its default written out (jacob_cov's config sets eps=1e-5) and one built without it (a gradient
    pass filling jacob_cov's cache for grad_norm) name the same file."""
    options = _proxy_options(proxy)
    while isinstance(proxy, partial):
        proxy = proxy.func
    try:
        signature = inspect.signature(proxy)
    except (TypeError, ValueError):  # a builtin or C function: no defaults to read
        return options
    defaults = {k: p.default for k, p in signature.parameters.items() if p.default is not inspect.Parameter.empty}
    return {**defaults, **options}


# A proxy whose definition changed gets a new number here, so caches of its old scores are never read back
# (version 1, the first, is left out of the key, so the caches of unchanged proxies stay valid).
DEFINITION_VERSIONS = {"fisher": 2, "flops": 2}  # 2: the reference's fan-in weighting; the benchmark's count


class ProxyScoreError(ValueError):
    """The proxy has no finite score for this architecture (recorded in the cache, so it is not retried)."""


class ProxyScorer:
    """score(arch) -> float; raises ProxyScoreError when the proxy fails for that architecture.

    proxy: a function (model, batch) -> float from nasrun.proxies.zero_cost. run_seed: the run's seed (given by
    the runner). seed: `proxy.seed`, the seed of every network's initialisation and of the batch (null: the
    run's). batch_size: training images in the batch. cache_dir: where the score files live (null: no disk
    cache; scores are still memoised). fill: a gradient proxy computes all five gradient proxies in one pass
    and caches them all (false: only its own, about 4 times cheaper per cell for all but grasp).
    `evaluations` counts the distinct architectures scored in this process, `computed` those that missed the
    disk cache and were actually run.
    """

    def __init__(self, proxy, space, data, run_seed: int | None = None, batch_size: int = 64,
                 cache_dir: str | None = None, seed: int | None = None, fill: bool = True,
                 space_config: dict | None = None):
        import torch

        if seed is not None:
            self.seed = check_int("seed", seed, low=0)
        elif run_seed is not None:
            self.seed = run_seed
        else:
            raise ValueError("ProxyScorer needs the run's seed (run_seed) or its own (seed)")
        self.proxy = proxy
        self.name = proxy_name(proxy)
        self.space = space
        self.data = data
        self.fill = check_bool("fill", fill)
        if self._is_gradient_proxy():
            from nasrun.proxies.zero_cost import check_options  # torch: imported when scoring

            check_options(_proxy_options(proxy))
        self.batch_size = check_int("batch_size", batch_size, low=2, high=len(data.train_x))
        self._arguments = dict(space=space, data=data, batch_size=batch_size, cache_dir=cache_dir, seed=self.seed,
                               space_config=space_config)  # what a sibling scorer (same batch, other proxy) needs
        pick = torch.randperm(len(data.train_x), generator=torch.Generator().manual_seed(self.seed))[:batch_size]
        images, labels = data.train_x[pick.to(data.device)], data.train_y[pick.to(data.device)]
        self.batch = (data.normalize(images), labels)
        self.computed = 0
        # The batch's own bytes stand for the dataset and its options (root, fraction, split, channels): any
        # change that alters the images scored gives another cache file.
        batch_hash = hashlib.sha256(images.cpu().numpy().tobytes() + labels.cpu().numpy().tobytes()).hexdigest()
        identity = {"space": space_config or repr(space), "dataset": data.name, "batch": batch_hash,
                    "proxy": self.name, "options": _keyed_options(proxy), "batch_size": batch_size,
                    "seed": self.seed}
        if DEFINITION_VERSIONS.get(self.name, 1) > 1:
            identity["definition"] = DEFINITION_VERSIONS[self.name]
        named = json.dumps(identity, sort_keys=True, default=str)
        self.cache_key = hashlib.sha256(named.encode()).hexdigest()[:16]
        # Concurrent processes claim a cell before scoring it (`claims`). Every gradient proxy of one batch
        # claims the same pass (one process computes it; the others wait and read all five scores); any other
        # proxy claims its own cache file's cells.
        shared = {k: v for k, v in identity.items() if k not in ("proxy", "options", "definition")}
        batch_key = hashlib.sha256(json.dumps(shared, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self._claim_group = f"gradient-{batch_key}" if self._is_gradient_proxy() else f"{self.name}-{self.cache_key}"
        self._claims: Claims | None = None
        self.entries: dict[str, dict] = {}  # key -> {"score": float|None, "seconds": float, "error": str?}
        self._asked: set[str] = set()  # distinct architectures scored (cache hits included)
        self._siblings: dict[str, ProxyScorer] | None = None  # the other gradient proxies, built when first needed
        self.cache_path = None
        self._offset = 0  # bytes of the cache file read so far
        if cache_dir is not None:
            self.cache_path = Path(cache_dir) / f"{self.name}-{self.cache_key}.jsonl"
            self._claims = Claims(Path(cache_dir) / "claims", self._claim_group)
            self._read_new()

    @property
    def evaluations(self) -> int:
        return len(self._asked)

    def _read_new(self) -> None:
        """Add the entries appended to the cache file since the last read, by this process or by another one
        sharing `cache_dir` (workers, concurrent sweep jobs): a score another writer computed is not computed
        again. A line still being written is left for the next read; a bad line (torn by a kill, damaged) only
        costs its score being computed again: skipped, and counted in one warning."""
        if self.cache_path is None:
            return
        try:
            with open(self.cache_path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        except OSError as err:
            self._to_memory(err)
            return
        complete = data[:data.rfind(b"\n") + 1]
        self._offset += len(complete)
        bad = 0
        for _, entry in decode_lines(complete.splitlines()):
            if entry_problem(entry):  # UNREADABLE too: cut JSON, or bytes that are not UTF-8
                bad += 1
                continue
            self.entries[entry.pop("key")] = entry
        if bad:
            log.warning("proxy cache %s: skipped %d bad line%s (their architectures are scored again)",
                        self.cache_path, bad, "" if bad == 1 else "s")

    def _to_memory(self, err: OSError) -> None:
        """An unreadable or unwritable cache file: keep scores in memory for this run, and say so once."""
        log.warning("%s; keeping the proxy's scores in memory for this run (or set proxy.cache_dir to a writable "
                    "folder)", environment_error(self.cache_path, err, "use the proxy cache").problem)
        self.cache_path = None

    def entry(self, arch) -> dict:
        """The cache entry for `arch` ({"score", "seconds"} or {"score": None, "error"}), computing it if new; if
        another process sharing the cache is scoring it right now, waiting for its score instead."""
        self._asked.add(arch.key)
        self._wait_or_compute(arch)
        return self.entries[arch.key]

    def try_entry(self, arch) -> bool:
        """Make sure `arch`'s entry is known, computing it if no process has; False (at once) when another process
        sharing the cache is computing it, so the caller can go on with other cells meanwhile."""
        if self._known(arch.key):
            return True
        claim = self._claims.try_claim(arch.key) if self._claims else UNCLAIMED
        if claim is None:
            return False
        with claim:
            self._compute_claimed(arch, claim)
        return True

    def prefetch(self, archs) -> None:
        """Compute the entries of `archs` not yet known, cells claimed by other processes last: processes that
        share the cache and prefetch the same list (sweep jobs of one seed, `nasrun-score` workers) split it
        between them instead of computing it twice or waiting on each other."""
        waiting = [arch for arch in archs if not self.try_entry(arch)]
        for arch in waiting:
            self._wait_or_compute(arch)

    def _wait_or_compute(self, arch) -> None:
        """Make sure `arch`'s entry is known: read, computed here, or waited for while another process holds it."""
        if not self._known(arch.key):
            with self._claims.claim(arch.key) if self._claims else UNCLAIMED as claim:
                self._compute_claimed(arch, claim)

    def _known(self, key: str) -> bool:
        if key not in self.entries and self.cache_path is not None:
            self._read_new()  # another process sharing the cache may have scored it meanwhile
        return key in self.entries

    def _compute_claimed(self, arch, claim: Claim) -> None:
        """Compute and store `arch`'s entry under `claim`, unless the process that held the claim before wrote it."""
        self._read_new()
        if arch.key not in self.entries:
            self.store(arch, self._compute(arch))

    def __call__(self, arch) -> float:
        entry = self.entry(arch)
        if entry["score"] is None:
            raise ProxyScoreError(entry["error"])
        return entry["score"]

    def build(self, arch):
        """The architecture's network, freshly initialised from (seed, architecture), on the data's device."""
        import torch

        cuda = [self.data.device] if self.data.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(trial_seed(self.seed, arch.key))
            model = self.space.build(arch, self.data.in_channels, self.data.image_size, self.data.num_classes)
        return model.to(self.data.device)

    def store(self, arch, entry: dict) -> None:
        """Record a computed entry: in memory, and appended to the cache file (written per score, so a kill loses
        nothing; no fsync: a lost score is only recomputed). Several processes may append to one file: each line
        goes in one write under an exclusive lock, so lines never interleave, and a line torn by a killed
        writer is ended before the next one."""
        self.entries[arch.key] = entry
        self.computed += 1
        if self.cache_path is None:
            return
        line = encode_line({"key": arch.key, **entry})
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            append_line(self.cache_path, line)
        except OSError as err:  # a read-only folder, a full disk: the scores are only a cache
            self._to_memory(err)

    def _compute(self, arch) -> dict:
        if self._fills_siblings():
            return self._compute_gradient_pass(arch)
        began = time.perf_counter()
        try:
            score = float(self.proxy(self.build(arch), self.batch))
        except ValueError as err:
            # The proxy has no score for this network (a singular kernel, an overflow): a per-architecture
            # outcome, cached like a score. Anything else is a bug and propagates.
            log.debug("proxy %s failed for %s: %s", self.name, arch.key, err)
            return {"score": None, "seconds": _since(began, self.data.device), "error": str(err)}
        return {"score": score, "seconds": _since(began, self.data.device)}

    def _fills_siblings(self) -> bool:
        """Whether this scorer computes the five gradient proxies in one pass and caches them all: it is one of
        nasrun's own gradient proxies, and there is a disk cache for the other four to go to."""
        return self.fill and self.cache_path is not None and self._is_gradient_proxy()

    def _is_gradient_proxy(self) -> bool:
        """Whether the proxy is one of nasrun's own gradient proxies (not a user's function of the same name)."""
        from nasrun.proxies import zero_cost  # torch: imported when scoring

        function = self.proxy
        while isinstance(function, partial):
            function = function.func
        return self.name in zero_cost.GRADIENT_PROXIES and function is getattr(zero_cost, self.name)

    def _compute_gradient_pass(self, arch) -> dict:
        """This proxy's entry, from a gradient pass that scores all five gradient proxies; the four others' go to
        their own cache files (unless already there). Each entry records its own seconds apart from the pass
        they share (`shared_seconds`, split `shared` ways), as `score_together` does."""
        from nasrun.proxies import zero_cost  # torch: imported when scoring

        if self._siblings is None:
            self._siblings = {name: ProxyScorer(getattr(zero_cost, name), **self._arguments)
                              for name in zero_cost.GRADIENT_PROXIES if name != self.name}
        # The options of this proxy as set, the others' as their siblings' cache files are keyed: their defaults.
        options = {k: v for name in ("jacob_cov", "grasp")
                   for k, v in _keyed_options(self.proxy if self.name == name else getattr(zero_cost, name)).items()}
        began = time.perf_counter()
        model = self.build(arch)
        seconds = {"shared": _since(began, self.data.device)}
        scores = zero_cost.gradient_proxies(model, self.batch, zero_cost.GRADIENT_PROXIES, **options, seconds=seconds)
        entries = {}
        for name, value in scores.items():
            entry = {"score": None, "error": str(value)} if isinstance(value, ValueError) else {"score": value}
            entries[name] = {**entry, "seconds": seconds.get(name, 0.0), "shared_seconds": seconds["shared"],
                             "shared": len(scores)}
        for name, sibling in self._siblings.items():
            sibling._read_new()
            if arch.key not in sibling.entries:
                sibling.store(arch, entries[name])
        return entries[self.name]


def append_line(path: Path, line: bytes) -> None:
    """Append one line to a file other processes append to as well: under flock, after ending a torn last line."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)  # read too: the last byte is checked
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by close
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        while line:
            line = line[os.write(fd, line):]
    finally:
        os.close(fd)


def entry_problem(entry) -> bool:
    """Whether a cache line is not an entry: {"key": str, "score": finite number or null, "seconds": >= 0}."""
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
        return True
    score, seconds = entry.get("score"), entry.get("seconds")
    if score is None:
        return not isinstance(entry.get("error"), str)
    if not isinstance(score, (int, float)) or not isinstance(seconds, (int, float)) or \
            isinstance(score, bool) or isinstance(seconds, bool):
        return True
    return not (math.isfinite(score) and math.isfinite(seconds) and seconds >= 0)


def _since(began: float, device) -> float:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - began


def score_together(scorers: list[ProxyScorer], arch) -> list[dict]:
    """Each scorer's entry for `arch` (as `scorer.entry`), computing the gradient proxies among them that share
    a network and a batch in one pass (`proxies.gradient_proxies`) rather than one pass each. With a disk cache
    the first gradient proxy's pass fills the others' files (`ProxyScorer._compute_gradient_pass`), which they
    read back; without one, the pass here scores the gradient proxies asked for together. Entries computed
    together record their own seconds apart from the pass they share: `seconds` is the proxy's own work,
    `shared_seconds` the network build, forward and backward that all of them used (the same figure in each;
    count it once), and `shared` how many proxies split it."""
    from nasrun.proxies.zero_cost import GRADIENT_PROXIES, gradient_proxies  # torch: imported when scoring

    first = scorers[0]
    together = [s for s in scorers if arch.key not in s.entries and s.name in GRADIENT_PROXIES
                and s.cache_path is None
                and (s.space, s.data, s.seed, s.batch_size) == (first.space, first.data, first.seed, first.batch_size)]
    if len(together) >= 2:
        options = {k: v for s in together for k, v in _proxy_options(s.proxy).items()}
        began = time.perf_counter()
        model = first.build(arch)
        seconds = {"shared": _since(began, first.data.device)}
        scores = gradient_proxies(model, first.batch, tuple(s.name for s in together), **options, seconds=seconds)
        for s in together:
            value = scores[s.name]
            entry = {"score": None, "error": str(value)} if isinstance(value, ValueError) else {"score": value}
            s.store(arch, {**entry, "seconds": seconds.get(s.name, 0.0), "shared_seconds": seconds["shared"],
                           "shared": len(together)})
    return [s.entry(arch) for s in scorers]
