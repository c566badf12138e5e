"""The soak bench's measurements: the growth it reports is the slope after warm-up, and a sample sees this
process's memory, descriptors and threads (and its children's memory)."""

import os

import pytest

from nasrun.bench.soak import Sampler, growth_per_1000, sample


def test_growth_is_the_slope_after_the_warm_up_per_1000_trials():
    trials = list(range(100, 1100, 100))
    warm_up_then_flat = [500.0, 900.0] + [1000.0] * 8  # the first fifth is left out
    assert growth_per_1000(trials, warm_up_then_flat) == pytest.approx(0.0, abs=1e-9)
    leaking = [1000.0 + 0.05 * t for t in trials]  # 50 MB per 1,000 trials
    assert growth_per_1000(trials, leaking) == pytest.approx(50.0)
    assert growth_per_1000([100], [1.0]) is None


def test_a_sample_counts_a_new_descriptor_and_the_sampler_samples_every_n_trials():
    before = sample()
    assert before["rss_mb"] >= before["main_rss_mb"] > 10 and before["threads"] >= 1
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        assert sample()["fds"] == before["fds"] + 1
    finally:
        os.close(fd)
    sampler = Sampler(every=3)
    for trial in range(10):
        sampler({"trial": trial})
    assert sampler.at == [3, 6, 9] and len(sampler.samples) == 3
