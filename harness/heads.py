"""Default heads and losses by output kind (used by :class:`harness.Task`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # annotations only: harness.interfaces imports this module (lazily, for torch)
    from harness.interfaces import EncoderOutput, TaskInfo


class SummaryHead(nn.Module):
    """A linear layer on the encoder's per-sequence summary."""

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, encoded: EncoderOutput) -> torch.Tensor:
        summary: torch.Tensor = self.linear(self.dropout(encoded.summary))
        return summary


def default_head(info: TaskInfo, encoder_output_size: int) -> nn.Module:
    if info.output_kind in ("classification", "regression"):
        return SummaryHead(encoder_output_size, info.output_size)
    raise NotImplementedError(
        f"no default head for output kind {info.output_kind!r}: the task must override build_head()"
    )


def default_loss(info: TaskInfo, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if info.output_kind == "classification":
        return nn.functional.cross_entropy(prediction, target.long())
    if info.output_kind == "regression":
        return nn.functional.mse_loss(prediction, target.reshape(prediction.shape).to(prediction.dtype))
    raise NotImplementedError(
        f"no default loss for output kind {info.output_kind!r}: the task must override loss()"
    )
