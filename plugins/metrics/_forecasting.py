"""torchmetrics implementations of MASE and sMAPE (imported in the worker; see ``forecasting``)."""

from __future__ import annotations

import torch
from torchmetrics import Metric


def _check(preds: torch.Tensor, target: torch.Tensor) -> None:
    if preds.shape != target.shape:
        raise ValueError(f"forecast and target shapes differ: {tuple(preds.shape)} vs {tuple(target.shape)}")


class MeanAbsoluteScaledError(Metric):
    """``mean(|target - forecast| / scale)`` over every forecast value seen."""

    # the states registered with add_state() in __init__
    total: torch.Tensor
    count: torch.Tensor

    is_differentiable = True
    higher_is_better = False
    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor, scale: torch.Tensor | float) -> None:
        _check(preds, target)
        scale = torch.as_tensor(scale, dtype=torch.float64, device=preds.device)
        if scale.dim() == 1 and preds.dim() > 1:  # one scale per row
            scale = scale.reshape(-1, *([1] * (preds.dim() - 1)))
        if not bool((scale > 0).all()):
            raise ValueError("MASE needs a positive scale (the naive forecast's in-sample MAE)")
        errors = (preds.double() - target.double()).abs() / scale
        self.total += errors.sum()
        self.count += errors.numel()

    def compute(self) -> torch.Tensor:
        return self.total / self.count.clamp(min=1)


class SymmetricMAPE(Metric):
    """``mean(200 |target - forecast| / (|target| + |forecast|))``, a term being 0 where both are 0."""

    # the states registered with add_state() in __init__
    total: torch.Tensor
    count: torch.Tensor

    higher_is_better = False
    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        _check(preds, target)
        preds, target = preds.double(), target.double()
        denominator = preds.abs() + target.abs()
        terms = torch.where(
            denominator > 0, 200.0 * (preds - target).abs() / denominator.clamp(min=1e-300), 0.0
        )
        self.total += terms.sum()
        self.count += terms.numel()

    def compute(self) -> torch.Tensor:
        return self.total / self.count.clamp(min=1)
