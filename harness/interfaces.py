"""The contracts plugins implement: architectures, tasks, metrics, reporters.

Nothing here imports torch: a plugin module that only *declares* components
(its hook implementations, its ``Params`` models) stays cheap to import. Torch
enters inside :meth:`Architecture.build_encoder` and the task methods that run
in the worker.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, NamedTuple, cast

from pydantic import BaseModel, ConfigDict
from typing_extensions import TypeVar

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pytorch_lightning as pl
    import torch
    import torchmetrics

    from harness.records import RunRecord

#: Capabilities an architecture may declare and a task may require.
#: ``stateful``: the encoder can carry its state across chunks of a sequence (truncated BPTT,
#: ``trainer.tbptt``): it has ``forward_chunk(x, lengths, state) -> (EncoderOutput, state)``,
#: where ``x`` is a chunk of the input, ``lengths`` the valid steps within it (at least 1),
#: ``state`` what the previous chunk returned (``None`` for the first) and the summary is
#: read at each sequence's last valid step of the chunk. The harness detaches the state.
CAPABILITIES: frozenset[str] = frozenset(
    {"variable_length", "bidirectional", "causal", "seq2seq", "stateful"}
)
#: What a task predicts; the built-in metrics declare which kinds they accept.
#: ``classification``/``regression``: one output per sequence (summary head);
#: ``sequence_labeling``: one class per step; ``transcription``: a label sequence
#: shorter than the input (e.g. CTC); ``seq2seq``: an output token sequence
#: produced by a decoder; ``language_modeling``: next-token distributions;
#: ``forecasting``: the next ``output_size`` values of a series.
OutputKind = Literal[
    "classification",
    "regression",
    "sequence_labeling",
    "transcription",
    "seq2seq",
    "language_modeling",
    "forecasting",
]
Direction = Literal["max", "min"]


class Params(BaseModel):
    """Base class of every component's parameters: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


#: The ``Params`` model of a component: ``class LSTM(Architecture[LSTMParams])`` makes
#: ``self.params`` an ``LSTMParams`` for type checkers (and sets ``LSTM.Params``). Covariant
#: (params are frozen) and defaulting to :class:`Params`, so ``type[Architecture]`` accepts every
#: architecture class and an un-parametrised ``class X(Architecture)`` keeps working.
ParamsT = TypeVar("ParamsT", bound=Params, covariant=True, default=Params)
_BaseParams = Params  # ``Params`` is also the class attribute's name inside the component classes


@dataclass(frozen=True)
class InputSpec:
    """What an encoder receives at each time step.

    ``kind="continuous"``: float tensors ``[batch, time, size]``.
    ``kind="tokens"``: integer tensors ``[batch, time]`` with ids below ``size``
    (the vocabulary size); ``padding_idx`` marks padding.
    """

    kind: Literal["continuous", "tokens"]
    size: int
    max_length: int | None = None
    variable_length: bool = False
    padding_idx: int = 0
    #: for video-like inputs: each step is a ``height x width`` frame flattened
    #: into ``size`` features (``size == height * width``); encoders may use it
    frame_shape: tuple[int, int] | None = None


@dataclass(frozen=True)
class TaskInfo:
    """What the harness needs to know about a task, without loading its data."""

    input: InputSpec
    output_kind: OutputKind
    #: classes for classification, targets per sample for regression
    output_size: int
    loss: str
    metrics: tuple[str, ...]
    primary_metric: str
    direction: Direction
    #: value of the primary metric that counts as "reached" (time-to-target)
    target: float | None = None
    #: capabilities the architecture must declare (see CAPABILITIES)
    requires: frozenset[str] = field(default_factory=frozenset)
    #: seq2seq: size of the output vocabulary and longest output (in tokens, with EOS)
    output_vocab_size: int | None = None
    output_max_length: int | None = None
    #: where the data comes from, its license and the published anchors (shown by ``harness list``)
    source: str = ""
    #: a primary test metric worse than this (above it when ``direction`` is ``min``, below it when
    #: ``max``) means the run diverged: it is recorded failed, kind ``diverged``, and kept out of
    #: ranks, intervals and Pareto fronts. Non-finite test figures always count as diverged. The
    #: built-ins use 100x the trivial predictor's value (e.g. predicting the mean) for error metrics.
    divergence_bound: float | None = None

    @classmethod
    def classification(
        cls,
        input: InputSpec,
        classes: int,
        *,
        target: float | None = None,
        source: str = "",
        metrics: tuple[str, ...] = ("accuracy", "f1", "auroc"),
    ) -> TaskInfo:
        """One label per sequence: cross-entropy, primary metric accuracy (higher is better)."""
        return cls(
            input=input,
            output_kind="classification",
            output_size=classes,
            loss="cross entropy",
            metrics=metrics,
            primary_metric="accuracy",
            direction="max",
            target=target,
            source=source,
        )


