"""What a run is and what it returns: :class:`RunSpec` goes out, :class:`RunRecord` comes back.

The planner (:mod:`harness.matrix`) builds one frozen ``RunSpec`` per cell of a suite, from the
validated suite models; it is all a worker needs to rebuild the run (names, resolved params,
trainer, resources, seed, measurement and execution settings) plus the plan-time provenance
(which plugin distribution and version registered the task and the architecture, the task's
data version, the harness version and git commit). The worker answers with a ``RunRecord``:
status, failure, metrics with their directions, cost, history, artifacts, and where, on what
and with which libraries it ran. Executors, the trial, tracking, resume, reports and compare
all read these types; none of them re-reads string keys or restates a default.

This module is the bottom of the import graph: it imports nothing of harness but
:mod:`harness.settings`. Records are stored one JSON object a line (``to_json`` /
``from_json``); files written before this format (flat dicts) still load.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.settings import ExecutionSpec, MeasureSpec, ResourcesSpec, TrainerSpec

Status = Literal["finished", "failed", "killed", "skipped"]
#: why a run failed, in one word (see :mod:`harness.train.failures` for the classification)
FailureKind = Literal["exception", "nan", "diverged", "oom", "timeout", "infrastructure", "killed"]
FAILURE_KINDS: tuple[str, ...] = get_args(FailureKind)
Direction = Literal["max", "min"]
#: the version of the record layout written by :meth:`RunRecord.to_json`
RECORD_FORMAT = 2
#: the metric keys of a record are the task metrics on the test split, with this prefix
TEST_PREFIX = "test_"

JsonDict = dict[str, Any]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PluginRef(_Frozen):
    """The distribution (and its version) of the plugin that registered a name."""

    distribution: str
    version: str
    #: digest of the plugin's Python source when its version does not identify its code (an
    #: editable or local-directory install, a ``HARNESS_PLUGINS`` module); None for a wheel
    #: install, whose version is the identity (see :mod:`harness.provenance`)
    source: str | None = None

    @property
    def pin(self) -> str:
        """``dist==version``: what ``pip install`` needs to get the same plugin."""
        return f"{self.distribution}=={self.version}"

    @classmethod
    def parse(cls, pin: str) -> PluginRef:
        dist, _, version = pin.partition("==")
        return cls(distribution=dist or "unknown", version=version or "unknown")


UNKNOWN_PLUGIN = PluginRef(distribution="unknown", version="unknown")


class PlanProvenance(_Frozen):
    """What the driver planned the run with (fixed at plan time, part of the run id but the commit)."""

    harness: str
    task_plugin: PluginRef
    arch_plugin: PluginRef
    #: the task's ``data_version``
    data_version: str
    #: git commit of the harness checkout the driver ran from (None: not a git checkout)
    git_commit: str | None = None

    def id_versions(self) -> dict[str, str]:
        """The versions that enter the run id (the layout every earlier run id was hashed with).

        A plugin's source digest enters only when it has one, so the ids of plugins installed
        from wheels are those of earlier harness versions.
        """
        versions = {
            "harness": self.harness,
            "task_plugin": self.task_plugin.pin,
            "arch_plugin": self.arch_plugin.pin,
            "data": self.data_version,
        }
        if self.task_plugin.source is not None:
            versions["task_plugin_source"] = self.task_plugin.source
        if self.arch_plugin.source is not None:
            versions["arch_plugin_source"] = self.arch_plugin.source
        return versions

    def tags(self) -> dict[str, str]:
        """Flat ``name → version`` pairs, e.g. for MLflow tags ``version.<name>``."""
        out = {
            "harness": self.harness,
            self.task_plugin.distribution: self.task_plugin.version,
            self.arch_plugin.distribution: self.arch_plugin.version,
            "data": self.data_version,
        }
        if self.git_commit:
            out["harness_git_commit"] = self.git_commit
        return out


class RuntimeInfo(_Frozen):
    """Where and with what a run executed (filled in by the worker)."""

    host: str = ""
    pid: int = 0
    device: str = ""
    #: Ray node id (None outside Ray)
    node_id: str | None = None
    #: library versions of the worker: python, torch, pytorch_lightning, torchmetrics, harness
    versions: dict[str, str] = Field(default_factory=dict)


class Failure(_Frozen):
    """Why a run did not finish."""

    kind: FailureKind
    message: str
    attempts: int = 1
    #: the trimmed traceback of the exception, when there was one
    traceback: str = ""


class Sizing(_Frozen):
    """How a parameter budget (``budget: {params: N}`` in the suite) sized a cell's architecture.

    The chosen width itself is an ordinary architecture parameter (``RunSpec.arch_params``), so
    it is part of the run id; this block only says where it came from."""

    #: the budget, in parameters
    budget: int
    #: the exact parameter count of the cell's network (encoder, decoder, head) at that width
    params: int
    #: the width parameter the budget chose (its value is ``arch_params[width]``)
    width: str
    #: the width's step (its ``multiple_of``) and the count one step wider (None: no wider width
    #: is allowed): why a count lands further below the budget than the step size suggests
    step: int = 1
    next_params: int | None = None

    @property
    def fraction(self) -> float:
        """``params / budget``."""
        return self.params / self.budget


#: what a run is for in a tuned suite (``tune:``): a tuning trial (validation only, never tested),
#: the final run of the best configuration, or of the suite's untuned one (tuned vs default)
TuningRole = Literal["trial", "tuned", "default"]


class Tuning(_Frozen):
    """Where a run stands in a tuned suite (``tune:``). Not part of the run id: a trial's id is
    made distinct by :mod:`harness.tuning` itself, and a ``default`` run is the plain cell."""

    role: TuningRole
    #: the (task, architecture) pair the tuning compares: ``<task label> × <arch label>``
    contender: str
    #: the trial's number within its contender (0-based), for trials
    trial: int | None = None
    #: the tuned settings: ``trainer.<key>`` / ``params.<key>`` → value (empty: the suite's own)
    config: JsonDict = Field(default_factory=dict)


class RunSpec(_Frozen):
    """One cell of a plan: everything a worker needs to rebuild and run it (plain data)."""

    run_id: str
    suite: str
    task: str
    task_label: str
    task_params: JsonDict
    architecture: str
    arch_label: str
    arch_params: JsonDict
    #: the grid point this cell comes from (``task.<key>`` for task axes)
    grid: JsonDict = Field(default_factory=dict)
    seed: int
    trainer: TrainerSpec
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    measure: MeasureSpec = Field(default_factory=MeasureSpec)
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)
    #: metric names computed on validation and test (the primary metric included)
    metrics: tuple[str, ...]
    primary_metric: str
    direction: Direction
    #: time-to-target threshold on the primary metric (the suite's or the task's), or None
    target: float | None = None
    provenance: PlanProvenance
    #: why the plan skips this cell (None: it runs)
    skip_reason: str | None = None
    #: which try this is (the executor counts retries after a worker died)
    attempt: int = 1
    #: data cache folder the worker uses (None: its own node's default)
    cache_dir: str | None = None
    #: ``best``: the worker returns the best-validation network (``RunRecord.model``) for the
    #: driver to log as an MLflow model (``tracking.log_model``; not part of the run id)
    log_model: Literal["best", "none"] = "none"
    #: how the suite's parameter budget sized the architecture (None: no budget applied)
    sizing: Sizing | None = None
    #: the run's place in a tuned suite (None: the suite has no ``tune:``)
    tuning: Tuning | None = None

    @property
    def is_trial(self) -> bool:
        """A tuning trial: trained and validated only; reports and compare leave it out."""
        return self.tuning is not None and self.tuning.role == "trial"

    @property
    def label(self) -> str:
        return f"{self.task_label} × {self.arch_label} · seed {self.seed}"

    @property
    def accelerator(self) -> Literal["cpu", "gpu"]:
        """The device kind the run trains on: ``trainer.accelerator``, where ``auto`` follows
        the GPUs asked for."""
        if self.trainer.accelerator == "auto":
            return "gpu" if self.resources.gpus > 0 else "cpu"
        return self.trainer.accelerator

    @property
    def distributed(self) -> bool:
        """Whether the run trains data-parallel on several Ray Train workers."""
        return self.resources.workers > 1


def _nan_for_null(values: Mapping[str, float | None]) -> dict[str, float]:
    return {k: float("nan") if v is None else float(v) for k, v in values.items()}


class RunRecord(BaseModel):
    """What one run returned (or why it did not run): one line of the results file."""

    model_config = ConfigDict(extra="forbid")

    spec: RunSpec
    status: Status
    failure: Failure | None = None
    #: test-split metric values, ``test_<metric>`` (``test_loss`` included)
    metrics: dict[str, float] = Field(default_factory=dict)
    #: metric name (without ``test_``) → ``max`` or ``min``
    directions: dict[str, Direction] = Field(default_factory=dict)
    #: cost figures: throughput, latency, memory, FLOPs, parameters, time, steps, time-to-target...
    cost: dict[str, float] = Field(default_factory=dict)
    #: one row per epoch (``epoch``, ``step``, ``elapsed_s``, ``train_loss``, ``val_*``)
    history: list[dict[str, float]] = Field(default_factory=list)
    gradient_flow: JsonDict | None = None
    #: text files the task keeps (file name → content)
    artifacts: dict[str, str] = Field(default_factory=dict)
    runtime: RuntimeInfo | None = None
    attempts: int = 1
    started_at: float = 0.0
    finished_at: float = 0.0
    wall_time_s: float = 0.0
    #: data-parallel world size (multi-worker runs)
    world_size: int | None = None
    #: the invocation (MLflow parent run) that recorded it, and its own MLflow run
    parent_run_id: str | None = None
    mlflow_run_id: str | None = None
    #: samples per data split the run used (``train``, ``val``, ``test``): the dataset MLflow shows
    data_sizes: dict[str, int] = Field(default_factory=dict)
    #: a tuning trial the early-stopping scheduler (ASHA) stopped before its last epoch
    early_stopped: bool = False
    #: the best-validation network, serialized by the worker when ``spec.log_model == "best"``
    #: (see :mod:`harness.tracking.models`); travels to the driver, never into the results file
    model: bytes | None = Field(default=None, exclude=True, repr=False)

    @field_validator("metrics", "cost", mode="before")
    @classmethod
    def _null_is_nan(cls, value: Any) -> Any:  # the results file stores NaN as null
        return _nan_for_null(value) if isinstance(value, Mapping) else value

    @field_validator("history", mode="before")
    @classmethod
    def _rows_null_is_nan(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [_nan_for_null(row) if isinstance(row, Mapping) else row for row in value]

    # -- reading -------------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return self.spec.run_id

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    @property
    def error(self) -> str:
        """The one-line cause of a failed run, or the skip reason ("" when it finished)."""
        if self.failure is not None:
            return self.failure.message
        return self.spec.skip_reason or ""

    @property
    def primary_value(self) -> float | None:
        value = self.metrics.get(TEST_PREFIX + self.spec.primary_metric)
        return value if value is not None and math.isfinite(value) else None

    def test_metrics(self) -> dict[str, float]:
        """``metric → value`` of the finite test metrics, ``test_loss`` left out."""
        return {
            k[len(TEST_PREFIX) :]: v
            for k, v in self.metrics.items()
            if k.startswith(TEST_PREFIX) and k != TEST_PREFIX + "loss" and math.isfinite(v)
        }

    def direction_of(self, metric: str) -> Direction | None:
        """The recorded direction of ``metric`` (None for records that predate directions)."""
        if metric == self.spec.primary_metric:
            return self.spec.direction
        return self.directions.get(metric)

    # -- the flat layout of hook API 1.0 ---------------------------------------------------------
    def flat(self) -> JsonDict:
        """The record in the flat layout reporters of hook API 1.0 were given (``record["task"]``,
        ``record["metrics"]["test_accuracy"]``, ``record["versions"]``...). New code reads the fields."""
        spec, runtime = self.spec, self.runtime
        return {
            **spec.model_dump(
                mode="json", exclude={"metrics", "provenance", "measure", "execution", "attempt", "cache_dir"}
            ),
            "status": self.status,
            "metrics": dict(self.metrics),
            "cost": dict(self.cost),
            "history": list(self.history),
            "error": self.failure.message if self.failure else None,
            "failure": self.failure.model_dump(exclude={"traceback"}) if self.failure else None,
            "versions": {**(runtime.versions if runtime else {}), **spec.provenance.id_versions()},
            "device": runtime.device if runtime else "",
            "host": runtime.host if runtime else "",
            "attempts": self.attempts,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "wall_time_s": self.wall_time_s,
            "parent_run_id": self.parent_run_id,
        }

    def get(self, key: str, default: Any = None) -> Any:
        """``flat().get(key)``: lets reporters written for hook API 1.0 read a record as a mapping."""
        return self.flat().get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.flat()[key]

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def skipped(cls, spec: RunSpec, parent_run_id: str | None = None) -> RunRecord:
        return cls(spec=spec, status="skipped", parent_run_id=parent_run_id)

    @classmethod
    def failed(
        cls,
        spec: RunSpec,
        kind: FailureKind,
        message: str,
        *,
        traceback: str = "",
        attempts: int = 1,
        history: Sequence[Mapping[str, float]] = (),
        started_at: float | None = None,
        finished_at: float,
        status: Status | None = None,
        runtime: RuntimeInfo | None = None,
    ) -> RunRecord:
        """A run that ended without results: ``killed`` status for Ctrl-C (or ``status``), else ``failed``."""
        started = finished_at if started_at is None else started_at
        return cls(
            spec=spec,
            status=status or ("killed" if kind == "killed" else "failed"),
            failure=Failure(kind=kind, message=message, attempts=attempts, traceback=traceback),
            history=[dict(row) for row in history],
            runtime=runtime,
            attempts=attempts,
            started_at=started,
            finished_at=finished_at,
            wall_time_s=max(0.0, finished_at - started),
        )

    # -- the results file ----------------------------------------------------------------------
    def to_json(self) -> JsonDict:
        """A JSON-ready dict: NaN becomes null, ±inf the strings ``"inf"``/``"-inf"``."""
        data: JsonDict = _clean(self.model_dump(mode="python"))
        return {"format": RECORD_FORMAT, **data}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunRecord:
        """A record from one line of a results file, of this format or the flat one before it.

        Raises ``ValueError`` for an object that is neither.
        """
        if "spec" in data:
            return cls.model_validate({k: v for k, v in data.items() if k != "format"})
        return cls.model_validate(_from_flat(data))


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


# -- records written before RunRecord (flat dicts) ------------------------------------------------
def _flat_provenance(
    versions: Mapping[str, Any],
) -> tuple[PlanProvenance, dict[str, str]]:
    """Old records kept plan versions (skipped ones) or runtime versions (executed ones) under one key:
    the plan's provenance (``unknown`` where they kept the runtime's) and the runtime versions."""
    plain = {str(k): str(v) for k, v in versions.items()}
    if "task_plugin" in plain:
        plan = PlanProvenance(
            harness=plain.get("harness", "unknown"),
            task_plugin=PluginRef.parse(plain["task_plugin"]),
            arch_plugin=PluginRef.parse(plain.get("arch_plugin", "")),
            data_version=plain.get("data", "unknown"),
        )
        return plan, {}
    plan = PlanProvenance(
        harness=plain.get("harness", "unknown"),
        task_plugin=UNKNOWN_PLUGIN,
        arch_plugin=UNKNOWN_PLUGIN,
        data_version="unknown",
    )
    return plan, plain


def _from_flat(data: Mapping[str, Any]) -> JsonDict:
    if "run_id" not in data or "task" not in data or "architecture" not in data:
        raise ValueError("not a run record: it has no run_id, task and architecture")
    versions = data.get("versions")
    plan, runtime_versions = _flat_provenance(versions if isinstance(versions, Mapping) else {})
    values = data.get("metrics")
    metric_values = dict(values) if isinstance(values, Mapping) else {}
    primary = str(data.get("primary_metric") or "")
    names = [k[len(TEST_PREFIX) :] for k in metric_values if k.startswith(TEST_PREFIX) and k != "test_loss"]
    trainer: Any = data.get("trainer") or {}
    try:
        trainer = TrainerSpec.model_validate(trainer)
    except ValidationError:
        trainer = TrainerSpec()
    spec = {
        "run_id": data["run_id"],
        "suite": data.get("suite") or "?",
        "task": data["task"],
        "task_label": data.get("task_label") or data["task"],
        "task_params": data.get("task_params") or {},
        "architecture": data["architecture"],
        "arch_label": data.get("arch_label") or data["architecture"],
        "arch_params": data.get("arch_params") or {},
        "grid": data.get("grid") or {},
        "seed": int(data.get("seed") or 0),
        "trainer": trainer,
        "resources": _lenient(ResourcesSpec, data.get("resources")),
        "measure": _lenient(MeasureSpec, data.get("measure")),
        "metrics": tuple(dict.fromkeys([primary, *names])) if primary else tuple(names),
        "primary_metric": primary,
        "direction": data.get("direction") if data.get("direction") in ("max", "min") else "max",
        "target": data.get("target"),
        "provenance": plan,
        "skip_reason": data.get("skip_reason"),
    }
    failure = data.get("failure")
    error = data.get("error")
    if data.get("status") in ("failed", "killed"):
        block = failure if isinstance(failure, Mapping) else {}
        kind = (
            block.get("kind")
            if block.get("kind") in FAILURE_KINDS
            else ("killed" if data.get("status") == "killed" else "exception")
        )
        failure = {
            "kind": kind,
            "message": str(block.get("message") or error or kind),
            "attempts": int(block.get("attempts") or data.get("attempts") or 1),
            "traceback": str(data.get("traceback") or ""),
        }
    else:
        failure = None
    runtime = None
    if data.get("status") != "skipped":
        runtime = {
            "host": str(data.get("host") or ""),
            "pid": int(data.get("pid") or 0),
            "device": str(data.get("device") or ""),
            "node_id": data.get("node_id"),
            "versions": runtime_versions,
        }
    cost = data.get("cost")
    return {
        "spec": spec,
        "status": data.get("status"),
        "failure": failure,
        "metrics": metric_values,
        "cost": dict(cost) if isinstance(cost, Mapping) else {},
        "history": [dict(row) for row in data.get("history") or [] if isinstance(row, Mapping)],
        "gradient_flow": data.get("gradient_flow"),
        "artifacts": data.get("artifacts") or {},
        "runtime": runtime,
        "attempts": int(data.get("attempts") or 1),
        "started_at": float(data.get("started_at") or 0.0),
        "finished_at": float(data.get("finished_at") or 0.0),
        "wall_time_s": float(data.get("wall_time_s") or 0.0),
        "world_size": data.get("world_size"),
        "parent_run_id": data.get("parent_run_id"),
        "mlflow_run_id": data.get("mlflow_run_id"),
    }


def _lenient(model: type[BaseModel], value: Any) -> Any:
    try:
        return model.model_validate(value or {})
    except ValidationError:
        return model()


# -- sets of records ------------------------------------------------------------------------------
def latest_by_run(records: Iterable[RunRecord]) -> list[RunRecord]:
    """The last record of each run id (a rerun replaces a failure), in order of first appearance."""
    latest: dict[str, RunRecord] = {}
    for record in records:
        latest[record.run_id] = record
    return list(latest.values())


def finished_ids(records: Iterable[RunRecord]) -> set[str]:
    """Run ids recorded as finished (failed, killed and skipped runs are never done)."""
    return {r.run_id for r in records if r.finished}


__all__ = [
    "FAILURE_KINDS",
    "RECORD_FORMAT",
    "TEST_PREFIX",
    "UNKNOWN_PLUGIN",
    "Direction",
    "Failure",
    "FailureKind",
    "PlanProvenance",
    "PluginRef",
    "RunRecord",
    "RunSpec",
    "RuntimeInfo",
    "Sizing",
    "Tuning",
    "TuningRole",
    "Status",
    "finished_ids",
    "latest_by_run",
]
