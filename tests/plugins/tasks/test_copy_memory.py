"""copy_memory: the generator's layout, the memoryless baseline, per-step head and metrics, training."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from harness import DataConfig
from harness_builtins.tasks.copy_memory import CopyMemoryTask, make_copy_memory, memoryless_ce
from tests.plugins.tasks.smoke import ALL_ARCHS, smoke_runs, task_plan

SMALL = {"length": 15, "num_train": 64, "num_val": 32, "num_test": 32}
SPLITS = ("train", "val", "test")


def test_generator_layout_bai_et_al() -> None:
    T = 12
    x, y = make_copy_memory(200, T, np.random.default_rng(0))
    assert x.shape == y.shape == (200, T + 20)
    symbols = x[:, :10]
    assert symbols.min() == 1 and symbols.max() == 8 and len(np.unique(symbols)) == 8
    assert (x[:, 10 : T + 9] == 0).all()  # T - 1 blanks
    assert (x[:, T + 9] == 9).all()  # the delimiter
    assert (x[:, T + 10 :] == 9).all()  # the recall phase is filled with 9s (the last 11 entries are 9)
    assert (x[:, : T + 9] != 9).all()  # no 9 before the delimiter
    assert (y[:, : T + 10] == 0).all()  # blank targets everywhere ...
    np.testing.assert_array_equal(y[:, -10:], symbols)  # ... but the last 10 steps recall the symbols


def test_generator_blank_recall_variant() -> None:
    T = 7
    x, y = make_copy_memory(50, T, np.random.default_rng(1), recall_fill="blank")
    assert (x[:, T + 9] == 9).all() and (x == 9).sum(axis=1).tolist() == [1] * 50  # one delimiter
    assert (x[:, T + 10 :] == 0).all() and (x[:, 10 : T + 9] == 0).all()
    np.testing.assert_array_equal(y[:, -10:], x[:, :10])
    delimited, _ = make_copy_memory(50, T, np.random.default_rng(1))
    np.testing.assert_array_equal(delimited[:, :10], x[:, :10])  # same symbols from the same seed


def test_symbols_are_uniform_over_1_to_8() -> None:
    x, _ = make_copy_memory(4000, 1, np.random.default_rng(2))
    counts = np.bincount(x[:, :10].ravel(), minlength=9)[1:]
    assert counts.sum() == 40000 and abs(counts / 40000 - 1 / 8).max() < 0.01


@pytest.mark.parametrize("T", [1, 50, 1000])
def test_memoryless_baseline_matches_formula(T: int) -> None:
    """The best predictor without memory (blank w.p. 1 outside the recall phase, uniform over
    1..8 inside it) scores 10·ln8/(T+20) on generated data; the formula gives 0.0204 at T=1000."""
    _, y = make_copy_memory(64, T, np.random.default_rng(3))
    logits = torch.full((64, T + 20, 10), -1e4)
    logits[:, : T + 10, 0] = 0.0  # blank, probability 1
    logits[:, T + 10 :, 1:9] = 0.0  # uniform over the 8 symbols
    task = CopyMemoryTask({"length": T})
    ce = task.loss(logits, torch.as_tensor(y, dtype=torch.long)).item()
    assert ce == pytest.approx(10 * math.log(8) / (T + 20), rel=1e-5)
    assert ce == pytest.approx(memoryless_ce(T), rel=1e-5)
    assert round(memoryless_ce(1000), 4) == 0.0204
    info = task.info()
    assert f"{memoryless_ce(T):.4g}" in info.source and "3.5e-5" in info.source and "0.0197" in info.source
    assert info.target == pytest.approx(memoryless_ce(T) / 10)


def test_info_and_batches_match(tmp_path: Path) -> None:
    task = CopyMemoryTask(SMALL)
    info = task.info()
    assert (info.input.kind, info.input.size, info.input.max_length) == ("tokens", 10, 35)
    assert info.output_kind == "sequence_labeling" and info.output_size == 10
    assert (info.primary_metric, info.direction) == ("cross_entropy", "min") and "accuracy" in info.metrics
    assert info.requires == frozenset()  # a bidirectional model may solve it: it reads the whole input
    data = task.datamodule(DataConfig(batch_size=16, seed=0, cache_dir=tmp_path))
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["x"].shape == (16, 35) and batch["x"].dtype == torch.long
    assert batch["y"].shape == (16, 35) and batch["y"].dtype == torch.long
    assert torch.equal(batch["lengths"], torch.full((16,), 35))
    assert [len(data.datasets[s]) for s in SPLITS] == [64, 32, 32]
    scalar = CopyMemoryTask({**SMALL, "encoding": "scalar"})
    assert (scalar.info().input.kind, scalar.info().input.size) == ("continuous", 1)
    data = scalar.datamodule(DataConfig(batch_size=16, seed=0, cache_dir=tmp_path))
    data.setup("fit")
    first = next(iter(data.val_dataloader()))
    assert first["x"].shape == (16, 35, 1) and first["x"].dtype == torch.float32
    tokens = task.arrays(tmp_path)["val_x"][:16]
    np.testing.assert_array_equal(first["x"][..., 0].numpy(), tokens)  # the raw digit, as in the TCN repo


def test_head_forward_and_evaluate_per_step(tmp_path: Path) -> None:
    task = CopyMemoryTask(SMALL)
    from harness_builtins.architectures import GRU

    encoder = GRU({"hidden_size": 8}).build_encoder(task.info().input)
    network = torch.nn.Module()
    network.encoder, network.head = encoder, task.build_head(encoder.output_size)
    arrays = task.arrays(tmp_path)
    batch = {
        "x": torch.as_tensor(arrays["test_x"][:4], dtype=torch.long),
        "y": torch.as_tensor(arrays["test_y"][:4], dtype=torch.long),
        "lengths": torch.full((4,), 35),
    }
    logits = task.forward(network, batch)
    assert logits.shape == (4, 35, 10)
    inputs = task.evaluate(network, logits, batch)  # likelihoods over every position, the rest ("*") recalled
    assert set(inputs) == {"cross_entropy", "bits_per_char", "perplexity", "*"}
    assert inputs["cross_entropy"][0].shape == (4 * 35, 10) and inputs["cross_entropy"][1].shape == (4 * 35,)
    recalled_logits, recalled = inputs["*"]
    assert recalled_logits.shape == (40, 10)
    np.testing.assert_array_equal(recalled.numpy(), arrays["test_x"][:4, :10].ravel())


def test_deterministic_and_seeded(tmp_path: Path) -> None:
    first = CopyMemoryTask(SMALL).arrays(tmp_path / "a")
    second = CopyMemoryTask(SMALL).arrays(tmp_path / "b")
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    other = CopyMemoryTask({**SMALL, "data_seed": 5}).arrays(tmp_path / "c")
    assert not np.array_equal(other["train_x"], first["train_x"])
    assert len({first[f"{s}_x"][:, :10].tobytes() for s in SPLITS}) == 3  # the splits differ


def test_cache_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = CopyMemoryTask(SMALL).arrays(tmp_path)
    files = list((tmp_path / "copy_memory").glob("*.npz"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    task = CopyMemoryTask(SMALL)

    def no_build() -> dict[str, Any]:
        raise AssertionError("the cached arrays were rebuilt")

    monkeypatch.setattr(task, "_arrays", no_build)
    np.testing.assert_array_equal(task.arrays(tmp_path)["train_y"], first["train_y"])
    assert files[0].stat().st_mtime_ns == mtime
    CopyMemoryTask({**SMALL, "target_ce": 0.001, "encoding": "scalar"}).arrays(tmp_path)  # same data
    assert len(list((tmp_path / "copy_memory").glob("*.npz"))) == 1
    CopyMemoryTask({**SMALL, "length": 16}).arrays(tmp_path)
    assert len(list((tmp_path / "copy_memory").glob("*.npz"))) == 2


def test_smoke_every_architecture(tmp_path: Path) -> None:
    params = {"length": 6, "num_train": 64, "num_val": 32, "num_test": 32}
    plan = task_plan(tmp_path, "copy_memory", params)
    assert sorted(c.arch_label for c in plan.runnable) == sorted(ALL_ARCHS) and not plan.skipped
    results = smoke_runs(tmp_path, "copy_memory", params)
    assert sorted(results) == sorted(ALL_ARCHS)
    for arch, result in results.items():
        metrics = result.metrics
        assert math.isfinite(metrics["test_cross_entropy"]), arch
        assert metrics["test_cross_entropy"] == pytest.approx(metrics["test_loss"], rel=1e-4), arch
        assert 0.0 <= metrics["test_accuracy"] <= 1.0, arch
    (tmp_path / "scalar").mkdir()
    scalar = smoke_runs(
        tmp_path / "scalar", "copy_memory", {**params, "encoding": "scalar"}, ["gru", "transformer"]
    )
    assert all(
        r.cost["num_params"] < results[a].cost["num_params"] for a, r in scalar.items()
    )  # no embedding


def test_suite_may_pick_likelihood_and_recall_metrics(tmp_path: Path) -> None:
    params = {"length": 4, "num_train": 32, "num_val": 32, "num_test": 32}
    from harness.matrix import build_plan
    from harness.plugins import get_registry
    from harness.suite import load_suite
    from harness.train.trial import run_trial
    from tests.helpers import failure_details, write_suite
    from tests.plugins.tasks.smoke import task_suite

    suite = task_suite("copy_memory", params, ["gru"])
    suite["tasks"][0]["metrics"] = ["perplexity", "cross_entropy", "f1"]
    plan = build_plan(load_suite(write_suite(tmp_path, suite)), get_registry())
    spec = plan.runnable[0]
    assert spec.metrics == ("perplexity", "cross_entropy", "f1")
    result = run_trial(spec.model_copy(update={"cache_dir": str(tmp_path / "cache")}))
    assert result.finished, failure_details(result)
    metrics = result.metrics
    assert metrics["test_perplexity"] == pytest.approx(math.exp(metrics["test_cross_entropy"]), rel=1e-4)
    assert 0.0 <= metrics["test_f1"] <= 1.0 and "test_accuracy" not in metrics
