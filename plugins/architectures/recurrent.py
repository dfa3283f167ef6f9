"""Recurrent architectures: ``rnn``, ``lstm``, ``gru``, ``birnn``, ``cnn_rnn``.

Declarations only: no torch here. The networks live in ``_recurrent`` and are imported inside
``build_encoder`` (which runs in the worker), so registering these classes stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from pydantic import Field, field_validator

from harness import InputSpec, Params, Width

from .decoders import RecurrentDecoderArchitecture

if TYPE_CHECKING:  # pragma: no cover - typing only
    from torch import nn

Cell = Literal["rnn", "lstm", "gru"]

#: upper bounds that catch typos at validation (``hidden_size: 1.0e+11`` would otherwise fail every
#: run out of memory): far above any network these architectures are benchmarked with
MAX_WIDTH = 16_384
MAX_LAYERS = 1_000
MAX_KERNEL = 4_095


class RecurrentParams(Params):
    """Parameters shared by every recurrent architecture."""

    hidden_size: int = Field(64, gt=0, le=MAX_WIDTH, description="hidden units per layer (and per direction)")
    num_layers: int = Field(1, gt=0, le=MAX_LAYERS, description="stacked recurrent layers")
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="dropout between stacked layers (no effect with one layer)"
    )
    embedding_size: int | None = Field(
        None,
        gt=0,
        le=MAX_WIDTH,
        description="token embedding size (default: hidden_size); for continuous inputs, "
        "a linear projection to this size (default: the raw features)",
    )


class RNNParams(RecurrentParams):
    nonlinearity: Literal["tanh", "relu"] = Field("tanh", description="activation of the cell")


class LSTMParams(RecurrentParams):
    forget_bias: float = Field(1.0, description="initial forget-gate bias (b_ih + b_hh)")


class BiRNNParams(RecurrentParams):
    cell: Cell = Field("lstm", description="recurrent cell: rnn, lstm or gru")


class CNNRNNParams(RecurrentParams):
    conv_channels: int = Field(64, gt=0, le=MAX_WIDTH, description="channels of every convolution")
    kernel_size: int = Field(3, ge=1, le=MAX_KERNEL, description="convolution width (odd)")
    conv_layers: int = Field(
        1,
        gt=0,
        le=MAX_LAYERS,
        description="stacked convolutions (over time: stride 1, no pooling; within frames: each then 2x2 max "
        "pooling)",
    )
    cell: Cell = Field("gru", description="recurrent cell after the convolutions: rnn, lstm or gru")
    causal: bool = Field(False, description="pad convolutions on the left only: step t sees steps <= t")
    frame_conv: Literal["auto", "off"] = Field(
        "auto",
        description="auto: for video-like inputs (frames of H x W pixels), 2-D convolutions + pooling within "
        "each frame, projected to embedding_size (default conv_channels) features; off: always 1-D over time",
    )

    @field_validator("kernel_size")
    @classmethod
    def _odd_kernel(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(
                f"kernel_size must be odd so the convolution is centred on each step "
                f"(got {value}; use {value - 1 or 1} or {value + 1})"
            )
        return value


_P = TypeVar("_P", bound=RecurrentParams)


class _UnidirectionalRecurrent(RecurrentDecoderArchitecture[_P]):
    """Shared ``build_encoder`` of ``rnn``, ``lstm`` and ``gru``: one fused cell type."""

    cell: ClassVar[str]
    # stateful: the encoder has forward_chunk (carries its state across chunks: truncated BPTT)
    supports: ClassVar[frozenset[str]] = frozenset({"variable_length", "causal", "seq2seq", "stateful"})
    Params = RecurrentParams
    # a parameter budget sizes hidden_size (token embeddings follow it unless embedding_size is set)
    budget_width: ClassVar[str | Width | None] = "hidden_size"

    @classmethod
    def tune_space(cls) -> dict[str, Any]:
        # gradient clipping matters for recurrent nets (Pascanu et al. 2013): tune its threshold
        return {"trainer.gradient_clip_val": {"choice": [0.5, 1.0, 5.0]}}

    def build_encoder(self, input: InputSpec) -> nn.Module:
        from ._recurrent import recurrent_encoder

        return recurrent_encoder(input, cell=self.cell, **self.params.model_dump())


class RNN(_UnidirectionalRecurrent[RNNParams]):
    name = "rnn"
    description = "Elman RNN (fused nn.RNN over packed sequences); summary = final hidden state."
    cell = "rnn"


class LSTM(_UnidirectionalRecurrent[LSTMParams]):
    name = "lstm"
    description = "LSTM (fused nn.LSTM over packed sequences); summary = final hidden state."
    cell = "lstm"


class GRU(_UnidirectionalRecurrent[RecurrentParams]):
    name = "gru"
    description = "GRU (fused nn.GRU over packed sequences); summary = final hidden state."
    cell = "gru"


class BiRNN(RecurrentDecoderArchitecture[BiRNNParams]):
    name = "birnn"
    description = "Bidirectional RNN/LSTM/GRU; summary = forward and backward final states."
    supports = frozenset({"variable_length", "bidirectional", "seq2seq"})
    budget_width = "hidden_size"  # per direction

    def build_encoder(self, input: InputSpec) -> nn.Module:
        from ._recurrent import recurrent_encoder

        return recurrent_encoder(input, bidirectional=True, **self.params.model_dump())


class CNNRNN(RecurrentDecoderArchitecture[CNNRNNParams]):
    name = "cnn_rnn"
    description = "Convolutions (1-D over time, or 2-D within each video frame) followed by an RNN/LSTM/GRU."
    supports = frozenset({"variable_length", "seq2seq"})
    # the convolutions widen with the recurrent layer (their defaults are equal)
    budget_width = Width("hidden_size", tied={"conv_channels": 1.0})

    def capabilities(self) -> frozenset[str]:
        return (self.supports | {"causal"}) if self.params.causal else self.supports

    def build_encoder(self, input: InputSpec) -> nn.Module:
        from ._recurrent import conv_recurrent_encoder

        return conv_recurrent_encoder(input, **self.params.model_dump())
