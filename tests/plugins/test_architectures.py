"""The built-in architectures: padding invariance, causality, params, lazy torch, gradients."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from harness import CAPABILITIES, Architecture, InputSpec, Params

# the conformance kit's batch helpers (random steps; padding with garbage that must not leak)
from harness.testing.architecture import _pad, _steps
from harness_builtins.architectures import register_architectures


def _registered() -> dict[str, type[Architecture]]:
    classes: list[type[Architecture]] = []
    register_architectures(register=classes.append)
    return {cls.name: cls for cls in classes}


ARCHITECTURES = _registered()
NAMES = ["rnn", "lstm", "gru", "birnn", "cnn_rnn", "transformer"]
#: closed-form forecasting baselines (forecasting tasks only; tested in
#: tests/plugins/tasks/test_forecasting.py)
BASELINES = ["naive", "seasonal_naive", "arima"]

#: (name, params): every built-in with its defaults, then the variants whose code paths differ
CASES: list[tuple[str, dict[str, Any]]] = [(name, {}) for name in NAMES] + [
    ("rnn", {"nonlinearity": "relu", "num_layers": 2, "dropout": 0.2}),
    ("lstm", {"num_layers": 2, "embedding_size": 8, "hidden_size": 16}),
    ("birnn", {"cell": "gru", "num_layers": 2}),
    ("birnn", {"cell": "rnn", "embedding_size": 8}),
    ("cnn_rnn", {"causal": True, "conv_layers": 2, "kernel_size": 5, "cell": "lstm"}),
    ("cnn_rnn", {"conv_layers": 2, "kernel_size": 1, "cell": "rnn", "num_layers": 2}),
    ("transformer", {"causal": True}),
    ("transformer", {"pooling": "last", "norm_first": False, "num_heads": 2}),
    ("transformer", {"causal": True, "pooling": "mean", "d_model": 30, "num_heads": 3}),
]
SPECS = [InputSpec("continuous", 3), InputSpec("tokens", 20)]
ATOL = 1e-5


def _case_id(case: tuple[str, dict[str, Any]]) -> str:
    name, params = case
    return name + "".join(f"-{key}={value}" for key, value in params.items())


def _spec_id(spec: InputSpec) -> str:
    return spec.kind


def _build(name: str, params: dict[str, Any], spec: InputSpec) -> tuple[Architecture, nn.Module]:
    torch.manual_seed(0)
    architecture = ARCHITECTURES[name](params)
    return architecture, architecture.build_encoder(spec)


parametrize_cases = pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
parametrize_specs = pytest.mark.parametrize("spec", SPECS, ids=_spec_id)


def test_registers_the_builtins() -> None:
    assert sorted(ARCHITECTURES) == sorted(NAMES + BASELINES)
    for name, cls in ARCHITECTURES.items():
        assert cls.name == name
        assert cls.summary_line() and "\n" not in cls.description
        assert issubclass(cls.Params, Params)
        assert cls().capabilities() <= CAPABILITIES
        # every network builds a decoder; the forecasting baselines are fitted, not trained
        assert cls.trainable is (name in NAMES)
        assert ("seq2seq" in cls().capabilities()) is (name in NAMES)


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("rnn", {}, {"variable_length", "seq2seq", "causal", "stateful"}),
        ("lstm", {}, {"variable_length", "seq2seq", "causal", "stateful"}),
        ("gru", {}, {"variable_length", "seq2seq", "causal", "stateful"}),
        ("birnn", {}, {"variable_length", "seq2seq", "bidirectional"}),
        ("cnn_rnn", {}, {"variable_length", "seq2seq"}),
        ("cnn_rnn", {"causal": True}, {"variable_length", "seq2seq", "causal"}),
        ("transformer", {}, {"variable_length", "seq2seq"}),
        ("transformer", {"causal": True}, {"variable_length", "seq2seq", "causal"}),
    ],
)
def test_capabilities(name: str, params: dict[str, Any], expected: set[str]) -> None:
    assert ARCHITECTURES[name](params).capabilities() == frozenset(expected)


@parametrize_cases
@parametrize_specs
def test_padding_invariance_and_shapes(case: tuple[str, dict[str, Any]], spec: InputSpec) -> None:
    _, encoder = _build(*case, spec)
    encoder.eval()
    gen = torch.Generator().manual_seed(1)
    lengths = [5, 2, 7]
    seqs = [_steps(spec, n, gen) for n in lengths]
    with torch.no_grad():
        alone = [encoder(seq.unsqueeze(0), torch.tensor([len(seq)])) for seq in seqs]
        for total in (7, 12):
            out = encoder(_pad(seqs, total, spec, gen), torch.tensor(lengths))
            assert out.sequence.shape == (3, total, encoder.output_size)
            assert out.summary.shape == (3, encoder.output_size)
            for i, (single, n) in enumerate(zip(alone, lengths, strict=True)):
                torch.testing.assert_close(out.summary[i], single.summary[0], atol=ATOL, rtol=1e-4)
                torch.testing.assert_close(out.sequence[i, :n], single.sequence[0], atol=ATOL, rtol=1e-4)


def _later_step_changes_earlier_outputs(encoder: nn.Module, spec: InputSpec) -> bool:
    gen = torch.Generator().manual_seed(2)
    x = _steps(spec, 9, gen).unsqueeze(0).repeat(2, *([1] * (1 if spec.kind == "tokens" else 2)))
    changed = x.clone()
    changed[:, 6] = _steps(spec, 1, gen)[0] + (0 if spec.kind == "tokens" else 5.0)
    if spec.kind == "tokens" and torch.equal(changed[:, 6], x[:, 6]):
        changed[:, 6] = x[:, 6] % (spec.size - 1) + 1
    lengths = torch.tensor([9, 8])
    with torch.no_grad():
        before, after = encoder(x, lengths).sequence, encoder(changed, lengths).sequence
    assert not torch.allclose(before[:, 6:8], after[:, 6:8])  # the change is visible
    return not torch.allclose(before[:, :6], after[:, :6], atol=1e-6, rtol=0)


@parametrize_cases
@parametrize_specs
def test_causal_architectures_ignore_the_future(case: tuple[str, dict[str, Any]], spec: InputSpec) -> None:
    architecture, encoder = _build(*case, spec)
    encoder.eval()
    leaks = _later_step_changes_earlier_outputs(encoder, spec)
    if "causal" in architecture.capabilities():
        assert not leaks
    elif case[0] in ("birnn", "transformer") or (case[0] == "cnn_rnn" and case[1].get("kernel_size", 3) > 1):
        assert leaks  # the check itself can see non-causal models


@parametrize_cases
@parametrize_specs
def test_gradients_flow(case: tuple[str, dict[str, Any]], spec: InputSpec) -> None:
    _, encoder = _build(*case, spec)
    encoder.train()
    gen = torch.Generator().manual_seed(3)
    x = _pad([_steps(spec, n, gen) for n in (4, 6)], 6, spec, gen)
    encoder(x, torch.tensor([4, 6])).summary.sum().backward()
    for name, parameter in encoder.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None, f"no gradient reaches {name}"
            assert torch.isfinite(parameter.grad).all(), f"non-finite gradient in {name}"


def test_lstm_forget_bias() -> None:
    _, encoder = _build("lstm", {"forget_bias": 2.5, "hidden_size": 8, "num_layers": 2}, SPECS[0])
    rnn = encoder.core.rnn
    for layer in range(2):
        total = getattr(rnn, f"bias_ih_l{layer}") + getattr(rnn, f"bias_hh_l{layer}")
        torch.testing.assert_close(total[8:16], torch.full((8,), 2.5))


def test_embedding_size_sets_the_input_width() -> None:
    _, encoder = _build("gru", {"embedding_size": 5, "hidden_size": 7}, SPECS[1])
    assert encoder.core.rnn.input_size == 5
    _, encoder = _build("gru", {"hidden_size": 7}, SPECS[0])
    assert encoder.core.rnn.input_size == 3  # continuous features pass through


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("rnn", {"hidden_sise": 32}, "Extra inputs are not permitted"),
        ("lstm", {"hidden_size": 0}, "greater than 0"),
        ("gru", {"dropout": 1.5}, "less than 1"),
        ("birnn", {"cell": "transformer"}, "'rnn', 'lstm' or 'gru'"),
        ("rnn", {"nonlinearity": "sigmoid"}, "'tanh' or 'relu'"),
        ("transformer", {"d_model": 64, "num_heads": 5}, "divisible by num_heads"),
        ("transformer", {"dropout": -0.1}, "greater than or equal to 0"),
        ("cnn_rnn", {"kernel_size": 4}, "kernel_size must be odd"),
        ("cnn_rnn", {"conv_layers": 0}, "greater than 0"),
    ],
)
def test_invalid_params_are_rejected(name: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ARCHITECTURES[name](params)


def test_heads_message_suggests_divisors() -> None:
    with pytest.raises(ValidationError, match="try num_heads=4 or num_heads=8"):
        ARCHITECTURES["transformer"]({"d_model": 64, "num_heads": 5})


def test_import_does_not_load_torch() -> None:
    code = (
        "import sys, harness_builtins.architectures as a\n"
        "a.register_architectures(register=lambda cls: cls().capabilities())\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("lengths_on_cuda", [False, True], ids=["cpu_lengths", "cuda_lengths"])
@parametrize_cases
def test_padding_invariance_on_cuda(case: tuple[str, dict[str, Any]], lengths_on_cuda: bool) -> None:
    spec = SPECS[0]
    _, encoder = _build(*case, spec)
    encoder = encoder.cuda().eval()
    gen = torch.Generator().manual_seed(4)
    seqs = [_steps(spec, n, gen) for n in (5, 2, 7)]
    device = "cuda" if lengths_on_cuda else "cpu"
    with torch.no_grad():
        out = encoder(_pad(seqs, 12, spec, gen).cuda(), torch.tensor([5, 2, 7], device=device))
        for i, seq in enumerate(seqs):
            single = encoder(seq.unsqueeze(0).cuda(), torch.tensor([len(seq)], device=device))
            # cuDNN runs RNNs and convolutions in TF32 by default, and its results depend on the
            # batch shape (measured on an H100: up to ~2e-4; exact float32 gives < 1e-6)
            torch.testing.assert_close(out.summary[i], single.summary[0], atol=1e-3, rtol=1e-3)
            torch.testing.assert_close(out.sequence[i, : len(seq)], single.sequence[0], atol=1e-3, rtol=1e-3)
