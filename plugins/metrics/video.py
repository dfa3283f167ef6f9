"""Metrics of video classification with a joint ``digit x direction`` label (``moving_digits``).

The class id of such a task is ``digit * directions + direction`` with ten digits, so
``directions = output_size // 10``. ``digit_accuracy`` scores the digit alone and
``direction_accuracy`` the direction alone; both are updated with ``(logits [N, C], targets [N])``
like ``accuracy``, and decode the two factors themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from harness import MetricSpec, TaskInfo

if TYPE_CHECKING:
    import torchmetrics

CLASSIFICATION = frozenset({"classification"})
DIGITS = 10


def _factor(factor: Literal["digit", "direction"]) -> Callable[[TaskInfo], torchmetrics.Metric]:
    def build(info: TaskInfo) -> torchmetrics.Metric:
        from ._video import FactorAccuracy

        if info.output_size % DIGITS or info.output_size < DIGITS:
            raise ValueError(
                f"{factor}_accuracy needs class ids digit * directions + direction with {DIGITS} digits; "
                f"this task has {info.output_size} classes (not a multiple of {DIGITS}): drop the metric"
            )
        return FactorAccuracy(info.output_size // DIGITS, factor)

    return build


METRICS = (
    MetricSpec(
        "digit_accuracy",
        _factor("digit"),
        "share of videos whose digit is right (joint digit x direction labels)",
        CLASSIFICATION,
    ),
    MetricSpec(
        "direction_accuracy",
        _factor("direction"),
        "share of videos whose motion direction is right (joint digit x direction labels)",
        CLASSIFICATION,
    ),
)
