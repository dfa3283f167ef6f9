"""The forecasting metrics (mase, smape, rmse) against hand-computed values and sktime."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness import InputSpec, TaskInfo
from harness_builtins.metrics import basic, forecasting
from harness_builtins.metrics.forecasting import naive_scale

SPECS = {spec.name: spec for spec in forecasting.METRICS}
INFO = TaskInfo(InputSpec("continuous", 1), "forecasting", 2, "mse", ("mase",), "mase", "min")


def _metric(name: str):  # noqa: ANN202 - a torchmetrics.Metric
    return SPECS[name].factory(INFO)


def test_naive_scale_by_hand() -> None:
    span = [1.0, 3.0, 2.0, 5.0]
    assert naive_scale(span) == pytest.approx((2 + 1 + 3) / 3)  # |3-1|, |2-3|, |5-2|
    assert naive_scale(span, lag=2) == pytest.approx((1 + 2) / 2)  # |2-1|, |5-3|


@pytest.mark.parametrize(
    ("span", "lag", "message"), [([1.0, 1.0, 1.0], 1, "does not change"), ([1.0, 2.0], 2, "more than lag=2")]
)
def test_naive_scale_refuses_undefined_scales(span: list[float], lag: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        naive_scale(span, lag)


def test_mase_by_hand_over_several_updates() -> None:
    scale = naive_scale([1.0, 3.0, 2.0, 5.0])  # 2.0
    metric = _metric("mase")
    metric.update(
        torch.tensor([[3.0, 6.0]]), torch.tensor([[4.0, 2.0]]), torch.tensor([scale])
    )  # errors 1, 4
    metric.update(
        torch.tensor([[5.0, 5.0]]), torch.tensor([[5.0, 8.0]]), scale
    )  # errors 0, 3 (a plain float)
    assert metric.compute().item() == pytest.approx((1 + 4 + 0 + 3) / 4 / 2.0)


def test_mase_per_row_scales() -> None:
    metric = _metric("mase")
    metric.update(torch.tensor([[1.0], [1.0]]), torch.tensor([[3.0], [5.0]]), torch.tensor([2.0, 4.0]))
    assert metric.compute().item() == pytest.approx((2 / 2 + 4 / 4) / 2)


def test_mase_matches_sktime() -> None:
    sktime_metrics = pytest.importorskip("sktime.performance_metrics.forecasting")
    rng = np.random.default_rng(0)
    train = rng.normal(size=60).cumsum()
    truth, forecast = rng.normal(size=15) + train[-1], rng.normal(size=15) + train[-1]
    for lag in (1, 12):
        expected = sktime_metrics.mean_absolute_scaled_error(truth, forecast, y_train=train, sp=lag)
        metric = _metric("mase")
        metric.update(torch.tensor(forecast[:, None]), torch.tensor(truth[:, None]), naive_scale(train, lag))
        assert metric.compute().item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("scale", "message"), [(0.0, "positive scale"), (-1.0, "positive scale")])
def test_mase_refuses_bad_scales(scale: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _metric("mase").update(torch.ones(2, 1), torch.zeros(2, 1), scale)


def test_shapes_must_agree() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        _metric("smape").update(torch.ones(2, 3), torch.ones(2, 1))


def test_smape_by_hand_with_zero_over_zero() -> None:
    metric = _metric("smape")
    # 200*|1-3|/(1+3) = 100; 200*|2-2|/4 = 0; both zero -> 0; 200*|-1-1|/2 = 200
    metric.update(torch.tensor([1.0, 2.0, 0.0, -1.0]), torch.tensor([3.0, 2.0, 0.0, 1.0]))
    assert metric.compute().item() == pytest.approx((100 + 0 + 0 + 200) / 4)


def test_smape_matches_torchmetrics_away_from_zero() -> None:
    from torchmetrics.regression import SymmetricMeanAbsolutePercentageError

    gen = torch.Generator().manual_seed(1)
    preds, target = torch.rand(50, generator=gen) + 1, torch.rand(50, generator=gen) + 1
    metric = _metric("smape")
    metric.update(preds, target)
    reference = SymmetricMeanAbsolutePercentageError()(preds, target).item() * 100  # torchmetrics: 0-2
    assert metric.compute().item() == pytest.approx(reference, rel=1e-5)


def test_rmse_by_hand() -> None:
    metric = _metric("rmse")
    metric.update(torch.tensor([[1.0, 2.0]]), torch.tensor([[4.0, 6.0]]))  # errors 3, 4
    assert metric.compute().item() == pytest.approx(math.sqrt((9 + 16) / 2))


def test_output_kinds() -> None:
    assert SPECS["mase"].output_kinds == {"forecasting"}
    assert all("forecasting" in spec.output_kinds and spec.direction == "min" for spec in SPECS.values())
    regression = {spec.name: spec for spec in basic.METRICS}
    assert "forecasting" in regression["mae"].output_kinds and "forecasting" in regression["mse"].output_kinds
    assert "forecasting" not in regression["accuracy"].output_kinds
