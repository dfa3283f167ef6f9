"""Timing helpers (TorchBench recipe) and the memory tracker: shapes and semantics, no timed assertions."""

from __future__ import annotations

import pytest
import torch

from harness.measure.memory import PeakMemory, current_rss_mb, peak_rss_mb
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


def test_cpu_peak_memory_sees_a_large_allocation() -> None:
    assert current_rss_mb() > 0 and peak_rss_mb() >= current_rss_mb() * 0.5
    tracker = PeakMemory(torch.device("cpu"))
    tracker.start()
    extra_mb = max(0.0, peak_rss_mb() - current_rss_mb()) + 64  # 64 MB beyond any earlier peak
    block = torch.ones(int(extra_mb * 2**18))  # float32: 2**18 per MB
    assert block.sum() > 0
    assert tracker.peak_mb() > 32
