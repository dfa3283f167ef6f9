"""Time-series classification on the UCR/UEA sets that sktime bundles.

``dataset`` picks one of four problems, read from the ``.ts`` files inside the installed
sktime package (``sktime/datasets/data/<name>/<name>_{TRAIN,TEST}.ts``, parsed with
``sktime.datasets.load_from_tsfile``; nothing is downloaded):

=================  ====  ===========  =====  =====  =======
dataset            dims  length       train  test   classes
=================  ====  ===========  =====  =====  =======
JapaneseVowels     12    7-29 (var.)  270    370    9
GunPoint           1     150          50     150    2
ItalyPowerDemand   1     24           67     1029   2
ArrowHead          1     251          36     175    3
=================  ====  ===========  =====  =====  =======

The archive's default train/test split is kept; a validation set is carved from the training
file (seeded, stratified by class). Every channel is z-normalised with the mean and standard
deviation of the remaining training series (all their steps), and labels map to ids in sorted
order. JapaneseVowels keeps its variable lengths (batches are padded, with ``lengths``).

Source and license: the UCR archive (Dau et al. 2019) and the UEA multivariate archive
(Bagnall et al. 2018; JapaneseVowels from UCI, Kudo et al. 1999), free for research use with
citation, as bundled by sktime (BSD-3-Clause). Anchors, accuracy on the default test split,
InceptionTime in the bake-off results shipped with aeon: GunPoint 1.000, ItalyPowerDemand
0.966, ArrowHead 0.863 (no anchor recorded here for JapaneseVowels).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from harness import DataConfig, HarnessError, InputSpec, Params, Task, TaskInfo

from ._cache import task_arrays

if TYPE_CHECKING:
    import numpy as np
    import pytorch_lightning as pl

DatasetName = Literal["JapaneseVowels", "GunPoint", "ItalyPowerDemand", "ArrowHead"]


@dataclass(frozen=True)
class UCRSet:
    dims: int
    max_length: int
    num_classes: int
    variable_length: bool
    num_train: int
    num_test: int
    #: InceptionTime accuracy on the default split (aeon's bake-off results), if recorded
    anchor: float | None
    target: float


DATASETS: dict[str, UCRSet] = {
    "JapaneseVowels": UCRSet(12, 29, 9, True, 270, 370, None, 0.95),
    "GunPoint": UCRSet(1, 150, 2, False, 50, 150, 1.000, 0.95),
    "ItalyPowerDemand": UCRSet(1, 24, 2, False, 67, 1029, 0.966, 0.95),
    "ArrowHead": UCRSet(1, 251, 3, False, 36, 175, 0.863, 0.8),
}


def source(dataset: str) -> str:
    meta = DATASETS[dataset]
    anchor = (
        f"InceptionTime accuracy {meta.anchor:.3f} on the default split (bake-off results in aeon)"
        if meta.anchor is not None
        else "no published anchor recorded here"
    )
    return (
        f"UCR/UEA archive ({dataset}: {meta.num_train} train / {meta.num_test} test series, {meta.dims} "
        f"channel(s), length {'up to ' if meta.variable_length else ''}{meta.max_length}, {meta.num_classes} "
        "classes), read offline from the files bundled with sktime (BSD-3-Clause); free for research use "
        f"with citation (Dau et al. 2019; Bagnall et al. 2018). Anchor: {anchor}. Other anchors: GunPoint "
        "1.000, ItalyPowerDemand 0.966, ArrowHead 0.863."
    )


class UCRDataError(HarnessError):
    """A bundled UCR/UEA file is missing or malformed."""


class UCRParams(Params):
    dataset: DatasetName = Field(
        "GunPoint", description="JapaneseVowels, GunPoint, ItalyPowerDemand or ArrowHead"
    )
    val_fraction: float = Field(
        0.2, gt=0, lt=0.5, description="share of the training file held out for validation"
    )
    split_seed: int = Field(0, description="seed of the stratified train/validation split")
    target_accuracy: float | None = Field(
        None, gt=0, le=1, description="test accuracy that counts as reached (default: per data set)"
    )


def data_dir() -> Path | None:
    """sktime's bundled data directory, found without importing sktime."""
    spec = importlib.util.find_spec("sktime")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def read_split(dataset: str, split: Literal["TRAIN", "TEST"]) -> tuple[list[np.ndarray], np.ndarray]:
    """The series (``[length, dims]`` float64 arrays) and string labels of one bundled file."""
    import numpy as np
    from sktime.datasets import load_from_tsfile

    root = data_dir()
    path = (root or Path("<sktime missing>")) / dataset / f"{dataset}_{split}.ts"
    if not path.is_file():
        raise UCRDataError(
            f"{path} not found: the installed sktime does not bundle {dataset}; "
            "reinstall it with `pip install --force-reinstall 'sktime>=0.30'`"
        )
    frame, labels = load_from_tsfile(str(path), return_data_type="nested_univ")
    series = []
    for i in range(len(frame)):
        channels = [np.asarray(frame.iloc[i, d], dtype=np.float64) for d in range(frame.shape[1])]
        if len({len(c) for c in channels}) != 1:
            raise UCRDataError(f"{path}: series {i} has channels of different lengths; the file is malformed")
        series.append(np.stack(channels, axis=-1))
    return series, np.asarray(labels).astype(str)


