"""Shared base of the built-in sequence-to-sequence tasks (``scan``, ``number_translation``).

A subclass says what its vocabularies are, how long its sequences get and which token
sequences each split holds; this base turns them into cached id arrays (source ids; target ids
+ EOS) and owns the model side:

- head: a linear layer from the decoder's features to the target vocabulary;
- forward: ``memory = encoder(x, lengths).sequence``; the decoder reads ``[BOS] + y[:-1]``
  (teacher forcing); the head gives logits ``[B, U, V]``;
- loss: cross-entropy over the target tokens (EOS included), padding ignored;
- evaluation: greedy decoding (:func:`harness.nn.greedy_decode`) to strings of space-joined
  tokens, scored against the reference strings (exact match, token accuracy, BLEU);
- artifacts: ``examples.tsv`` with ~20 test examples (source, reference, prediction).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeVar, cast

from harness import DataConfig, HarnessError, InputSpec, Params, Task, TaskInfo

from ._text import BOS, EOS, PAD, UNK, Vocab

if TYPE_CHECKING:
    import pytorch_lightning as pl
    import torch

SPLITS = ("train", "val", "test")
#: test examples kept as the run's ``examples.tsv`` artifact
NUM_EXAMPLES = 20
METRICS = ("exact_match", "token_accuracy", "bleu")


class Seq2SeqPrediction(NamedTuple):
    """What :meth:`Seq2SeqTask.forward` returns: teacher-forced logits ``[B, U, V]`` and the
    encoder memory, kept so that evaluation decodes without encoding the batch again."""

    logits: torch.Tensor
    memory: torch.Tensor
    memory_lengths: torch.Tensor


_P = TypeVar("_P", bound=Params)


class Seq2SeqTask(Task[_P]):
    """Base of token-to-token tasks; subclasses implement the abstract methods below
    (``class MyTask(Seq2SeqTask[MyParams])``)."""

    #: one paragraph on the data source, license and anchors (``TaskInfo.source``)
    SOURCE: ClassVar[str] = ""

    # --- what a subclass provides -------------------------------------------------------
    def source_vocab(self) -> Vocab:
        """The input vocabulary (fixed by the params, known without building the data)."""
        raise NotImplementedError

    def target_vocab(self) -> Vocab:
        """The output vocabulary (fixed by the params, known without building the data)."""
        raise NotImplementedError

    def max_source_length(self) -> int:
        """Longest input, in tokens (an upper bound is fine)."""
        raise NotImplementedError

    def max_target_length(self) -> int:
        """Longest output, in tokens without EOS (an upper bound is fine)."""
        raise NotImplementedError

    def data_spec(self) -> dict[str, Any]:
        """Every param that changes the data (the cache key, with the task name and data_version)."""
        raise NotImplementedError

    def target_value(self) -> float | None:
        """Exact match that counts as reached (time-to-target)."""
        return None

    def build_examples(self) -> dict[str, tuple[list[list[str]], list[list[str]]]]:
        """Token sequences by split: ``{"train"|"val"|"test": (sources, targets)}``."""
        raise NotImplementedError

    # --- task contract ------------------------------------------------------------------
    def info(self) -> TaskInfo:
        source, target = self.source_vocab(), self.target_vocab()
        return TaskInfo(
            input=InputSpec("tokens", len(source), max_length=self.max_source_length(), variable_length=True),
            output_kind="seq2seq",
            output_size=len(target),
            loss="cross entropy over target tokens (teacher forcing)",
            metrics=METRICS,
            primary_metric="exact_match",
            direction="max",
            target=self.target_value(),
            requires=frozenset({"seq2seq"}),
            output_vocab_size=len(target),
            output_max_length=self.max_target_length() + 1,  # + EOS
            source=self.SOURCE,
        )

    def _arrays(self) -> dict[str, Any]:
        import numpy as np

        source, target = self.source_vocab(), self.target_vocab()
        out: dict[str, Any] = {"source_vocab": source.to_array(), "target_vocab": target.to_array()}
        for split, (sources, targets) in self.build_examples().items():
            if not sources:
                raise HarnessError(f"`{self.name}`: the {split} split is empty; check the task's size params")
            xs = [source.encode(s) for s in sources]
            ys = [target.encode(t, eos=True) for t in targets]
            for kind, ids, tokens in (("source", xs, sources), ("target", ys, targets)):
                unknown = next((i for i, row in enumerate(ids) if (row == UNK).any()), None)
                if unknown is not None:  # the vocabularies are complete by construction
                    raise RuntimeError(
                        f"`{self.name}` {split} example {unknown} has a {kind} token outside the "
                        f"{kind} vocabulary: {tokens[unknown]!r}"
                    )
            out[f"{split}_x"] = [np.asarray(x, dtype=np.int64) for x in xs]
            out[f"{split}_y"] = [np.asarray(y, dtype=np.int64) for y in ys]
        return out

    def load_arrays(self, cache_dir: Any) -> dict[str, Any]:
        """The cached id arrays (built on first use)."""
        from pathlib import Path

        from harness.data import cached_arrays

        spec = {"task": self.name, "version": self.data_version, **self.data_spec()}
        arrays = cached_arrays(Path(cache_dir), self.name, spec, self._arrays)
        for kind, vocab in (("source", self.source_vocab()), ("target", self.target_vocab())):
            if [str(t) for t in arrays[f"{kind}_vocab"].tolist()] != vocab.tokens:
                raise HarnessError(
                    f"`{self.name}`: the cached data under {cache_dir} has a different {kind} vocabulary "
                    f"than this version of the task; delete {Path(cache_dir) / self.name} and run again"
                )
        return arrays

    def datamodule(self, config: DataConfig) -> pl.LightningDataModule:
        from harness.data import ArrayDataModule

        def load() -> dict[str, tuple[Any, Any]]:
            arrays = self.load_arrays(config.cache_dir)
            return {s: (arrays[f"{s}_x"], arrays[f"{s}_y"]) for s in SPLITS}

        return ArrayDataModule(
            load, config.batch_size, config.seed, tokens=True, num_workers=config.num_workers
        )

    def build_head(self, decoder_output_size: int) -> torch.nn.Module:
        from torch import nn

        return nn.Linear(decoder_output_size, len(self.target_vocab()))

    def forward(self, network: torch.nn.Module, batch: Mapping[str, Any]) -> Seq2SeqPrediction:
        import torch

        encoder, decoder, head = self._parts(network)
        lengths = batch["lengths"]
        memory = encoder(batch["x"], lengths).sequence
        y = batch["y"]
        start = torch.full((y.shape[0], 1), BOS, dtype=y.dtype, device=y.device)
        inputs = torch.cat([start, y[:, :-1]], dim=1)  # teacher forcing: [BOS] + y[:-1]
        logits = head(decoder(inputs, memory, lengths))
        return Seq2SeqPrediction(logits, memory, lengths)

    @staticmethod
    def _parts(network: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
        """The network's encoder, decoder and head (typed: ``nn.Module`` attributes read as tensors)."""
        return (
            cast("torch.nn.Module", network.encoder),
            cast("torch.nn.Module", network.decoder),
            cast("torch.nn.Module", network.head),
        )

    def batch_loss(self, prediction: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        from torch.nn import functional as F

        logits = prediction.logits
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), batch["y"].reshape(-1), ignore_index=PAD
        )

    def decode(self, network: torch.nn.Module, memory: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Greedy decoding: ``[B, <= output_max_length]`` target ids (EOS kept, then padding)."""
        from harness.nn import greedy_decode

        _, decoder, head = self._parts(network)
        max_length = self.cached_info().output_max_length or 1
        return greedy_decode(decoder, head, memory, lengths, bos=BOS, eos=EOS, max_length=max_length)

    def strings(self, ids: torch.Tensor | Sequence[Sequence[int]], vocab: Vocab | None = None) -> list[str]:
        """Token ids (one row per sequence; stops at EOS) as strings of space-joined tokens."""
        vocab = vocab or self.target_vocab()
        rows = ids.tolist() if hasattr(ids, "tolist") else ids
        return [" ".join(vocab.decode(row)) for row in rows]

    def evaluate(
        self, network: torch.nn.Module, prediction: Any, batch: Mapping[str, Any]
    ) -> tuple[Any, ...]:
        hypotheses = self.strings(self.decode(network, prediction.memory, prediction.memory_lengths))
        return hypotheses, self.strings(batch["y"])

    def artifacts(self, network: torch.nn.Module, data: pl.LightningDataModule) -> dict[str, str]:
        import numpy as np

        from harness.data import pad_collate

        if not getattr(data, "datasets", None):
            data.setup("test")
        dataset = data.datasets["test"]  # type: ignore[attr-defined]
        picks = np.unique(
            np.linspace(0, len(dataset) - 1, min(NUM_EXAMPLES, len(dataset))).round().astype(int)
        )
        batch = pad_collate([dataset[int(i)] for i in picks], ragged_targets=True)
        device = next(network.parameters()).device
        x, lengths = batch["x"].to(device), batch["lengths"].to(device)
        memory = self._parts(network)[0](x, lengths).sequence
        predictions = self.strings(self.decode(network, memory, lengths))
        sources = self.strings(batch["x"], self.source_vocab())
        references = self.strings(batch["y"])
        lines = ["correct\tsource\treference\tprediction"]
        for source, reference, predicted in zip(sources, references, predictions):
            correct = "yes" if predicted.split() == reference.split() else "no"
            lines.append(f"{correct}\t{source}\t{reference}\t{predicted}")
        return {"examples.tsv": "\n".join(lines) + "\n"}
