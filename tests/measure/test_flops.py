"""FLOPs per sample: FlopCounterMode (with oneDNN/cuDNN off) equals the analytic counts."""

from __future__ import annotations

import pytest
import torch

from harness.interfaces import InputSpec
from harness.measure import analytic
from harness.measure.flops import count_flops, flops_by_operator, forward_flops_per_sample
from harness.plugins import get_registry

B, T, D, H = 3, 20, 2, 16
SPEC = InputSpec("continuous", D, max_length=T)


def _encoder(name: str, **params: object) -> torch.nn.Module:
    return get_registry().architectures.get(name).obj(params).build_encoder(SPEC).eval()


def _forward(encoder: torch.nn.Module) -> int:
    x, lengths = torch.randn(B, T, D), torch.full((B,), T)
    return count_flops(lambda: encoder(x, lengths))


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_unidirectional_recurrent_matches_the_formula(cell: str, layers: int) -> None:
    expected = analytic.recurrent(B, T, D, H, cell, num_layers=layers)
    assert _forward(_encoder(cell, hidden_size=H, num_layers=layers)) == expected


def test_lstm_is_counted_although_onednn_hides_it_by_default() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    encoder = _encoder("lstm", hidden_size=H)
    with FlopCounterMode(display=False) as plain:  # the pitfall this module works around
        encoder(torch.randn(B, T, D), torch.full((B,), T))
    assert plain.get_total_flops() in (0, analytic.recurrent(B, T, D, H, "lstm"))
    assert _forward(encoder) == 2 * B * T * 4 * H * (D + H)


def test_birnn_counts_both_directions() -> None:
    expected = analytic.recurrent(B, T, D, H, "lstm", num_layers=2, bidirectional=True)
    assert _forward(_encoder("birnn", hidden_size=H, num_layers=2, cell="lstm")) == expected


def test_cnn_rnn_counts_convolutions_and_the_cell() -> None:
    channels, kernel = 8, 3
    encoder = _encoder("cnn_rnn", hidden_size=H, conv_channels=channels, kernel_size=kernel, conv_layers=2)
    expected = (
        analytic.conv1d(B, T, D, channels, kernel)
        + analytic.conv1d(B, T, channels, channels, kernel)
        + analytic.recurrent(B, T, channels, H, "gru")
    )
    assert _forward(encoder) == expected


def test_transformer_counts_projections_attention_and_feed_forward() -> None:
    d, ff, layers = 16, 32, 2
    encoder = _encoder("transformer", d_model=d, num_heads=2, dim_feedforward=ff, num_layers=layers)
    x, lengths = torch.randn(B, T, D), torch.tensor([T, T - 5, T])
    ops = flops_by_operator(lambda: encoder(x, lengths))
    expected = analytic.linear(B, T, D, d) + layers * analytic.transformer_encoder_layer(B, T, d, ff)
    assert sum(ops.values()) == expected
    assert ops.get("aten._scaled_dot_product_flash_attention_for_cpu", 0) + ops.get("aten.bmm", 0) == (
        layers * analytic.attention(B, T, d)
    )


def test_per_sample_count_of_a_whole_model_includes_the_head() -> None:
    from harness.settings import TrainerSpec
    from harness.train.module import build_module
    from harness_builtins.tasks.adding import AddingTask

    task = AddingTask({"length": T, "num_train": 8, "num_val": 8, "num_test": 8})
    arch = get_registry().architectures.get("gru").obj({"hidden_size": H})
    module = build_module(task, arch, TrainerSpec(optimizer="adam", lr=1e-3, weight_decay=0.0))
    assert module.decoder is None  # adding is not a seq2seq task: encoder and head only
    batch = {"x": torch.randn(B, T, D), "lengths": torch.full((B,), T), "y": torch.randn(B, 1)}
    per_sample = forward_flops_per_sample(module, batch)
    assert per_sample == analytic.recurrent(1, T, D, H, "gru") + analytic.linear(1, 1, H, 1)
    assert module.training  # restored
