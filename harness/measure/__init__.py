"""Measurements besides task metrics: throughput, latency percentiles, FLOPs, memory, and the
gradient-flow probe. Every module imports torch lazily or is only imported inside the worker, so
``import harness.measure`` stays cheap. The same recipe serves every architecture: measurements
run after training, on the trained model, on the device it trained on (rank 0 only when the run is
data-parallel)."""

from __future__ import annotations

import math
from collections.abc import Mapping

#: each timed cost key → the cost key of its spread: the interquartile range (q75 - q25) of the
#: repeated measurements the figure is the median of, in the figure's own unit
NOISE: dict[str, str] = {
    "latency_p50_ms": "latency_iqr_ms",
    "infer_samples_per_s": "infer_samples_per_s_iqr",
    "train_samples_per_s": "train_samples_per_s_iqr",
    "train_timesteps_per_s": "train_timesteps_per_s_iqr",
}

#: a timed figure whose IQR is more than this fraction of its median is noise, not data. For a
#: normal spread IQR ≈ 1.35 σ, so 0.25 is a coefficient of variation of about 18 %: two figures
#: that differ by less than that are indistinguishable from a few repeats.
NOISY_RATIO = 0.25


def noisy(cost: Mapping[str, float], key: str) -> bool:
    """Whether ``cost[key]`` is too noisy to report as data: its IQR (``cost[NOISE[key]]``) over
    its median exceeds :data:`NOISY_RATIO`. False when ``key`` has no spread key, or either
    figure is absent or not finite (nothing to judge)."""
    spread_key = NOISE.get(key)
    if spread_key is None:
        return False
    try:
        median, spread = float(cost[key]), float(cost[spread_key])
    except (KeyError, TypeError, ValueError):
        return False
    if not (math.isfinite(median) and math.isfinite(spread)) or median == 0:
        return False
    return spread / abs(median) > NOISY_RATIO


#: the cost keys every finished run may carry (NaN or absent when not measured); see docs/measurements.md
COST_KEYS: tuple[str, ...] = (
    "num_params",
    "flops_per_sample",
    "train_samples_per_s",
    "train_samples_per_s_iqr",
    "train_timesteps_per_s",
    "train_timesteps_per_s_iqr",
    "infer_samples_per_s",
    "infer_samples_per_s_iqr",
    "latency_p50_ms",
    "latency_iqr_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "peak_memory_mb",
    "activation_memory_mb",
    "train_time_s",
    "steps",
    "epochs",
    "best_epoch",
    "ttt_reached",
    "ttt_steps",
    "ttt_samples",
    "ttt_time_s",
    "gradflow_ratio",
    "gradflow_vanishing",
    "gradflow_exploding",
)

__all__ = ["COST_KEYS", "NOISE", "NOISY_RATIO", "noisy"]
