"""Number translation: English number words to French number words (a real-language seq2seq task).

Data: generated with ``num2words`` (LGPL-2.1; PyPI ``num2words``, installed with the ``tasks``
extra): ``num2words(n, lang="en")`` -> ``num2words(n, lang="fr")``, e.g. "seventy-one" ->
"soixante et onze", "one thousand, two hundred and thirty-four" -> "mille deux cent
trente-quatre". Numbers are drawn without replacement from ``[min_number, max_number]`` with
``data_seed`` and cut into train/val/test, so the three splits hold disjoint numbers: the test
asks for numbers never seen in training (the model must learn the compositional rules, e.g.
French counts 70-99 in twenties: "quatre-vingt-dix-sept" = 4 x 20 + 17).

Tokens are words, with hyphens and commas as tokens of their own ("quatre - vingt - dix -
sept"); both vocabularies are the complete word inventories of the number range (fixed by the
params, independent of the drawn numbers). Outputs and references are scored as strings of
space-joined tokens.

Metrics: ``exact_match`` (primary, share in [0, 1]), ``token_accuracy``, and corpus ``bleu`` on
the sacrebleu scale 0-100 (not torchmetrics' 0-1). There is no published anchor for this exact
set; a small attention seq2seq model should get most unseen numbers exactly right.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from pydantic import Field, model_validator

from harness import Params

from ._seq2seq import Seq2SeqTask
from ._text import SPECIALS, Vocab

SOURCE_LANG, TARGET_LANG = "en", "fr"
MAX_NUMBER = 999_999_999_999
_TOKEN = re.compile(r"[^\s,\-]+|[,\-]")
SOURCE = (
    "Generated with num2words (LGPL-2.1): English number words -> French number words, numbers "
    "drawn without replacement from a configurable range (data_seed), train/val/test numbers "
    "disjoint. Tokens are words, hyphens and commas. Metrics: exact match (share), token accuracy, "
    "corpus BLEU on the sacrebleu 0-100 scale. No published anchor."
)


def number_tokens(text: str) -> list[str]:
    """Words, with hyphens and commas as separate tokens."""
    return _TOKEN.findall(text)


def spell(number: int, lang: str) -> list[str]:
    from num2words import num2words

    return number_tokens(num2words(number, lang=lang))


@functools.lru_cache(maxsize=4)
def _small_spellings(lang: str) -> tuple[tuple[str, ...], ...]:
    """The tokens of 0..999 in ``lang`` (the building blocks of every larger number)."""
    return tuple(tuple(spell(n, lang)) for n in range(1000))


def _scaled_numbers(max_number: int) -> list[int]:
    """Numbers above 999 whose words, with those of 0-999, hold every word of ``[0, max_number]``:
    for each scale (thousand, million, ...) one, two (plurals) and a few compounds of it."""
    numbers: set[int] = set()
    scale = 1000
    while scale <= max_number:
        for multiple in (1, 2, 21, 80, 100, 200, 999):
            for rest in (0, 1, 80, 234):
                if multiple * scale + rest <= max_number:
                    numbers.add(multiple * scale + rest)
        scale *= 1000
    return sorted(numbers)


@functools.lru_cache(maxsize=16)
def inventory(max_number: int, lang: str) -> tuple[str, ...]:
    """Every token ``lang`` uses for the numbers ``0..max_number``, sorted."""
    small = _small_spellings(lang)[: min(max_number, 999) + 1]
    tokens = {tok for words in small for tok in words}
    tokens.update(tok for n in _scaled_numbers(max_number) for tok in spell(n, lang))
    return tuple(sorted(tokens))


@functools.lru_cache(maxsize=16)
def length_bound(max_number: int, lang: str) -> int:
    """An upper bound on the tokens of any number in ``0..max_number``: per group of three
    digits, the longest 0-999 spelling plus a scale word and two separators ("," / "and")."""
    longest = max(len(words) for words in _small_spellings(lang)[: min(max_number, 999) + 1])
    groups = (len(str(max_number)) + 2) // 3
    return groups * (longest + 3)


class NumberTranslationParams(Params):
    min_number: int = Field(0, ge=0, description="smallest number drawn")
    max_number: int = Field(999_999, ge=0, le=MAX_NUMBER, description="largest number drawn")
    num_train: int = Field(10_000, ge=1, description="training pairs (distinct numbers)")
    num_val: int = Field(1_000, ge=1, description="validation pairs (numbers disjoint from training)")
    num_test: int = Field(
        1_000, ge=1, description="test pairs (numbers disjoint from training and validation)"
    )
    data_seed: int = Field(1234, description="seed of the drawn numbers (fixed across run seeds)")
    target_exact_match: float = Field(
        0.9, gt=0, le=1, description="test exact match that counts as reached (time-to-target)"
    )

    @model_validator(mode="after")
    def _enough_numbers(self) -> NumberTranslationParams:
        if self.min_number > self.max_number:
            raise ValueError(f"min_number ({self.min_number}) is above max_number ({self.max_number})")
        available = self.max_number - self.min_number + 1
        wanted = self.num_train + self.num_val + self.num_test
        if wanted > available:
            raise ValueError(
                f"num_train + num_val + num_test = {wanted} distinct numbers, but [{self.min_number}, "
                f"{self.max_number}] holds only {available}; widen the range or ask for fewer pairs"
            )
        return self


class NumberTranslationTask(Seq2SeqTask[NumberTranslationParams]):
    """English -> French number words (num2words), unseen numbers at test time; seq2seq."""

    name = "number_translation"
    description = "English -> French number words (num2words); disjoint train/test numbers; seq2seq."
    data_version = "1"
    SOURCE = SOURCE

    def unavailable(self) -> str | None:
        import importlib.util

        if importlib.util.find_spec("num2words") is None:
            return "`number_translation` needs the num2words package; install it with `pip install num2words`"
        return None

    def source_vocab(self) -> Vocab:
        return Vocab([*SPECIALS, *inventory(self.params.max_number, SOURCE_LANG)])

    def target_vocab(self) -> Vocab:
        return Vocab([*SPECIALS, *inventory(self.params.max_number, TARGET_LANG)])

    def max_source_length(self) -> int:
        return length_bound(self.params.max_number, SOURCE_LANG)

    def max_target_length(self) -> int:
        return length_bound(self.params.max_number, TARGET_LANG)

    def target_value(self) -> float:
        return float(self.params.target_exact_match)

    def data_spec(self) -> dict[str, Any]:
        return self.params.model_dump(exclude={"target_exact_match"})

    def numbers(self) -> dict[str, list[int]]:
        """The numbers of each split (drawn once, without replacement, then cut)."""
        import numpy as np

        p = self.params
        rng = np.random.default_rng(p.data_seed)
        drawn = rng.choice(
            p.max_number - p.min_number + 1, size=p.num_train + p.num_val + p.num_test, replace=False
        )
        drawn = (drawn + p.min_number).tolist()
        cuts = (p.num_train, p.num_train + p.num_val)
        return {"train": drawn[: cuts[0]], "val": drawn[cuts[0] : cuts[1]], "test": drawn[cuts[1] :]}

    def build_examples(self) -> dict[str, tuple[list[list[str]], list[list[str]]]]:
        return {
            split: ([spell(n, SOURCE_LANG) for n in numbers], [spell(n, TARGET_LANG) for n in numbers])
            for split, numbers in self.numbers().items()
        }
