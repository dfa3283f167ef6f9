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
        out: torch.Tensor = self.layer(x.long() if self.spec.kind == "tokens" else x.float())
        return out


@torch.no_grad()
def greedy_decode(
    decoder: nn.Module,
    head: nn.Module,
    memory: torch.Tensor,
    memory_lengths: torch.Tensor,
    *,
    bos: int,
    eos: int,
    max_length: int,
    pad: int = 0,
) -> torch.Tensor:
    """Greedy (argmax) decoding with any seq2seq decoder: ``[batch, <= max_length]`` token ids.

    ``decoder(tokens [B, U], memory [B, T, H], memory_lengths [B]) -> [B, U, F]`` follows
    :meth:`harness.Architecture.build_decoder`; ``head`` maps features to vocabulary logits
    position by position (e.g. an ``nn.Linear``). Decoding starts from ``bos`` and re-runs the
    decoder on the growing prefix (generic over decoders, quadratic in the output length), one
    token per step, until every row has emitted ``eos`` or ``max_length`` tokens were made.
    A row's ``eos`` is kept; the positions after it hold ``pad``. Call it in eval mode (dropout
    off); it runs without gradients.
    """
    batch = memory.shape[0]
    device = memory.device
    tokens = torch.full((batch, 1), bos, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    produced: list[torch.Tensor] = []
    for _ in range(max(0, max_length)):
        features = decoder(tokens, memory, memory_lengths)
        logits = head(features[:, -1:])[:, 0]
        step = logits.argmax(dim=-1).to(torch.long)
        step = torch.where(finished, torch.full_like(step, pad), step)
        produced.append(step)
        finished = finished | (step == eos)
        if bool(finished.all()):
            break
        tokens = torch.cat([tokens, step.unsqueeze(1)], dim=1)
    if not produced:
        return torch.zeros(batch, 0, dtype=torch.long, device=device)
    return torch.stack(produced, dim=1)
