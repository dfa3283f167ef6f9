"""Throughput and latency with the TorchBench recipe: warm-up rounds, device synchronisation
around every timed call, and order statistics (medians / percentiles) rather than means, so one
slow round (a page fault, another process) does not move the figure.

How many rounds: :func:`time_until_stable` times one call after another until the median is
known to a target relative error (its standard error, estimated from the interquartile range as
``0.93 · IQR / sqrt(n)``, below ``rel_error`` of the median), with a minimum number of rounds and
a time budget. Every figure is reported with its spread, the IQR of the same rounds
(:data:`harness.measure.NOISE` names the companion keys); a figure whose IQR is a large part of
its median is flagged as noisy (:func:`harness.measure.noisy`) rather than shown as data."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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


#: standard error of the median ≈ 1.2533 σ / sqrt(n) and σ ≈ IQR / 1.349 for a normal spread
_SE_MEDIAN_PER_IQR = 1.2533 / 1.349
#: fewer rounds than this say nothing about the spread: never stop on them before the budget
_MIN_FOR_SPREAD = 5


def time_until_stable(
    fn: Callable[[], object],
    *,
    min_rounds: int,
    warmup: int,
    max_time_s: float,
    rel_error: float = 0.02,
    max_rounds: int = 10_000,
    device: torch.device | str = "cpu",
) -> list[float]:
    """Seconds of each timed call of ``fn`` after ``warmup`` untimed ones: at least
    ``min_rounds``, then more until (with at least 5 rounds) the median's estimated standard
    error is below ``rel_error`` of the median, ``max_time_s`` of timed calls have passed, or
    ``max_rounds`` were timed."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times: list[float] = []
    spent = 0.0
    while len(times) < max_rounds:
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
        spent += times[-1]
        n = len(times)
        if n < min_rounds:
            continue
        if spent >= max_time_s:
            break
        if n >= _MIN_FOR_SPREAD and (n == min_rounds or n % 5 == 0):  # not sorting every round
            stats = summarize(times)
            if stats.median > 0 and _SE_MEDIAN_PER_IQR * stats.iqr / math.sqrt(n) <= rel_error * stats.median:
                break
    return times


@dataclass(frozen=True)
class Timing:
    """Order statistics of repeated timings (in the unit of the values)."""

    median: float
    iqr: float
    p95: float
    p99: float
    rounds: int


def summarize(values: Sequence[float]) -> Timing:
    return Timing(
        median=percentile(values, 50),
        iqr=percentile(values, 75) - percentile(values, 25),
        p95=percentile(values, 95),
        p99=percentile(values, 99),
        rounds=len(values),
    )


def rate(amount: float, times: Sequence[float]) -> tuple[float, float]:
    """``amount`` per second at the median time, and the IQR of ``amount / time`` over the rounds."""
    return amount / percentile(times, 50), amount / percentile(times, 25) - amount / percentile(times, 75)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation (numpy's default), no numpy."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def iqr(values: Sequence[float]) -> float:
    """Interquartile range (NaN for no values)."""
    return percentile(values, 75) - percentile(values, 25) if values else float("nan")


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
    module: pl.LightningModule,
    batch: Mapping[str, Any],
    *,
    rounds: int,
    warmup: int,
    latency: bool = True,
    max_time_s: float = 1.0,
    rel_error: float = 0.02,
    counts: bool = False,
) -> dict[str, float]:
    """Forward-pass timing of ``module`` (eval mode, ``inference_mode``) on ``batch`` (the
    training batch size) and, when ``latency``, on its first sample at batch 1; each timed with
    :func:`time_until_stable` (at least ``rounds`` rounds, at most ``max_time_s`` seconds).

    Returns ``infer_samples_per_s`` (batch size / median batch time) with its IQR
    ``infer_samples_per_s_iqr``, and ``latency_p50_ms``/``latency_p95_ms``/``latency_p99_ms`` with
    ``latency_iqr_ms``; with ``counts``, also the rounds timed (``infer_rounds``, ``latency_rounds``).
    """
    import torch

    from harness.measure.flops import batch_size

    device = module.device
    module.eval()
    full = to_device(batch, device)
    out: dict[str, float] = {}

    def timed(fn: Callable[[], object]) -> list[float]:
        return time_until_stable(
            fn, min_rounds=rounds, warmup=warmup, max_time_s=max_time_s, rel_error=rel_error, device=device
        )

    with torch.inference_mode():
        times = timed(lambda: module(full))
        out["infer_samples_per_s"], out["infer_samples_per_s_iqr"] = rate(batch_size(full), times)
        if counts:
            out["infer_rounds"] = float(len(times))
        if latency:
            one = first_sample(full)
            stats = summarize(timed(lambda: module(one)))
            out["latency_p50_ms"] = stats.median * 1000.0
            out["latency_iqr_ms"] = stats.iqr * 1000.0
            out["latency_p95_ms"] = stats.p95 * 1000.0
            out["latency_p99_ms"] = stats.p99 * 1000.0
            if counts:
                out["latency_rounds"] = float(stats.rounds)
    return out
