"""A small Transformer encoder (imports torch: loaded by ``build_encoder``)."""

from __future__ import annotations

import math

import torch
from torch import nn

from harness import EncoderOutput, InputSpec
from harness.nn import InputLayer, last_valid, masked_mean, padding_mask


def sinusoidal_positions(length: int, d_model: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The ``[length, d_model]`` sinusoidal encoding of Vaswani et al., for any length.

    Computed on the fly (``length * d_model`` sines: negligible next to attention), so there is
    no maximum length and no buffer whose size could differ between processes.
    """
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(
        torch.arange(0, d_model, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / d_model)
    )
    angles = position * frequency  # [length, ceil(d_model / 2)]
    table = torch.empty(length, d_model, device=device, dtype=torch.float32)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return table.to(dtype)


class TransformerSequenceEncoder(nn.Module):
    """Input layer + sinusoidal positions + ``nn.TransformerEncoder``.

    Padded steps are masked as keys (``src_key_padding_mask``), so they never influence a valid
    step; ``causal`` adds a causal attention mask. The summary is the mean over valid steps
    (``pooling="mean"``) or the last valid step (``pooling="last"``).
    """

    def __init__(
        self,
        spec: InputSpec,
        *,
        d_model: int,
        num_heads: int,
        num_layers: int,
        dim_feedforward: int,
        dropout: float,
        causal: bool,
        pooling: str,
        norm_first: bool,
    ) -> None:
        super().__init__()
        if pooling not in ("mean", "last"):
            raise ValueError(f"pooling must be 'mean' or 'last', not {pooling!r}")
        self.input = InputLayer(spec, d_model)
        #: the gradient-flow probe reads ‖∂L/∂e_t‖ at the per-position input embeddings
        self.probe_module = self.input
        self.input_dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            d_model, num_heads, dim_feedforward, dropout, batch_first=True, norm_first=norm_first
        )
        self.encoder = nn.TransformerEncoder(
            layer,
            num_layers,
            # pre-norm layers leave the residual stream unnormalised: close with a LayerNorm
            norm=nn.LayerNorm(d_model) if norm_first else None,
            enable_nested_tensor=False,
        )
        self.d_model = d_model
        self.causal = causal
        self.pooling = pooling
        self.output_size: int = d_model

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        h = self.input(x)
        steps = h.shape[1]
        lengths = lengths.to(h.device)
        h = self.input_dropout(h + sinusoidal_positions(steps, self.d_model, h.device, h.dtype))
        padded = ~padding_mask(lengths, steps)  # True where a step is padding
        mask = None
        if self.causal:  # True above the diagonal: step t may not attend to steps > t
            mask = torch.ones(steps, steps, dtype=torch.bool, device=h.device).triu(diagonal=1)
        sequence = self.encoder(h, mask=mask, src_key_padding_mask=padded, is_causal=self.causal)
        if self.pooling == "last":
            summary = last_valid(sequence, lengths)
        else:
            summary = masked_mean(sequence, lengths)
        return EncoderOutput(sequence=sequence, summary=summary)
