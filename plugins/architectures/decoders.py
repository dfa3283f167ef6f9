"""Seq2seq decoders of the built-in architectures (declarations only; networks in ``_decoders``).

Recurrent architectures decode with an attention RNN of their own cell type; the transformer
with a transformer decoder of its own width. Both follow :meth:`harness.Architecture.build_decoder`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness import TaskInfo

if TYPE_CHECKING:  # pragma: no cover - typing only
    from torch import nn


class RecurrentDecoderMixin:
    """``build_decoder`` for recurrent architectures: an attention decoder with the same cell."""

    params: Any

    def decoder_cell(self) -> str:
        return str(getattr(self, "cell", None) or self.params.cell)

    def build_decoder(self, info: TaskInfo, encoder_output_size: int) -> nn.Module:
        from ._decoders import attention_decoder

        p = self.params
        return attention_decoder(
            info, encoder_output_size, cell=self.decoder_cell(), hidden_size=p.hidden_size,
            num_layers=p.num_layers, dropout=p.dropout, embedding_size=p.embedding_size,
        )


class TransformerDecoderMixin:
    """``build_decoder`` for the transformer: a causal transformer decoder with cross-attention."""

    params: Any

    def build_decoder(self, info: TaskInfo, encoder_output_size: int) -> nn.Module:
        from ._decoders import transformer_decoder

        p = self.params
        return transformer_decoder(
            info, encoder_output_size, d_model=p.d_model, num_heads=p.num_heads, num_layers=p.num_layers,
            dim_feedforward=p.dim_feedforward, dropout=p.dropout, norm_first=p.norm_first,
        )
