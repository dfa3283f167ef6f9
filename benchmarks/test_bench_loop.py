"""The harness training loop against a plain PyTorch loop (goal: ratio <= 1.05), and the per-run
fixed cost on a warm Ray worker (goal: <= 1 s). Ratios go to ``extra_info`` and stdout (-s)."""

from __future__ import annotations

import pytest

from benchmarks._workloads import adding_payload, harness_fit, loop_ratio, plain_fit, warm_run_cost
from harness.records import RunSpec


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> RunSpec:
    return adding_payload(tmp_path_factory.mktemp("bench"))


def test_harness_fit(benchmark, payload: RunSpec) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "training loop (adding T=50, 2048 samples, GRU 64, 2 epochs)"
    harness_fit(payload)
    benchmark.pedantic(harness_fit, args=(payload,), rounds=3, iterations=1)


def test_plain_fit(benchmark, payload: RunSpec) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "training loop (adding T=50, 2048 samples, GRU 64, 2 epochs)"
    plain_fit(payload)
    benchmark.pedantic(plain_fit, args=(payload,), rounds=3, iterations=1)


def test_harness_over_plain_ratio(benchmark, payload: RunSpec) -> None:  # type: ignore[no-untyped-def]
    figures = benchmark.pedantic(loop_ratio, args=(payload,), rounds=1, iterations=1)
    benchmark.extra_info.update(figures)
    print(
        f"\nharness / plain loop: median {figures['ratio']:.3f} ({figures['harness_s']:.2f} s / "
        f"{figures['plain_s']:.2f} s), min {figures['ratio_min']:.3f}"
    )


@pytest.mark.ray
def test_warm_ray_worker_fixed_cost(benchmark) -> None:  # type: ignore[no-untyped-def]
    figures = benchmark.pedantic(warm_run_cost, rounds=1, iterations=1)
    benchmark.extra_info.update(figures)
    print(
        f"\nwarm Ray worker, near-empty run: {figures['total_s']:.2f} s = "
        f"Ray round trip {figures['driver_s']:.2f} s "
        f"(in worker {figures['worker_s']:.2f} s, of which fit {figures['fit_s']:.2f} s) + MLflow logging "
        f"{figures['mlflow_log_s']:.2f} s"
    )
