"""Seq2seq decoders of the built-in architectures (imports torch: loaded by ``build_decoder``).

Both follow :meth:`harness.Architecture.build_decoder`:
``forward(tokens [B, U], memory [B, T, H], memory_lengths [B]) -> [B, U, output_size]``, where
position ``u`` sees only tokens ``<= u`` and padded memory steps never matter (they are zeroed
and masked out of every attention).

- :class:`AttentionDecoder`: token embedding -> fused ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (initial
  state: a projection of the memory's masked mean) -> Luong "general" attention over the memory,
  computed for all steps at once after the recurrence -> ``tanh(W_c [context; h])``. There is no
  input feeding (Luong et al. 2015, section 3.3): it would need a Python loop over time, and the
  fused kernels are the point.
- :class:`TransformerDecoderNet`: token embedding + sinusoidal positions -> ``nn.TransformerDecoder``
  with a causal mask and the memory's key padding mask.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from harness import TaskInfo
from harness.nn import masked_mean, padding_mask, zero_padding

from ._transformer import sinusoidal_positions

#: the fused recurrent layers by cell name (each class takes the same keyword arguments)
_CELLS: dict[str, Callable[..., nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _vocab_size(info: TaskInfo) -> int:
    if not info.output_vocab_size:
        raise ValueError(
            "a seq2seq decoder needs TaskInfo.output_vocab_size (the size of the output vocabulary); "
            "the task's info() must set it"
        )
    return int(info.output_vocab_size)


class AttentionDecoder(nn.Module):
    """Recurrent decoder with Luong "general" attention (score ``h_u^T W_a m_t``)."""

    def __init__(
        self,
        vocab_size: int,
        encoder_output_size: int,
        *,
        cell: str,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        embedding_size: int | None = None,
        padding_idx: int = 0,
    ) -> None:
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"unknown recurrent cell {cell!r}; use one of {', '.join(_CELLS)}")
        embedding_size = embedding_size or hidden_size
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=padding_idx)
        self.rnn = _CELLS[cell](
            embedding_size, hidden_size, num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0, batch_first=True,
        )  # fmt: skip
        self.is_lstm = cell == "lstm"
        states = 2 if self.is_lstm else 1  # LSTM: initial hidden and cell state
        self.init_state = nn.Linear(encoder_output_size, states * num_layers * hidden_size)
        self.attention = nn.Linear(encoder_output_size, hidden_size, bias=False)  # W_a
        self.combine = nn.Linear(hidden_size + encoder_output_size, hidden_size)  # W_c
        self.dropout = nn.Dropout(dropout)
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        self.output_size: int = hidden_size

    def _initial_state(
        self, memory: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        batch = memory.shape[0]
        state = torch.tanh(self.init_state(masked_mean(memory, lengths)))
        # [batch, states * layers * hidden] -> [states * layers, batch, hidden]
        state = state.view(batch, -1, self.hidden_size).transpose(0, 1).contiguous()
        if self.is_lstm:
            return state[: self.num_layers].contiguous(), state[self.num_layers :].contiguous()
        return state

    def forward(
        self, tokens: torch.Tensor, memory: torch.Tensor, memory_lengths: torch.Tensor
    ) -> torch.Tensor:
        lengths = memory_lengths.to(memory.device)
        memory = zero_padding(memory, lengths)
        embedded = self.dropout(self.embedding(tokens.long()))
        # No packing: the recurrence runs left to right, so steps after a row's end (padding
        # in the teacher-forced input) cannot influence the steps before it.
        outputs, _ = self.rnn(embedded, self._initial_state(memory, lengths))
        scores = outputs @ self.attention(memory).transpose(1, 2)  # [B, U, T]
        valid = padding_mask(lengths, memory.shape[1], memory.device).unsqueeze(1)
        scores = scores.masked_fill(~valid, float("-inf"))
        context = torch.softmax(scores, dim=-1) @ memory  # [B, U, H_enc]
        combined = torch.tanh(self.combine(torch.cat([context, outputs], dim=-1)))
        return self.dropout(combined)


class TransformerDecoderNet(nn.Module):
    """Token embedding + sinusoidal positions + causal ``nn.TransformerDecoder``."""

    def __init__(
        self,
        vocab_size: int,
        encoder_output_size: int,
        *,
        d_model: int,
        num_heads: int,
        num_layers: int,
        dim_feedforward: int,
        dropout: float,
        norm_first: bool,
        padding_idx: int = 0,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=padding_idx)
        self.memory_projection: nn.Module = (
            nn.Linear(encoder_output_size, d_model) if encoder_output_size != d_model else nn.Identity()
        )
        self.input_dropout = nn.Dropout(dropout)
        layer = nn.TransformerDecoderLayer(
            d_model, num_heads, dim_feedforward, dropout, batch_first=True, norm_first=norm_first
        )
        # pre-norm layers leave the residual stream unnormalised: close with a LayerNorm
        self.decoder = nn.TransformerDecoder(
            layer, num_layers, norm=nn.LayerNorm(d_model) if norm_first else None
        )
        self.d_model = d_model
        self.output_size: int = d_model

    def forward(
        self, tokens: torch.Tensor, memory: torch.Tensor, memory_lengths: torch.Tensor
    ) -> torch.Tensor:
        lengths = memory_lengths.to(memory.device)
        memory = self.memory_projection(zero_padding(memory, lengths))
        steps = tokens.shape[1]
        h = self.embedding(tokens.long())
        h = self.input_dropout(h + sinusoidal_positions(steps, self.d_model, h.device, h.dtype))
        causal = torch.ones(steps, steps, dtype=torch.bool, device=h.device).triu(diagonal=1)
        padded = ~padding_mask(lengths, memory.shape[1], memory.device)  # True where memory is padding
        return self.decoder(h, memory, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=padded)


def attention_decoder(
    info: TaskInfo,
    encoder_output_size: int,
    *,
    cell: str,
    hidden_size: int,
    num_layers: int,
    dropout: float,
    embedding_size: int | None,
) -> AttentionDecoder:
    """The decoder of ``rnn``, ``lstm``, ``gru``, ``birnn`` and ``cnn_rnn``."""
    return AttentionDecoder(
        _vocab_size(info), encoder_output_size, cell=cell, hidden_size=hidden_size,
        num_layers=num_layers, dropout=dropout, embedding_size=embedding_size,
    )  # fmt: skip


def transformer_decoder(
    info: TaskInfo,
    encoder_output_size: int,
    *,
    d_model: int,
    num_heads: int,
    num_layers: int,
    dim_feedforward: int,
    dropout: float,
    norm_first: bool,
) -> TransformerDecoderNet:
    """The decoder of ``transformer``."""
    return TransformerDecoderNet(
        _vocab_size(info), encoder_output_size, d_model=d_model, num_heads=num_heads,
        num_layers=num_layers, dim_feedforward=dim_feedforward, dropout=dropout, norm_first=norm_first,
    )  # fmt: skip
