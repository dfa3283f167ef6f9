"""Forecast accuracy: ``mase``, ``smape``, ``rmse`` (``mae``/``mse`` live in :mod:`.basic`).

Every metric here is updated with ``(forecast, target)`` of the same shape (``[N, horizon]``, in
the series' own units); ``mase`` also takes the scale, ``update(forecast, target, scale)``, where
``scale`` is a number or one value per row (``[N]``).

- ``mase`` (Hyndman & Koehler 2006): ``mean(|target - forecast| / scale)``. The scale is the
  in-sample mean absolute error of the naive forecast that repeats the value ``lag`` steps back,
  :func:`naive_scale` (``lag=1``: the one-step naive forecast; ``lag=season``: seasonal naive),
  over the span the forecaster is fitted on; a forecaster with MASE below 1 beats that naive
  forecast's in-sample accuracy. It matches sktime's ``mean_absolute_scaled_error(y_true, y_pred,
  y_train=span, sp=lag)`` (a test checks it).
- ``smape``: symmetric MAPE in percent (0-200), M4 convention: ``mean(200 |target - forecast| /
  (|target| + |forecast|))``, with 0 where both are 0 (torchmetrics' version is 0-2 and adds an
  epsilon instead).
- ``rmse``: root mean squared error (torchmetrics ``MeanSquaredError(squared=False)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from harness import MetricSpec, TaskInfo

if TYPE_CHECKING:
    import torchmetrics

FORECASTING = frozenset({"forecasting"})
#: metrics that need nothing but (prediction, target) also serve single-output regression
POINTWISE = frozenset({"forecasting", "regression"})


def naive_scale(span: Iterable[float], lag: int = 1) -> float:
    """MASE's denominator: mean of ``|y[t] - y[t - lag]|`` over ``span`` (the fitting span).

    Raises ``ValueError`` when the span is too short or the scale is 0 (a constant span: MASE
    is undefined).
    """
    values = [float(v) for v in span]
    if lag < 1 or len(values) <= lag:
        raise ValueError(f"the MASE scale needs more than lag={lag} values (got {len(values)})")
    diffs = [abs(values[t] - values[t - lag]) for t in range(lag, len(values))]
    scale = sum(diffs) / len(diffs)
    if not scale > 0:
        raise ValueError(
            f"the MASE scale is {scale}: the series does not change over its lag-{lag} differences"
        )
    return scale


def _build(name: str) -> Callable[[TaskInfo], torchmetrics.Metric]:
    def build(info: TaskInfo) -> torchmetrics.Metric:
        if name == "rmse":
            from torchmetrics.regression import MeanSquaredError

            return MeanSquaredError(squared=False)
        from . import _forecasting

        return {"mase": _forecasting.MeanAbsoluteScaledError, "smape": _forecasting.SymmetricMAPE}[name]()

    return build


METRICS = (
    MetricSpec(
        "mase",
        _build("mase"),
        "mean absolute scaled error: MAE / in-sample MAE of the naive forecast "
        "(updated with forecast, target, scale)",
        FORECASTING,
        direction="min",
    ),
    MetricSpec(
        "smape",
        _build("smape"),
        "symmetric mean absolute percentage error, 0-200 (M4)",
        POINTWISE,
        direction="min",
    ),
    MetricSpec("rmse", _build("rmse"), "root mean squared error", POINTWISE, direction="min"),
)
