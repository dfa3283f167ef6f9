"""The suite file format: YAML → a validated :class:`SuiteSpec`.

Top-level keys: ``name``, ``description``, ``seeds``, ``tasks``,
``architectures``, ``trainer``, ``resources``, ``tracking``, ``measure``,
``execution``, ``reporters``. Errors name the
YAML path and line (``tasks[1].params.length (line 12)``) and the fix.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.errors import SuiteError
from harness.validation import raise_for
from harness.yamlsrc import Source, load_yaml

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
#: more seeds than this as a count is a typo (``seeds: 50000`` would plan 50000 runs per cell)
MAX_SEED_COUNT = 1000


class Strict(BaseModel):
    # inf and nan are never meaningful settings (``lr: .inf`` would pass ``gt=0``)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def parse_seconds(value: float | str | None, name: str) -> float | None:
    """Seconds, or an "HH:MM:SS" / "MM:SS" string → positive finite seconds."""
    if value is None:
        return None
    if isinstance(value, str):
        match = re.fullmatch(r"(?:(\d+):)?(\d+):(\d+)", value.strip())
        if not match:
            raise ValueError(f'{name} must be seconds (e.g. 300) or "HH:MM:SS" (e.g. "00:05:00")')
        hours, minutes, seconds = (int(g or 0) for g in match.groups())
        value = hours * 3600 + minutes * 60 + seconds
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{name} must be a positive, finite number of seconds")
    return float(value)


class EarlyStopping(Strict):
    """Stop when the monitored validation metric stops improving."""

    patience: int = Field(5, ge=1)
    min_delta: float = Field(0.0, ge=0)
    #: a validation metric (``val_loss``, ``val_accuracy``...); default: the task's primary metric
    monitor: str | None = None


class TbpttSpec(Strict):
    """Truncated backpropagation through time (recurrent architectures only).

    The sequence is processed in chunks of ``k1`` time steps, carrying the hidden state from
    chunk to chunk; gradients flow back through at most ``k2`` of those steps (default: ``k1``).
    Absent (``tbptt: null``, the default) means full backpropagation through time.
    """

    k1: int = Field(ge=1)
    k2: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _k2_le_k1(self) -> TbpttSpec:
        if self.k2 is not None and self.k2 > self.k1:
            raise ValueError(f"tbptt.k2 ({self.k2}) must not exceed tbptt.k1 ({self.k1}): "
                             "gradients can only flow back through steps of the current chunk")
        return self


class TrainerSpec(Strict):
    max_epochs: int = Field(10, ge=1)
    max_steps: int | None = Field(None, ge=1)
    #: seconds, or a "HH:MM:SS" string
    max_time: float | str | None = None
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    gradient_clip_val: float | None = Field(None, gt=0)
    gradient_clip_algorithm: Literal["norm", "value"] = "norm"
    early_stopping: EarlyStopping | None = None
    precision: Literal["32-true", "16-mixed", "bf16-mixed", "64-true"] = "32-true"
    #: "auto" follows resources.gpus
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    #: truncated BPTT (``{k1: 50, k2: 50}``); default: full backpropagation through time
    tbptt: TbpttSpec | None = None

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _early_bool(cls, value: Any) -> Any:
        if value is True:
            return {}
        if value is False:
            return None
        return value

    @field_validator("max_time")
    @classmethod
    def _max_time(cls, value: float | str | None) -> float | None:
        return parse_seconds(value, "max_time")


class ResourcesSpec(Strict):
    """What one run asks the scheduler for (per worker when ``workers`` > 1)."""

    cpus: float = Field(1.0, gt=0)
    gpus: float = Field(0.0, ge=0)
    #: data-parallel workers per run; above 1 the run trains with Ray Train (DDP), each worker
    #: getting ``cpus`` and ``gpus``
    workers: int = Field(1, ge=1)

    @field_validator("gpus")
    @classmethod
    def _whole_above_one(cls, value: float) -> float:
        if value > 1 and not float(value).is_integer():
            raise ValueError("gpus above 1 must be a whole number (fractions are for sharing one GPU)")
        return value


class TrackingSpec(Strict):
    #: MLflow tracking URI; default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db
    uri: str | None = None
    #: MLflow experiment name; default: the suite name
    experiment: str | None = None
    #: JSON-lines results file; default: results/<suite name>.jsonl
    results: str | None = None


class GradientFlowSpec(Strict):
    """The opt-in gradient-flow probe: ‖∂L/∂h_t‖ over time steps t, and per-layer gradient norms."""

    #: training steps (optimizer steps, 0 = before the first update) at which to probe
    steps: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [0])
    #: also probe every N steps (in addition to ``steps``)
    every_n_steps: int | None = Field(None, ge=1)
    #: flag "vanishing" when ‖∂L/∂h_first‖ / ‖∂L/∂h_last‖ falls below this
    vanishing_ratio: float = Field(1e-3, gt=0)
    #: flag "exploding" when any per-step or per-layer norm exceeds this (or is not finite)
    exploding_norm: float = Field(1e3, gt=0)
    #: how many training samples the probe batch holds
    batch_size: int = Field(32, ge=1)


class MeasureSpec(Strict):
    """What each run measures besides the task metrics (all on by default except the probe)."""

    #: inference latency p50/p95/p99 at batch 1 and throughput at the training batch size
    latency: bool = True
    #: timed rounds after warm-up for latency and inference throughput
    rounds: int = Field(30, ge=3)
    warmup: int = Field(5, ge=0)
    #: FLOPs per sample (forward; torch FlopCounterMode with oneDNN/cuDNN RNN kernels disabled)
    flops: bool = True
    #: peak memory (CUDA max allocated on GPU; RSS growth on CPU)
    memory: bool = True
    gradient_flow: GradientFlowSpec | None = None


class ExecutionSpec(Strict):
    """How the suite as a whole is scheduled and how it survives faults."""

    #: times a run is retried when its worker process dies (kill -9, node lost); exceptions,
    #: NaN losses and timeouts are not retried
    max_retries: int = Field(2, ge=0)
    #: wall-clock budget for the whole suite (seconds or "HH:MM:SS"); cells not done by then
    #: are cancelled and recorded as killed
    deadline: float | str | None = None

    @field_validator("deadline")
    @classmethod
    def _deadline(cls, value: float | str | None) -> float | None:
        return parse_seconds(value, "deadline")


def _non_empty_axis(values: list[Any]) -> list[Any]:
    if not values:
        raise ValueError("this grid axis has no values; give it a list of at least one value, e.g. [32, 64]")
    for i, value in enumerate(values):
        if any(value == earlier and type(value) is type(earlier) for earlier in values[:i]):
            raise ValueError(f"the value {value!r} appears twice in this grid axis (it would run twice); remove one")
    return values


class ComponentEntry(Strict):
    name: str = Field(min_length=1)
    #: how the entry shows in tables (default: its name)
    label: str | None = Field(None, pattern=NAME_RE)
    params: dict[str, Any] = Field(default_factory=dict)
    #: sweep axes: each key maps to a list of values; the cells take their product
    grid: dict[str, Annotated[list[Any], AfterValidator(_non_empty_axis)]] = Field(default_factory=dict)


class TaskEntry(ComponentEntry):
    #: metric names (default: the task's own list)
    metrics: list[str] | None = None
    #: time-to-target: the value of the primary metric that counts as reached (default: the task's)
    target: float | None = None


class ArchitectureEntry(ComponentEntry):
    #: trainer settings for this architecture only (e.g. its own learning rate)
    trainer: dict[str, Any] = Field(default_factory=dict)


class SuiteSpec(Strict):
    name: str = Field(pattern=NAME_RE)
    description: str = ""
    #: a list of seeds, or a count N meaning seeds 0..N-1
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    tasks: list[TaskEntry] = Field(min_length=1)
    architectures: list[ArchitectureEntry] = Field(min_length=1)
    trainer: TrainerSpec = Field(default_factory=TrainerSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    measure: MeasureSpec = Field(default_factory=MeasureSpec)
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)
    #: reporter names (see `harness list reporters`); default: every installed reporter
    reporters: list[str] | None = None

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_count(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if not 1 <= value <= MAX_SEED_COUNT:
                raise ValueError(
                    f"seeds as a count must be between 1 and {MAX_SEED_COUNT} (or give the list of seeds)"
                )
            return list(range(value))
        return value

    @field_validator("seeds")
    @classmethod
    def _unique(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError("seeds must not repeat")
        return seeds


def check_accelerator(accelerator: str, resources: ResourcesSpec, where: str) -> None:
    """``accelerator: gpu`` needs ``resources.gpus`` > 0 (Ray gives a run only the GPUs it asks for)."""
    if accelerator == "gpu" and resources.gpus == 0:
        raise SuiteError(
            f"{where}: accelerator is `gpu` but resources.gpus is 0, so the run would get no GPU. "
            "Set resources.gpus (e.g. 1 or 0.5), or set the accelerator to `auto` or `cpu`."
        )


class Suite:
    """A validated suite and the YAML source it came from (for error locations)."""

    def __init__(self, spec: SuiteSpec, source: Source) -> None:
        self.spec = spec
        self.source = source

    @property
    def path(self) -> Path:
        return self.source.path


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file; raises SuiteError with location and fix."""
    source = load_yaml(path)
    if not isinstance(source.data, dict):
        raise SuiteError(
            f"{source.where(())}: the top level must be a mapping with keys like `name`, `tasks`, "
            f"`architectures`, not {_a(type(source.data).__name__)}. See suites/quickstart.yaml."
        )
    try:
        spec = SuiteSpec.model_validate(source.data)
    except ValidationError as exc:
        raise_for(exc, source, SuiteSpec)
    check_accelerator(spec.trainer.accelerator, spec.resources, source.where(("trainer", "accelerator")))
    return Suite(spec, source)
