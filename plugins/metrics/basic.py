"""Classification and regression metrics: torchmetrics by name, built for a task's TaskInfo."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harness import MetricSpec, TaskInfo

if TYPE_CHECKING:
    import torchmetrics

#: sequence_labeling tasks update these with per-step (logits [N, C], targets [N]) of the steps they score
CLASSIFICATION = frozenset({"classification", "sequence_labeling"})
REGRESSION = frozenset({"regression", "forecasting"})


def _classification(kind: str, **kwargs: Any) -> Callable[[TaskInfo], torchmetrics.Metric]:
    def build(info: TaskInfo) -> torchmetrics.Metric:
        import torchmetrics.classification as tc

        classes = info.output_size
        if kind == "accuracy":
            return tc.MulticlassAccuracy(num_classes=classes, average="micro")
        factory = {
            "precision": tc.MulticlassPrecision,
            "recall": tc.MulticlassRecall,
            "f1": tc.MulticlassF1Score,
            "auroc": tc.MulticlassAUROC,
        }[kind]
        return factory(num_classes=classes, **kwargs)

    return build


def _regression(kind: str) -> Callable[[TaskInfo], torchmetrics.Metric]:
    def build(info: TaskInfo) -> torchmetrics.Metric:
        import torchmetrics.regression as tr

        return {"mse": tr.MeanSquaredError, "mae": tr.MeanAbsoluteError}[kind]()

    return build


METRICS = (
    MetricSpec(
        "accuracy", _classification("accuracy"), "share of correct predictions (micro)", CLASSIFICATION
    ),
    MetricSpec(
        "precision",
        _classification("precision", average="macro"),
        "precision, macro-averaged over classes",
        CLASSIFICATION,
    ),
    MetricSpec(
        "recall",
        _classification("recall", average="macro"),
        "recall, macro-averaged over classes",
        CLASSIFICATION,
    ),
    MetricSpec(
        "f1", _classification("f1", average="macro"), "F1 score, macro-averaged over classes", CLASSIFICATION
    ),
    MetricSpec(
        "auroc",
        _classification("auroc", average="macro"),
        "area under the ROC curve, one-vs-rest, macro",
        CLASSIFICATION,
    ),
    MetricSpec("mse", _regression("mse"), "mean squared error", REGRESSION, direction="min"),
    MetricSpec("mae", _regression("mae"), "mean absolute error", REGRESSION, direction="min"),
)
