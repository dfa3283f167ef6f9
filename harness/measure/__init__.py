"""Measurements besides task metrics: throughput, latency percentiles, FLOPs, memory, and the
gradient-flow probe. Every module imports torch lazily or is only imported inside the worker, so
``import harness.measure`` stays cheap. The same recipe serves every architecture: measurements
run after training, on the trained model, on the device it trained on (rank 0 only when the run is
data-parallel)."""

from __future__ import annotations

#: the cost keys every finished run may carry (NaN or absent when not measured); see docs/measurements.md
COST_KEYS: tuple[str, ...] = (
    "num_params",
    "flops_per_sample",
    "train_samples_per_s",
    "train_timesteps_per_s",
    "infer_samples_per_s",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "peak_memory_mb",
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
