"""The suite file format: YAML → a validated :class:`SuiteSpec`.

Top-level keys: ``name``, ``description``, ``seeds``, ``tasks``,
``architectures``, ``trainer``, ``resources``, ``tracking``, ``measure``,
``execution``, ``reporters``, ``budget``. Errors name the
YAML path and line (``tasks[1].params.length (line 12)``) and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, field_validator

from harness.errors import SuiteError, quote
from harness.settings import (
    MIN_CPUS,
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
from harness.tunespec import TuneSpec
from harness.validation import raise_for
from harness.yamlsrc import Source, load_yaml

__all__ = [  # the run settings live in harness.settings; re-exported for existing imports
    "BudgetSpec",
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
    "check_cpus",
    "load_suite",
    "parse_seconds",
]

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
#: the longest suite name (and label): names become file and folder names (results/<name>.jsonl,
#: reports/<name>/...), and a file name component may have at most 255 bytes
MAX_NAME_LENGTH = 100
#: the longest ``description``: free text for humans, copied into every record and report
MAX_DESCRIPTION_LENGTH = 10_000
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
    hashable: set[tuple[type, Any]] = set()  # scalars: checked in constant time each
    others: list[Any] = []  # lists and mappings: compared one by one
    for value in values:
        try:
            key: tuple[type, Any] | None = (type(value), value)
            repeated = key in hashable
        except TypeError:
            key, repeated = None, any(value == earlier and type(value) is type(earlier) for earlier in others)
        if repeated:
            raise ValueError(
                f"the value {quote(value)} appears twice in this grid axis (it would run twice); remove one"
            )
        if key is None:
            others.append(value)
        else:
            hashable.add(key)
    return values


class ComponentEntry(Strict):
    name: str = Field(min_length=1)
    #: how the entry shows in tables (default: its name)
    label: str | None = Field(None, pattern=NAME_RE, max_length=MAX_NAME_LENGTH)
    params: dict[str, Any] = Field(default_factory=dict)
    #: sweep axes: each key maps to a list of values; the cells take their product
    grid: dict[str, Annotated[list[Any], AfterValidator(_non_empty_axis)]] = Field(default_factory=dict)


#: the largest parameter budget a suite may ask for (a typo beyond it would size every width to its maximum)
MAX_BUDGET = 10**11


class BudgetSpec(Strict):
    """``budget: {params: N}``: size every architecture that declares a width (``Architecture.budget_width``)
    to the largest width whose network (encoder, decoder, the task's head) has at most N parameters.
    Sized per task (input and output sizes differ); see :mod:`harness.budget`."""

    params: int = Field(gt=0, le=MAX_BUDGET)


class TaskEntry(ComponentEntry):
    #: metric names (default: the task's own list)
    metrics: list[str] | None = None
    #: time-to-target: the value of the primary metric that counts as reached (default: the task's)
    target: float | None = None
    #: the parameter budget of this task's cells (default: the suite's ``budget``)
    budget: BudgetSpec | None = None


class ArchitectureEntry(ComponentEntry):
    #: trainer settings for this architecture only (e.g. its own learning rate)
    trainer: dict[str, Any] = Field(default_factory=dict)
    #: false: no parameter budget sizes this architecture (its params stay as written)
    budget: bool = True


class SuiteSpec(Strict):
    #: also a file name component: results/<name>.jsonl, reports/<name>/
    name: str = Field(pattern=NAME_RE, max_length=MAX_NAME_LENGTH)
    description: str = Field("", max_length=MAX_DESCRIPTION_LENGTH)
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
    #: parameter budget of every task (a task entry's own ``budget`` overrides it)
    budget: BudgetSpec | None = None
    #: fair tuning: the same budget of trials per (task, architecture), then the best
    #: configuration of each over the seeds (see docs/fair-comparisons.md)
    tune: TuneSpec | None = None

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
    """``accelerator: gpu`` needs ``resources.gpus`` > 0 (Ray gives a run only the GPUs it asks for).

    Also checks ``resources.cpus`` against the minimum: a suite's own value is checked (with its
    YAML place) when it loads, so a value below it here came from ``--cpus``, which
    :func:`harness.runner.plan_suite` merges over the suite's resources before calling this."""
    check_cpus(resources, "--cpus")
    if accelerator == "gpu" and resources.gpus == 0:
        raise SuiteError(
            f"{where}: accelerator is `gpu` but resources.gpus is 0, so the run would get no GPU. "
            "Set resources.gpus (e.g. 1 or 0.5), or set the accelerator to `auto` or `cpu`."
        )


def check_cpus(resources: ResourcesSpec, where: str) -> None:
    """``resources.cpus`` below :data:`~harness.settings.MIN_CPUS` would let the scheduler start
    every cell at once (``cpus: 0.001`` on 2 cores = 2,000 concurrent runs)."""
    if resources.cpus < MIN_CPUS:
        raise SuiteError(
            f"{where}: {resources.cpus:g} CPUs per run is below the minimum of {MIN_CPUS:g} (at most "
            f"{round(1 / MIN_CPUS)} runs per core): the scheduler would start every cell at once. Ask for "
            "the share of a core one run really needs, e.g. 1 (the default) or 0.5."
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
    check_cpus(spec.resources, source.where(("resources", "cpus")))
    check_accelerator(spec.trainer.accelerator, spec.resources, source.where(("trainer", "accelerator")))
    return Suite(spec, source)
