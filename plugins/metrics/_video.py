"""Accuracy of one factor of a joint ``digit x direction`` label (imports torch; see ``video``)."""

from __future__ import annotations

from typing import Literal

import torch
from torchmetrics import Metric


class FactorAccuracy(Metric):
    """Share of samples whose digit (``label // directions``) or direction (``label % directions``)
    is right, for class ids ``digit * directions + direction``.

    Updated with ``(logits [N, C] or predicted ids [N], targets [N])``.
    """

    # the states registered with add_state() in __init__
    correct: torch.Tensor
    total: torch.Tensor

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, directions: int, factor: Literal["digit", "direction"]) -> None:
        super().__init__()
        if directions < 1:
            raise ValueError(f"directions must be >= 1, got {directions}")
        self.directions = directions
        self.factor = factor
        self.add_state("correct", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def _part(self, ids: torch.Tensor) -> torch.Tensor:
        return ids // self.directions if self.factor == "digit" else ids % self.directions

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        ids = preds.argmax(dim=-1) if preds.dim() > target.dim() else preds
        target = target.long()
        self.correct += (self._part(ids.long()) == self._part(target)).sum()
        self.total += target.numel()

    def compute(self) -> torch.Tensor:
        return self.correct.float() / self.total.clamp(min=1)
