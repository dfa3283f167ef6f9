"""torchmetrics implementations of the sequence metrics (imported in the worker)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchmetrics import Metric


class ExactMatch(Metric):
    """Share of hypotheses identical to their reference (after whitespace normalisation)."""

    # the states registered with add_state() in __init__
    correct: torch.Tensor
    total: torch.Tensor

    higher_is_better = True
    full_state_update = False

    def __init__(self, complement: bool = False) -> None:
        super().__init__()
        self.complement = complement
        self.add_state("correct", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, hypotheses: Sequence[str], references: Sequence[str]) -> None:
        _check(hypotheses, references)
        self.correct += sum(h.split() == r.split() for h, r in zip(hypotheses, references))
        self.total += len(references)

    def compute(self) -> torch.Tensor:
        share = self.correct / self.total.clamp(min=1)
        return 1.0 - share if self.complement else share


class TokenAccuracy(Metric):
    """Tokens equal at the same position, over the longer of hypothesis and reference."""

    # the states registered with add_state() in __init__
    correct: torch.Tensor
    total: torch.Tensor

    higher_is_better = True
    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, hypotheses: Sequence[str], references: Sequence[str]) -> None:
        _check(hypotheses, references)
        for hyp, ref in zip(hypotheses, references):
            h, r = hyp.split(), ref.split()
            self.correct += sum(a == b for a, b in zip(h, r))
            self.total += max(len(h), len(r), 1)

    def compute(self) -> torch.Tensor:
        return self.correct / self.total.clamp(min=1)


class Bleu(Metric):
    """Corpus BLEU on the sacrebleu 0-100 scale."""

    higher_is_better = True
    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        from torchmetrics.text import SacreBLEUScore

        self.inner = SacreBLEUScore(tokenize="13a")

    def update(self, hypotheses: Sequence[str], references: Sequence[str]) -> None:
        _check(hypotheses, references)
        self.inner.update(list(hypotheses), [[r] for r in references])

    def compute(self) -> torch.Tensor:
        return self.inner.compute() * 100.0

    def reset(self) -> None:
        super().reset()
        self.inner.reset()


class _StringRate(Metric):
    """WER / CER from torchmetrics, updated with lists of strings."""

    higher_is_better = False
    full_state_update = False

    def __init__(self, kind: str) -> None:
        super().__init__()
        from torchmetrics.text import CharErrorRate, WordErrorRate

        self.inner = WordErrorRate() if kind == "wer" else CharErrorRate()

    def update(self, hypotheses: Sequence[str], references: Sequence[str]) -> None:
        _check(hypotheses, references)
        self.inner.update(list(hypotheses), list(references))

    def compute(self) -> torch.Tensor:
        return self.inner.compute()

    def reset(self) -> None:
        super().reset()
        self.inner.reset()


class MeanNLL(Metric):
    """Mean cross-entropy over scored positions: in nats, bits, or as perplexity."""

    # the states registered with add_state() in __init__
    nll: torch.Tensor
    count: torch.Tensor

    full_state_update = False
    higher_is_better = False

    def __init__(self, unit: str = "nats") -> None:
        super().__init__()
        self.unit = unit
        self.add_state("nll", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        if logits.dim() != 2 or targets.shape != logits.shape[:1]:
            raise ValueError(
                f"expected logits [N, V] and targets [N]; "
                f"got {tuple(logits.shape)} and {tuple(targets.shape)}"
            )
        loss = torch.nn.functional.cross_entropy(logits.float(), targets.long(), reduction="sum")
        self.nll += loss.double()
        self.count += targets.numel()

    def compute(self) -> torch.Tensor:
        mean = self.nll / self.count.clamp(min=1)
        if self.unit == "bits":
            return (mean / math.log(2)).float()
        if self.unit == "perplexity":
            return mean.exp().float()
        return mean.float()


def _check(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if hypotheses and not isinstance(hypotheses[0], str):
        raise TypeError(f"string metrics take lists of strings, got {type(hypotheses[0]).__name__}")


def build(name: str) -> Metric:
    factories = {
        "exact_match": lambda: ExactMatch(),
        "ser": lambda: ExactMatch(complement=True),
        "token_accuracy": TokenAccuracy,
        "bleu": Bleu,
        "wer": lambda: _StringRate("wer"),
        "cer": lambda: _StringRate("cer"),
        "cross_entropy": lambda: MeanNLL("nats"),
        "bits_per_char": lambda: MeanNLL("bits"),
        "perplexity": lambda: MeanNLL("perplexity"),
    }
    return factories[name]()
