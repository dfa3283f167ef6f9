"""The CPU ``peak_memory_mb``: a per-run figure that does not depend on what ran before in the
same worker process (issue 13, defect 3), and that grows with the sequence length."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import payloads, tiny_suite, write_suite


@pytest.mark.ray
def test_cpu_peak_memory_is_the_same_first_or_third_in_a_ray_worker(tmp_path: Path) -> None:
    """One Ray worker (1 CPU) runs gru, then transformer, then gru again: both gru figures agree."""
    import ray

    from harness.train.trial import run_trial

    suite = tiny_suite(
        "mem",
        archs=["gru", "transformer"],
        tasks=["adding"],
        trainer={"max_epochs": 1, "batch_size": 32, "lr": 0.003},
    )
    specs = {s.architecture: s for s in payloads(write_suite(tmp_path, suite), tmp_path / "cache")}
    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(run_trial)
        records = [ray.get(remote.remote(specs[a])) for a in ("gru", "transformer", "gru")]
    finally:
        ray.shutdown()
    assert [r.status for r in records] == ["finished"] * 3, [r.failure for r in records]
    assert len({r.runtime.pid for r in records if r.runtime}) == 1  # one reused worker process
    first, third = records[0].cost["peak_memory_mb"], records[2].cost["peak_memory_mb"]
    assert first > 0 and abs(first - third) <= 0.1 * first, (first, third)


@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru"])
def test_cpu_peak_memory_grows_with_the_sequence_length(arch: str, tmp_path: Path) -> None:
    import torch

    from harness.plugins import get_registry
    from harness.profile import profile_one

    registry = get_registry()
    task_cls = registry.tasks.get("adding").obj
    net = registry.architectures.get(arch).obj()
    peaks = []
    for length in (16, 32):
        task = task_cls({"length": length, "num_train": 16, "num_val": 16, "num_test": 16})
        cost = profile_one(
            task,
            net,
            16,
            torch.device("cpu"),
            steps=2,
            warmup=1,
            rounds=3,
            cache_dir=tmp_path,
            max_time_s=0.05,
        )
        peaks.append(cost["peak_memory_mb"])
    assert 0 < peaks[0] < peaks[1], peaks


def test_step_memory_counts_parameters_gradients_optimizer_state_and_activations() -> None:
    """An exact case: Linear(1000→1000, no bias), batch 10, SGD with momentum."""
    import torch

    from harness.measure.memory import training_step_peak_mb

    layer = torch.nn.Linear(1000, 1000, bias=False)
    x = torch.randn(10, 1000)
    peak = training_step_peak_mb(
        layer, lambda: layer(x).square().sum(), lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9)
    )
    weight = 1000 * 1000 * 4 / 2**20
    # weight + its gradient + the momentum buffer, plus a few kB of activations
    assert 3 * weight <= peak <= 3 * weight + 0.5, peak
    before = layer.weight.detach().clone()
    training_step_peak_mb(layer, lambda: layer(x).sum(), lambda p: torch.optim.SGD(p, lr=0.1))
    assert torch.equal(layer.weight, before) and layer.weight.grad is None  # the model is left as it was
