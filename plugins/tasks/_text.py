"""Vocabularies for the built-in text tasks (no torch; numpy only).

Ids: 0 = padding, 1 = unknown, 2 = begin of sequence, 3 = end of sequence, then
the tokens of the training split by decreasing frequency (ties by token). A
vocabulary is stored in the data cache as a numpy string array, so a cached data
set and its vocabulary always agree.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]", re.IGNORECASE)


def word_tokens(text: str) -> list[str]:
    """Lower-cased words, contractions kept together, punctuation as tokens."""
    return _WORD.findall(text.lower())


class Vocab:
    def __init__(self, tokens: Sequence[str]) -> None:
        self.tokens = list(tokens)
        self.index = {tok: i for i, tok in enumerate(self.tokens)}

    @classmethod
    def build(cls, texts: Iterable[Sequence[str]], min_freq: int = 1, max_size: int | None = None) -> Vocab:
        """From token sequences (the training split only)."""
        counts = Counter(tok for text in texts for tok in text)
        ranked = sorted((tok for tok, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(SPECIALS))]
        return cls([*SPECIALS, *ranked])

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str], bos: bool = False, eos: bool = False) -> np.ndarray:
        ids = [self.index.get(tok, UNK) for tok in tokens]
        return np.asarray(([BOS] if bos else []) + ids + ([EOS] if eos else []), dtype=np.int64)

    def decode(self, ids: Iterable[int], stop_at_eos: bool = True) -> list[str]:
        out: list[str] = []
        for i in ids:
            i = int(i)
            if i == EOS and stop_at_eos:
                break
            if i in (PAD, BOS) or (i == EOS):
                continue
            out.append(self.tokens[i] if 0 <= i < len(self.tokens) else SPECIALS[UNK])
        return out

    def to_array(self) -> np.ndarray:
        return np.asarray(self.tokens, dtype=np.str_)

    @classmethod
    def from_array(cls, array: np.ndarray) -> Vocab:
        return cls([str(t) for t in array.tolist()])
