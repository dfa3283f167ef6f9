"""MNIST-1D (Greydanus & Kobak, ICML 2024): 1-D signals of length 40, ten classes.

Data: generated locally by the ``mnist1d`` package (PyPI, Apache-2.0) with
``mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())``: the exact set of the paper,
4,000 training and 1,000 test signals of 40 steps (``num_samples`` 5,000, train split 0.8,
generator seed 42; the generator reseeds numpy itself, so the same arguments always give the same
signals). ``get_dataset()`` is never called: it tries a download first. The validation split is
carved from the 4,000 training signals (stratified, ``split_seed``); the test split is the paper's.
``shuffle_time`` is the paper's shuffled-time control: the generator's own ``shuffle_seq`` option,
one fixed permutation of the 40 time steps applied to every signal.

Anchors (Greydanus & Kobak 2024, test accuracy %): logistic regression 32, MLP 68, CNN 94, GRU 91,
human 96; with shuffled time: CNN 56, GRU 57. The paper trains on all 4,000 training signals;
here 10% of them (by default) are held out for validation.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from harness import DataConfig, InputSpec, Params, Task, TaskInfo

from ._cache import task_arrays

if TYPE_CHECKING:
    import pytorch_lightning as pl

INSTALL = "pip install mnist1d (or pip install 'harness[tasks]')"
SOURCE = (
    "MNIST-1D, generated locally by the mnist1d package (Apache-2.0) with make_dataset(get_dataset_args()): "
    "the paper's 4,000 train / 1,000 test signals of length 40; validation carved from train. "
    "Anchors (Greydanus & Kobak, ICML 2024, test acc %): logistic 32, MLP 68, CNN 94, GRU 91, human 96; "
    "shuffled time: CNN 56, GRU 57."
)


class MNIST1DParams(Params):
    num_samples: int = Field(
        5000,
        ge=100,
        description="signals generated (the paper: 5,000; 80% train, 20% test); lower for smoke tests",
    )
    seed: int = Field(42, description="seed of the mnist1d generator (the paper: 42)")
    shuffle_time: bool = Field(
        False, description="the paper's shuffled-time control: one fixed permutation of the 40 time steps"
    )
    val_fraction: float = Field(
        0.1, gt=0, lt=0.5, description="share of the training signals held out for validation"
    )
    split_seed: int = Field(0, description="seed of the stratified train/validation split")
    target_accuracy: float = Field(0.9, gt=0, le=1, description="test accuracy that counts as reached")

    @model_validator(mode="after")
    def _enough_for_validation(self) -> MNIST1DParams:
        train = int(self.num_samples * 0.8)
        if self.val_fraction * train < 10:
            needed = math.ceil(10 / (self.val_fraction * 0.8))
            raise ValueError(
                f"num_samples={self.num_samples} leaves {self.val_fraction * train:.0f} validation signals, "
                f"fewer than the 10 classes a stratified split needs; use num_samples >= {needed} or a "
                "larger val_fraction"
            )
        return self


def generate(num_samples: int, seed: int, shuffle_time: bool) -> dict[str, Any]:
    """``make_dataset`` with the paper's arguments (bar the overrides); numpy's and Python's
    global random states are restored afterwards (the generator reseeds them)."""
    import random

    import numpy as np
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed, args.shuffle_seq = num_samples, seed, shuffle_time
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        return make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


class MNIST1DTask(Task[MNIST1DParams]):
    """MNIST-1D: classify 40-step 1-D signals into ten digits."""

    name = "mnist1d"
    description = (
        "MNIST-1D (Greydanus & Kobak 2024): 40-step 1-D signals, 10 classes; the paper's exact data."
    )
    data_version = "1"

    def info(self) -> TaskInfo:
        p = self.params
        return TaskInfo.classification(
            InputSpec("continuous", 1, max_length=40),
            10,
            target=p.target_accuracy,
            source=SOURCE,
        )

    def unavailable(self) -> str | None:
        import importlib.util

        if importlib.util.find_spec("mnist1d") is None:
            return f"`{self.name}` needs the mnist1d package, which is not installed; install it: `{INSTALL}`"
        return None

    def _arrays(self) -> dict[str, Any]:
        import numpy as np
        from sklearn.model_selection import train_test_split

        p = self.params
        data = generate(p.num_samples, p.seed, p.shuffle_time)
        x, y = data["x"].astype(np.float32), data["y"].astype(np.int64)
        train, val = train_test_split(
            np.arange(len(y)), test_size=p.val_fraction, random_state=p.split_seed, stratify=y
        )
        train, val = np.sort(train), np.sort(val)
        return {
            "train_x": x[train, :, None], "train_y": y[train],
            "val_x": x[val, :, None], "val_y": y[val],
            "test_x": data["x_test"].astype(np.float32)[:, :, None],
            "test_y": data["y_test"].astype(np.int64),
        }  # fmt: skip

    def arrays(self, cache_dir: Path) -> dict[str, Any]:
        """The cached splits: ``{split}_x`` float32 ``[N, 40, 1]``, ``{split}_y`` labels."""
        return task_arrays(self, cache_dir, self._arrays, package="mnist1d")

    def datamodule(self, config: DataConfig) -> pl.LightningDataModule:
        from harness.data import arrays_datamodule

        return arrays_datamodule(lambda: self.arrays(config.cache_dir), config)
