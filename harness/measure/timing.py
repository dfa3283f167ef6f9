"""Throughput and latency with the TorchBench recipe: warm-up rounds, device synchronisation
around every timed call, repeated timing, and order statistics (medians / percentiles) rather
than means, so one slow round (a page fault, another process) does not move the figure."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytorch_lightning as pl
    import torch


def synchronize(device: torch.device | str) -> None:
    """Wait for queued CUDA work on ``device`` (no-op on CPU)."""
    import torch

    if getattr(device, "type", str(device)).startswith("cuda"):
        torch.cuda.synchronize(device)


def time_rounds(
    fn: Callable[[], object], *, rounds: int, warmup: int, device: torch.device | str = "cpu"
) -> list[float]:
    """Seconds taken by each of ``rounds`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times: list[float] = []
    for _ in range(rounds):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation (numpy's default), no numpy."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def to_device(batch: Mapping[str, Any], device: torch.device | str) -> dict[str, Any]:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


def first_sample(batch: Mapping[str, Any]) -> dict[str, Any]:
    """A batch of one: the first row of every tensor whose leading dimension is the batch size;
    the time axis of ``x`` is trimmed to that sample's length (no padding at batch 1)."""
    size = int(batch["lengths"].shape[0]) if "lengths" in batch else int(batch["y"].shape[0])
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if hasattr(value, "shape") and len(value.shape) > 0 and value.shape[0] == size:
            out[key] = value[:1]
        else:
            out[key] = value
    if "lengths" in out and "x" in out and out["x"].dim() >= 2:
        out["x"] = out["x"][:, : int(out["lengths"][0])]
    return out


def inference_timing(
    module: pl.LightningModule, batch: Mapping[str, Any], *, rounds: int, warmup: int, latency: bool = True
) -> dict[str, float]:
    """Forward-pass timing of ``module`` (eval mode, ``inference_mode``) on ``batch`` (the
    training batch size) and, when ``latency``, on its first sample at batch 1.

    Returns ``infer_samples_per_s`` (batch size / median batch time) and
    ``latency_p50_ms``/``latency_p95_ms``/``latency_p99_ms``.
    """
    import torch

    from harness.measure.flops import batch_size

    device = module.device
    module.eval()
    full = to_device(batch, device)
    out: dict[str, float] = {}
    with torch.inference_mode():
        times = time_rounds(lambda: module(full), rounds=rounds, warmup=warmup, device=device)
        out["infer_samples_per_s"] = batch_size(full) / percentile(times, 50)
        if latency:
            one = first_sample(full)
            times = time_rounds(lambda: module(one), rounds=rounds, warmup=warmup, device=device)
            for q in (50, 95, 99):
                out[f"latency_p{q}_ms"] = percentile(times, q) * 1000.0
    return out
