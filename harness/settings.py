"""The typed settings of one run: trainer, resources, measurement and execution.

These pydantic models sit at the bottom of the import graph (they import nothing else of
harness): the suite file validates into them (:mod:`harness.suite`), a
:class:`harness.records.RunSpec` carries them to the worker, and every layer reads their typed
fields. A default is written here once and nowhere else.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


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
            raise ValueError(
                f"tbptt.k2 ({self.k2}) must not exceed tbptt.k1 ({self.k1}): "
                "gradients can only flow back through steps of the current chunk"
            )
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
