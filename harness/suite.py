"""The suite file format: YAML → a validated :class:`SuiteSpec`.

Top-level keys: ``name``, ``description``, ``seeds``, ``tasks``,
``architectures``, ``trainer``, ``resources``, ``tracking``, ``measure``,
``execution``, ``reporters``. Errors name the
YAML path and line (``tasks[1].params.length (line 12)``) and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, field_validator

from harness.errors import SuiteError
from harness.settings import (
    EarlyStopping,
    ExecutionSpec,
    GradientFlowSpec,
    MeasureSpec,
    ResourcesSpec,
    Strict,
    TbpttSpec,
    TrainerSpec,
    parse_seconds,
)
from harness.validation import raise_for
from harness.yamlsrc import Source, load_yaml

__all__ = [  # the run settings live in harness.settings; re-exported for existing imports
    "EarlyStopping",
    "ExecutionSpec",
    "GradientFlowSpec",
    "MeasureSpec",
    "ResourcesSpec",
    "Strict",
    "Suite",
    "SuiteSpec",
    "TbpttSpec",
    "TrackingSpec",
    "TrainerSpec",
    "check_accelerator",
    "load_suite",
    "parse_seconds",
]

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
#: the largest seed: NumPy's (and so Lightning's ``seed_everything``) seeds are 32-bit unsigned
MAX_SEED = 2**32 - 1
#: more seeds than this as a count is a typo (``seeds: 50000`` would plan 50000 runs per cell)
MAX_SEED_COUNT = 1000


class TrackingSpec(Strict):
    #: MLflow tracking URI; default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db
    uri: str | None = None
    #: MLflow experiment name; default: the suite name
    experiment: str | None = None
    #: JSON-lines results file; default: results/<suite name>.jsonl
    results: str | None = None
    #: ``best``: log each finished run's best-validation network as an MLflow PyTorch model
    #: named ``model`` on its child run (see docs/models.md); ``none`` (default): log no model.
    #: Not part of the run id: switching it does not re-run finished cells.
    log_model: Literal["best", "none"] = "none"


def _non_empty_axis(values: list[Any]) -> list[Any]:
    if not values:
        raise ValueError("this grid axis has no values; give it a list of at least one value, e.g. [32, 64]")
    for i, value in enumerate(values):
        if any(value == earlier and type(value) is type(earlier) for earlier in values[:i]):
            raise ValueError(
                f"the value {value!r} appears twice in this grid axis (it would run twice); remove one"
            )
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
        outside = [seed for seed in seeds if not 0 <= seed <= MAX_SEED]
        if outside:
            raise ValueError(
                f"seed {outside[0]} is outside 0..{MAX_SEED} (the range NumPy and Lightning seed with)"
            )
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
