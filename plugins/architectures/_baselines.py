"""Classical forecasters as encoders (imports torch and numpy; loaded by ``build_encoder``).

Each is fitted in closed form by ``fit(datamodule)`` and then forecasts without a head:
``forward(x, lengths, origin=None)`` returns ``EncoderOutput(sequence, summary=forecast)`` with
``forecast`` of shape ``[batch, horizon]``, and ``forecasts = True`` tells the forecasting task to
use ``summary`` as its prediction. What ``fit`` reads from the data module (set by the built-in
``forecasting`` task, in its normalised units):

- ``series``: the whole series, ``float64 [n]``; ``horizon``; ``season``;
- ``train_end`` (first validation point) and ``fit_end`` (first test point);
- ``arima_defaults``: ``{"order": (p, d, q), "seasonal_order": (P, D, Q), "trend"}``, the
  series' default model (its seasonal period is ``season``).

With ``origin`` (``[batch]``, the index of each window's first target in ``series``) a forecast
uses the whole history before the origin, as a classical forecaster evaluated from a rolling
origin would; the fitted parameters stay fixed. Without it, each window's own values are its
history.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from harness import EncoderOutput


class ForecastBaseline(nn.Module):
    """Shared machinery: a table of forecasts from every origin of the series, looked up by origin."""

    #: read by the forecasting task: the summary is the forecast itself (no head)
    forecasts = True
    #: ``[origins, horizon]`` forecasts from every origin (a non-persistent buffer, filled by ``fit``)
    table: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.output_size = 1
        self.horizon = 1
        self.fitted = False
        self.register_buffer("table", torch.zeros(0, 1), persistent=False)

    def fit(self, data: Any) -> None:
        series = np.asarray(data.series, dtype=np.float64)
        self.horizon = self.output_size = int(data.horizon)
        self.season = int(data.season)
        self.prepare(series, data)
        table = self.forecast_table(series)
        self.table = torch.as_tensor(table, dtype=torch.float32, device=self.table.device)
        self.fitted = True

    def prepare(self, series: np.ndarray, data: Any) -> None:
        """Estimate whatever the forecaster needs (override)."""

    def forecast_table(self, series: np.ndarray) -> np.ndarray:
        """``[n, horizon]``: row ``o`` forecasts ``series[o : o + horizon]`` from ``series[:o]``."""
        raise NotImplementedError

    def window_forecast(self, window: np.ndarray) -> np.ndarray:
        """``[horizon]`` forecast of the values after ``window`` (its only history)."""
        raise NotImplementedError

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, origin: torch.Tensor | None = None
    ) -> EncoderOutput:
        if origin is not None:
            if not self.fitted:
                raise RuntimeError(f"{type(self).__name__}: call fit(datamodule) before forecasting")
            forecast = self.table[origin.to(self.table.device, torch.long)].to(x.device)
        else:
            values = x[..., 0] if x.dim() == 3 else x
            rows = [values[i, : int(n)].detach().cpu().double().numpy() for i, n in enumerate(lengths)]
            forecast = torch.as_tensor(
                np.stack([self.window_forecast(w) for w in rows]), dtype=torch.float32, device=x.device
            )
        sequence = forecast.unsqueeze(1).expand(x.shape[0], x.shape[1], forecast.shape[1])
        return EncoderOutput(sequence, forecast)


class Naive(ForecastBaseline):
    """Every future value equals the last observed one."""

    def forecast_table(self, series: np.ndarray) -> np.ndarray:
        last = np.concatenate([series[:1], series[:-1]])  # origin 0 has no history: repeat series[0]
        return np.repeat(last[:, None], self.horizon, axis=1)

    def window_forecast(self, window: np.ndarray) -> np.ndarray:
        return np.full(self.horizon, window[-1])


class SeasonalNaive(ForecastBaseline):
    """Each future value equals the value one season earlier (``y[t + k - s * (k // s + 1)]``)."""

    def __init__(self, season: int | None = None) -> None:
        super().__init__()
        self.requested_season = season

    def prepare(self, series: np.ndarray, data: Any) -> None:
        self.season = int(self.requested_season or data.season)

    def _lags(self) -> np.ndarray:
        steps = np.arange(self.horizon)
        return self.season * (steps // self.season + 1) - steps  # how far back each step looks

    def forecast_table(self, series: np.ndarray) -> np.ndarray:
        index = np.arange(len(series))[:, None] - self._lags()[None, :]
        return series[np.clip(index, 0, None)]  # origins within the first season reuse series[0]

    def window_forecast(self, window: np.ndarray) -> np.ndarray:
        if len(window) < self.season:
            raise ValueError(
                f"seasonal_naive needs windows of at least one season ({self.season} steps), "
                f"got {len(window)}"
            )
        return window[len(window) - self._lags()]


class Arima(ForecastBaseline):
    """statsmodels ``ARIMA(p,d,q)(P,D,Q,s)``, fitted once on the fitting span, then applied unchanged."""

    def __init__(
        self,
        order: tuple[int, int, int] | None = None,
        seasonal_order: tuple[int, int, int] | None = None,
        season: int | None = None,
        trend: str | None = None,
        fit_on: str = "train_val",
        method: str = "statespace",
    ) -> None:
        super().__init__()
        self.order, self.seasonal_order, self.requested_season = order, seasonal_order, season
        self.trend, self.fit_on, self.method = trend, fit_on, method
        self.results: Any = None

    def model_spec(self, data: Any) -> tuple[tuple[int, int, int], tuple[int, int, int, int], str]:
        """The (order, seasonal order with period, trend) actually fitted: params over series defaults."""
        defaults = data.arima_defaults
        season = int(self.requested_season or data.season)
        if self.order is None:  # the series' default model
            order, trend = tuple(defaults["order"]), defaults["trend"]
            seasonal = (*defaults["seasonal_order"], season)
        else:
            order, seasonal, trend = tuple(self.order), (0, 0, 0, 0), None
        if self.seasonal_order is not None:
            seasonal = (*self.seasonal_order, season)
        if not any(seasonal[:3]):
            seasonal = (0, 0, 0, 0)
        if self.trend is not None:
            trend = self.trend
        elif trend is None:  # a constant without differencing, nothing with it
            trend = "n" if order[1] + seasonal[1] else "c"
        return order, seasonal, trend

    def prepare(self, series: np.ndarray, data: Any) -> None:
        from statsmodels.tsa.arima.model import ARIMA

        order, seasonal, trend = self.spec = self.model_spec(data)
        end = int(data.fit_end if self.fit_on == "train_val" else data.train_end)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence and frequency chatter
                model = ARIMA(series[:end], order=order, seasonal_order=seasonal, trend=trend)
                self.results = model.fit(method=self.method)
                self.applied = self.results.apply(series)
        except (ValueError, np.linalg.LinAlgError) as exc:
            raise ValueError(
                f"arima: statsmodels could not fit ARIMA{order}x{seasonal} with trend {trend!r} "
                f"by {self.method}: {exc} (with differencing, use trend 'n' or 't'; "
                "seasonal models need method 'statespace' or 'innovations_mle')"
            ) from exc

    def forecast_table(self, series: np.ndarray) -> np.ndarray:
        return state_space_forecasts(self.applied, self.horizon)

    def window_forecast(self, window: np.ndarray) -> np.ndarray:
        # the window is the whole history: deterministic trends restart at the window's first step
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(self.results.apply(window).forecast(self.horizon), dtype=np.float64)


def _at(matrix: np.ndarray, t: np.ndarray) -> np.ndarray:
    """A state-space system matrix (time last, length 1 when time-invariant) at times ``t``."""
    return matrix[..., np.zeros_like(t)] if matrix.shape[-1] == 1 else matrix[..., t]


def state_space_forecasts(results: Any, horizon: int) -> np.ndarray:
    """Forecasts of ``y[o : o + horizon]`` from ``y[:o]`` for every origin ``o``, all at once.

    From each predicted state ``a[o | o-1]`` of the Kalman filter of ``results`` (a statsmodels
    state-space results object), iterate ``y = d + Z a`` and ``a <- c + T a``: the same numbers as
    ``results.get_prediction(start=o, end=o + horizon - 1, dynamic=0)``, without a call per origin.
    Steps past the end of the sample reuse the last system matrices (their rows are never scored).
    """
    fr = results.filter_results
    n = int(results.nobs)
    state = np.asarray(fr.predicted_state)[:, :n]  # a[o | o-1] for o = 0..n-1
    origins = np.arange(n)
    out = np.empty((n, horizon))
    for k in range(horizon):
        t = np.minimum(origins + k, n - 1)
        design = _at(np.asarray(fr.design), t)[0]  # [k_states, n]
        out[:, k] = _at(np.asarray(fr.obs_intercept), t)[0] + np.einsum("jn,jn->n", design, state)
        state = _at(np.asarray(fr.state_intercept), t) + np.einsum(
            "ijn,jn->in", _at(np.asarray(fr.transition), t), state
        )
    return out
