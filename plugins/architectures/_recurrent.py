"""Recurrent encoders on the fused PyTorch kernels (imports torch: loaded by ``build_encoder``).

One generic :class:`RecurrentEncoder` serves ``rnn``, ``lstm``, ``gru``, ``birnn`` and the
recurrent part of ``cnn_rnn``: an input layer, an optional convolutional front end, and a
:class:`RecurrentCore` that runs ``nn.RNN``/``nn.LSTM``/``nn.GRU`` over packed sequences, so
padding never reaches the recurrence.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from harness import EncoderOutput, InputSpec
from harness.nn import InputLayer, zero_padding

_CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentCore(nn.Module):
    """``nn.RNN``/``nn.LSTM``/``nn.GRU`` over packed sequences.

    ``sequence`` holds the top layer's outputs (both directions concatenated); ``summary`` the
    top layer's final hidden state: forward final (at each sequence's last valid step), then,
    when bidirectional, backward final (at step 0).
    """

    def __init__(
        self,
        input_size: int,
        cell: str,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
        nonlinearity: str = "tanh",
        forget_bias: float | None = None,
    ) -> None:
        super().__init__()
        options: dict[str, str] = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        self.rnn = _CELLS[cell](
            input_size,
            hidden_size,
            num_layers=num_layers,
            # dropout acts *between* layers: with one layer there is nowhere to apply it
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=bidirectional,
            batch_first=True,
            **options,
        )
        self.num_layers = num_layers
        self.num_directions = 2 if bidirectional else 1
        self.output_size = hidden_size * self.num_directions
        if forget_bias is not None:
            if cell != "lstm":
                raise ValueError(f"forget_bias applies to LSTM cells only, not {cell!r}")
            self._set_forget_bias(forget_bias)

    def _set_forget_bias(self, value: float) -> None:
        """Make the forget gate's total bias (``b_ih + b_hh``) equal ``value`` in every layer."""
        hidden = self.rnn.hidden_size
        forget = slice(hidden, 2 * hidden)  # gate order: input, forget, cell, output
        with torch.no_grad():
            for name, parameter in self.rnn.named_parameters():
                if name.startswith("bias_ih"):
                    parameter[forget].fill_(value)
                elif name.startswith("bias_hh"):
                    parameter[forget].zero_()

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        batch, total = features.shape[0], features.shape[1]
        packed = pack_padded_sequence(
            features, lengths.to("cpu", torch.int64), batch_first=True, enforce_sorted=False
        )
        output, hidden = self.rnn(packed)
        if isinstance(hidden, tuple):  # LSTM: (h_n, c_n)
            hidden = hidden[0]
        sequence, _ = pad_packed_sequence(output, batch_first=True, total_length=total)
        # h_n: [layers * directions, batch, hidden]; with enforce_sorted=False it is in input order
        top = hidden.view(self.num_layers, self.num_directions, batch, -1)[-1]
        summary = top.transpose(0, 1).reshape(batch, self.output_size)
        return EncoderOutput(sequence=sequence, summary=summary)


class ConvFrontEnd(nn.Module):
    """Stride-1 ``Conv1d`` + ReLU layers that keep the length; padded steps are zeroed before
    every convolution, so they contribute exactly what an unpadded sequence's zero padding
    would. ``causal``: pad on the left only, so step ``t`` sees steps ``<= t``."""

    def __init__(
        self, in_channels: int, channels: int, kernel_size: int, num_layers: int, causal: bool
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(in_channels if i == 0 else channels, channels, kernel_size)
            for i in range(num_layers)
        )
        left = kernel_size - 1 if causal else (kernel_size - 1) // 2
        self.padding = (left, kernel_size - 1 - left)
        self.output_size = channels

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths = lengths.to(x.device)
        for conv in self.convs:
            h = zero_padding(x, lengths).transpose(1, 2)  # [batch, channels, time]
            x = torch.relu(conv(F.pad(h, self.padding))).transpose(1, 2)
        return x


class RecurrentEncoder(nn.Module):
    """Input layer -> optional convolutional front end -> recurrent core."""

    def __init__(
        self, input_layer: InputLayer, core: RecurrentCore, frontend: ConvFrontEnd | None = None
    ) -> None:
        super().__init__()
        self.input = input_layer
        self.frontend = frontend
        self.core = core
        self.output_size: int = core.output_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        features = self.input(x)
        if self.frontend is not None:
            features = self.frontend(features, lengths)
        return self.core(features, lengths)


def _input_layer(spec: InputSpec, embedding_size: int | None, token_default: int) -> InputLayer:
    """Tokens: an embedding (``embedding_size``, else ``token_default``). Continuous: a linear
    projection to ``embedding_size``, or the raw features when it is ``None``."""
    if spec.kind == "tokens":
        return InputLayer(spec, embedding_size or token_default)
    return InputLayer(spec, embedding_size)


def recurrent_encoder(
    spec: InputSpec,
    *,
    cell: str,
    hidden_size: int,
    num_layers: int = 1,
    dropout: float = 0.0,
    embedding_size: int | None = None,
    bidirectional: bool = False,
    nonlinearity: str = "tanh",
    forget_bias: float | None = None,
) -> RecurrentEncoder:
    """The encoder of ``rnn``, ``lstm``, ``gru`` and ``birnn``."""
    input_layer = _input_layer(spec, embedding_size, hidden_size)
    core = RecurrentCore(
        input_layer.output_size, cell, hidden_size, num_layers, dropout,
        bidirectional=bidirectional, nonlinearity=nonlinearity, forget_bias=forget_bias,
    )  # fmt: skip
    return RecurrentEncoder(input_layer, core)


def conv_recurrent_encoder(
    spec: InputSpec,
    *,
    conv_channels: int,
    kernel_size: int,
    conv_layers: int,
    causal: bool,
    cell: str,
    hidden_size: int,
    num_layers: int = 1,
    dropout: float = 0.0,
    embedding_size: int | None = None,
) -> RecurrentEncoder:
    """The encoder of ``cnn_rnn``: convolutions, then a unidirectional recurrent core."""
    input_layer = _input_layer(spec, embedding_size, conv_channels)
    frontend = ConvFrontEnd(input_layer.output_size, conv_channels, kernel_size, conv_layers, causal)
    core = RecurrentCore(frontend.output_size, cell, hidden_size, num_layers, dropout)
    return RecurrentEncoder(input_layer, core, frontend)
