"""A finished run's cost carries the spread of every timed figure (harness.measure.NOISE) and a
CPU memory peak that covers the parameters, gradients and optimizer state."""

from __future__ import annotations

import math
from pathlib import Path

from tests.helpers import payloads, tiny_suite, write_suite


def test_a_run_records_the_iqr_of_each_timed_figure(tmp_path: Path) -> None:
    from harness.measure import NOISE, noisy
    from harness.train.trial import run_trial

    suite = tiny_suite("spread", archs=["gru"], tasks=["adding"])
    (spec,) = payloads(write_suite(tmp_path, suite), tmp_path / "cache")
    record = run_trial(spec)
    assert record.status == "finished", record.failure
    cost = record.cost
    for key, spread in NOISE.items():
        assert math.isfinite(cost[key]) and cost[key] > 0, key
        assert math.isfinite(cost[spread]) and cost[spread] >= 0, spread
        assert isinstance(noisy(cost, key), bool)
    # Adam: weights, gradients and two moments of float32 parameters, plus the activations
    assert cost["peak_memory_mb"] > 4 * 4 * cost["num_params"] / 2**20