class EncoderOutput(NamedTuple):
    """What an encoder returns.

    ``sequence``: ``[batch, time, output_size]`` features per step (values at
    padded steps are unspecified). ``summary``: ``[batch, output_size]``, one
    vector per sequence that must not depend on padding.
    """

    sequence: torch.Tensor
    summary: torch.Tensor


@dataclass(frozen=True)
class DataConfig:
    """How the worker asks a task for its data."""

    batch_size: int
    seed: int
    cache_dir: Path
    num_workers: int = 0


@dataclass(frozen=True)
class Width:
    """What a parameter budget sizes (a suite's ``budget: {params: N}``; docs/plugin-guide.md).

    ``param``: the integer parameter the planner searches (``hidden_size``, ``d_model``): per task,
    it picks the largest value whose whole network (encoder, seq2seq decoder, the task's head) has
    at most N parameters. ``tied``: other integer parameters that follow it, ``name -> ratio``:
    each becomes ``max(1, round(ratio * width))`` unless the suite sets it (then it stays as set).
    ``multiple_of``: the width is a multiple of this, an int or the name of an integer parameter
    (``"num_heads"``: each head gets ``d_model / num_heads`` features). The parameter count must
    grow with the width (the conformance kit checks it).
    """

    param: str
    tied: Mapping[str, float] = field(default_factory=dict)
    multiple_of: int | str = 1


def _declared_params(cls: type) -> type[Params] | None:
    """The ``Params`` model named by the nearest generic base of ``cls``
    (``Architecture[LSTMParams]`` -> ``LSTMParams``), or ``None``."""
    for klass in cls.__mro__:
        for base in klass.__dict__.get("__orig_bases__", ()):
            origin = typing.get_origin(base)
            if not (isinstance(origin, type) and issubclass(origin, Component)):
                continue
            models = [a for a in typing.get_args(base) if isinstance(a, type) and issubclass(a, _BaseParams)]
            if len(models) == 1:
                return models[0]
    return None


