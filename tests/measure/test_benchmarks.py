"""The benchmark workloads run once at tiny sizes (no timing asserted), so benchmarks/ cannot rot."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks._workloads import ARCHS, adding_payload, arch_step, harness_fit, plain_fit, warm_run_cost


@pytest.mark.parametrize("arch", ARCHS)
def test_arch_step_runs(arch: str) -> None:
    arch_step(arch, batch=2, length=5, hidden=8)()


def test_both_training_loops_run_on_the_same_payload(tmp_path: Path) -> None:
    payload = adding_payload(tmp_path, length=6, num_train=64, epochs=1, batch_size=32)
    assert harness_fit(payload) > 0 and plain_fit(payload) > 0


@pytest.mark.ray
def test_warm_run_cost_runs() -> None:
    figures = warm_run_cost(rounds=1)
    assert all(math.isfinite(v) and v > 0 for v in figures.values())
