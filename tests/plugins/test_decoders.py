"""The built-in seq2seq decoders: shapes, causality and padding invariance of the memory."""

from __future__ import annotations

import pytest
import torch

from harness import InputSpec, TaskInfo
from harness_builtins.architectures import CNNRNN, GRU, LSTM, RNN, BiRNN, Transformer
from harness_builtins.architectures._decoders import attention_decoder, transformer_decoder

VOCAB = 11
INFO = TaskInfo(
    InputSpec("tokens", 13, max_length=9, variable_length=True),
    "seq2seq",
    VOCAB,
    "ce",
    ("exact_match",),
    "exact_match",
    "max",
    requires=frozenset({"seq2seq"}),
    output_vocab_size=VOCAB,
    output_max_length=12,
)
ENCODER_SIZE = 10


def _decoders() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    out: dict[str, torch.nn.Module] = {}
    for cell in ("rnn", "lstm", "gru"):
        for layers in (1, 2):
            out[f"{cell}-{layers}"] = attention_decoder(
                INFO,
                ENCODER_SIZE,
                cell=cell,
                hidden_size=12,
                num_layers=layers,
                dropout=0.1,
                embedding_size=None,
            )
    out["gru-emb6"] = attention_decoder(
        INFO, ENCODER_SIZE, cell="gru", hidden_size=12, num_layers=1, dropout=0.0, embedding_size=6
    )
    for name, size, norm_first in (("transformer-proj", ENCODER_SIZE, True), ("transformer-same", 16, False)):
        out[name] = transformer_decoder(
            INFO,
            size,
            d_model=16,
            num_heads=4,
            num_layers=2,
            dim_feedforward=32,
            dropout=0.1,
            norm_first=norm_first,
        )
    return {name: decoder.eval() for name, decoder in out.items()}


DECODERS = _decoders()


def _memory_size(name: str) -> int:
    return 16 if name == "transformer-same" else ENCODER_SIZE


def _inputs(name: str, batch: int = 3, steps: int = 6, time: int = 7) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(1)
    tokens = torch.randint(1, VOCAB, (batch, steps), generator=generator)
    memory = torch.randn(batch, time, _memory_size(name), generator=generator)
    lengths = torch.tensor([time, 3, 5][:batch])
    return tokens, memory, lengths


@pytest.mark.parametrize("name", list(DECODERS))
def test_decoder_output_shape_and_size(name: str) -> None:
    decoder = DECODERS[name]
    tokens, memory, lengths = _inputs(name)
    out = decoder(tokens, memory, lengths)
    expected = 16 if name.startswith("transformer") else 12
    assert decoder.output_size == expected
    assert out.shape == (3, 6, expected) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(DECODERS))
@pytest.mark.parametrize("u", [0, 2, 4])
def test_position_u_does_not_see_later_tokens(name: str, u: int) -> None:
    decoder = DECODERS[name]
    tokens, memory, lengths = _inputs(name)
    changed = tokens.clone()
    changed[:, u + 1] = (changed[:, u + 1] % (VOCAB - 1)) + 1  # another non-padding token
    with torch.no_grad():
        before, after = decoder(tokens, memory, lengths), decoder(changed, memory, lengths)
    assert torch.allclose(before[:, : u + 1], after[:, : u + 1], atol=1e-6)
    assert not torch.allclose(before[:, u + 1], after[:, u + 1], atol=1e-4)  # it does see its own token


@pytest.mark.parametrize("name", list(DECODERS))
def test_padding_of_the_memory_does_not_matter(name: str) -> None:
    decoder = DECODERS[name]
    tokens, memory, lengths = _inputs(name)
    noisy = memory.clone()
    for row, length in enumerate(lengths.tolist()):
        noisy[row, length:] = 1e3 * torch.randn_like(noisy[row, length:])
    longer = torch.cat([memory, torch.randn(3, 4, memory.shape[-1])], dim=1)  # more padding
    with torch.no_grad():
        reference = decoder(tokens, memory, lengths)
        assert torch.allclose(reference, decoder(tokens, noisy, lengths), atol=1e-5)
        assert torch.allclose(reference, decoder(tokens, longer, lengths), atol=1e-5)
        # row 1 alone, unpadded, gives the same outputs as inside the padded batch
        alone = decoder(tokens[1:2], memory[1:2, :3], lengths[1:2])
    assert torch.allclose(reference[1:2], alone, atol=1e-5)


@pytest.mark.parametrize("name", list(DECODERS))
def test_outputs_depend_on_valid_memory(name: str) -> None:
    decoder = DECODERS[name]
    tokens, memory, lengths = _inputs(name)
    changed = memory.clone()
    changed[1, 1] += 3.0  # a valid step of row 1 (length 3)
    with torch.no_grad():
        before, after = decoder(tokens, memory, lengths), decoder(tokens, changed, lengths)
    assert torch.allclose(before[0], after[0]) and not torch.allclose(before[1], after[1], atol=1e-4)


@pytest.mark.parametrize(
    "arch",
    [
        RNN({"hidden_size": 8}),
        LSTM({"hidden_size": 8, "num_layers": 2}),
        GRU({"hidden_size": 8}),
        BiRNN({"hidden_size": 8, "cell": "gru"}),
        CNNRNN({"hidden_size": 8, "conv_channels": 8, "cell": "lstm"}),
        Transformer({"d_model": 16, "num_heads": 2, "num_layers": 1, "dim_feedforward": 16}),
    ],
    ids=lambda a: a.name,
)
def test_every_builtin_architecture_builds_a_working_encoder_decoder(arch: object) -> None:
    encoder = arch.build_encoder(INFO.input)  # type: ignore[attr-defined]
    decoder = arch.build_decoder(INFO, encoder.output_size)  # type: ignore[attr-defined]
    x = torch.randint(4, 13, (2, 5))
    lengths = torch.tensor([5, 2])
    memory = encoder(x, lengths).sequence
    out = decoder(torch.randint(1, VOCAB, (2, 4)), memory, lengths)
    assert out.shape == (2, 4, decoder.output_size)
    out.sum().backward()  # gradients reach the encoder through the attention
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())


def test_decoder_needs_the_output_vocabulary() -> None:
    info = TaskInfo(INFO.input, "seq2seq", VOCAB, "ce", ("exact_match",), "exact_match", "max")
    with pytest.raises(ValueError, match="output_vocab_size"):
        attention_decoder(info, 4, cell="gru", hidden_size=4, num_layers=1, dropout=0.0, embedding_size=None)
    with pytest.raises(ValueError, match="unknown recurrent cell"):
        attention_decoder(INFO, 4, cell="tcn", hidden_size=4, num_layers=1, dropout=0.0, embedding_size=None)
