"""The forecasting task's data module (imports torch and lightning: loaded inside the worker).

Batches are dicts: ``x`` ``[B, window, 1]`` (standardised values), ``lengths`` ``[B]``, ``y``
``[B, horizon]`` (standardised targets), ``origin`` ``[B]`` (index of the first target in the
series), ``offset`` ``[B]`` (what was subtracted from each standardised window: 0, or its last
value with ``scaling="window"``), and per-row constants to score in the series' units: a value
``v`` of ``x``/``y``/the prediction is ``v * std + loc`` there, and ``mase_scale``.

The classical baselines read (see ``harness_builtins.architectures._baselines``): ``series``
(standardised, ``float64 [n]``), ``horizon``, ``season``, ``train_end``, ``fit_end`` and
``arima_defaults``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from harness.data import SplitDataModule

from ..metrics.forecasting import naive_scale


class WindowDataset(Dataset):
    """Windows of a standardised series: ``(x [window, 1], y [horizon], origin, offset)`` per origin.

    With ``shift``, each window's last value (``offset``) is subtracted from its inputs and targets.
    """

    def __init__(
        self, series: np.ndarray, origins: np.ndarray, window: int, horizon: int, shift: bool
    ) -> None:
        values = torch.as_tensor(series, dtype=torch.float64)
        self.origins = torch.as_tensor(origins, dtype=torch.long)
        x = values[self.origins[:, None] - window + torch.arange(window)[None, :]]
        y = values[self.origins[:, None] + torch.arange(horizon)[None, :]]
        self.offsets = x[:, -1].clone() if shift else torch.zeros(len(self.origins), dtype=torch.float64)
        self.x = (x - self.offsets[:, None]).float().unsqueeze(-1)
        self.y = (y - self.offsets[:, None]).float()

    def __len__(self) -> int:
        return len(self.origins)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return self.x[i], self.y[i], self.origins[i], self.offsets[i]


class ForecastDataModule(SplitDataModule):
    """Chronological train/validation/test windows of one series, standardised with training statistics."""

    def __init__(
        self,
        load_values: Callable[[], np.ndarray],
        *,
        window: int,
        horizon: int,
        splits: Callable[[int], tuple[int, int]],
        season: int,
        mase_lag: int,
        scaling: str = "train",
        arima_defaults: Mapping[str, Any],
        batch_size: int,
        seed: int,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, seed, num_workers)
        self._load_values = load_values
        self._splits = splits
        self.window, self.horizon, self.season, self.mase_lag = window, horizon, season, mase_lag
        self.scaling = scaling
        self.arima_defaults = dict(arima_defaults)
        self.values: np.ndarray | None = None  # the series in its own units
        self.series: np.ndarray | None = None  # standardised with the training span's statistics
        self.datasets: dict[str, WindowDataset] = {}
        self.origins: dict[str, np.ndarray] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        values = np.asarray(self._load_values(), dtype=np.float64)
        if np.isnan(values).any():
            raise ValueError("the series still has missing values after gap filling")
        n = len(values)
        self.train_end, self.fit_end = self._splits(n)
        train_span = values[: self.train_end]
        self.mean, self.std = float(train_span.mean()), float(train_span.std())
        if not self.std > 0:
            raise ValueError("the training span is constant: cannot standardise the series")
        self.values = values
        self.series = (values - self.mean) / self.std
        self.mase_scale = naive_scale(values[: self.fit_end], self.mase_lag)
        last = n - self.horizon  # the last origin whose targets fit in the series
        self.origins = {
            "train": np.arange(self.window, self.train_end - self.horizon + 1),
            "val": np.arange(self.train_end, self.fit_end - self.horizon + 1),
            "test": np.arange(self.fit_end, last + 1),
        }
        self.datasets = {
            split: WindowDataset(
                self.series, origins, self.window, self.horizon, shift=self.scaling == "window"
            )
            for split, origins in self.origins.items()
        }

    def collate(self, items: Sequence[tuple[torch.Tensor, ...]]) -> dict[str, torch.Tensor]:
        size = len(items)
        offset = torch.stack([item[3] for item in items])
        return {
            "x": torch.stack([item[0] for item in items]),
            "lengths": torch.full((size,), self.window, dtype=torch.long),
            "y": torch.stack([item[1] for item in items]),
            "origin": torch.stack([item[2] for item in items]),
            "offset": offset.float(),
            "loc": self.mean + offset * self.std,  # float64
            "std": torch.full((size,), self.std, dtype=torch.float64),
            "mase_scale": torch.full((size,), self.mase_scale, dtype=torch.float64),
        }

    def collate_for(
        self, split: str
    ) -> Callable[[Sequence[tuple[torch.Tensor, ...]]], dict[str, torch.Tensor]]:
        return self.collate
