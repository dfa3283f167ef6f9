"""HarnessModule helpers: metrics updated by name from a task's evaluate() mapping."""

from __future__ import annotations

import pytest
import torch
from torchmetrics import MeanMetric, MetricCollection, SumMetric

from harness.errors import RunFailure
from harness.train.module import update_by_name
from harness_builtins.tasks.digits import DigitsTask


def test_named_inputs_win_and_star_serves_the_rest() -> None:
    metrics = MetricCollection({"mean": MeanMetric(), "total": SumMetric()}, prefix="val_", compute_groups=False)
    update_by_name(metrics, {"mean": (torch.tensor([2.0, 4.0]),), "*": (torch.tensor([1.0, 1.0, 1.0]),)}, DigitsTask())
    assert {k: float(v) for k, v in metrics.compute().items()} == {"val_mean": 3.0, "val_total": 3.0}


def test_a_metric_without_inputs_fails_the_run_with_the_names() -> None:
    metrics = MetricCollection({"mean": MeanMetric(), "total": SumMetric()}, prefix="val_", compute_groups=False)
    with pytest.raises(RunFailure, match=r"no inputs for metric `total` \(it gave: mean\)"):
        update_by_name(metrics, {"mean": (torch.tensor([2.0]),)}, DigitsTask())