class Component(Generic[ParamsT]):
    """Common base of architectures, tasks and reporters: a name and Params.

    Subclass it with your params model as the type argument,
    ``class LSTM(Architecture[LSTMParams])``: ``LSTM.Params`` is then ``LSTMParams`` (the model
    that validates a suite's ``params``) and ``self.params`` is typed ``LSTMParams``. Setting
    ``Params = LSTMParams`` in the class body as well is allowed (it must name the same model or a
    subclass of it); un-parametrised classes (``class X(Architecture)``) set ``Params`` themselves.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Params: ClassVar[type[_BaseParams]] = _BaseParams
    #: the validated parameters of this instance
    params: ParamsT

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = _declared_params(cls)
        if declared is None:
            return
        own = cls.__dict__.get("Params")
        if own is None:
            inherited = getattr(cls, "Params", None)
            if not (isinstance(inherited, type) and issubclass(inherited, declared)):
                cls.Params = declared
        elif isinstance(own, type) and issubclass(own, _BaseParams) and not issubclass(own, declared):
            raise TypeError(
                f"{cls.__name__} sets `Params = {own.__name__}` but its base declares "
                f"{declared.__name__} (its type argument), so `self.params` would not be what type "
                f"checkers think. Drop the `Params = ...` line (the type argument sets it) or make "
                f"the two agree."
            )

    def __init__(self, params: ParamsT | Mapping[str, Any] | None = None) -> None:
        if params is None or isinstance(params, Mapping):
            # ``Params`` is the model ``ParamsT`` names (``__init_subclass__`` keeps them in step)
            params = cast(ParamsT, self.Params.model_validate(dict(params or {})))
        self.params = params

    @classmethod
    def summary_line(cls) -> str:
        doc = cls.description or (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


class Architecture(Component[ParamsT]):
    """Turns a task's input description into a ``torch.nn.Module`` encoder.

    The encoder's ``forward(x, lengths)`` returns an :class:`EncoderOutput`;
    it has an integer attribute ``output_size``. Padding beyond ``lengths``
    must not change any output at valid steps, nor the summary.

    Optional encoder attributes the harness uses when present: ``probe_module``
    (an ``nn.Module`` whose output ``[batch, time, features]`` the gradient-flow
    probe reads ‖∂L/∂h_t‖ at; default: the input of the last ``nn.RNNBase``),
    and ``forward_chunk`` for the ``stateful`` capability (see ``CAPABILITIES``).
    """

    #: capabilities this architecture has regardless of its parameters
    supports: ClassVar[frozenset[str]] = frozenset({"variable_length"})
    #: False for closed-form baselines (e.g. a naive forecaster): the harness
    #: calls ``encoder.fit(datamodule)`` if the encoder has one, then tests it
    #: without gradient training
    trainable: ClassVar[bool] = True
    #: what a parameter budget sizes: the name of an integer width parameter (``"hidden_size"``),
    #: a :class:`Width` (tied parameters, a divisibility rule), or None: budgets leave it as set
    #: (named ``budget_width``, not ``width``: a plugin may well have a ``width`` of its own)
    budget_width: ClassVar[str | Width | None] = None

    @classmethod
    def budget_width_spec(cls) -> Width | None:
        """``budget_width`` as a :class:`Width` (a name ``"hidden_size"`` is ``Width("hidden_size")``)."""
        return Width(cls.budget_width) if isinstance(cls.budget_width, str) else cls.budget_width

    @classmethod
    def tune_space(cls) -> dict[str, Any]:
        """The default search space of fair tuning (a suite's ``tune:`` block) for this architecture,
        beside the core's (the learning rate): target → domain, written as in a suite, e.g.
        ``{"params.dropout": {"uniform": [0.0, 0.3]}}``. Targets are ``params.<key>`` (a parameter
        of ``Params``) or ``trainer.<key>``; domains ``loguniform``, ``uniform``, ``int``,
        ``logint`` (``[low, high]``) or ``choice`` (a list). A suite's ``tune.space`` overrides it."""
        return {}

    def capabilities(self) -> frozenset[str]:
        """Capabilities for these parameters (override when params matter)."""
        return self.supports

    def incompatibility(self, info: TaskInfo) -> str | None:
        """Why this architecture cannot run ``info``'s task, or ``None``."""
        caps = self.capabilities()
        needed = set(info.requires)
        if info.input.variable_length:
            needed.add("variable_length")
        missing = sorted(needed - caps)
        if missing:
            return f"`{self.name}` lacks {', '.join(missing)} (has: {', '.join(sorted(caps)) or 'none'})"
        return None

    def tbptt_incompatibility(self) -> str | None:
        """Why this architecture cannot train with ``trainer.tbptt``, or ``None`` (the skip
        reason the plan shows)."""
        if "stateful" in self.capabilities():
            return None
        return (
            f"`{self.name}` cannot carry its state across chunks, so truncated BPTT (trainer.tbptt) "
            "does not apply (it needs the `stateful` capability: rnn, lstm, gru)"
        )

    def build_encoder(self, input: InputSpec) -> torch.nn.Module:
        raise NotImplementedError(f"{type(self).__name__} must implement build_encoder()")

    def build_decoder(self, info: TaskInfo, encoder_output_size: int) -> torch.nn.Module:
        """The decoder of a seq2seq model (architectures that declare ``seq2seq``).

        ``forward(tokens [B, U], memory [B, T, H], memory_lengths [B]) -> [B, U, output_size]``:
        features for each output position given the previous target tokens
        (teacher forcing); position ``u`` must not see tokens after ``u``. The
        decoder has an integer attribute ``output_size``; the task owns the
        projection to its vocabulary (``info.output_vocab_size``) and decoding.
        """
        raise NotImplementedError(f"{type(self).__name__} does not build a decoder (it lacks `seq2seq`)")


class Task(Component[ParamsT]):
    """A benchmark task: its data, its head, its loss and its metrics.

    The default head and loss follow ``info().output_kind``: a linear layer on
    the encoder summary with cross-entropy (classification) or mean squared
    error (regression). Override them for anything else.
    """

    #: bump when the generated/loaded data changes: it is part of every run id
    data_version: ClassVar[str] = "1"

    def info(self) -> TaskInfo:
        """Describe the task. Called on the driver at plan time: keep it cheap."""
        raise NotImplementedError(f"{type(self).__name__} must implement info()")

    def unavailable(self) -> str | None:
        """Why this task cannot run on this machine (a missing program or data
        package, with how to install it), or ``None``. Checked at plan time:
        the task's cells are skipped with this reason."""
        return None

    def datamodule(self, config: DataConfig) -> pl.LightningDataModule:
        """Data for one run; batches are dicts with ``x``, ``lengths``, ``y``."""
        raise NotImplementedError(f"{type(self).__name__} must implement datamodule()")

    def prepare(self, config: DataConfig) -> None:
        """Build (or load) and cache this task's data ahead of a run (``harness prepare``)."""
        data = self.datamodule(config)
        data.prepare_data()
        data.setup("fit")

    def cached_info(self) -> TaskInfo:
        """``info()`` computed once (params are frozen); used by the per-step defaults below."""
        cached: TaskInfo | None = self.__dict__.get("_info")
        if cached is None:
            cached = self.__dict__["_info"] = self.info()
        return cached

    def build_head(self, encoder_output_size: int) -> torch.nn.Module:
        from harness.heads import default_head

        return default_head(self.cached_info(), encoder_output_size)

    def forward(self, network: torch.nn.Module, batch: Mapping[str, Any]) -> Any:
        """The prediction for a batch; ``network`` has ``encoder``, ``head`` and
        (seq2seq) ``decoder``. Default: ``head(encoder(x, lengths))``."""
        head = cast("torch.nn.Module", network.head)
        encoder = cast("torch.nn.Module", network.encoder)
        return head(encoder(batch["x"], batch["lengths"]))

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from harness.heads import default_loss

        return default_loss(self.cached_info(), prediction, target)

    def batch_loss(self, prediction: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        """The training loss of a batch; override when the loss needs more than
        ``y`` (e.g. lengths for CTC). Default: ``loss(prediction, batch["y"])``."""
        return self.loss(prediction, batch["y"])

    def evaluate(
        self, network: torch.nn.Module, prediction: Any, batch: Mapping[str, Any]
    ) -> tuple[Any, ...] | Mapping[str, tuple[Any, ...]]:
        """What the metrics are updated with for a validation/test batch: one
        argument tuple for every metric, or a mapping metric name -> arguments
        where the key ``"*"`` serves every metric not named (a suite may pick
        metrics the task did not list). Override to decode (greedy seq2seq, CTC)
        before scoring. Default: ``metric_inputs(prediction, batch["y"])``."""
        return self.metric_inputs(prediction, batch["y"])

    def artifacts(self, network: torch.nn.Module, data: pl.LightningDataModule) -> dict[str, str]:
        """Text files to keep with the run (file name -> content), made after
        testing with the best weights, e.g. generated samples or example
        translations. Logged to MLflow under ``task/``. Default: none."""
        return {}

    def metric_inputs(
        self, prediction: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Turn (prediction, target) into what the task's metrics accept."""
        if self.cached_info().output_kind == "regression" and prediction.shape[-1] == 1:
            return prediction.squeeze(-1), target.reshape(prediction.shape[0])
        return prediction, target


@dataclass(frozen=True)
class MetricSpec:
    """A metric by name: ``factory(info)`` builds a ``torchmetrics.Metric``."""

    name: str
    factory: Callable[[TaskInfo], torchmetrics.Metric]
    description: str = ""
    output_kinds: frozenset[str] = field(default_factory=lambda: frozenset({"classification"}))
    direction: Direction = "max"

    def summary_line(self) -> str:
        return self.description


class Reporter(Component[ParamsT]):
    """Writes a report from the records of a suite's runs (:class:`harness.RunRecord`, one per run:
    finished, failed, killed or skipped; the latest record of each run id).

    Reporters written for hook API 1.0 read records as mappings (``record["task"]``,
    ``record.get("metrics")``): :meth:`harness.RunRecord.get` keeps that working.
    """

    #: file name (stem) and suffix of what this reporter writes, e.g. ``summary`` + ``.md``
    filename: ClassVar[str] = "summary"
    suffix: ClassVar[str] = ".txt"

    def render(self, results: Sequence[RunRecord]) -> str:
        raise NotImplementedError(f"{type(self).__name__} must implement render()")

    def write(self, results: Sequence[RunRecord], out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{self.filename}{self.suffix}"
        path.write_text(self.render(results), encoding="utf-8")
        return path
