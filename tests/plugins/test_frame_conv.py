"""``cnn_rnn`` on video-like inputs: per-frame 2-D convolutions (``InputSpec.frame_shape``)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from harness import InputSpec
from harness_builtins.architectures import CNNRNN
from harness_builtins.architectures._recurrent import ConvFrontEnd, FrameConvFrontEnd

FRAMES = InputSpec("continuous", 6 * 6, frame_shape=(6, 6))
ODD_FRAMES = InputSpec("continuous", 5 * 7, frame_shape=(5, 7))
FLAT = InputSpec("continuous", 6 * 6)
CASES: list[tuple[dict[str, Any], InputSpec]] = [
    ({}, FRAMES),
    ({"conv_layers": 2, "kernel_size": 5, "cell": "lstm", "conv_channels": 8}, FRAMES),
    ({"causal": True, "embedding_size": 12, "hidden_size": 16}, FRAMES),
    ({"conv_layers": 3, "cell": "rnn", "num_layers": 2, "conv_channels": 4}, ODD_FRAMES),
]
ATOL = 1e-5


def _encoder(params: dict[str, Any], spec: InputSpec) -> nn.Module:
    torch.manual_seed(0)
    return CNNRNN(params).build_encoder(spec).eval()


def _videos(
    spec: InputSpec, lengths: list[int], total: int, gen: torch.Generator
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Random videos and a batch of them padded to ``total`` frames with large garbage frames."""
    seqs = [torch.rand(n, spec.size, generator=gen) for n in lengths]
    padded = torch.stack(
        [torch.cat([s, 10 * torch.randn(total - len(s), spec.size, generator=gen)]) for s in seqs]
    )
    return seqs, padded


def _module_types(encoder: nn.Module) -> set[type[nn.Module]]:
    return {type(m) for m in encoder.modules()}


def test_frame_inputs_use_the_2d_path() -> None:
    encoder = _encoder({}, FRAMES)
    assert isinstance(encoder.frontend, FrameConvFrontEnd)
    assert nn.Conv2d in _module_types(encoder) and nn.Conv1d not in _module_types(encoder)
    assert encoder.core.rnn.input_size == 64  # conv_channels features per frame
    assert isinstance(_encoder({"embedding_size": 12}, FRAMES).frontend.net[-2], nn.Linear)
    assert _encoder({"embedding_size": 12}, FRAMES).core.rnn.input_size == 12


@pytest.mark.parametrize(
    ("params", "spec"), [({}, FLAT), ({"frame_conv": "off"}, FRAMES)], ids=["no_frame_shape", "off"]
)
def test_other_inputs_keep_the_1d_path(params: dict[str, Any], spec: InputSpec) -> None:
    encoder = _encoder(params, spec)
    assert isinstance(encoder.frontend, ConvFrontEnd)
    assert nn.Conv1d in _module_types(encoder) and nn.Conv2d not in _module_types(encoder)


def test_frames_are_read_row_major() -> None:
    """The front end sees step features as an ``H x W`` image, row by row."""
    frontend = _encoder({"conv_channels": 4}, ODD_FRAMES).frontend
    x = torch.rand(2, 3, ODD_FRAMES.size, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        out = frontend(x, torch.tensor([3, 3]))
        direct = frontend.net(x.reshape(6, 1, 5, 7)).reshape(2, 3, -1)
    torch.testing.assert_close(out, direct)
    # a shift of the image by one column changes the features (the layout is not flattened away)
    shifted = x.reshape(2, 3, 5, 7).roll(1, dims=-1).reshape(2, 3, -1)
    with torch.no_grad():
        assert not torch.allclose(frontend(shifted, torch.tensor([3, 3])), out)


@pytest.mark.parametrize(("params", "spec"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_padding_invariance_and_shapes(params: dict[str, Any], spec: InputSpec) -> None:
    encoder = _encoder(params, spec)
    gen = torch.Generator().manual_seed(1)
    lengths = [5, 2, 7]
    for total in (7, 11):
        seqs, padded = _videos(spec, lengths, total, gen)
        with torch.no_grad():
            out = encoder(padded, torch.tensor(lengths))
            assert out.sequence.shape == (3, total, encoder.output_size)
            assert out.summary.shape == (3, encoder.output_size)
            for i, seq in enumerate(seqs):
                alone = encoder(seq.unsqueeze(0), torch.tensor([len(seq)]))
                torch.testing.assert_close(out.summary[i], alone.summary[0], atol=ATOL, rtol=1e-4)
                torch.testing.assert_close(
                    out.sequence[i, : len(seq)], alone.sequence[0], atol=ATOL, rtol=1e-4
                )


@pytest.mark.parametrize("causal", [False, True])
def test_per_frame_convolution_is_causal(causal: bool) -> None:
    encoder = _encoder({"causal": causal, "kernel_size": 5}, FRAMES)
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(2, 9, FRAMES.size, generator=gen)
    changed = x.clone()
    changed[:, 6] = torch.rand(FRAMES.size, generator=gen) + 1.0
    lengths = torch.tensor([9, 8])
    with torch.no_grad():
        before, after = encoder(x, lengths).sequence, encoder(changed, lengths).sequence
    assert not torch.allclose(before[:, 6:8], after[:, 6:8])
    torch.testing.assert_close(before[:, :6], after[:, :6], atol=0, rtol=0)
    assert ("causal" in CNNRNN({"causal": causal}).capabilities()) is causal


def test_gradients_reach_every_parameter() -> None:
    encoder = _encoder({"conv_layers": 2, "conv_channels": 4}, FRAMES).train()
    _, x = _videos(FRAMES, [4, 6], 6, torch.Generator().manual_seed(3))
    encoder(x, torch.tensor([4, 6])).summary.sum().backward()
    for name, parameter in encoder.named_parameters():
        assert parameter.grad is not None, f"no gradient reaches {name}"
        assert torch.isfinite(parameter.grad).all(), f"non-finite gradient in {name}"
        assert parameter.grad.abs().sum() > 0, f"zero gradient in {name}"


def test_mismatched_frame_shape_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"frame_shape \(5, 5\) has 25 pixels but the input has 36"):
        CNNRNN().build_encoder(InputSpec("continuous", 36, frame_shape=(5, 5)))


def test_frame_conv_param_is_validated() -> None:
    with pytest.raises(ValidationError, match="'auto' or 'off'"):
        CNNRNN({"frame_conv": "3d"})


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_padding_invariance_on_cuda() -> None:
    encoder = _encoder({"conv_layers": 2, "conv_channels": 8}, FRAMES).cuda()
    seqs, padded = _videos(FRAMES, [5, 2, 7], 9, torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = encoder(padded.cuda(), torch.tensor([5, 2, 7]))
        for i, seq in enumerate(seqs):
            alone = encoder(seq.unsqueeze(0).cuda(), torch.tensor([len(seq)]))
            # cuDNN runs convolutions and RNNs in TF32 by default (see test_architectures)
            torch.testing.assert_close(out.summary[i], alone.summary[0], atol=1e-3, rtol=1e-3)
