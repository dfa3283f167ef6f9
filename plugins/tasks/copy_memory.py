"""The copy memory task (Hochreiter & Schmidhuber 1997; Bai et al. 2018 semantics).

Each input has ``T + 20`` steps: 10 symbols drawn uniformly from 1..8, then ``T - 1``
blanks (0), then the delimiter 9 at step ``T + 9``; in the last 10 steps (the recall
phase) the model must output the 10 symbols in order. The target is blank (0) at every
other step. Like Bai et al.'s generator (``TCN/copy_memory/utils.py``, locuslab/TCN), the
recall phase is filled with 9s by default (``recall_fill="delimiter"``: "the last 11 entries
are 9, the first 9 is the delimiter"); ``recall_fill="blank"`` gives Arjovsky et al.'s
(2016) variant: one delimiter, then 10 blanks.

Inputs are tokens (vocabulary 10, embedded by the architecture's input layer; the blank 0
is the padding id, so its embedding is the zero vector, as the raw value 0 is in the TCN
repository) or, with ``encoding="scalar"``, the raw digit as one continuous channel, exactly
as the TCN repository feeds it. The prediction is one 10-way distribution per step (a
linear head on every step of the encoder's sequence output); the loss and the primary
metric are the cross-entropy averaged over ALL ``T + 20`` positions, the paper's measure.
``accuracy`` scores the 10 recalled positions only.

Memoryless baseline: predicting blank with certainty outside the recall phase and a uniform
guess over 1..8 inside it gives CE = 10·ln 8 / (T + 20) (0.0204 at T = 1000); a model has
learned to remember only when it goes well below that.

Source: generated here, no license restrictions. Anchors, T = 1000, ~16K params (Bai et al.
2018, Table 1): CE LSTM 0.0204, GRU 0.0197, RNN 0.0202 (the three recurrent nets stay at the
memoryless baseline), TCN 3.5e-5. Their training: 10,000 training and 1,000 test sequences,
RMSprop lr 5e-4, batch 32, gradient norm clipped at 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import Field

from harness import DataConfig, InputSpec, Params, Task, TaskInfo

if TYPE_CHECKING:
    import numpy as np
    import pytorch_lightning as pl
    import torch

#: symbols to remember, their alphabet (1..NUM_SYMBOLS), the blank and the delimiter
MEMORY = 10
NUM_SYMBOLS = 8
BLANK = 0
DELIMITER = 9
VOCAB = 10
#: metrics scored over every position (the rest score the recalled positions)
ALL_POSITIONS = frozenset({"cross_entropy", "bits_per_char", "perplexity"})


def memoryless_ce(length: int) -> float:
    """Cross-entropy of the best predictor without memory: 10·ln 8 / (T + 20)."""
    return MEMORY * math.log(NUM_SYMBOLS) / (length + 2 * MEMORY)


def source(length: int) -> str:
    return (
        "Generated (Bai et al. 2018 semantics: 10 symbols from 1..8, T-1 blanks, delimiter 9, recall "
        "the symbols in the last 10 of T+20 steps, whose inputs are 9s). Memoryless baseline "
        f"10*ln8/(T+20) = {memoryless_ce(length):.4g} at T={length} (0.0204 at T=1000). "
        "Anchors, T=1000, ~16K params "
        "(Bai et al. 2018, Table 1), CE over all positions: LSTM 0.0204, GRU 0.0197, RNN 0.0202 "
        "(memoryless), TCN 3.5e-5."
    )


class CopyMemoryParams(Params):
    length: int = Field(100, ge=1, description="blank period T (sequences have T + 20 steps)")
    num_train: int = Field(10000, ge=1, description="training sequences")
    num_val: int = Field(1000, ge=1, description="validation sequences")
    num_test: int = Field(1000, ge=1, description="test sequences")
    data_seed: int = Field(1234, description="seed of the generated data (fixed across run seeds)")
    recall_fill: Literal["delimiter", "blank"] = Field(
        "delimiter",
        description="input during the 10 recall steps: delimiter = 9s (Bai et al.'s generator), "
        "blank = 0s after a single delimiter (Arjovsky et al. 2016)",
    )
    encoding: Literal["tokens", "scalar"] = Field(
        "tokens",
        description="tokens = ids 0..9 (embedded); scalar = the digit as one float channel (TCN repo)",
    )
    target_ce: float | None = Field(
        None,
        gt=0,
        description="test cross-entropy that counts as solved (default: 1/10 of the memoryless baseline)",
    )


def make_copy_memory(
    n: int, length: int, rng: np.random.Generator, recall_fill: str = "delimiter"
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` copy-memory inputs and per-step targets, both ``[n, length + 20]`` uint8."""
    import numpy as np

    steps = length + 2 * MEMORY
    symbols = rng.integers(1, NUM_SYMBOLS + 1, size=(n, MEMORY), dtype=np.uint8)
    x = np.full((n, steps), BLANK, dtype=np.uint8)
    x[:, :MEMORY] = symbols
    x[:, length + MEMORY - 1] = DELIMITER
    if recall_fill == "delimiter":
        x[:, length + MEMORY :] = DELIMITER
    y = np.full((n, steps), BLANK, dtype=np.uint8)
    y[:, -MEMORY:] = symbols
    return x, y


