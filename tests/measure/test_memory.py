"""Peak memory on CPU (sampled RSS) and exact activation memory."""

from __future__ import annotations

import time

import pytest
import torch

from harness.measure.memory import PeakMemory, activation_mb


def _hold(mb: int, seconds: float = 0.1) -> None:
    block = torch.ones(mb * 2**20 // 4)  # float32, touched so the pages are resident
    time.sleep(seconds)
    del block


def test_cpu_peak_is_measured_again_after_a_bigger_earlier_peak() -> None:
    """The kernel's peak RSS never drops; the sampler still sees a later, smaller piece of work."""
    _hold(300)  # an earlier, bigger run in the same (reused) worker process
    peak = PeakMemory(torch.device("cpu"))
    peak.start()
    _hold(120)
    grown = peak.peak_mb()
    assert 90 <= grown <= 200, grown


def test_cpu_peak_of_idle_work_is_small() -> None:
    peak = PeakMemory(torch.device("cpu"))
    peak.start()
    time.sleep(0.05)
    assert peak.peak_mb() < 20


def test_activation_memory_is_exact_for_a_linear_layer() -> None:
    layer = torch.nn.Linear(100, 10, bias=False)
    x = torch.randn(32, 100)
    # a linear layer saves its input for the weight gradient: 32 × 100 float32
    assert activation_mb(lambda: layer(x).sum()) == pytest.approx(32 * 100 * 4 / 2**20)
    with torch.no_grad():
        assert activation_mb(lambda: layer(x).sum()) == 0.0
