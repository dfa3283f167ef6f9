"""Metrics of output sequences and next-token models.

String metrics (``exact_match``, ``token_accuracy``, ``bleu``, ``wer``, ``cer``,
``ser``) are updated with ``(hypotheses, references)``: two lists of strings
whose tokens are separated by single spaces (the decoded outputs of a seq2seq
or transcription task). Likelihood metrics (``cross_entropy``, ``bits_per_char``,
``perplexity``) are updated with ``(logits [N, V], targets [N])`` over the
positions that count.

BLEU is corpus BLEU on the sacrebleu scale (0-100, ``13a`` tokenization), from
torchmetrics' ``SacreBLEUScore`` (0-1) times 100; a test checks it against
``sacrebleu.corpus_bleu``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness import MetricSpec, TaskInfo

if TYPE_CHECKING:
    import torchmetrics

STRINGS = frozenset({"seq2seq", "transcription"})
LIKELIHOOD = frozenset({"language_modeling", "sequence_labeling"})


def _build(name: str) -> Callable[[TaskInfo], torchmetrics.Metric]:
    def build(info: TaskInfo) -> torchmetrics.Metric:
        from . import _sequence

        return _sequence.build(name)

    return build


METRICS = (
    MetricSpec(
        "exact_match",
        _build("exact_match"),
        "share of outputs equal to the reference, token for token",
        STRINGS,
    ),
    MetricSpec(
        "token_accuracy",
        _build("token_accuracy"),
        "correct tokens at their position / longer of output and reference",
        STRINGS,
    ),
    MetricSpec("bleu", _build("bleu"), "corpus BLEU, sacrebleu scale 0-100 (13a tokenization)", STRINGS),
    MetricSpec(
        "wer", _build("wer"), "word error rate (edit distance / reference words)", STRINGS, direction="min"
    ),
    MetricSpec("cer", _build("cer"), "character error rate", STRINGS, direction="min"),
    MetricSpec(
        "ser",
        _build("ser"),
        "string (sentence) error rate: share of outputs with any error",
        STRINGS,
        direction="min",
    ),
    MetricSpec(
        "cross_entropy",
        _build("cross_entropy"),
        "mean cross-entropy (nats) over scored positions",
        LIKELIHOOD,
        direction="min",
    ),
    MetricSpec(
        "bits_per_char",
        _build("bits_per_char"),
        "mean cross-entropy in bits per token (character)",
        LIKELIHOOD,
        direction="min",
    ),
    MetricSpec(
        "perplexity",
        _build("perplexity"),
        "exp of the mean cross-entropy per token",
        LIKELIHOOD,
        direction="min",
    ),
)
