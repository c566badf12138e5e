"""Claims on cells of a shared proxy cache: concurrent processes score a cell once; a killed holder's claim is
taken over; a hung holder is waited on for a bounded time."""

import multiprocessing
import os
import signal
import time

import numpy as np

from nasrun.data.builtin import synthetic
from nasrun.proxies import zero_cost as proxies
from nasrun.proxies.claims import UNCLAIMED, Claims
from nasrun.proxies.scorer import ProxyScorer
from nasrun.rundir.jsonl import decode_lines
from nasrun.spaces.nb201 import NB201Space

SPACE = NB201Space(4, 1)
# fork: a second process in a fraction of the spawn start (torch is imported already, on one thread)
FORK = multiprocessing.get_context("fork")


def slow_params(model, batch) -> float:
    """A proxy slow enough that two processes asking for one cell overlap."""
    time.sleep(0.3)
    return proxies.params(model, batch)


def make_scorer(cache, proxy=slow_params):
    return ProxyScorer(proxy, SPACE, synthetic(channels=3, image_size=16), seed=0, batch_size=16, cache_dir=cache)


def archs(count):
    rng = np.random.default_rng(7)
    found = {}
    while len(found) < count:
        arch = SPACE.sample(rng)
        found[arch.key] = arch
    return list(found.values())


def cache_keys(cache) -> list[str]:
    """Every cell key written to the cache folder's files, repeats kept."""
    keys = []
    for path in sorted(cache.glob("*.jsonl")):
        keys += [entry["key"] for _, entry in decode_lines(path.read_bytes().splitlines())]
    return keys


def score_one(cache, start, proxy_name, count, prefetch, computed):
    proxy = slow_params if proxy_name == "slow_params" else getattr(proxies, proxy_name)
    scorer = make_scorer(cache, proxy)
    start.wait()
    if prefetch:
        scorer.prefetch(archs(count))
    else:
        scorer.entry(archs(count)[0])
    computed.put(scorer.computed)


def run_together(cache, proxy_name="slow_params", count=1, prefetch=False, processes=2):
    start, computed = FORK.Barrier(processes), FORK.Queue()
    workers = [FORK.Process(target=score_one, args=(cache, start, proxy_name, count, prefetch, computed))
               for _ in range(processes)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    return [computed.get(timeout=10) for _ in workers]


def test_two_processes_asking_for_one_cell_score_it_once(tmp_path):
    computed = run_together(tmp_path)
    assert sorted(computed) == [0, 1]  # one computed it, the other waited and read its score
    assert cache_keys(tmp_path) == [archs(1)[0].key]
    assert list((tmp_path / "claims").iterdir()) == []  # released claims leave no files


def test_two_processes_prefetching_one_list_share_it_out(tmp_path):
    computed = run_together(tmp_path, count=8, prefetch=True)
    keys = cache_keys(tmp_path)
    assert sum(computed) == 8 and sorted(keys) == sorted(a.key for a in archs(8))


def test_the_gradient_pass_is_claimed_once_for_all_five_proxies(tmp_path):
    """A grad_norm search and a grasp search on one cell: one pass, five cache files of one line each."""
    start, computed = FORK.Barrier(2), FORK.Queue()
    workers = [FORK.Process(target=score_one, args=(tmp_path, start, name, 1, False, computed))
               for name in ("grad_norm", "grasp")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    assert sorted(computed.get(timeout=10) for _ in workers) == [0, 1]
    assert cache_keys(tmp_path) == [archs(1)[0].key] * 5


def hold_claim(folder, group, key, held):
    Claims(folder, group).try_claim(key)  # kept: the claim lives as long as this process
    held.set()
    time.sleep(600)


def test_a_claim_left_by_a_killed_process_is_taken_over(tmp_path):
    arch = archs(1)[0]
    scorer = make_scorer(tmp_path, proxies.params)
    held = FORK.Event()
    holder = FORK.Process(target=hold_claim, args=(tmp_path / "claims", "group", arch.key, held))
    holder.start()
    try:
        assert held.wait(timeout=60)
        mine = Claims(tmp_path / "claims", "group")
        assert mine.try_claim(arch.key) is None  # held by a live process
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(timeout=30)
        claim = mine.try_claim(arch.key)  # the kernel released the dead holder's lock
        assert claim is not None and claim is not UNCLAIMED
        claim.release()
    finally:
        if holder.is_alive():
            holder.kill()
    # Through the scorer: its own group's claim, left by a killed scorer, and the cell scored here.
    held.clear()
    holder = FORK.Process(target=hold_claim, args=(scorer._claims.folder, scorer._claims.group, arch.key, held))
    holder.start()
    assert held.wait(timeout=60)
    assert scorer.try_entry(arch) is False and scorer.computed == 0
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(timeout=30)
    assert scorer.entry(arch)["score"] == proxies.params(scorer.build(arch), None)
    assert scorer.computed == 1


def test_a_hung_holder_is_waited_on_for_a_bounded_time(tmp_path, caplog):
    folder = tmp_path / "claims"
    held = Claims(folder, "group").try_claim("cell")
    assert held is not None
    began = time.monotonic()
    assert Claims(folder, "group").claim("cell", wait_seconds=0.3) is UNCLAIMED
    assert 0.3 <= time.monotonic() - began < 5
    assert "claimed by another process for over" in caplog.text and "scoring it here as well" in caplog.text
    held.release()
    assert Claims(folder, "group").claim("cell", wait_seconds=0.3) is not UNCLAIMED


def test_claims_in_one_process_exclude_each_other_and_free_on_release(tmp_path):
    folder = tmp_path / "claims"
    first = Claims(folder, "a").try_claim("cell")
    assert first is not None and Claims(folder, "a").try_claim("cell") is None
    assert Claims(folder, "b").try_claim("cell") is not None  # another group: another claim
    first.release()
    again = Claims(folder, "a").try_claim("cell")
    assert again is not None
    again.release()


def test_an_unwritable_claims_folder_scores_unclaimed_with_one_warning(tmp_path, caplog):
    (tmp_path / "claims").write_text("a file where the claims folder should be")
    claims = Claims(tmp_path / "claims", "group")
    assert claims.try_claim("a") is UNCLAIMED and claims.try_claim("b") is UNCLAIMED
    assert caplog.text.count("cannot write claims") == 1
