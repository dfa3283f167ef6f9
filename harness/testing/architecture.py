"""Conformance checks of architectures: shapes, padding, causality, determinism, training, pickling."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from harness.interfaces import (
    CAPABILITIES,
    Architecture,
    EncoderOutput,
    InputSpec,
    Params,
    TaskInfo,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch


from harness.testing._common import (
    ATOL,
    MAX_PARAMETERS,
    RTOL,
    SKIPPED_BASELINE,
    CheckFailed,
    CheckResult,
    _preserved_rng,
    _run,
    _seed_all,
)
from harness.testing.width import check_width

_LENGTHS = (5, 2, 7)  # a batch of three sequences of different lengths
_FULL = 12  # time steps of a fixed-length batch (and the synthetic max_length)


def _specs(caps: frozenset[str]) -> list[InputSpec]:
    specs = [InputSpec("continuous", 3, max_length=_FULL), InputSpec("tokens", 20, max_length=_FULL)]
    if "variable_length" in caps:
        specs += [
            InputSpec("continuous", 3, max_length=_FULL, variable_length=True),
            InputSpec("tokens", 20, max_length=_FULL, variable_length=True),
        ]
    return specs


def _label(spec: InputSpec) -> str:
    length = "variable-length" if spec.variable_length else "fixed-length"
    return f"{length} {spec.kind} input (size {spec.size})"


def _steps(spec: InputSpec, length: int, gen: torch.Generator, low: int = 1) -> torch.Tensor:
    """``length`` random steps: ``[length, size]`` floats or ``[length]`` token ids >= low."""
    import torch

    if spec.kind == "tokens":
        return torch.randint(low, spec.size, (length,), generator=gen)
    return torch.randn(length, spec.size, generator=gen)


def _pad(seqs: Sequence[torch.Tensor], total: int, spec: InputSpec, gen: torch.Generator) -> torch.Tensor:
    """A batch padded to ``total`` steps with random garbage (never zeros or padding ids alone)."""
    import torch

    rows = []
    for seq in seqs:
        garbage = _steps(spec, total - len(seq), gen, low=0)
        rows.append(torch.cat([seq, garbage if spec.kind == "tokens" else 10 * garbage]))
    return torch.stack(rows)


def _batch(spec: InputSpec, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch for ``spec``: three full sequences, or three of different lengths padded with garbage."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    lengths = _LENGTHS if spec.variable_length else (_FULL,) * 3
    total = _FULL
    return _pad([_steps(spec, n, gen) for n in lengths], total, spec, gen), torch.tensor(lengths)


def _forward(encoder: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
    out = encoder(x, lengths)
    if not isinstance(out, EncoderOutput):
        raise CheckFailed(
            f"forward returned {type(out).__name__}, not harness.EncoderOutput; "
            f"return EncoderOutput(sequence=..., summary=...)"
        )
    return out


def _output_size(network: torch.nn.Module, what: str) -> int:
    """The ``output_size`` attribute that encoders and decoders must set (a positive int)."""
    size = getattr(network, "output_size", None)
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise CheckFailed(
            f"the {what}'s `output_size` is {size!r}; set an int attribute "
            f"`self.output_size` (features per step) in its __init__"
        )
    return size


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = ATOL) -> bool:
    import torch

    return a.shape == b.shape and bool(torch.allclose(a, b, atol=atol, rtol=RTOL))


class _ArchitectureChecks:
    """The checks of one architecture (parameters fixed), one method per check."""

    def __init__(self, arch: Architecture) -> None:
        self.arch = arch
        self.caps = arch.capabilities()
        #: the synthetic inputs the architecture accepts (its incompatibility() may refuse some)
        self.specs: list[InputSpec] = []
        self.refused: list[str] = []
        for spec in _specs(self.caps):
            reasons = [arch.incompatibility(_synthetic_info(spec, kind)) for kind in _KINDS_TRIED]
            if any(reason is None for reason in reasons):
                self.specs.append(spec)
            else:
                self.refused.append(f"{_label(spec)} ({reasons[0]})")

    def build(self, spec: InputSpec, seed: int = 0) -> torch.nn.Module:
        _seed_all(seed)
        return self.arch.build_encoder(spec)

    def check_build(self) -> str:
        from torch import nn

        if not self.specs:
            raise CheckFailed(f"incompatibility() refuses every synthetic input: {'; '.join(self.refused)}")
        for spec in self.specs:
            encoder = self.build(spec)
            if not isinstance(encoder, nn.Module):
                raise CheckFailed(
                    f"build_encoder({_label(spec)}) returned {type(encoder).__name__}, not a torch.nn.Module"
                )
            _output_size(encoder, "encoder")
        refused = f"; refused (incompatibility): {'; '.join(self.refused)}" if self.refused else ""
        return f"{len(self.specs)} input kinds: " + "; ".join(_label(s) for s in self.specs) + refused

    def check_shapes(self) -> str:
        import torch

        for spec in self.specs:
            encoder = self.build(spec).eval()
            x, lengths = _batch(spec)
            with torch.no_grad():
                out = _forward(encoder, x, lengths)
            size = _output_size(encoder, "encoder")
            for what, value, expected in (
                ("sequence", out.sequence, (3, _FULL, size)),
                ("summary", out.summary, (3, size)),
            ):
                if not isinstance(value, torch.Tensor) or tuple(value.shape) != expected:
                    seen = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                    raise CheckFailed(
                        f"{_label(spec)}: `{what}` has shape {seen}, expected {expected} "
                        f"([batch, time, output_size] / [batch, output_size], output_size={size})"
                    )
                if not bool(torch.isfinite(value).all()):
                    raise CheckFailed(f"{_label(spec)}: `{what}` has non-finite values")
        return ""

    def check_padding(self) -> str:
        import torch

        specs = [s for s in self.specs if s.variable_length]
        if not specs:
            return "skipped: the architecture does not declare variable_length"
        for spec in specs:
            encoder = self.build(spec).eval()
            gen = torch.Generator().manual_seed(1)
            seqs = [_steps(spec, n, gen) for n in _LENGTHS]
            with torch.no_grad():
                alone = [_forward(encoder, seq.unsqueeze(0), torch.tensor([len(seq)])) for seq in seqs]
                for total in (max(_LENGTHS), _FULL):
                    out = _forward(encoder, _pad(seqs, total, spec, gen), torch.tensor(_LENGTHS))
                    for i, (single, n) in enumerate(zip(alone, _LENGTHS, strict=True)):
                        where = (
                            f"{_label(spec)}: sequence {i} ({n} valid steps) padded to {total} steps "
                            f"with garbage"
                        )
                        if not _close(out.sequence[i, :n], single.sequence[0, :n]):
                            raise CheckFailed(
                                f"{where} changes its outputs at valid steps; padding leaks in: "
                                f"mask the padded steps (harness.nn.padding_mask, zero_padding) "
                                f"or pack the sequences"
                            )
                        if not _close(out.summary[i], single.summary[0]):
                            raise CheckFailed(
                                f"{where} changes its summary; padding leaks in: pool over valid "
                                f"steps only (harness.nn.masked_mean, last_valid)"
                            )
        return ""

    def check_causality(self) -> str:
        import torch

        if "causal" not in self.caps:
            return "skipped: the architecture does not declare causal"
        for spec in [s for s in self.specs if not s.variable_length]:
            encoder = self.build(spec).eval()
            x, lengths = _batch(spec, seed=2)
            changed = x.clone()
            changed[:, 6] = (
                (changed[:, 6] % (spec.size - 1)) + 1 if spec.kind == "tokens" else changed[:, 6] + 5.0
            )
            with torch.no_grad():
                before, after = (
                    _forward(encoder, x, lengths).sequence,
                    _forward(encoder, changed, lengths).sequence,
                )
            if not _close(before[:, :6], after[:, :6], atol=1e-6):
                raise CheckFailed(
                    f"{_label(spec)}: changing step 6 changes the outputs at steps 0-5, but the "
                    f"architecture declares `causal`; mask attention to the past or drop `causal`"
                )
        return ""

    def check_determinism(self) -> str:
        import torch

        for spec in self.specs:
            x, lengths = _batch(spec)
            with torch.no_grad():
                first = _forward(self.build(spec, seed=3).eval(), x, lengths)
                encoder = self.build(spec, seed=3).eval()
                second = _forward(encoder, x, lengths)
                again = _forward(encoder, x, lengths)
            for what in ("sequence", "summary"):
                if not torch.equal(getattr(first, what), getattr(second, what)):
                    raise CheckFailed(
                        f"{_label(spec)}: two encoders built after seeding 3 give different "
                        f"`{what}` outputs; draw every random number from torch (or a "
                        f"generator seeded from it), not from unseeded sources"
                    )
                if not torch.equal(getattr(second, what), getattr(again, what)):
                    raise CheckFailed(
                        f"{_label(spec)}: the same encoder in eval mode gives different `{what}` "
                        f"for the same input twice; forward must not draw random numbers in eval "
                        f"mode (use nn.Dropout, which eval() turns off)"
                    )
        return ""

    def check_training_step(self) -> str:
        import torch

        for spec in self.specs:
            encoder = self.build(spec).train()
            x, lengths = _batch(spec)
            out = _forward(encoder, x, lengths)
            target = torch.randn(out.summary.shape, generator=torch.Generator().manual_seed(4))
            valid = torch.arange(out.sequence.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
            loss = (out.summary - target).pow(2).mean() + out.sequence[valid].pow(2).mean()
            params = {n: p for n, p in encoder.named_parameters() if p.requires_grad}
            if not params:
                raise CheckFailed(
                    "the encoder has no trainable parameters; a closed-form model sets "
                    "`trainable = False` on its Architecture class"
                )
            before = {n: p.detach().clone() for n, p in params.items()}
            optimizer = torch.optim.Adam(params.values(), lr=1e-2)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            missing = [n for n, p in params.items() if p.grad is None]
            if missing:
                raise CheckFailed(
                    f"{_label(spec)}: no gradient reaches {', '.join(missing[:5])} from the loss on "
                    f"summary and sequence; remove unused parameters (they break multi-GPU runs)"
                )
            bad = [
                n for n, p in params.items() if p.grad is not None and not bool(torch.isfinite(p.grad).all())
            ]
            if bad:
                raise CheckFailed(f"{_label(spec)}: non-finite gradients in {', '.join(bad[:5])}")
            optimizer.step()
            if all(torch.equal(before[n], p.detach()) for n, p in params.items()):
                raise CheckFailed(f"{_label(spec)}: an optimizer step changed no parameter")
        return ""

    def check_pickling(self, compare: bool = True) -> str:
        import torch

        for spec in self.specs:
            encoder = self.build(spec).eval()
            networks = {"encoder": encoder}
            if "seq2seq" in self.caps and spec.kind == "tokens" and spec.variable_length:
                networks["decoder"] = self.arch.build_decoder(
                    _seq2seq_info(), _output_size(encoder, "encoder")
                )
            for what, network in networks.items():
                try:
                    copy = pickle.loads(pickle.dumps(network))
                except Exception as exc:
                    raise CheckFailed(
                        f"{_label(spec)}: the {what} cannot be pickled ({type(exc).__name__}: {exc}); "
                        f"Ray ships networks between processes: keep lambdas, generators, open files "
                        f"and locks out of its attributes (use methods or module-level functions)"
                    ) from exc
                if compare and what == "encoder":
                    x, lengths = _batch(spec)
                    with torch.no_grad():
                        a, b = _forward(encoder, x, lengths), _forward(copy.eval(), x, lengths)
                    if not (_close(a.sequence, b.sequence) and _close(a.summary, b.summary)):
                        raise CheckFailed(
                            f"{_label(spec)}: the unpickled encoder gives different outputs; keep "
                            f"all state in parameters and buffers"
                        )
        return ""

    def check_parameter_count(self) -> str:
        encoder = self.build(self.specs[0])
        count = sum(p.numel() for p in encoder.parameters())
        if not 0 < count < MAX_PARAMETERS:
            raise CheckFailed(
                f"{count:,} parameters with these params (expected between 1 and {MAX_PARAMETERS:,})"
            )
        return f"{count:,} parameters ({_label(self.specs[0])})"

    # -- seq2seq ---------------------------------------------------------------------------------

    def _decoder_setup(self) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
        import torch

        info = _seq2seq_info()
        encoder = self.build(info.input).eval()
        decoder = self.arch.build_decoder(info, _output_size(encoder, "encoder"))
        if not isinstance(decoder, torch.nn.Module):
            raise CheckFailed(f"build_decoder returned {type(decoder).__name__}, not a torch.nn.Module")
        _output_size(decoder, "decoder")
        x, lengths = _batch(info.input)
        with torch.no_grad():
            memory = _forward(encoder, x, lengths).sequence
        tokens = torch.randint(1, _VOCAB, (3, 6), generator=torch.Generator().manual_seed(5))
        return decoder.eval(), tokens, memory, lengths

    def check_decoder(self) -> str:
        import torch

        decoder, tokens, memory, lengths = self._decoder_setup()
        with torch.no_grad():
            out = decoder(tokens, memory, lengths)
        expected = (3, 6, _output_size(decoder, "decoder"))
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
            seen = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise CheckFailed(
                f"decoder(tokens [3, 6], memory, lengths) gave {seen}, expected {expected} "
                f"([batch, output positions, output_size])"
            )
        if not bool(torch.isfinite(out).all()):
            raise CheckFailed("the decoder's output has non-finite values")
        return ""

    def check_decoder_causality(self) -> str:
        import torch

        decoder, tokens, memory, lengths = self._decoder_setup()
        changed = tokens.clone()
        changed[:, 4] = tokens[:, 4] % (_VOCAB - 1) + 1
        with torch.no_grad():
            before, after = decoder(tokens, memory, lengths), decoder(changed, memory, lengths)
        if not _close(before[:, :4], after[:, :4], atol=1e-6):
            raise CheckFailed(
                "changing output token 4 changes the decoder's features at positions 0-3: position "
                "u must not see tokens after u (use a causal mask)"
            )
        return ""

    def check_decoder_padding(self) -> str:
        import torch

        decoder, tokens, memory, lengths = self._decoder_setup()
        garbage = memory.clone()
        for i, n in enumerate(lengths.tolist()):
            garbage[i, n:] = 10 * torch.randn(
                garbage[i, n:].shape, generator=torch.Generator().manual_seed(6)
            )
        with torch.no_grad():
            before, after = decoder(tokens, memory, lengths), decoder(tokens, garbage, lengths)
        if not _close(before, after):
            raise CheckFailed(
                "garbage in the memory beyond memory_lengths changes the decoder's output; mask "
                "padded memory steps (e.g. key_padding_mask in attention)"
            )
        return ""


_VOCAB = 11
#: an input kind counts as supported when the architecture accepts it for one of these outputs
_KINDS_TRIED = ("classification", "regression", "forecasting")


def _synthetic_info(spec: InputSpec, kind: str) -> TaskInfo:
    size = 2 if kind == "classification" else 1
    metric = "accuracy" if kind == "classification" else "mse"
    direction = "max" if kind == "classification" else "min"
    return TaskInfo(spec, kind, size, "loss", (metric,), metric, direction)  # type: ignore[arg-type]


def _seq2seq_info() -> TaskInfo:
    return TaskInfo(
        InputSpec("tokens", 20, max_length=_FULL, variable_length=True),
        "seq2seq",
        _VOCAB,
        "cross-entropy",
        ("exact_match",),
        "exact_match",
        "max",
        requires=frozenset({"seq2seq"}),
        output_vocab_size=_VOCAB,
        output_max_length=8,
    )


def check_architecture(cls: type[Architecture], params: Mapping[str, Any] | None = None) -> list[CheckResult]:
    """Build ``cls`` against synthetic inputs of every kind it supports and check the encoder
    contract: shapes, padding invariance, causality, determinism, a training step, pickling,
    the parameter count, the width a parameter budget sizes (``Architecture.budget_width``: an int
    parameter the count grows with), and (``seq2seq``) the decoder."""
    component = f"architecture {getattr(cls, 'name', None) or getattr(cls, '__name__', cls)}"

    def declaration() -> str:
        if not (isinstance(cls, type) and issubclass(cls, Architecture)):
            raise CheckFailed(f"{cls!r} is not a subclass of harness.Architecture")
        if not isinstance(getattr(cls, "name", None), str) or not cls.name:
            raise CheckFailed("the class has no string attribute `name`")
        if not (isinstance(cls.Params, type) and issubclass(cls.Params, Params)):
            raise CheckFailed("`Params` is not a subclass of harness.Params")
        unknown = sorted(set(cls(params).capabilities()) - CAPABILITIES)
        if unknown:
            raise CheckFailed(
                f"unknown capabilities {', '.join(unknown)} (known: {', '.join(sorted(CAPABILITIES))})"
            )
        return f"capabilities: {', '.join(sorted(cls(params).capabilities())) or 'none'}"

    first = _run(component, "declaration", declaration)
    if not first.passed:
        return [first]
    arch = cls(params)
    checks = _ArchitectureChecks(arch)
    results = [first]
    with _preserved_rng():
        results.append(_run(component, "build", checks.check_build))
        if not results[-1].passed:
            return results
        results.append(_run(component, "budget width", lambda: check_width(cls, params, checks.specs[0])))
        if not cls.trainable:
            for name in (
                "output shape",
                "padding invariance",
                "determinism",
                "training step",
                "parameter count",
            ):
                results.append(CheckResult(component, name, True, SKIPPED_BASELINE))
            results.append(_run(component, "pickling", lambda: checks.check_pickling(compare=False)))
            return results
        plan: list[tuple[str, Callable[[], str | None]]] = [
            ("output shape", checks.check_shapes),
            ("padding invariance", checks.check_padding),
            ("causality", checks.check_causality),
            ("determinism", checks.check_determinism),
            ("training step", checks.check_training_step),
            ("pickling", checks.check_pickling),
            ("parameter count", checks.check_parameter_count),
        ]
        if "seq2seq" in checks.caps:
            plan += [
                ("decoder output shape", checks.check_decoder),
                ("decoder causality", checks.check_decoder_causality),
                ("decoder padding invariance", checks.check_decoder_padding),
            ]
        results += [_run(component, name, fn) for name, fn in plan]
    return results
