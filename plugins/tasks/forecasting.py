"""Univariate forecasting of three classic series: ``sunspots``, ``co2``, ``airline``.

Data (read from installed packages, no network):

- ``sunspots``: yearly mean sunspot numbers 1700-2008, 309 points (statsmodels
  ``datasets.sunspots``, from NOAA's National Geophysical Data Center; public domain). Season 11
  (the ~11-year solar cycle).
- ``co2``: weekly atmospheric CO2 at Mauna Loa, March 1958 - December 2001, 2,284 points, 59 of
  them missing (statsmodels ``datasets.co2``, Keeling & Whorf, SIO/CDIAC; public domain). The
  gaps are filled by time-weighted linear interpolation between the neighbouring observations
  (``pandas.Series.interpolate(method="time", limit_direction="both")``; the weeks are evenly
  spaced, so this is linear interpolation) before anything else sees the series. Season 52.
- ``airline``: monthly international airline passengers 1949-1960, 144 points (sktime
  ``load_airline``; Box & Jenkins 1976, series G, a textbook data set). Season 12.

Protocol. The last ``test_fraction`` (20 %, rounded up as sktime's ``temporal_train_test_split``
does) of the series is the test holdout; the last ``val_fraction`` of what remains is the
validation span; the rest is the training span. A sample is a window of ``window`` consecutive
values (input ``[window, 1]``) and the next ``horizon`` values (target); a window belongs to the
split that holds *all* its targets (its inputs may reach back into earlier spans: the past is
known when forecasting), and every such window is scored, so each test value is forecast
``horizon`` times from successive origins. Values are standardised with the mean and standard
deviation of the training span only (``scaling="window"`` also subtracts each window's last
value from its inputs and targets, so that networks forecast changes, which helps on trending
series); metrics are computed in the series' own units.

Metrics: ``mase`` (primary), ``mae``, ``rmse``, ``smape``. MASE's scale is the in-sample MAE of the
one-step naive forecast (``mase_scale="naive"``; ``"seasonal_naive"``: the value one season back)
over everything before the test holdout (train and validation spans: the span the classical
baselines are fitted on, sktime's ``y_train``). MASE below 1 means better than that naive
forecast's in-sample accuracy; the time-to-target threshold is ``target_mase`` (1.0).

Baselines in the same tables: the ``naive``, ``seasonal_naive`` and ``arima`` architectures (fitted
on the data module's ``series``; see ``harness_builtins.architectures._baselines``).

Anchors (ANCHORS.md, "measured here", fixed last-20 % holdout): sunspots AR(9) MASE 0.643; CO2
SARIMA 0.761; airline "airline model" 1.381. Their exact MASE definition is not recorded. With the
``arima`` baseline (parameters fitted once on the 80 % before the holdout, one-step forecasts from
every holdout origin, MASE scale from that 80 %) sunspots AR(9) scores 0.924 with the one-step
naive scale and 0.713 with the 11-year seasonal naive scale; other plausible readings give 0.90
(61-point holdout), 0.83 (scale over the whole series), 0.60 (MAE relative to the naive forecast
over the holdout), 1.5-2.1 (one 62-step forecast of the whole holdout): none gives 0.643. Airline
(0,1,1)(0,1,1)12 one-step: 0.631 (raw series); co2: 0.940 with the default ARIMA(2,1,2) + drift.
Measured here (suites/anchors/forecasting.yaml, 3 seeds, CPU): the networks beat the naive
forecast on all three series and ARIMA on co2 (GRU 0.808).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import Field, model_validator

from harness import DataConfig, InputSpec, Params, Task, TaskInfo

if TYPE_CHECKING:
    import numpy as np
    import pytorch_lightning as pl
    import torch


@dataclass(frozen=True)
class SeriesInfo:
    points: int
    season: int
    package: str
    #: the default ``arima`` model: (p, d, q), (P, D, Q) at the season, trend
    arima: tuple[tuple[int, int, int], tuple[int, int, int], str]


SERIES: dict[str, SeriesInfo] = {
    "sunspots": SeriesInfo(309, 11, "statsmodels", ((9, 0, 0), (0, 0, 0), "c")),
    # the seasonal SARIMA(1,1,1)(0,1,1)52 takes over 10 minutes to fit on a 2-core CPU: the default
    # is a non-seasonal ARIMA with drift; set the arima architecture's seasonal_order for SARIMA
    "co2": SeriesInfo(2284, 52, "statsmodels", ((2, 1, 2), (0, 0, 0), "t")),
    "airline": SeriesInfo(144, 12, "sktime", ((0, 1, 1), (0, 1, 1), "n")),
}

SOURCE = (
    "sunspots: yearly sunspot numbers 1700-2008 (statsmodels, NOAA NGDC, public domain); co2: weekly "
    "Mauna Loa CO2 1958-2001 (statsmodels, Keeling & Whorf, public domain; 59 missing weeks filled by "
    "time interpolation); airline: monthly passengers 1949-1960 (sktime load_airline, Box & Jenkins "
    "series G). Last 20 % of each series is the test holdout; MASE scale = in-sample MAE of the one-step "
    "naive forecast before the holdout. Anchors measured on that holdout (ANCHORS.md, definition not "
    "recorded): sunspots AR(9) MASE 0.643, CO2 SARIMA 0.761, airline 'airline model' 1.381. Here, one-step "
    "forecasts: arima AR(9) 0.924 on sunspots (0.713 with the 11-year seasonal naive scale), airline "
    "model 0.631, co2 ARIMA(2,1,2)+drift 0.940; GRU 0.990 / 0.808 / 1.366 (3 seeds, CPU)."
)


def split_points(n: int, test_fraction: float, val_fraction: float) -> tuple[int, int]:
    """``(train_end, test_start)``: the first validation and the first test index of ``n`` points."""
    test_start = n - math.ceil(test_fraction * n)
    train_end = test_start - math.ceil(val_fraction * test_start)
    return train_end, test_start


class ForecastingParams(Params):
    series: Literal["sunspots", "co2", "airline"] = Field("sunspots", description="which series")
    window: int = Field(24, ge=1, description="input length: past values the model sees")
    horizon: int = Field(1, ge=1, description="values to forecast after each window")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="last share of the series held out for testing")
    val_fraction: float = Field(
        0.2, gt=0, lt=1, description="last share of the remaining (pre-test) span used for validation"
    )
    max_points: int | None = Field(
        None, ge=8, description="use only the last N points of the series (smaller smoke runs)"
    )
    season: int | None = Field(
        None, ge=2, description="season length in steps (default: 11, 52 or 12 by series)"
    )
    scaling: Literal["train", "window"] = Field(
        "train",
        description="train: standardise with the training span's mean and std; window: also subtract each "
        "window's last value from its inputs and targets (the networks then forecast changes)",
    )
    mase_scale: Literal["naive", "seasonal_naive"] = Field(
        "naive", description="MASE denominator: in-sample MAE of the one-step or the seasonal naive forecast"
    )
    target_mase: float = Field(1.0, gt=0, description="test MASE that counts as reached (time-to-target)")

    @property
    def length(self) -> int:
        points = SERIES[self.series].points
        return min(points, self.max_points) if self.max_points else points

    @property
    def season_length(self) -> int:
        return self.season or SERIES[self.series].season

    @model_validator(mode="after")
    def _room_for_every_split(self) -> ForecastingParams:
        n = self.length
        train_end, test_start = split_points(n, self.test_fraction, self.val_fraction)
        counts = {
            "training": train_end - self.horizon - self.window + 1,
            "validation": test_start - train_end - self.horizon + 1,
            "test": n - test_start - self.horizon + 1,
        }
        empty = [split for split, count in counts.items() if count < 1]
        if empty:
            raise ValueError(
                f"{self.series} ({n} points: training span {train_end}, validation {test_start - train_end}, "
                f"test {n - test_start}) leaves no {' and no '.join(empty)} window for window={self.window}, "
                f"horizon={self.horizon}; shorten window or horizon, or change the split fractions"
            )
        lag = self.season_length if self.mase_scale == "seasonal_naive" else 1
        if test_start <= lag:
            raise ValueError(
                f"the MASE scale needs more than {lag} points before the test split (got {test_start})"
            )
        return self


def load_series(name: str) -> np.ndarray:
    """The raw series in its own units, ``float64 [points]``, gaps filled (see the module docstring)."""
    import numpy as np

    if name == "sunspots":
        from statsmodels.datasets import sunspots

        values = sunspots.load_pandas().data["SUNACTIVITY"]
    elif name == "co2":
        from statsmodels.datasets import co2

        values = co2.load_pandas().data["co2"].interpolate(method="time", limit_direction="both")
    elif name == "airline":
        from sktime.datasets import load_airline

        values = load_airline()
    else:  # pragma: no cover - Params restrict the names
        raise ValueError(f"unknown series {name!r}")
    return np.asarray(values, dtype=np.float64)


class ForecastingTask(Task[ForecastingParams]):
    """Forecast the next ``horizon`` values of a classic univariate series from a window of its past."""

    name = "forecasting"
    description = "Univariate forecasting (sunspots, co2, airline): next values from a window; MASE."
    data_version = "1"

    def info(self) -> TaskInfo:
        p = self.params
        return TaskInfo(
            input=InputSpec("continuous", 1, max_length=p.window),
            output_kind="forecasting",
            output_size=p.horizon,
            loss="mean squared error of the standardised forecast",
            metrics=("mase", "mae", "rmse", "smape"),
            primary_metric="mase",
            direction="min",
            target=p.target_mase,
            divergence_bound=100.0,  # 100x the seasonal-naive forecast (MASE 1 in sample)
            source=SOURCE,
        )

    def unavailable(self) -> str | None:
        import importlib.util

        p = self.params
        package = SERIES[p.series].package
        if importlib.util.find_spec(package) is None:
            return (
                f"`{self.name}` series {p.series!r} comes with {package}, which is not installed; "
                f"install it: `pip install {package}` (or `pip install 'harness[tasks]'`)"
            )
        return None

    def values(self, cache_dir: Any) -> np.ndarray:
        """The series (gaps filled), read once and cached under ``cache_dir``; ``max_points`` applied."""
        from harness.data import cached_arrays

        p = self.params
        spec = {
            "task": self.name,
            "version": self.data_version,
            "series": p.series,
            "gaps": "time-interpolation",
        }
        arrays = cached_arrays(cache_dir, self.name, spec, lambda: {"values": load_series(p.series)})
        return arrays["values"][-p.length :]

    def datamodule(self, config: DataConfig) -> pl.LightningDataModule:
        from ._forecasting import ForecastDataModule

        p = self.params
        arima = SERIES[p.series].arima
        return ForecastDataModule(
            lambda: self.values(config.cache_dir),
            window=p.window,
            horizon=p.horizon,
            splits=lambda n: split_points(n, p.test_fraction, p.val_fraction),
            season=p.season_length,
            mase_lag=p.season_length if p.mase_scale == "seasonal_naive" else 1,
            scaling=p.scaling,
            arima_defaults={"order": arima[0], "seasonal_order": arima[1], "trend": arima[2]},
            batch_size=config.batch_size,
            seed=config.seed,
            num_workers=config.num_workers,
        )

    # -- model ---------------------------------------------------------------------------------

    def build_head(self, encoder_output_size: int) -> torch.nn.Module:
        from harness.heads import SummaryHead

        return SummaryHead(encoder_output_size, self.params.horizon)

    def forward(self, network: torch.nn.Module, batch: Any) -> Any:
        encoder = cast("torch.nn.Module", network.encoder)
        if getattr(encoder, "forecasts", False):  # a classical baseline: its summary is the forecast
            forecast = encoder(batch["x"], batch["lengths"], origin=batch["origin"]).summary
            return forecast - batch["offset"].to(forecast.dtype).unsqueeze(-1)  # into the batch's units
        return cast("torch.nn.Module", network.head)(encoder(batch["x"], batch["lengths"]))

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from torch.nn import functional as F

        return F.mse_loss(prediction, target.to(prediction.dtype))

    def evaluate(self, network: torch.nn.Module, prediction: Any, batch: Any) -> dict[str, tuple[Any, ...]]:
        """Forecast and target in the series' units; ``mase`` also gets the scale."""
        loc, std = batch["loc"].double().unsqueeze(-1), batch["std"].double().unsqueeze(-1)
        forecast = prediction.detach().double() * std + loc
        target = batch["y"].double() * std + loc
        return {"*": (forecast, target), "mase": (forecast, target, batch["mase_scale"])}