class CopyMemoryTask(Task[CopyMemoryParams]):
    """Copy memory: reproduce 10 symbols after a blank period of T steps; per-step CE."""

    name = "copy_memory"
    description = "Copy memory (long-range memory): recall 10 symbols after T blanks; per-step CE."
    data_version = "1"

    def info(self) -> TaskInfo:
        p = self.params
        scalar = p.encoding == "scalar"
        return TaskInfo(
            input=InputSpec(
                "continuous" if scalar else "tokens",
                1 if scalar else VOCAB,
                max_length=p.length + 2 * MEMORY,
                padding_idx=BLANK,
            ),
            output_kind="sequence_labeling",
            output_size=VOCAB,
            loss="cross entropy, mean over all T+20 positions",
            metrics=("cross_entropy", "accuracy"),
            primary_metric="cross_entropy",
            direction="min",
            target=p.target_ce if p.target_ce is not None else memoryless_ce(p.length) / 10,
            source=source(p.length),
            divergence_bound=100 * memoryless_ce(p.length),  # 100x the memoryless baseline
        )

    def _arrays(self) -> dict[str, Any]:
        import numpy as np

        p = self.params
        rng = np.random.default_rng(p.data_seed)
        out: dict[str, Any] = {}
        for split, n in (("train", p.num_train), ("val", p.num_val), ("test", p.num_test)):
            out[f"{split}_x"], out[f"{split}_y"] = make_copy_memory(n, p.length, rng, p.recall_fill)
        return out

    def arrays(self, cache_dir: Path) -> dict[str, Any]:
        """The generated splits (cached): ``{split}_x`` and ``{split}_y``, ``[n, T + 20]`` uint8."""
        from harness.data import cached_arrays

        p = self.params
        spec = {
            "task": self.name,
            "version": self.data_version,
            **p.model_dump(exclude={"target_ce", "encoding"}),
        }
        return cached_arrays(cache_dir, self.name, spec, self._arrays)

    def datamodule(self, config: DataConfig) -> pl.LightningDataModule:
        import numpy as np

        from harness.data import ArrayDataModule

        p = self.params
        scalar = p.encoding == "scalar"

        def load() -> dict[str, tuple[Any, Any]]:
            arrays = self.arrays(config.cache_dir)
            splits = {}
            for s in ("train", "val", "test"):
                x = arrays[f"{s}_x"]
                x = x[..., None].astype(np.float32) if scalar else x
                splits[s] = (x, arrays[f"{s}_y"].astype(np.int64))
            return splits

        return ArrayDataModule(
            load, config.batch_size, config.seed, tokens=not scalar, num_workers=config.num_workers
        )

    def build_head(self, encoder_output_size: int) -> torch.nn.Module:
        from torch import nn

        return nn.Linear(encoder_output_size, VOCAB)

    def forward(self, network: torch.nn.Module, batch: Mapping[str, Any]) -> torch.Tensor:
        """Logits ``[B, T + 20, 10]``: the head on every step of the encoder's sequence."""
        head, encoder = cast("torch.nn.Module", network.head), cast("torch.nn.Module", network.encoder)
        return head(encoder(batch["x"], batch["lengths"]).sequence)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from torch.nn import functional

        return functional.cross_entropy(prediction.reshape(-1, VOCAB), target.reshape(-1).long())

    def evaluate(
        self, network: torch.nn.Module, prediction: Any, batch: Mapping[str, Any]
    ) -> Mapping[str, tuple[Any, ...]]:
        """Likelihood metrics over all positions; classification metrics over the recalled ones."""
        y = batch["y"].long()
        every = (prediction.reshape(-1, VOCAB), y.reshape(-1))
        recalled = (prediction[:, -MEMORY:].reshape(-1, VOCAB), y[:, -MEMORY:].reshape(-1))
        return {"*": recalled, **{name: every for name in ALL_POSITIONS}}
