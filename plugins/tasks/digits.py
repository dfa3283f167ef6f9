"""scikit-learn's handwritten digits (1,797 images, 8×8), read row by row.

Each image becomes a sequence of 8 steps with 8 features (pixel intensities
scaled to [0, 1]); the label is the digit. Splits are fixed and stratified.

Source: ``sklearn.datasets.load_digits`` (bundled with scikit-learn; the UCI
"Optical Recognition of Handwritten Digits" test set, CC BY 4.0). Reference: raw
PyTorch, hidden 64, Adam 3e-3, 15 epochs, measured on a 2-core CPU: RNN 0.950,
LSTM 0.924, GRU 0.960 test accuracy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from harness import DataConfig, InputSpec, Params, Task, TaskInfo

SOURCE = (
    "scikit-learn's load_digits (UCI optdigits, CC BY 4.0), 1,797 8x8 images read row by row. "
    "Reference (raw PyTorch, hidden 64, 15 epochs): RNN 0.950, LSTM 0.924, GRU 0.960 test accuracy."
)

if TYPE_CHECKING:
    import pytorch_lightning as pl


class DigitsParams(Params):
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share of images for validation")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="share of images for testing")
    split_seed: int = Field(0, description="seed of the fixed train/val/test split")
    column_major: bool = Field(False, description="read columns instead of rows")
    target_accuracy: float = Field(0.9, gt=0, le=1, description="test accuracy that counts as reached")

    @model_validator(mode="after")
    def _fractions(self) -> DigitsParams:
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError(
                f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:.2f} leaves "
                "almost nothing to train on; keep their sum below 0.9"
            )
        return self


class DigitsTask(Task[DigitsParams]):
    """Digits read row by row: 10-way sequence classification."""

    name = "digits"
    description = "scikit-learn digits as 8-step sequences of 8 pixels; 10-class classification."
    data_version = "1"

    def info(self) -> TaskInfo:
        p = self.params
        return TaskInfo.classification(
            InputSpec("continuous", 8, max_length=8),
            10,
            target=p.target_accuracy,
            source=SOURCE,
            metrics=("accuracy", "precision", "recall", "f1", "auroc"),
        )

    def _splits(self) -> dict[str, tuple[Any, Any]]:
        import numpy as np
        from sklearn.datasets import load_digits

        from harness.data import split_indices

        p = self.params
        digits = load_digits()
        images = (digits.images / 16.0).astype(np.float32)
        if p.column_major:
            images = images.transpose(0, 2, 1)
        labels = digits.target.astype(np.int64)
        index = split_indices(len(labels), p.val_fraction, p.test_fraction, p.split_seed, stratify=labels)
        return {split: (images[idx], labels[idx]) for split, idx in index.items()}

    def datamodule(self, config: DataConfig) -> pl.LightningDataModule:
        from harness.data import ArrayDataModule

        return ArrayDataModule(self._splits, config.batch_size, config.seed, num_workers=config.num_workers)
