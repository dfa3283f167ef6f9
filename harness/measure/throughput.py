"""The spread of a run's training throughput: per-batch rates, recorded by a Lightning callback.

``train_samples_per_s`` / ``train_timesteps_per_s`` are the samples (time steps) trained over the
time spent inside training batches (:class:`harness.train.module.HistoryCallback`); their IQR
companions (``train_samples_per_s_iqr`` / ``train_timesteps_per_s_iqr``) are the interquartile
range of the same rate batch by batch. Imported only in the worker (it imports Lightning).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import pytorch_lightning as pl

from harness.measure.timing import percentile


class BatchRates(pl.Callback):
    """Seconds, samples and time steps of every training batch. Put it after the history
    callback: that one synchronises CUDA at both ends of the batch, so no extra sync happens here."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.samples: list[int] = []
        self._timesteps: list[Any] = []  # tensors summed on the device, read once at the end
        self._start = 0.0

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.seconds.append(time.perf_counter() - self._start)
        self.samples.append(len(batch["y"]))
        lengths = batch.get("lengths") if isinstance(batch, Mapping) else None
        self._timesteps.append(lengths.sum() if lengths is not None else None)

    def spread(self) -> dict[str, float]:
        """IQR of the per-batch samples/s and time steps/s (absent below 4 batches)."""
        if len(self.seconds) < 4:
            return {}
        rates = [n / s for n, s in zip(self.samples, self.seconds, strict=True) if s > 0]
        out = {"train_samples_per_s_iqr": _iqr(rates)}
        if all(t is not None for t in self._timesteps):
            steps = [float(t) / s for t, s in zip(self._timesteps, self.seconds, strict=True) if s > 0]
            out["train_timesteps_per_s_iqr"] = _iqr(steps)
        return out


def _iqr(values: list[float]) -> float:
    return percentile(values, 75) - percentile(values, 25) if values else float("nan")


def train_rate_spread(callbacks: Iterable[Any]) -> dict[str, float]:
    """The IQR keys from the run's :class:`BatchRates` callback, if it has one."""
    found = next((c for c in callbacks if isinstance(c, BatchRates)), None)
    return found.spread() if found is not None else {}
