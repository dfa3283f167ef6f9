"""The typed settings of one run: trainer, resources, measurement and execution.

These pydantic models sit at the bottom of the import graph (they import nothing else of
harness): the suite file validates into them (:mod:`harness.suite`), a
:class:`harness.records.RunSpec` carries them to the worker, and every layer reads their typed
fields. A default is written here once and nowhere else.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

#: the fewest CPUs one run may ask for: below it the scheduler would start every cell at once
#: (``cpus: 0.001`` = a thousand concurrent runs per core); 0.1 = at most ten runs per core
MIN_CPUS = 0.1
#: the precisions a run can train in (``64-true`` is not one: tasks feed float32 data)
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")


class Strict(BaseModel):
    # inf and nan are never meaningful settings (``lr: .inf`` would pass ``gt=0``)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _not_bool(value: Any) -> Any:
    # pydantic reads `true` as 1 for an int or float field: `max_epochs: true` would silently mean 1
    if isinstance(value, bool):
        raise PydanticCustomError("bool_not_number", "expected a number, not a boolean")
    return value


NotBool = BeforeValidator(_not_bool)
#: an int / float setting that refuses booleans
Int = Annotated[int, NotBool]
Float = Annotated[float, NotBool]
#: seconds, or an "HH:MM:SS" string (booleans refused)
Seconds = Annotated[float | str | None, NotBool]


def parse_seconds(value: float | str | None, name: str) -> float | None:
    """Seconds, or an "HH:MM:SS" / "MM:SS" string → positive finite seconds.

    Minutes and seconds of a clock time must be 0 to 59 (``"00:99:99"`` is a typo, not 6,039 s)."""
    if value is None:
        return None
    if isinstance(value, str):
        match = re.fullmatch(r"(?:(\d+):)?(\d+):(\d+)", value.strip())
        if not match:
            raise ValueError(f'{name} must be seconds (e.g. 300) or "HH:MM:SS" (e.g. "00:05:00")')
        hours, minutes, seconds = (int(g or 0) for g in match.groups())
        if minutes > 59 or seconds > 59:
            total = hours * 3600 + minutes * 60 + seconds
            hh, rest = divmod(total, 3600)
            raise ValueError(
                f'{name} "{value.strip()}": minutes and seconds must be 0 to 59 (for {total:,} s write '
                f'"{hh:02d}:{rest // 60:02d}:{rest % 60:02d}" or {total})'
            )
        value = hours * 3600 + minutes * 60 + seconds
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{name} must be a positive, finite number of seconds")
    return float(value)


class EarlyStopping(Strict):
    """Stop when the monitored validation metric stops improving."""

    patience: Int = Field(5, ge=1)
    min_delta: Float = Field(0.0, ge=0)
    #: a validation metric (``val_loss``, ``val_accuracy``...); default: the task's primary metric
    monitor: str | None = None


class TbpttSpec(Strict):
    """Truncated backpropagation through time (recurrent architectures only).

    The sequence is processed in chunks of ``k1`` time steps, carrying the hidden state from
    chunk to chunk; gradients flow back through at most ``k2`` of those steps (default: ``k1``).
    Absent (``tbptt: null``, the default) means full backpropagation through time.
    """

    k1: Int = Field(ge=1)
    k2: Int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _k2_le_k1(self) -> TbpttSpec:
        if self.k2 is not None and self.k2 > self.k1:
            raise ValueError(
                f"tbptt.k2 ({self.k2}) must not exceed tbptt.k1 ({self.k1}): "
                "gradients can only flow back through steps of the current chunk"
            )
        return self


#: the learning-rate schedules of ``trainer.scheduler.name`` (``none``: a constant lr, the default)
SCHEDULES = ("none", "cosine", "step", "plateau", "onecycle")
#: the options of each schedule besides the warm-up; one given for another schedule is an error
SCHEDULE_OPTIONS: dict[str, tuple[str, ...]] = {
    "none": (),
    "cosine": ("min_lr", "min_lr_ratio"),
    "step": ("step_size", "gamma"),
    "plateau": ("patience", "factor", "monitor", "min_lr", "min_lr_ratio"),
    "onecycle": ("max_lr", "pct_start"),
}
_OPTIONS = tuple(dict.fromkeys(o for opts in SCHEDULE_OPTIONS.values() for o in opts))


class SchedulerSpec(Strict):
    """The learning-rate schedule of a run (``trainer.scheduler``), with an optional linear warm-up.

    ``name: none`` without a warm-up (the default) keeps ``trainer.lr`` constant, exactly as
    runs without a ``scheduler`` block always did. Steps are optimizer steps. An option left out
    takes the default below (the resolved values are the methods' results); an option of another
    schedule is an error. Unset options are left out of the dump (the run id, the results file,
    MLflow's params), so a new option with a default never changes the ids of earlier runs.
    """

    #: one of :data:`SCHEDULES`
    name: Literal["none", "cosine", "step", "plateau", "onecycle"] = "none"
    #: linear warm-up from lr/warmup_steps to lr over the first optimizer steps: a count, or a
    #: fraction of the run's total steps (not both); composes with every schedule but onecycle
    warmup_steps: Int | None = Field(None, ge=1)
    warmup_fraction: Float | None = Field(None, gt=0, lt=1)
    #: step: multiply the lr by ``gamma`` (default 0.1) every ``step_size`` epochs (default: a
    #: third of max_epochs, at least 1: two decays in a run)
    step_size: Int | None = Field(None, ge=1)
    gamma: Float | None = Field(None, gt=0, lt=1)
    #: plateau: multiply the lr by ``factor`` (default 0.1) when ``monitor`` (default: the task's
    #: primary validation metric) has not improved for ``patience`` epochs (default 2)
    patience: Int | None = Field(None, ge=0)
    factor: Float | None = Field(None, gt=0, lt=1)
    monitor: str | None = None
    #: cosine / plateau: the lowest lr, absolute or as a fraction of lr (default 0)
    min_lr: Float | None = Field(None, ge=0)
    min_lr_ratio: Float | None = Field(None, ge=0, lt=1)
    #: onecycle: the peak lr (default: trainer.lr) and the share of the run spent rising to it
    #: (default 0.3); it starts and ends far below (PyTorch's OneCycleLR: max_lr/25, then /1e4 of that)
    max_lr: Float | None = Field(None, gt=0)
    pct_start: Float | None = Field(None, gt=0, lt=1)

    @field_validator("name", mode="before")
    @classmethod
    def _known(cls, value: Any) -> Any:
        if value is None:
            return "none"
        if isinstance(value, str) and value not in SCHEDULES:
            close = difflib.get_close_matches(value.lower(), SCHEDULES, n=1, cutoff=0.6)
            hint = f"Did you mean `{close[0]}`? " if close else ""
            raise ValueError(
                f"unknown learning-rate schedule. {hint}Use one of: none (the default, a constant lr), "
                f"{', '.join(SCHEDULES[1:])}"
            )
        return value

    @field_validator("warmup_steps", "warmup_fraction")
    @classmethod
    def _one_warmup(cls, value: Any, info: ValidationInfo) -> Any:
        if info.data.get("name") == "onecycle":
            raise ValueError(
                "the onecycle schedule warms up by itself (over pct_start of the run); remove "
                f"{info.field_name}, or use another schedule (e.g. cosine) with a warm-up"
            )
        if info.field_name == "warmup_fraction" and info.data.get("warmup_steps") is not None:
            raise ValueError("give warmup_steps or warmup_fraction, not both; remove one of them")
        return value

    @field_validator(*_OPTIONS)
    @classmethod
    def _of_this_schedule(cls, value: Any, info: ValidationInfo) -> Any:
        name, option = info.data.get("name"), str(info.field_name)
        if value is None or name is None or option in SCHEDULE_OPTIONS[name]:
            return value
        owners = [n for n, opts in SCHEDULE_OPTIONS.items() if option in opts]
        raise ValueError(
            f"`{option}` is an option of the {' and '.join(owners)} schedule"
            f"{'s' if len(owners) > 1 else ''}, not of `{name}`; remove it, or set "
            f"`name: {owners[0]}` ({name} takes {', '.join(SCHEDULE_OPTIONS[name]) or 'no options'}"
            f"{'' if name == 'onecycle' else ' besides warmup_steps / warmup_fraction'})"
        )

    @field_validator("min_lr_ratio")
    @classmethod
    def _one_floor(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("min_lr") is not None:
            raise ValueError("give min_lr or min_lr_ratio, not both; remove one of them")
        return value

    @model_serializer(mode="wrap")
    def _given_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}

    # -- the resolved settings (every default of a schedule is written here, once) --------------
    @property
    def constant(self) -> bool:
        """The lr stays ``trainer.lr`` throughout (the default: no schedule, no warm-up)."""
        return self.name == "none" and self.warmup_steps is None and self.warmup_fraction is None

    def warmup(self, total_steps: int) -> int:
        """Warm-up steps of a run of ``total_steps`` optimizer steps (0: none)."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        if self.warmup_fraction is not None:
            return max(1, round(self.warmup_fraction * total_steps))
        return 0

    def epochs_per_step(self, max_epochs: int) -> int:
        """step: epochs between two decays."""
        return self.step_size if self.step_size is not None else max(1, max_epochs // 3)

    def decay(self) -> float:
        """step: the factor of each decay; plateau: of each reduction."""
        given = self.gamma if self.name == "step" else self.factor
        return given if given is not None else 0.1

    def plateau_patience(self) -> int:
        return self.patience if self.patience is not None else 2

    def floor(self, lr: float) -> float:
        """cosine / plateau: the lowest lr."""
        if self.min_lr is not None:
            return self.min_lr
        return lr * (self.min_lr_ratio or 0.0)

    def peak(self, lr: float) -> float:
        """onecycle: the highest lr."""
        return self.max_lr if self.max_lr is not None else lr

    def rise(self) -> float:
        """onecycle: the share of the run spent rising to the peak."""
        return self.pct_start if self.pct_start is not None else 0.3


def _scheduler_block(value: Any) -> Any:
    """``scheduler: cosine`` → ``{name: cosine}``; ``scheduler: null`` → the default (constant lr)."""
    if value is None:
        return {}
    if isinstance(value, str):
        return {"name": value}
    return value


def merge_settings(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` (trainer settings as written) with ``overrides`` set into it, unvalidated.

    A dotted key sets a key of a block: ``{"scheduler.name": "cosine", "scheduler.warmup_fraction":
    0.1}`` keeps the block's other keys (a grid axis ``trainer.scheduler.name``, a tuning search
    space). A block written as a shorthand (``scheduler: cosine``, ``early_stopping: true``) or
    left empty becomes a mapping first.
    """
    out: dict[str, Any] = dict(raw)
    for key, value in overrides.items():
        *parents, last = key.split(".")
        node = out
        for part in parents:
            child = node.get(part)
            if isinstance(child, Mapping):
                child = dict(child)
            elif part == "scheduler":
                child = _scheduler_block(child)
            else:
                child = {}
            node[part] = child
            node = child
        node[last] = value
    return out


class TrainerSpec(Strict):
    max_epochs: Int = Field(10, ge=1)
    max_steps: Int | None = Field(None, ge=1)
    #: seconds, or a "HH:MM:SS" string
    max_time: Seconds = None
    batch_size: Int = Field(64, ge=1)
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    lr: Float = Field(1e-3, gt=0)
    weight_decay: Float = Field(0.0, ge=0)
    momentum: Float = Field(0.0, ge=0, lt=1)
    gradient_clip_val: Float | None = Field(None, gt=0)
    gradient_clip_algorithm: Literal["norm", "value"] = "norm"
    early_stopping: EarlyStopping | None = None
    #: one of :data:`PRECISIONS`
    precision: Literal["32-true", "16-mixed", "bf16-mixed"] = "32-true"
    #: "auto" follows resources.gpus
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    #: truncated BPTT (``{k1: 50, k2: 50}``); default: full backpropagation through time
    tbptt: TbpttSpec | None = None
    #: the learning-rate schedule and warm-up (``{name: cosine, warmup_fraction: 0.05}``, or just
    #: ``cosine``); default: a constant lr
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    #: the training loop: ``auto`` (the lean loop wherever it applies, see
    #: :mod:`harness.train.lean`; Lightning's otherwise) or ``lightning`` (always Lightning's).
    #: Both give the same figures, so it is not part of the run id.
    loop: Literal["auto", "lightning"] = "auto"

    @field_validator("scheduler", mode="before")
    @classmethod
    def _scheduler_shorthand(cls, value: Any) -> Any:
        return _scheduler_block(value)

    @field_validator("scheduler")
    @classmethod
    def _schedule_fits_lr(cls, value: SchedulerSpec, info: ValidationInfo) -> SchedulerSpec:
        lr, floor = info.data.get("lr"), value.min_lr
        if lr is not None and floor is not None and floor >= lr:
            raise ValueError(
                f"min_lr ({floor:g}) must be below trainer.lr ({lr:g}), the rate it decays from; "
                "lower it, or give min_lr_ratio (a fraction of lr) instead"
            )
        return value

    def override(self, overrides: Mapping[str, Any]) -> TrainerSpec:
        """These settings with ``overrides`` (flat, dotted keys: see :func:`merge_settings`) applied
        and validated again (a pydantic ``ValidationError`` when they do not fit)."""
        return TrainerSpec.model_validate(merge_settings(self.model_dump(exclude_unset=True), overrides))

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _early_bool(cls, value: Any) -> Any:
        if value is True:
            return {}
        if value is False:
            return None
        return value

    @field_validator("precision", mode="before")
    @classmethod
    def _no_double(cls, value: Any) -> Any:
        if str(value) in {"64-true", "64"}:  # Lightning's double precision: the networks' inputs stay float32
            raise ValueError(
                f"precision {value} (double) is not supported: the tasks feed float32 data, so every run "
                f"would fail; use one of {', '.join(PRECISIONS)} (32-true is the default; the mixed ones "
                "are for GPUs)"
            )
        return value

    @field_validator("max_time")
    @classmethod
    def _max_time(cls, value: float | str | None) -> float | None:
        return parse_seconds(value, "max_time")


class ResourcesSpec(Strict):
    """What one run asks the scheduler for (per worker when ``workers`` > 1)."""

    cpus: Float = Field(1.0, gt=0)
    gpus: Float = Field(0.0, ge=0)
    #: data-parallel workers per run; above 1 the run trains with Ray Train (DDP), each worker
    #: getting ``cpus`` and ``gpus``
    workers: Int = Field(1, ge=1)

    @field_validator("gpus")
    @classmethod
    def _whole_above_one(cls, value: float) -> float:
        if value > 1 and not float(value).is_integer():
            raise ValueError("gpus above 1 must be a whole number (fractions are for sharing one GPU)")
        return value


class GradientFlowSpec(Strict):
    """The opt-in gradient-flow probe: ‖∂L/∂h_t‖ over time steps t, and per-layer gradient norms."""

    #: training steps (optimizer steps, 0 = before the first update) at which to probe
    steps: list[Annotated[Int, Field(ge=0)]] = Field(default_factory=lambda: [0])
    #: also probe every N steps (in addition to ``steps``)
    every_n_steps: Int | None = Field(None, ge=1)
    #: flag "vanishing" when ‖∂L/∂h_first‖ / ‖∂L/∂h_last‖ falls below this
    vanishing_ratio: Float = Field(1e-3, gt=0)
    #: flag "exploding" when any per-step or per-layer norm exceeds this (or is not finite)
    exploding_norm: Float = Field(1e3, gt=0)
    #: how many training samples the probe batch holds
    batch_size: Int = Field(32, ge=1)


class MeasureSpec(Strict):
    """What each run measures besides the task metrics (all on by default except the probe)."""

    #: inference latency p50/p95/p99 at batch 1 and throughput at the training batch size
    latency: bool = True
    #: timed rounds after warm-up for latency and inference throughput
    rounds: Int = Field(30, ge=3)
    warmup: Int = Field(5, ge=0)
    #: FLOPs per sample (forward; torch FlopCounterMode with oneDNN/cuDNN RNN kernels disabled)
    flops: bool = True
    #: peak memory (CUDA max allocated on GPU; RSS growth on CPU)
    memory: bool = True
    gradient_flow: GradientFlowSpec | None = None


class ExecutionSpec(Strict):
    """How the suite as a whole is scheduled and how it survives faults."""

    #: times a run is retried when its worker process dies (kill -9, node lost); exceptions,
    #: NaN losses and timeouts are not retried
    max_retries: Int = Field(2, ge=0)
    #: wall-clock budget for the whole suite (seconds or "HH:MM:SS"); cells not done by then
    #: are cancelled and recorded as killed
    deadline: Seconds = None

    @field_validator("deadline")
    @classmethod
    def _deadline(cls, value: float | str | None) -> float | None:
        return parse_seconds(value, "deadline")
