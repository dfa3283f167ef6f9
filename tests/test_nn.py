"""harness.nn: masked helpers and greedy decoding with any seq2seq decoder."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.nn import greedy_decode, last_valid, masked_mean, padding_mask

BOS, EOS, PAD, VOCAB = 2, 3, 0, 8


class ScriptedDecoder(nn.Module):
    """Position ``u`` of row ``b`` scores ``script[b, u]`` highest (one-hot features, so the head
    can be ``nn.Identity``); records every token prefix it is called with."""

    def __init__(self, script: list[list[int]]) -> None:
        super().__init__()
        self.script = torch.tensor(script)
        self.calls: list[torch.Tensor] = []
        self.output_size = VOCAB

    def forward(
        self, tokens: torch.Tensor, memory: torch.Tensor, memory_lengths: torch.Tensor
    ) -> torch.Tensor:
        self.calls.append(tokens.clone())
        steps = tokens.shape[1]
        return nn.functional.one_hot(self.script[:, :steps], VOCAB).float()


def decode(decoder: nn.Module, rows: int, max_length: int) -> torch.Tensor:
    memory = torch.zeros(rows, 4, 5)
    return greedy_decode(
        decoder, nn.Identity(), memory, torch.full((rows,), 4), bos=BOS, eos=EOS, max_length=max_length
    )


def test_greedy_decode_follows_the_argmax_and_pads_finished_rows() -> None:
    script = [
        [5, 6, EOS, 7, 7, 7],  # ends at step 3; what the decoder says afterwards is ignored
        [EOS, 5, 5, 5, 5, 5],  # ends at once and stays finished
        [4, 4, 4, 4, 4, 4],  # never ends: cut at max_length
    ]
    out = decode(ScriptedDecoder(script), 3, max_length=5)
    assert out.dtype == torch.long and out.shape == (3, 5)
    assert out.tolist() == [[5, 6, EOS, PAD, PAD], [EOS, PAD, PAD, PAD, PAD], [4, 4, 4, 4, 4]]


def test_greedy_decode_stops_when_every_row_has_ended_and_feeds_back_its_outputs() -> None:
    decoder = ScriptedDecoder([[5, EOS, 7, 7], [6, 6, EOS, 7]])
    out = decode(decoder, 2, max_length=10)
    assert out.tolist() == [[5, EOS, PAD], [6, 6, EOS]]
    # one decoder call per produced step, each on [BOS] + everything produced so far
    assert [c.tolist() for c in decoder.calls] == [
        [[BOS], [BOS]],
        [[BOS, 5], [BOS, 6]],
        [[BOS, 5, EOS], [BOS, 6, 6]],
    ]


def test_greedy_decode_with_zero_length_gives_an_empty_batch() -> None:
    out = decode(ScriptedDecoder([[EOS], [EOS]]), 2, max_length=0)
    assert out.shape == (2, 0) and out.dtype == torch.long


def test_greedy_decode_runs_without_gradients_on_a_real_decoder() -> None:
    from harness import InputSpec, TaskInfo
    from harness_builtins.architectures import GRU

    info = TaskInfo(
        InputSpec("tokens", 10, variable_length=True),
        "seq2seq",
        9,
        "ce",
        ("exact_match",),
        "exact_match",
        "max",
        output_vocab_size=9,
        output_max_length=7,
    )
    arch = GRU({"hidden_size": 8})
    decoder = arch.build_decoder(info, 6).eval()
    head = nn.Linear(decoder.output_size, 9)
    memory = torch.randn(3, 5, 6, requires_grad=True)
    out = greedy_decode(decoder, head, memory, torch.tensor([5, 2, 4]), bos=BOS, eos=EOS, max_length=7)
    assert out.shape[0] == 3 and 1 <= out.shape[1] <= 7
    assert not out.requires_grad and int(out.max()) < 9
    # the same tokens as re-running the decoder on the final prefix and taking the argmax
    prefix = torch.cat([torch.full((3, 1), BOS), out[:, :-1]], dim=1)
    with torch.no_grad():
        again = head(decoder(prefix, memory, torch.tensor([5, 2, 4]))).argmax(-1)
    ended = torch.cumsum((out == EOS).long(), dim=1) - (out == EOS).long() > 0  # after a row's EOS
    assert torch.equal(again[~ended], out[~ended])


@pytest.mark.parametrize("lengths", [[3, 1, 4], [4, 4, 4]])
def test_masked_helpers_ignore_padding(lengths: list[int]) -> None:
    x = torch.randn(3, 4, 2)
    lens = torch.tensor(lengths)
    garbage = x.clone()
    mask = padding_mask(lens, 4)
    garbage[~mask] = 1e6
    assert torch.allclose(masked_mean(x, lens), masked_mean(garbage, lens))
    assert torch.equal(last_valid(garbage, lens), torch.stack([x[i, n - 1] for i, n in enumerate(lengths)]))
