"""The CUDA peak tracker off CUDA, and the exact activation memory."""

from __future__ import annotations

import math

import pytest
import torch

from harness.measure.memory import PeakMemory, activation_mb


def test_peak_memory_tracker_measures_nothing_on_the_cpu() -> None:
    """RSS growth measured worker warm-up, not the run: the CPU figure is the training-step tensor
    peak (tests/measure/test_step_memory.py); the CUDA tracker says NaN on the CPU."""
    peak = PeakMemory(torch.device("cpu"))
    peak.start()
    assert math.isnan(peak.peak_mb())


def test_activation_memory_is_exact_for_a_linear_layer() -> None:
    layer = torch.nn.Linear(100, 10, bias=False)
    x = torch.randn(32, 100)
    # a linear layer saves its input for the weight gradient: 32 × 100 float32
    assert activation_mb(lambda: layer(x).sum()) == pytest.approx(32 * 100 * 4 / 2**20)
    with torch.no_grad():
        assert activation_mb(lambda: layer(x).sum()) == 0.0
