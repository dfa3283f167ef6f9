"""ucr: sktime's bundled UCR/UEA sets, default split, validation from train, train-only normalisation."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from harness import DataConfig
from harness_builtins.tasks.ucr import DATASETS, UCRTask, data_dir, label_ids, read_split
from tests.plugins.tasks.smoke import ALL_ARCHS, smoke_runs, task_plan

pytestmark = pytest.mark.skipif(data_dir() is None, reason="needs sktime (its bundled UCR/UEA files)")

SPLITS = ("train", "val", "test")
#: (train file, test file, channels, shortest, longest, classes), read from the archive files
EXPECTED = {
    "JapaneseVowels": (270, 370, 12, 7, 29, 9),
    "GunPoint": (50, 150, 1, 150, 150, 2),
    "ItalyPowerDemand": (67, 1029, 1, 24, 24, 2),
    "ArrowHead": (36, 175, 1, 251, 251, 3),
}


@pytest.mark.parametrize("dataset", sorted(EXPECTED))
def test_every_dataset_loads_with_its_sizes(tmp_path: Path, dataset: str) -> None:
    n_train, n_test, dims, shortest, longest, classes = EXPECTED[dataset]
    task = UCRTask({"dataset": dataset})
    assert task.unavailable() is None
    info = task.info()
    assert (info.input.kind, info.input.size, info.input.max_length) == ("continuous", dims, longest)
    assert info.input.variable_length == (shortest != longest)
    assert info.output_size == classes and info.primary_metric == "accuracy" and info.direction == "max"
    meta = DATASETS[dataset]
    assert (meta.num_train, meta.num_test) == (n_train, n_test)
    arrays = task.arrays(tmp_path)
    sizes = [len(arrays[f"{s}_x"]) for s in SPLITS]
    assert sizes[0] + sizes[1] == n_train and sizes[2] == n_test
    assert sizes[1] == math.ceil(0.2 * n_train)
    lengths = [len(x) for s in SPLITS for x in arrays[f"{s}_x"]]
    assert (min(lengths), max(lengths)) == (shortest, longest)
    assert all(x.shape[1] == dims and x.dtype == np.float32 for s in SPLITS for x in arrays[f"{s}_x"])
    labels = np.concatenate([arrays[f"{s}_y"] for s in SPLITS])
    assert sorted(set(labels.tolist())) == list(range(classes))
    # stratified: every class is in the validation set, in its training-file proportion
    train_file_labels = np.concatenate([arrays["train_y"], arrays["val_y"]])
    assert set(arrays["val_y"].tolist()) == set(range(classes))
    share = np.bincount(arrays["val_y"], minlength=classes) / sizes[1]
    assert abs(share - np.bincount(train_file_labels) / n_train).max() < 0.1


def test_japanese_vowels_keeps_variable_lengths(tmp_path: Path) -> None:
    task = UCRTask({"dataset": "JapaneseVowels"})
    series, _ = read_split("JapaneseVowels", "TEST")
    arrays = task.arrays(tmp_path)
    assert [len(x) for x in arrays["test_x"]] == [len(s) for s in series]  # no padding at data level
    data = task.datamodule(DataConfig(batch_size=32, seed=0, cache_dir=tmp_path))
    data.setup("fit")
    batch = next(iter(data.test_dataloader()))
    assert batch["x"].shape == (32, int(batch["lengths"].max()), 12) and batch["x"].dtype == torch.float32
    assert (
        batch["lengths"].tolist() == [len(s) for s in series[:32]] and len(set(batch["lengths"].tolist())) > 1
    )
    assert batch["y"].shape == (32,) and batch["y"].dtype == torch.long
    assert torch.all(batch["x"][0, int(batch["lengths"][0]) :] == 0)  # padded in the batch only


def test_labels_map_in_sorted_order(tmp_path: Path) -> None:
    assert label_ids(np.asarray(["2", "10", "1"])) == {"1": 0, "2": 1, "10": 2}  # numeric labels numerically
    assert label_ids(np.asarray(["b", "a"])) == {"a": 0, "b": 1}
    arrays = UCRTask({"dataset": "ArrowHead"}).arrays(tmp_path)
    assert arrays["classes"].tolist() == ["0", "1", "2"]
    _, raw = read_split("ArrowHead", "TEST")
    np.testing.assert_array_equal(arrays["test_y"], raw.astype(int))


def test_train_and_val_are_disjoint_parts_of_the_training_file(tmp_path: Path) -> None:
    arrays = UCRTask({"dataset": "GunPoint"}).arrays(tmp_path)
    train, val = set(arrays["train_index"].tolist()), set(arrays["val_index"].tolist())
    assert not train & val and train | val == set(range(50))
    series, _ = read_split("GunPoint", "TRAIN")
    mean, std = arrays["mean"], arrays["std"]
    for split, index in (("train", arrays["train_index"]), ("val", arrays["val_index"])):
        for x, i in zip(arrays[f"{split}_x"], index, strict=True):
            np.testing.assert_allclose(x, (series[i] - mean) / std, rtol=1e-5, atol=1e-5)
    keys = [{x.tobytes() for x in arrays[f"{s}_x"]} for s in SPLITS]
    assert not keys[0] & keys[1] and not keys[0] & keys[2] and not keys[1] & keys[2]


@pytest.mark.parametrize("dataset", ["JapaneseVowels", "ItalyPowerDemand"])
def test_normalisation_uses_training_statistics_only(tmp_path: Path, dataset: str) -> None:
    arrays = UCRTask({"dataset": dataset}).arrays(tmp_path)
    train_steps = np.concatenate(arrays["train_x"]).astype(np.float64)
    np.testing.assert_allclose(train_steps.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train_steps.std(axis=0), 1.0, atol=1e-4)
    series, _ = read_split(dataset, "TRAIN")
    raw = np.concatenate([series[i] for i in arrays["train_index"]])
    np.testing.assert_allclose(arrays["mean"], raw.mean(axis=0))
    np.testing.assert_allclose(arrays["std"], raw.std(axis=0))
    test_raw, _ = read_split(dataset, "TEST")
    np.testing.assert_allclose(arrays["test_x"][3], (test_raw[3] - arrays["mean"]) / arrays["std"], atol=1e-5)


def test_validation_and_test_series_do_not_move_the_statistics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shift every validation and test series far away: the training statistics stay put."""
    from harness_builtins.tasks import ucr

    clean = UCRTask({"dataset": "JapaneseVowels"}).arrays(tmp_path / "clean")
    held_out = set(clean["val_index"].tolist())

    def shifted(dataset: str, split: str) -> tuple[list[np.ndarray], np.ndarray]:
        series, labels = read_split(dataset, split)  # type: ignore[arg-type]
        moved = [s * 50.0 + 1000.0 if split == "TEST" or i in held_out else s for i, s in enumerate(series)]
        return moved, labels

    monkeypatch.setattr(ucr, "read_split", shifted)
    arrays = UCRTask({"dataset": "JapaneseVowels"}).arrays(tmp_path / "shifted")
    np.testing.assert_array_equal(arrays["val_index"], clean["val_index"])
    np.testing.assert_allclose(arrays["mean"], clean["mean"])
    np.testing.assert_allclose(arrays["std"], clean["std"])
    for a, b in zip(arrays["train_x"], clean["train_x"], strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.concatenate(arrays["test_x"]).mean() > 100  # the shift shows where it was made


def test_deterministic_and_seeded(tmp_path: Path) -> None:
    first = UCRTask({"dataset": "ItalyPowerDemand"}).arrays(tmp_path / "a")
    second = UCRTask({"dataset": "ItalyPowerDemand"}).arrays(tmp_path / "b")
    for key in ("train_y", "val_y", "test_y", "train_index", "val_index", "mean"):
        np.testing.assert_array_equal(first[key], second[key])
    for split in SPLITS:
        for a, b in zip(first[f"{split}_x"], second[f"{split}_x"], strict=True):
            np.testing.assert_array_equal(a, b)
    other = UCRTask({"dataset": "ItalyPowerDemand", "split_seed": 1}).arrays(tmp_path / "c")
    assert not np.array_equal(other["val_index"], first["val_index"])


def test_cache_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = UCRTask({"dataset": "GunPoint"}).arrays(tmp_path)
    files = list((tmp_path / "ucr").glob("*.npz"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    task = UCRTask({"dataset": "GunPoint"})

    def no_build() -> dict[str, Any]:
        raise AssertionError("the cached arrays were rebuilt")

    monkeypatch.setattr(task, "_arrays", no_build)
    np.testing.assert_array_equal(task.arrays(tmp_path)["val_index"], first["val_index"])
    assert files[0].stat().st_mtime_ns == mtime
    UCRTask({"dataset": "GunPoint", "target_accuracy": 0.5}).arrays(tmp_path)  # not a data param
    assert len(list((tmp_path / "ucr").glob("*.npz"))) == 1
    UCRTask({"dataset": "GunPoint", "val_fraction": 0.3}).arrays(tmp_path)
    assert len(list((tmp_path / "ucr").glob("*.npz"))) == 2


def test_sources_state_the_anchors() -> None:
    assert "1.000" in UCRTask({"dataset": "GunPoint"}).info().source
    assert "0.966" in UCRTask({"dataset": "ItalyPowerDemand"}).info().source
    assert "0.863" in UCRTask({"dataset": "ArrowHead"}).info().source
    assert UCRTask({"dataset": "GunPoint", "target_accuracy": 0.7}).info().target == 0.7


def test_unavailable_without_sktime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sktime", None)  # find_spec() now reports it missing
    reason = UCRTask().unavailable()
    assert reason is not None and "pip install 'sktime>=0.30'" in reason
    plan = task_plan(tmp_path, "ucr", {}, ["gru"])
    assert not plan.runnable and all("sktime" in (c.skip_reason or "") for c in plan.skipped)


@pytest.mark.parametrize(
    ("dataset", "archs"), [("JapaneseVowels", ALL_ARCHS), ("ItalyPowerDemand", ["gru", "transformer"])]
)
def test_smoke_every_architecture(tmp_path: Path, dataset: str, archs: list[str]) -> None:
    """Variable-length multivariate series through every architecture; binary AUROC on the other."""
    plan = task_plan(tmp_path, "ucr", {"dataset": dataset}, archs)
    assert sorted(c.arch_label for c in plan.runnable) == sorted(archs) and not plan.skipped
    results = smoke_runs(tmp_path, "ucr", {"dataset": dataset}, archs)
    assert sorted(results) == sorted(archs)
    for arch, result in results.items():
        metrics = result.metrics
        for name in ("test_accuracy", "test_f1", "test_auroc"):
            assert 0.0 <= metrics[name] <= 1.0, (arch, name, metrics)
