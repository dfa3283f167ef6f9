"""harness.data: the cache keeps ragged arrays, batches pad ragged inputs and targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from harness.data import SequenceDataset, cached_arrays, pad_collate


def test_ragged_targets_are_padded_with_their_lengths() -> None:
    xs = [np.ones((3, 2)), np.ones((5, 2))]
    ys = [np.array([4, 5]), np.array([6, 7, 8, 9])]
    data = SequenceDataset(xs, ys)
    assert data.ragged_y
    batch = pad_collate([data[0], data[1]], ragged_targets=data.ragged_y)
    assert batch["x"].shape == (2, 5, 2) and batch["lengths"].tolist() == [3, 5]
    assert batch["y"].tolist() == [[4, 5, 0, 0], [6, 7, 8, 9]]
    assert batch["y_lengths"].tolist() == [2, 4]
    assert batch["y"].dtype == torch.long
    same = pad_collate([data[1], data[1]], ragged_targets=True)  # equal lengths in this batch
    assert same["y_lengths"].tolist() == [4, 4]


def test_fixed_targets_stack_without_lengths() -> None:
    data = SequenceDataset([np.zeros((2, 1)), np.zeros((4, 1))], np.array([1, 0]))
    assert not data.ragged_y
    batch = pad_collate([data[0], data[1]])
    assert batch["y"].tolist() == [1, 0] and "y_lengths" not in batch
    floats = SequenceDataset([np.zeros((2, 1))], np.array([[0.5]], dtype=np.float32))
    assert pad_collate([floats[0]])["y"].dtype == torch.float32


def test_cache_round_trips_ragged_arrays_and_builds_once(tmp_path: Path) -> None:
    calls = []

    def build() -> dict:
        calls.append(1)
        return {"x": [np.arange(3), np.arange(5)], "y": np.array([1, 2]), "vocab": np.array(["<pad>", "a"])}

    spec = {"task": "t", "n": 2}
    first = cached_arrays(tmp_path, "t", spec, build)
    second = cached_arrays(tmp_path, "t", spec, build)
    assert len(calls) == 1
    assert [a.tolist() for a in second["x"]] == [[0, 1, 2], [0, 1, 2, 3, 4]]
    assert second["vocab"].tolist() == ["<pad>", "a"] and second["y"].tolist() == first["y"].tolist()
    cached_arrays(tmp_path, "t", {**spec, "n": 3}, build)
    assert len(calls) == 2  # another spec, another file


def _build_in_process(cache: str, counter: str) -> list[int]:
    import time

    def build() -> dict:
        with open(counter, "a") as handle:
            handle.write("built\n")
        time.sleep(0.5)
        return {"x": np.arange(4)}

    return cached_arrays(Path(cache), "shared", {"k": 1}, build)["x"].tolist()


def test_concurrent_workers_build_a_data_set_once(tmp_path: Path) -> None:
    import multiprocessing

    counter = tmp_path / "counter.txt"
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.starmap(_build_in_process, [(str(tmp_path / "cache"), str(counter))] * 3)
    assert results == [[0, 1, 2, 3]] * 3
    assert counter.read_text().count("built") == 1
