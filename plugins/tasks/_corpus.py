"""The language model's data module (imports torch: loaded by ``LanguageModelTask.datamodule``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from harness.data import ArrayDataModule

Corpus = dict[str, Any]


class CorpusDataModule(ArrayDataModule):
    """An :class:`~harness.data.ArrayDataModule` whose splits are cut from a corpus (token
    streams and a vocabulary) that it keeps, once loaded, as :attr:`corpus`: the task's
    artifacts (sampled continuations) read the vocabulary and the test stream from it."""

    def __init__(
        self,
        load: Callable[[], Corpus],
        splits: Callable[[Corpus], Mapping[str, tuple[Any, Any]]],
        batch_size: int,
        seed: int,
        num_workers: int = 0,
    ) -> None:
        super().__init__(self._load_splits, batch_size, seed, tokens=True, num_workers=num_workers)
        self._load_corpus = load
        self._splits = splits
        #: what ``load`` returned (``None`` until ``setup`` ran)
        self.corpus: Corpus | None = None

    def _load_splits(self) -> Mapping[str, tuple[Any, Any]]:
        self.corpus = corpus = self._load_corpus()
        return self._splits(corpus)
