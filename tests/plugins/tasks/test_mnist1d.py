"""mnist1d: the paper's MNIST-1D set, generated locally; validation carved from train."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from harness import DataConfig, HarnessError
from harness_builtins.tasks.mnist1d import MNIST1DTask, generate
from tests.plugins.tasks.smoke import ALL_ARCHS, smoke_runs, task_plan

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mnist1d") is None, reason="needs the mnist1d package"
)

SMALL = {"num_samples": 500}
SPLITS = ("train", "val", "test")


def _arrays(tmp: Path, **params: Any) -> dict[str, Any]:
    return MNIST1DTask(params).arrays(tmp / "cache")


def _rows(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in x.reshape(len(x), -1)}


def test_the_generator_is_the_paper_set_and_deterministic() -> None:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    assert (args.num_samples, args.train_split, args.final_seq_length, args.seed, args.shuffle_seq) == (
        5000, 0.8, 40, 42, False,
    )  # fmt: skip
    first, second = make_dataset(args), make_dataset(get_dataset_args())
    assert first["x"].shape == (4000, 40) and first["x_test"].shape == (1000, 40)
    for key in ("x", "y", "x_test", "y_test"):
        np.testing.assert_array_equal(first[key], second[key])  # it reseeds numpy itself


def test_splits_are_the_paper_split(tmp_path: Path) -> None:
    from mnist1d.data import get_dataset_args, make_dataset

    paper = make_dataset(get_dataset_args())
    arrays = _arrays(tmp_path)
    assert [len(arrays[f"{s}_y"]) for s in SPLITS] == [3600, 400, 1000]
    np.testing.assert_array_equal(arrays["test_x"][:, :, 0], paper["x_test"].astype(np.float32))
    np.testing.assert_array_equal(arrays["test_y"], paper["y_test"])
    train, val = _rows(arrays["train_x"]), _rows(arrays["val_x"])
    assert len(train) == 3600 and len(val) == 400 and not train & val
    assert train | val == _rows(paper["x"].astype(np.float32)[:, :, None])
    assert not (train | val) & _rows(arrays["test_x"])
    # the validation split is stratified: each class has ~10% of its training signals there
    share = np.bincount(arrays["val_y"], minlength=10) / np.bincount(paper["y"], minlength=10)
    assert np.all(np.abs(share - 0.1) < 0.01)


def test_shapes_match_info(tmp_path: Path) -> None:
    task = MNIST1DTask(SMALL)
    info = task.info()
    assert (info.input.size, info.input.max_length, info.output_size) == (1, 40, 10)
    assert info.primary_metric == "accuracy" and "GRU 91" in info.source and "GRU 57" in info.source
    data = task.datamodule(DataConfig(batch_size=8, seed=0, cache_dir=tmp_path))
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["x"].shape == (8, 40, 1) and batch["x"].dtype == torch.float32
    assert batch["y"].dtype == torch.long and torch.equal(batch["lengths"], torch.full((8,), 40))
    sizes = [len(data.datasets[s]) for s in SPLITS]
    assert sizes == [360, 40, 100]


def test_deterministic_overridable_and_rng_neutral(tmp_path: Path) -> None:
    np.random.seed(5)
    random.seed(5)
    before_np, before_py = np.random.get_state()[1].copy(), random.getstate()
    first = _arrays(tmp_path / "a", **SMALL)
    np.testing.assert_array_equal(np.random.get_state()[1], before_np)  # the generator's reseeding is undone
    assert random.getstate() == before_py
    second = _arrays(tmp_path / "b", **SMALL)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    other_seed = _arrays(tmp_path / "c", **SMALL, seed=7)
    assert not _rows(other_seed["test_x"]) & _rows(first["test_x"])
    other_split = _arrays(tmp_path / "d", **SMALL, split_seed=1)
    np.testing.assert_array_equal(other_split["test_x"], first["test_x"])  # the test split is the generator's
    assert _rows(other_split["val_x"]) != _rows(first["val_x"])


def test_shuffled_time_is_one_fixed_permutation(tmp_path: Path) -> None:
    plain = _arrays(tmp_path, **SMALL)
    shuffled = _arrays(tmp_path, **SMALL, shuffle_time=True)
    x, xs = plain["test_x"][:, :, 0], shuffled["test_x"][:, :, 0]
    # recover the permutation: column j of the shuffled signals is column perm[j] of the plain ones
    perm = np.array([int(np.flatnonzero((x == xs[:, [j]]).all(axis=0))[0]) for j in range(40)])
    assert sorted(perm.tolist()) == list(range(40)) and (perm != np.arange(40)).sum() > 30
    for split in SPLITS:  # the same permutation for every signal of every split
        np.testing.assert_array_equal(shuffled[f"{split}_x"], plain[f"{split}_x"][:, perm])
        np.testing.assert_array_equal(shuffled[f"{split}_y"], plain[f"{split}_y"])
    again = generate(500, 42, True)
    np.testing.assert_array_equal(again["x_test"].astype(np.float32), xs)


def test_cache_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _arrays(tmp_path, **SMALL)
    files = list((tmp_path / "cache" / "mnist1d").glob("*.npz"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    task = MNIST1DTask(SMALL)

    def no_build() -> dict[str, Any]:
        raise AssertionError("the cached arrays were rebuilt")

    monkeypatch.setattr(task, "_arrays", no_build)
    np.testing.assert_array_equal(task.arrays(tmp_path / "cache")["val_x"], first["val_x"])
    assert files[0].stat().st_mtime_ns == mtime
    _arrays(tmp_path, **SMALL, shuffle_time=True)
    assert len(list((tmp_path / "cache" / "mnist1d").glob("*.npz"))) == 2


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"num_samples": 100}, "use num_samples >= 125"),
        ({"num_samples": 50}, "greater than or equal to 100"),
        ({"val_fraction": 0.6}, "less than 0.5"),
        ({"shufle_time": True}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_params(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MNIST1DTask(params)


def test_unavailable_without_mnist1d(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert MNIST1DTask().unavailable() is None
    monkeypatch.setitem(sys.modules, "mnist1d", None)
    reason = MNIST1DTask().unavailable()
    assert reason is not None and "pip install mnist1d" in reason
    plan = task_plan(tmp_path, "mnist1d", SMALL, ["gru"])
    assert not plan.runnable and "pip install mnist1d" in (plan.skipped[0].skip_reason or "")
    with pytest.raises(HarnessError, match="pip install mnist1d"):
        MNIST1DTask(SMALL).arrays(tmp_path)


def test_smoke_every_architecture(tmp_path: Path) -> None:
    params = {"num_samples": 300}
    assert not task_plan(tmp_path, "mnist1d", params).skipped
    results = smoke_runs(tmp_path, "mnist1d", params)
    assert sorted(results) == sorted(ALL_ARCHS)
    for result in results.values():
        assert {"test_accuracy", "test_f1", "test_auroc"} <= set(result.metrics)
        assert result.cost["steps"] == 7  # ceil(216 / 32)