def label_ids(labels: np.ndarray) -> dict[str, int]:
    """Class label -> id in sorted order (numeric order when every label is an integer)."""
    names = sorted(set(labels.tolist()))
    if all(n.lstrip("-").isdigit() for n in names):
        names.sort(key=int)
    return {name: i for i, name in enumerate(names)}


def split_train(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified (train, validation) indices into the training file."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    train, val = train_test_split(index, test_size=val_fraction, random_state=seed, stratify=labels)
    return np.sort(train), np.sort(val)


class UCRTask(Task[UCRParams]):
    """UCR/UEA time-series classification (sktime's bundled sets), default train/test split."""

    name = "ucr"
    description = "UCR/UEA time-series classification: JapaneseVowels, GunPoint, ItalyPowerDemand, ArrowHead."
    data_version = "1"

    def info(self) -> TaskInfo:
        p = self.params
        meta = DATASETS[p.dataset]
        return TaskInfo.classification(
            InputSpec(
                "continuous", meta.dims, max_length=meta.max_length, variable_length=meta.variable_length
            ),
            meta.num_classes,
            target=p.target_accuracy if p.target_accuracy is not None else meta.target,
            source=source(p.dataset),
        )

    def unavailable(self) -> str | None:
        root = data_dir()
        if root is None:
            return "the UCR/UEA data come with sktime, which is not installed: pip install 'sktime>=0.30'"
        p = self.params
        if not (root / p.dataset / f"{p.dataset}_TRAIN.ts").is_file():
            return (
                f"the installed sktime ({root}) does not bundle {p.dataset}: "
                "pip install --upgrade 'sktime>=0.30'"
            )
        return None

    def _arrays(self) -> dict[str, Any]:
        import numpy as np

        p = self.params
        train_series, train_labels = read_split(p.dataset, "TRAIN")
        test_series, test_labels = read_split(p.dataset, "TEST")
        ids = label_ids(np.concatenate([train_labels, test_labels]))
        train_idx, val_idx = split_train(train_labels, p.val_fraction, p.split_seed)
        steps = np.concatenate([train_series[i] for i in train_idx])  # every step of the training series
        mean, std = steps.mean(axis=0), steps.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)

        def norm(series: list[np.ndarray]) -> list[np.ndarray]:
            return [((s - mean) / std).astype(np.float32) for s in series]

        def encode(labels: np.ndarray) -> np.ndarray:
            return np.asarray([ids[label] for label in labels], dtype=np.int64)

        return {
            "train_x": norm([train_series[i] for i in train_idx]),
            "train_y": encode(train_labels[train_idx]),
            "val_x": norm([train_series[i] for i in val_idx]),
            "val_y": encode(train_labels[val_idx]),
            "test_x": norm(test_series),
            "test_y": encode(test_labels),
            "train_index": train_idx,
            "val_index": val_idx,
            "mean": mean,
            "std": std,
            "classes": np.asarray(sorted(ids, key=ids.__getitem__)),
        }

    def arrays(self, cache_dir: Path) -> dict[str, Any]:
        """The normalised splits (cached), with the split indices and the training statistics."""
        return task_arrays(self, cache_dir, self._arrays)

    def datamodule(self, config: DataConfig) -> pl.LightningDataModule:
        from harness.data import arrays_datamodule

        return arrays_datamodule(lambda: self.arrays(config.cache_dir), config)
