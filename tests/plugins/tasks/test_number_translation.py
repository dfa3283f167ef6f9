"""The `number_translation` task: English -> French number words with num2words."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from num2words import num2words
from pydantic import ValidationError

from harness import DataConfig
from harness_builtins.tasks._text import EOS, PAD
from harness_builtins.tasks.number_translation import (
    NumberTranslationTask,
    inventory,
    length_bound,
    number_tokens,
    spell,
)
from tests.plugins.tasks.smoke import ALL_ARCHS, smoke_runs, task_plan

TINY = {"max_number": 99_999, "num_train": 96, "num_val": 32, "num_test": 32}


def detokenize(tokens: str) -> str:
    """Undo the tokenization: "quatre - vingts" -> "quatre-vingts", "thousand ," -> "thousand,"."""
    return re.sub(r" ,", ",", re.sub(r" - ", "-", tokens))


def test_tokens_and_pairs() -> None:
    assert number_tokens("soixante et onze") == ["soixante", "et", "onze"]
    assert number_tokens("one thousand, two hundred and thirty-four") == [
        "one",
        "thousand",
        ",",
        "two",
        "hundred",
        "and",
        "thirty",
        "-",
        "four",
    ]
    assert spell(97, "fr") == ["quatre", "-", "vingt", "-", "dix", "-", "sept"]
    task = NumberTranslationTask(TINY)
    numbers = task.numbers()
    examples = task.build_examples()
    for split in ("train", "val", "test"):
        sources, targets = examples[split]
        for n, source, target in zip(numbers[split], sources, targets):
            assert detokenize(" ".join(source)) == num2words(n, lang="en")
            assert detokenize(" ".join(target)) == num2words(n, lang="fr")


def test_numbers_are_disjoint_in_range_and_seeded() -> None:
    task = NumberTranslationTask({**TINY, "min_number": 500, "max_number": 1_500})
    numbers = task.numbers()
    assert [len(numbers[s]) for s in ("train", "val", "test")] == [96, 32, 32]
    everything = numbers["train"] + numbers["val"] + numbers["test"]
    assert len(set(everything)) == 160 and all(500 <= n <= 1_500 for n in everything)
    assert NumberTranslationTask({**TINY, "min_number": 500, "max_number": 1_500}).numbers() == numbers
    assert (
        NumberTranslationTask({**TINY, "min_number": 500, "max_number": 1_500, "data_seed": 7}).numbers()
        != numbers
    )
    # a range exactly as large as the data: every number used once
    exact = NumberTranslationTask(
        {"min_number": 10, "max_number": 19, "num_train": 6, "num_val": 2, "num_test": 2}
    )
    assert sorted(n for part in exact.numbers().values() for n in part) == list(range(10, 20))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_number": 100, "num_train": 100}, "holds only 101"),
        ({"min_number": 9, "max_number": 3}, "above max_number"),
    ],
)
def test_params_are_checked(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        NumberTranslationTask({"num_val": 1, "num_test": 1, **params})


@pytest.mark.parametrize("max_number", [999, 999_999, 999_999_999])
def test_vocabularies_and_length_bounds_cover_the_range(max_number: int) -> None:
    rng = np.random.default_rng(0)
    sample = [
        *rng.integers(0, max_number + 1, size=400).tolist(),
        max_number,
        0,
        71,
        80,
        200,
        80_000,
        2_000_000,
    ]
    for lang in ("en", "fr"):
        words, bound = set(inventory(max_number, lang)), length_bound(max_number, lang)
        for n in (n for n in sample if n <= max_number):
            tokens = spell(n, lang)
            assert set(tokens) <= words, (n, lang)
            assert len(tokens) <= bound, (n, lang)


def test_info_and_batches(tmp_path: Path) -> None:
    task = NumberTranslationTask(TINY)
    info = task.info()
    assert info.output_kind == "seq2seq" and info.requires == frozenset({"seq2seq"})
    assert info.input.kind == "tokens" and info.input.variable_length
    assert info.input.size == len(task.source_vocab()) and info.output_vocab_size == len(task.target_vocab())
    assert info.output_max_length == length_bound(99_999, "fr") + 1
    assert info.metrics == ("exact_match", "token_accuracy", "bleu") and info.primary_metric == "exact_match"
    assert "0-100" in info.source
    data = task.datamodule(DataConfig(batch_size=16, seed=0, cache_dir=tmp_path))
    data.setup("fit")
    assert [len(data.datasets[s]) for s in ("train", "val", "test")] == [96, 32, 32]
    batch = next(iter(data.test_dataloader()))
    x, y, lengths, y_lengths = batch["x"], batch["y"], batch["lengths"], batch["y_lengths"]
    assert x.dtype == torch.long and x.shape == (16, int(lengths.max())) and int(x.max()) < info.input.size
    assert int(y.max()) < info.output_vocab_size and int(y_lengths.max()) <= info.output_max_length
    numbers = task.numbers()["test"][:16]
    for row, n in enumerate(numbers):
        assert y[row, y_lengths[row] - 1] == EOS and (y[row, y_lengths[row] :] == PAD).all()
        source = " ".join(task.source_vocab().decode(x[row, : lengths[row]].tolist()))
        assert detokenize(source) == num2words(n, lang="en")
    assert [detokenize(s) for s in task.strings(y)] == [num2words(n, lang="fr") for n in numbers]


def test_data_is_deterministic_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = NumberTranslationTask(TINY).load_arrays(tmp_path / "a")
    again = NumberTranslationTask(TINY).load_arrays(tmp_path / "b")
    for key in arrays:
        assert all(np.array_equal(u, v) for u, v in zip(arrays[key], again[key])), key
    (path,) = (tmp_path / "a" / "number_translation").glob("*.npz")
    mtime = path.stat().st_mtime_ns

    def no_rebuild(self: NumberTranslationTask) -> None:
        raise AssertionError("the cached data should have been read, not rebuilt")

    monkeypatch.setattr(NumberTranslationTask, "build_examples", no_rebuild)
    cached = NumberTranslationTask({**TINY, "target_exact_match": 0.5}).load_arrays(
        tmp_path / "a"
    )  # same data
    assert path.stat().st_mtime_ns == mtime
    assert all(np.array_equal(u, v) for u, v in zip(arrays["train_x"], cached["train_x"]))
    with pytest.raises(AssertionError, match="rebuilt"):
        NumberTranslationTask({**TINY, "data_seed": 3}).load_arrays(tmp_path / "a")


def test_unavailable_without_num2words(monkeypatch: pytest.MonkeyPatch) -> None:
    assert NumberTranslationTask().unavailable() is None
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "num2words" else real(name, *a)
    )
    reason = NumberTranslationTask().unavailable()
    assert reason is not None and "pip install num2words" in reason


def test_smoke_training_over_all_architectures(tmp_path: Path) -> None:
    assert not task_plan(tmp_path, "number_translation", TINY).skipped
    results = smoke_runs(tmp_path, "number_translation", TINY)
    assert sorted(results) == sorted(ALL_ARCHS)
    task = NumberTranslationTask(TINY)
    test_numbers = task.numbers()["test"]
    for arch, result in results.items():
        metrics = result.metrics
        assert 0.0 <= metrics["test_exact_match"] <= 1.0 and 0.0 <= metrics["test_bleu"] <= 100.0, arch
        assert math.isfinite(metrics["test_loss"]) and math.isfinite(metrics["test_token_accuracy"]), arch
        lines = result.artifacts["examples.tsv"].splitlines()[1:]
        assert len(lines) == 20
        for line in lines:
            _, source, reference, _ = line.split("\t")
            number = next(n for n in test_numbers if num2words(n, lang="en") == detokenize(source))
            assert detokenize(reference) == num2words(number, lang="fr")
