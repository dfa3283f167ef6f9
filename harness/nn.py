"""Building blocks for architecture plugins (imports torch: use inside build_encoder)."""

from __future__ import annotations

import torch
from torch import nn

from harness.interfaces import InputSpec


def padding_mask(lengths: torch.Tensor, max_len: int, device: torch.device | None = None) -> torch.Tensor:
    """``[batch, max_len]`` boolean mask, True at *valid* steps (on ``device``, default: lengths')."""
    steps = torch.arange(max_len, device=device if device is not None else lengths.device)
    return steps.unsqueeze(0) < lengths.to(steps.device).unsqueeze(1)


def zero_padding(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Set every padded step of ``x [batch, time, ...]`` to zero."""
    mask = padding_mask(lengths, x.shape[1], x.device)
    return x * mask.view(*mask.shape, *([1] * (x.dim() - 2))).to(x.dtype)


def last_valid(sequence: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The feature vector at each sequence's last valid step: ``[batch, features]``."""
    index = (lengths.to(sequence.device) - 1).clamp(min=0).view(-1, 1, 1)
    return sequence.gather(1, index.expand(-1, 1, sequence.shape[-1])).squeeze(1)


def masked_mean(sequence: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over valid steps only: ``[batch, features]``."""
    mask = padding_mask(lengths, sequence.shape[1], sequence.device).unsqueeze(-1).to(sequence.dtype)
    total = (sequence * mask).sum(dim=1)
    return total / mask.sum(dim=1).clamp(min=1.0)


class InputLayer(nn.Module):
    """Maps raw inputs to ``dim`` features: an embedding for tokens, a linear
    projection for continuous inputs (or nothing when ``dim`` is None)."""

    def __init__(self, spec: InputSpec, dim: int | None) -> None:
        super().__init__()
        self.spec = spec
        if spec.kind == "tokens":
            if dim is None:
                raise ValueError("token inputs need an embedding size")
            self.layer: nn.Module = nn.Embedding(spec.size, dim, padding_idx=spec.padding_idx)
            self.output_size = dim
        elif dim is None:
            self.layer = nn.Identity()
            self.output_size = spec.size
        else:
            self.layer = nn.Linear(spec.size, dim)
            self.output_size = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.kind == "tokens":
            return self.layer(x.long())
        return self.layer(x.float())
