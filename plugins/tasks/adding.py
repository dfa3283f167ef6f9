"""The adding problem (Hochreiter & Schmidhuber 1997; Bai et al. 2018 semantics).

Each step has two channels: a value drawn from U[0, 1] and a mask that is 1 at
exactly two positions. The target is the sum of the two marked values. A model
that predicts the mean (1.0) scores MSE = 1/6 ≈ 0.167; learning means going well
below that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from harness import DataConfig, InputSpec, Params, Task, TaskInfo

if TYPE_CHECKING:
    import numpy as np
    import pytorch_lightning as pl

TRIVIAL_MSE = 1.0 / 6.0
SOURCE = (
    "Generated (Bai et al. 2018 semantics: 2 channels, U[0,1] values and a two-hot mask). "
    "Anchors, T=600, ~70K params (Bai et al. 2018, Table 1): LSTM MSE 0.164, GRU 5.3e-5, RNN 0.177, "
    "TCN 5.8e-5; predicting 1 gives 1/6 = 0.167. Raw PyTorch at T=200, hidden 64 (2-core CPU): "
    "GRU 0.0096 after 1,256 steps, LSTM 0.0081 after ~4,100 steps, RNN 0.160 (never learns)."
)


class AddingParams(Params):
    length: int = Field(50, ge=2, description="sequence length T")
    num_train: int = Field(5000, ge=1, description="training sequences")
    num_val: int = Field(1000, ge=1, description="validation sequences")
    num_test: int = Field(1000, ge=1, description="test sequences")
    data_seed: int = Field(1234, description="seed of the generated data (fixed across run seeds)")
    target_mse: float = Field(0.01, gt=0, description="test MSE that counts as solved (time-to-target)")


def make_adding(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` adding-problem sequences ``[n, length, 2]`` and their targets ``[n, 1]``."""
    import numpy as np

    values = rng.random((n, length), dtype=np.float64)
    mask = np.zeros((n, length))
    # two distinct marked positions per sequence, anywhere (as in Bai et al.'s generator)
    first = rng.integers(0, length, size=n)
    second = (first + rng.integers(1, length, size=n)) % length
    rows = np.arange(n)
    mask[rows, first] = 1.0
    mask[rows, second] = 1.0
    x = np.stack([values, mask], axis=-1).astype(np.float32)
    y = (values * mask).sum(axis=1, keepdims=True).astype(np.float32)
    return x, y


class AddingTask(Task[AddingParams]):
    """Adding problem: regress the sum of the two marked values in a long sequence."""

    name = "adding"
    description = "Adding problem (long-range memory): sum the two marked values; regression, MSE."
    data_version = "1"

    def info(self) -> TaskInfo:
        p = self.params
        return TaskInfo(
            input=InputSpec("continuous", 2, max_length=p.length),
            output_kind="regression",
            output_size=1,
            loss="mean squared error",
            metrics=("mse", "mae"),
            primary_metric="mse",
            direction="min",
            target=p.target_mse,
            divergence_bound=100 * TRIVIAL_MSE,  # predicting the mean scores 1/6
            source=SOURCE,
        )

    def _arrays(self) -> dict[str, Any]:
        import numpy as np

        p = self.params
        rng = np.random.default_rng(p.data_seed)
        out: dict[str, Any] = {}
        for split, n in (("train", p.num_train), ("val", p.num_val), ("test", p.num_test)):
            out[f"{split}_x"], out[f"{split}_y"] = make_adding(n, p.length, rng)
        return out

    def datamodule(self, config: DataConfig) -> pl.LightningDataModule:
        from harness.data import arrays_datamodule, cached_arrays

        p = self.params
        spec = {"task": self.name, "version": self.data_version, **p.model_dump(exclude={"target_mse"})}

        return arrays_datamodule(
            lambda: cached_arrays(config.cache_dir, self.name, spec, self._arrays), config
        )
