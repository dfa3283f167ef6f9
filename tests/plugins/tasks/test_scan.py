"""The `scan` task: the regenerated grammar, its three splits, batches, caching, decoding, training."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from harness import DataConfig
from harness_builtins.architectures import GRU
from harness_builtins.metrics._sequence import build
from harness_builtins.tasks._text import BOS, EOS, PAD
from harness_builtins.tasks.scan import ScanTask, scan_commands, scan_split_indices
from tests.plugins.tasks.smoke import ALL_ARCHS, smoke_runs, task_plan

TINY = {"max_train": 96, "max_val": 32, "max_test": 32}
MEANING = dict(scan_commands())


def commands_of(split: str, **params: Any) -> dict[str, list[tuple[str, ...]]]:
    examples = ScanTask({"split": split, **params}).build_examples()
    return {name: [tuple(words) for words in sources] for name, (sources, _) in examples.items()}


def test_the_grammar_gives_all_20910_commands_with_their_meanings() -> None:
    commands = scan_commands()
    assert len(commands) == 20_910 and len(MEANING) == 20_910  # all distinct
    assert max(len(actions) for _, actions in commands) == 48
    assert max(len(words) for words, _ in commands) == 9
    L, R = "I_TURN_LEFT", "I_TURN_RIGHT"
    expected = {
        ("jump",): ("I_JUMP",),
        ("turn", "left"): (L,),
        ("walk", "right"): (R, "I_WALK"),
        ("look", "opposite", "left"): (L, L, "I_LOOK"),
        ("turn", "opposite", "right"): (R, R),
        ("run", "around", "right"): (R, "I_RUN") * 4,
        ("turn", "around", "left", "twice"): (L,) * 8,
        ("jump", "thrice", "and", "walk", "left"): ("I_JUMP",) * 3 + (L, "I_WALK"),
        ("turn", "left", "after", "run", "twice"): ("I_RUN", "I_RUN", L),
        ("walk", "opposite", "right", "thrice", "after", "look", "around", "left"): (L, "I_LOOK") * 4
        + (R, R, "I_WALK") * 3,
    }
    for words, actions in expected.items():
        assert MEANING[words] == actions, words


def test_split_sizes_match_the_paper() -> None:
    simple = scan_split_indices("simple", 0.1, 0)
    assert len(simple["test"]) == 4_182 and len(simple["train"]) + len(simple["val"]) == 16_728
    length = scan_split_indices("length", 0.1, 0)
    assert len(length["train"]) + len(length["val"]) == 16_990 and len(length["test"]) == 3_920
    jump = scan_split_indices("add_jump", 0.1, 0)
    assert len(jump["test"]) == 7_706
    # 13,203 commands without "jump" on the training side, plus "jump" itself 1,467 times
    assert len(set(jump["train"])) + len(jump["val"]) == 13_203 + 1
    assert len(jump["train"]) + len(jump["val"]) == 13_203 + 1_467 == 14_670


@pytest.mark.parametrize("split", ["simple", "length", "add_jump"])
def test_splits_do_not_overlap(split: str) -> None:
    data = commands_of(split)
    train, val, test = (set(data[s]) for s in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(val) == len(data["val"]) and len(test) == len(data["test"])  # no repeats outside training
    if split == "simple":
        assert len(train) + len(val) + len(test) == 20_910
    if split == "length":
        assert all(len(MEANING[c]) <= 22 for c in train | val) and all(len(MEANING[c]) > 22 for c in test)
    if split == "add_jump":
        assert all("jump" not in c for c in val) and all("jump" in c and c != ("jump",) for c in test)
        assert [c for c in data["train"] if "jump" in c] == [("jump",)] * 1_467


def test_splits_are_seeded() -> None:
    first, again = scan_split_indices("simple", 0.1, 0), scan_split_indices("simple", 0.1, 0)
    other = scan_split_indices("simple", 0.1, 1)
    assert first == again and first["test"] != other["test"]
    # the length split's test side is fixed; only the validation carve-out moves
    assert scan_split_indices("length", 0.1, 0)["test"] == scan_split_indices("length", 0.1, 5)["test"]


def test_caps_take_seeded_subsets_and_keep_jump() -> None:
    data = commands_of("add_jump", max_train=40, max_val=10, max_test=12, jump_repeats=1)
    assert [len(data[s]) for s in ("train", "val", "test")] == [40, 10, 12]
    assert ("jump",) in data["train"]  # the one example of what "jump" means survives the cap
    assert data == commands_of("add_jump", max_train=40, max_val=10, max_test=12, jump_repeats=1)
    full = commands_of("add_jump", jump_repeats=1)
    assert set(data["test"]) <= set(full["test"]) and set(data["train"]) <= set(full["train"])


def _datamodule(tmp_path: Path, **params: Any) -> Any:
    data = ScanTask({**TINY, **params}).datamodule(DataConfig(batch_size=16, seed=0, cache_dir=tmp_path))
    data.setup("fit")
    return data


def test_batches_match_info(tmp_path: Path) -> None:
    task = ScanTask(TINY)
    info = task.info()
    assert info.output_kind == "seq2seq" and info.requires == frozenset({"seq2seq"})
    assert info.input.kind == "tokens" and info.input.variable_length and info.input.size == 17
    assert info.output_vocab_size == 10 and info.output_max_length == 49
    assert info.primary_metric == "exact_match" and info.direction == "max"
    assert "99.7" in info.source and "13.8" in info.source and "0.08" in info.source
    data = _datamodule(tmp_path)
    assert [len(data.datasets[s]) for s in ("train", "val", "test")] == [96, 32, 32]
    batch = next(iter(data.val_dataloader()))
    x, y, lengths, y_lengths = batch["x"], batch["y"], batch["lengths"], batch["y_lengths"]
    assert x.dtype == torch.long and y.dtype == torch.long and x.shape == (16, int(lengths.max()))
    assert int(x.max()) < info.input.size and int(y.max()) < info.output_vocab_size
    assert 1 <= int(lengths.min()) and int(lengths.max()) <= 9 and int(y_lengths.max()) <= 49
    for row, n in enumerate(y_lengths.tolist()):
        assert y[row, n - 1] == EOS and (y[row, : n - 1] > EOS).all() and (y[row, n:] == PAD).all()
        words = tuple(task.source_vocab().decode(x[row, : lengths[row]].tolist()))
        assert tuple(task.target_vocab().decode(y[row].tolist())) == MEANING[words]


def test_data_is_deterministic_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    task = ScanTask({"split": "length", **TINY})
    arrays = task.load_arrays(tmp_path / "a")
    again = ScanTask({"split": "length", **TINY}).load_arrays(tmp_path / "b")  # built afresh elsewhere
    for key in arrays:
        assert all(np.array_equal(u, v) for u, v in zip(arrays[key], again[key])), key
    files = list((tmp_path / "a" / "scan").glob("*.npz"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns

    def no_rebuild(self: ScanTask) -> None:
        raise AssertionError("the cached data should have been read, not rebuilt")

    monkeypatch.setattr(ScanTask, "build_examples", no_rebuild)
    cached = ScanTask({"split": "length", **TINY}).load_arrays(tmp_path / "a")
    assert files[0].stat().st_mtime_ns == mtime
    assert all(np.array_equal(u, v) for u, v in zip(arrays["test_y"], cached["test_y"]))
    with pytest.raises(AssertionError, match="rebuilt"):  # other params: a different cache entry
        ScanTask({"split": "simple", **TINY}).load_arrays(tmp_path / "a")


class OracleDecoder(nn.Module):
    """Scores the reference's next token highest at every position (one-hot features), except
    in the rows listed in ``wrong``, where it says I_WALK forever."""

    def __init__(self, y: torch.Tensor, wrong: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.y = y
        self.wrong = wrong
        self.output_size = 10

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        self.seen = tokens
        steps = tokens.shape[1]
        target = torch.nn.functional.pad(self.y, (0, max(0, steps - self.y.shape[1])), value=EOS)[
            :, :steps
        ].clone()
        target[list(self.wrong)] = 4  # I_WALK
        return nn.functional.one_hot(target, 10).float()


def test_greedy_decoding_and_scoring(tmp_path: Path) -> None:
    task = ScanTask(TINY)
    batch = next(iter(_datamodule(tmp_path).test_dataloader()))
    network = SimpleNamespace(
        encoder=GRU({"hidden_size": 8}).build_encoder(task.info().input),
        decoder=OracleDecoder(batch["y"]),
        head=nn.Identity(),
    )
    prediction = task.forward(network, batch)
    assert prediction.logits.shape == (16, batch["y"].shape[1], 10)
    y = batch["y"]  # teacher forcing: the decoder reads [BOS] + y[:-1]
    assert torch.equal(network.decoder.seen, torch.cat([torch.full((16, 1), BOS), y[:, :-1]], dim=1))
    # cross-entropy of one-hot logits on the right token: log(1 + 9 / e); padding is ignored
    loss = float(task.batch_loss(prediction, batch))
    assert math.isclose(loss, math.log(1 + 9 / math.e), rel_tol=1e-5)
    garbage = prediction.logits.clone()
    garbage[batch["y"] == PAD] = torch.randn(10) * 100
    assert math.isclose(
        float(task.batch_loss(prediction._replace(logits=garbage), batch)), loss, rel_tol=1e-6
    )
    hypotheses, references = task.evaluate(network, prediction, batch)
    assert hypotheses == references
    for row, reference in enumerate(references):
        words = tuple(task.source_vocab().decode(batch["x"][row].tolist()))
        assert reference == " ".join(MEANING[words])
    network.decoder = OracleDecoder(batch["y"], wrong=(0, 5))
    hypotheses, references = task.evaluate(network, task.forward(network, batch), batch)
    assert hypotheses[0] == " ".join(["I_WALK"] * 49)  # never emits EOS: cut at output_max_length
    metric = build("exact_match")
    metric.update(hypotheses, references)
    assert math.isclose(float(metric.compute()), 14 / 16)


def test_architectures_without_seq2seq_are_skipped(tmp_path: Path, make_plugin: Any) -> None:
    make_plugin(
        "plain_encoder_plugin",
        """
        from harness import hookimpl
        from harness_builtins.architectures import GRU

        class PlainGRU(GRU):
            name = "plain_gru"
            supports = frozenset({"variable_length", "causal"})

        @hookimpl
        def register_architectures(register):
            register(PlainGRU)
    """,
    )
    plan = task_plan(tmp_path, "scan", TINY, archs=[*ALL_ARCHS, "plain_gru"])
    assert sorted(c.arch_label for c in plan.runnable) == sorted(ALL_ARCHS)
    (skipped,) = plan.skipped
    assert skipped.arch_label == "plain_gru" and "seq2seq" in skipped.skip_reason


def test_smoke_training_over_all_architectures(tmp_path: Path) -> None:
    results = smoke_runs(tmp_path, "scan", {"split": "simple", **TINY})
    assert sorted(results) == sorted(ALL_ARCHS)
    for arch, result in results.items():
        metrics = result.metrics
        assert 0.0 <= metrics["test_exact_match"] <= 1.0 and 0.0 <= metrics["test_token_accuracy"] <= 1.0, (
            arch
        )
        assert 0.0 <= metrics["test_bleu"] <= 100.0 and math.isfinite(metrics["test_loss"]), arch
        assert "val_exact_match" in result.history[0]
        lines = result.artifacts["examples.tsv"].splitlines()
        assert lines[0] == "correct\tsource\treference\tprediction" and len(lines) == 21
        for line in lines[1:]:
            correct, source, reference, prediction = line.split("\t")
            assert reference == " ".join(MEANING[tuple(source.split())])
            assert correct == ("yes" if prediction == reference else "no")
