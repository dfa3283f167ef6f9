"""Each architecture's forward+backward step at fixed shapes (batch 32, T=100, width 64)."""

from __future__ import annotations

import pytest

from benchmarks._workloads import ARCHS, arch_step


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_backward_step(benchmark, arch: str) -> None:  # type: ignore[no-untyped-def]
    import torch

    torch.set_num_threads(1)
    benchmark.group = "fwd+bwd B=32 T=100 H=64 (1 thread)"
    benchmark(arch_step(arch))
