"""Analytic FLOP counts, the cross-check of :mod:`harness.measure.flops`.

Same convention as ``FlopCounterMode``: a multiply-add is 2 FLOPs and only matrix products,
convolutions and attention matmuls count (no biases, activations, gates, norms or softmax).
All functions give FLOPs for a batch of ``batch`` sequences of ``steps`` time steps.
"""

from __future__ import annotations

#: gate blocks per recurrent cell (rows of W_ih / W_hh in units of hidden_size)
GATES: dict[str, int] = {"rnn": 1, "gru": 3, "lstm": 4}


def linear(batch: int, steps: int, in_features: int, out_features: int) -> int:
    """A linear layer applied at every step: 2·B·T·in·out."""
    return 2 * batch * steps * in_features * out_features


def recurrent(
    batch: int,
    steps: int,
    input_size: int,
    hidden_size: int,
    cell: str,
    num_layers: int = 1,
    bidirectional: bool = False,
) -> int:
    """Stacked ``nn.RNN/GRU/LSTM``: 2·B·T·gates·H·(D+H) per layer and direction, where D is the
    layer's input width (``input_size`` for the first layer, H·directions above it)."""
    gates, directions = GATES[cell], 2 if bidirectional else 1
    total = 0
    for layer in range(num_layers):
        d = input_size if layer == 0 else hidden_size * directions
        total += directions * 2 * batch * steps * gates * hidden_size * (d + hidden_size)
    return total


def conv1d(batch: int, steps_out: int, in_channels: int, out_channels: int, kernel_size: int) -> int:
    """A ``Conv1d`` (groups 1): 2·B·T_out·C_out·C_in·K."""
    return 2 * batch * steps_out * out_channels * in_channels * kernel_size


def attention(batch: int, steps: int, d_model: int) -> int:
    """Scaled dot-product attention over all heads: QKᵀ and A·V, 2·T·T·d each (heads split d)."""
    return 4 * batch * steps * steps * d_model


def transformer_encoder_layer(batch: int, steps: int, d_model: int, dim_feedforward: int) -> int:
    """One ``nn.TransformerEncoderLayer``: Q/K/V projection (3d·d), attention, output
    projection (d·d) and the two feed-forward layers (d·ff and ff·d)."""
    return (
        linear(batch, steps, d_model, 3 * d_model)
        + attention(batch, steps, d_model)
        + linear(batch, steps, d_model, d_model)
        + 2 * linear(batch, steps, d_model, dim_feedforward)
    )
