"""Seq2seq decoders of the built-in architectures (declarations only; networks in ``_decoders``).

Recurrent architectures decode with an attention RNN of their own cell type; the transformer
with a transformer decoder of its own width. Both follow :meth:`harness.Architecture.build_decoder`.
The two bases below are generic over the architecture's params (``RecurrentParams`` or a
subclass, ``TransformerParams``), so ``self.params`` is typed in ``build_decoder``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from harness import Architecture, TaskInfo

if TYPE_CHECKING:  # pragma: no cover - typing only (recurrent.py and transformer.py import this module)
    from torch import nn

    from .recurrent import RecurrentParams
    from .transformer import TransformerParams

RecurrentParamsT = TypeVar("RecurrentParamsT", bound="RecurrentParams")
TransformerParamsT = TypeVar("TransformerParamsT", bound="TransformerParams")


class RecurrentDecoderArchitecture(Architecture[RecurrentParamsT]):
    """``build_decoder`` for recurrent architectures: an attention decoder with the same cell."""

    def decoder_cell(self) -> str:
        """The encoder's cell type: the class's ``cell`` (rnn, lstm, gru) or its params' ``cell``."""
        return str(getattr(self, "cell", None) or getattr(self.params, "cell", None))

    def build_decoder(self, info: TaskInfo, encoder_output_size: int) -> nn.Module:
        from ._decoders import attention_decoder

        p = self.params
        return attention_decoder(
            info,
            encoder_output_size,
            cell=self.decoder_cell(),
            hidden_size=p.hidden_size,
            num_layers=p.num_layers,
            dropout=p.dropout,
            embedding_size=p.embedding_size,
        )


class TransformerDecoderArchitecture(Architecture[TransformerParamsT]):
    """``build_decoder`` for the transformer: a causal transformer decoder with cross-attention."""

    def build_decoder(self, info: TaskInfo, encoder_output_size: int) -> nn.Module:
        from ._decoders import transformer_decoder

        p = self.params
        return transformer_decoder(
            info,
            encoder_output_size,
            d_model=p.d_model,
            num_heads=p.num_heads,
            num_layers=p.num_layers,
            dim_feedforward=p.dim_feedforward,
            dropout=p.dropout,
            norm_first=p.norm_first,
        )
