"""Timing helpers (TorchBench recipe, repeated until stable) and the noise contract: shapes and
semantics, no timed assertions."""

from __future__ import annotations

import pytest
import torch

from harness.measure.timing import first_sample, percentile, time_rounds


def test_percentile_interpolates_like_numpy() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == pytest.approx(4.8)
    assert percentile([], 50) != percentile([], 50)  # NaN


def test_time_rounds_warms_up_then_times_each_round() -> None:
    calls: list[int] = []
    times = time_rounds(lambda: calls.append(1), rounds=4, warmup=2)
    assert len(calls) == 6 and len(times) == 4 and all(t >= 0 for t in times)


def test_first_sample_is_a_batch_of_one_without_padding() -> None:
    batch = {
        "x": torch.arange(12.0).view(2, 6, 1),
        "lengths": torch.tensor([4, 6]),
        "y": torch.tensor([1, 0]),
        "meta": "kept",
    }
    one = first_sample(batch)
    assert one["x"].shape == (1, 4, 1) and one["lengths"].tolist() == [4] and one["y"].tolist() == [1]
    assert one["meta"] == "kept"


def test_noise_contract_flags_a_wide_spread() -> None:
    from harness.measure import COST_KEYS, NOISE, NOISY_RATIO, noisy

    assert set(NOISE) <= set(COST_KEYS) and set(NOISE.values()) <= set(COST_KEYS)
    assert noisy({"latency_p50_ms": 1.0, "latency_iqr_ms": NOISY_RATIO * 2}, "latency_p50_ms")
    assert not noisy({"latency_p50_ms": 1.0, "latency_iqr_ms": NOISY_RATIO / 2}, "latency_p50_ms")
    assert not noisy({"latency_p50_ms": 1.0}, "latency_p50_ms")  # no spread recorded: nothing to judge
    assert not noisy({"num_params": 10.0}, "num_params")


def test_timing_repeats_until_the_median_is_stable() -> None:
    """A steady call stops soon after the minimum; a call with a wide spread keeps being timed
    (up to the budget) instead of reporting a median of five noisy rounds."""
    import itertools
    import time

    from harness.measure.timing import summarize, time_until_stable

    steady = time_until_stable(
        lambda: time.sleep(0.001), min_rounds=5, warmup=1, max_time_s=5.0, rel_error=0.2
    )
    assert 5 <= len(steady) < 200
    delays = itertools.cycle([0.0, 0.0, 0.004, 0.0, 0.002])
    wide = time_until_stable(
        lambda: time.sleep(next(delays)), min_rounds=5, warmup=1, max_time_s=0.3, rel_error=0.001
    )
    assert len(wide) > 20
    stats = summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert stats.median == 3.0 and stats.iqr == 2.0 and stats.rounds == 5
