"""MLflow layout: experiment = suite, a parent run per invocation, a child run per cell.

Only the driver talks to MLflow: workers stream epoch rows and return plain results, and the
driver logs them (through :class:`harness.tracking.live.LiveLogger`, off the scheduling loop, and
for ``harness run`` through its tracking process, :mod:`harness.tracking.sidecar`, which holds
this tracker). A sqlite store therefore works on a cluster too, and no two processes write to it
at once.

A child run is opened RUNNING when its cell starts (:meth:`MlflowTracker.open_child`: params,
plan-time tags, MLflow's system tags), receives its epoch rows as they arrive
(:meth:`MlflowTracker.log_rows`), and is closed with the record (:meth:`MlflowTracker.close_child`:
final metrics, dataset, artifacts, status FINISHED / FAILED / KILLED).

Metric names are sectioned for the MLflow UI's chart view: ``test/<metric>``, ``val/<metric>``,
``train/loss``, ``cost/<figure>`` (see :func:`mlflow_key`); runs logged before with flat names
(``test_accuracy``, ``train_time_s``) are still read (:func:`harness.tracking.query`).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from harness.errors import HarnessError, ServiceUnreachable, env_seconds
from harness.records import RunRecord, RunSpec

T = TypeVar("T")

DEFAULT_URI = "sqlite:///mlflow.db"
_BATCH = 100
HISTORY_SKIP = {"epoch", "step", "elapsed_s"}
#: record status -> MLflow run status of the child run
CHILD_STATUS = {"finished": "FINISHED", "failed": "FAILED", "killed": "KILLED", "skipped": "FINISHED"}
#: tags ``--rerun`` sets on an earlier FINISHED child run of a cell it ran again: the parent run id
#: of the invocation that replaced it, and the replacing child run's id (nothing is ever deleted)
SUPERSEDED_BY = "harness.superseded_by"
SUPERSEDED_BY_RUN = "harness.superseded_by_run"
#: the sections of a child run's metric names (the MLflow UI groups charts by the part before "/")
TEST, VAL, TRAIN, COST = "test/", "val/", "train/", "cost/"
#: seconds :meth:`MlflowTracker.connect` waits for the tracking store to answer, in one try (whole
#: seconds: MLflow's request timeout is an integer); the writes during the run keep MLflow's
#: ``MLFLOW_HTTP_REQUEST_TIMEOUT`` / ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` (20 s and 2 unless set)
CONNECT_TIMEOUT_ENV = "HARNESS_TRACKING_CONNECT_TIMEOUT"
DEFAULT_CONNECT_TIMEOUT_S = 10.0


def mlflow_key(key: str, section: str | None = None) -> str:
    """The MLflow metric name of a record key: ``test_accuracy`` → ``test/accuracy``,
    ``val_loss`` → ``val/loss``, ``train_loss`` → ``train/loss``; a cost figure (``section`` =
    ``cost``) → ``cost/<key>`` whatever its name (``train_time_s`` is a cost, not a curve)."""
    if section == "cost":
        return COST + key
    for prefix, name in (("test_", TEST), ("val_", VAL), ("train_", TRAIN)):
        if key.startswith(prefix):
            return name + key[len(prefix) :]
    return key


def record_key(name: str) -> tuple[str, str]:
    """(section, record key) of an MLflow metric name, sectioned or flat (runs before sectioning).

    Sections: ``test`` (``test_<metric>``), ``history`` (per-epoch ``val_*`` / ``train_loss``),
    ``cost``. A flat name that is neither a test metric nor an epoch metric is a cost.
    """
    for prefix, section, lead in (
        (TEST, "test", "test_"),
        (VAL, "history", "val_"),
        (TRAIN, "history", "train_"),
    ):
        if name.startswith(prefix):
            return section, lead + name[len(prefix) :]
    if name.startswith(COST):
        return "cost", name[len(COST) :]
    if name.startswith("test_"):
        return "test", name
    if name.startswith("val_") or name == "train_loss":
        return "history", name
    return "cost", name


def artifact_location(uri: str) -> str | None:
    """Artifacts of a sqlite store go beside the database file (``<db folder>/mlruns``).

    MLflow's default is ``./mlruns`` of whatever folder the experiment is created from, which
    scatters artifacts when the database lives elsewhere. Other stores keep their own default.
    """
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return (Path(uri[len(prefix) :]).parent / "mlruns").resolve().as_uri()


#: URI schemes MLflow has a tracking store for (a database scheme may name its driver: ``mysql+pymysql``)
TRACKING_SCHEMES = ("sqlite", "http", "https", "file", "postgresql", "mysql", "mssql", "databricks")


def _check_scheme(uri: str) -> None:
    """A tracking URI MLflow cannot open is bad input, named before anything starts."""
    if "://" not in uri:
        return  # a plain path (a file store) or `databricks`
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme not in TRACKING_SCHEMES:
        raise HarnessError(
            f"The MLflow tracking URI `{uri}` (from --tracking-uri, MLFLOW_TRACKING_URI or the suite's "
            f"tracking.uri) has the scheme `{scheme}://`, which MLflow cannot store runs in. Use one of "
            f"{', '.join(s + '://' for s in TRACKING_SCHEMES)} — e.g. http://127.0.0.1:5000 for an "
            "`mlflow server`, or leave it unset for sqlite:///mlflow.db."
        )


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables for the block, then put back what was there."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it: ``__cause__`` / ``__context__`` and urllib3's ``reason``."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)  # urllib3's MaxRetryError
        todo += [current.__cause__, current.__context__]
        if isinstance(reason, BaseException):
            todo.append(reason)


def _clip(text: str, limit: int = 300) -> str:
    """The first line of ``text``, cut at a word boundary to about ``limit`` characters."""
    line = (text.strip().splitlines() or [""])[0]
    if len(line) <= limit:
        return line
    return line[:limit].rsplit(" ", 1)[0].rstrip(",;:(") + " …"


def unreachable_cause(exc: BaseException, uri: str, timeout: float) -> str:
    """Why the tracking store at ``uri`` could not be used, in one clean line: "connection refused
    at HOST:PORT", "no answer from HOST:PORT within N s", … rather than urllib3's nested text."""
    parts = urlsplit(uri)
    host = parts.hostname or uri
    try:
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:  # a port that is not a number: MLflow's own message says so
        port = None
    where = f"{host}:{port}" if port else host
    for cause in _causes(exc):
        name = type(cause).__name__
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused at {where}: no server listens there"
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve the host `{host}`"
        if isinstance(cause, TimeoutError) or name in ("ReadTimeout", "ConnectTimeout", "ReadTimeoutError"):
            return f"no answer from {where} within {timeout:g} s ({CONNECT_TIMEOUT_ENV} sets the limit)"
        if "SSLError" in name:
            return f"the TLS handshake with {where} failed ({_clip(str(cause), 150)})"
        if isinstance(cause, ConnectionResetError) or name == "RemoteDisconnected":
            return f"{where} closed the connection without answering (is it an MLflow tracking server)"
    return _clip(f"{type(exc).__name__}: {exc}")


def resolve_uri(uri: str | None) -> str:
    """CLI flag > suite's tracking.uri > MLFLOW_TRACKING_URI > sqlite:///mlflow.db.

    A relative sqlite path is made absolute: MLflow caches stores per URI string, so
    a relative one would follow the first working directory of the process.
    """
    resolved = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    _check_scheme(resolved)
    prefix = "sqlite:///"
    if resolved.startswith(prefix) and not resolved[len(prefix) :].startswith("/"):
        resolved = prefix + str(Path(resolved[len(prefix) :]).resolve())
    return resolved


def flatten(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from flatten(f"{prefix}.{key}" if prefix else str(key), inner)
    else:
        yield prefix, json.dumps(value) if isinstance(value, (list, tuple)) else str(value)


def system_tags(source: str, commit: str | None) -> dict[str, str]:
    """MLflow's own tags, which fill the UI's Source, User and Version columns."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (a container without a passwd entry)
        user = "unknown"
    tags = {"mlflow.source.name": source, "mlflow.source.type": "LOCAL", "mlflow.user": user}
    if commit:  # MLflow's column takes a commit hash; harness.git_commit keeps the "-dirty" mark
        tags["mlflow.source.git.commit"] = commit.removesuffix("-dirty")
    return tags


def spec_tags(spec: RunSpec) -> dict[str, str]:
    """The tags a cell's child run carries from its start: what it is and the plan's provenance.

    ``version.<name>`` holds a version (``harness``, the distributions of the plugins that
    registered the task and the architecture); ``harness.task_plugin`` / ``harness.arch_plugin``
    pin those plugins, ``harness.data_version`` is the task's data version, ``harness.git_commit``
    the harness checkout's commit (also MLflow's ``mlflow.source.git.commit``).
    """
    plan = spec.provenance
    tags = {
        "harness.run_id": spec.run_id,
        "harness.task": spec.task,
        "harness.architecture": spec.architecture,
        "harness.task_label": spec.task_label,
        "harness.arch_label": spec.arch_label,
        "harness.seed": str(spec.seed),
        "harness.primary_metric": spec.primary_metric,
        "harness.direction": spec.direction,
        "harness.task_plugin": plan.task_plugin.pin,
        "harness.arch_plugin": plan.arch_plugin.pin,
        "harness.data_version": plan.data_version,
        "harness.attempts": str(spec.attempt),
        "version.harness": plan.harness,
        f"version.{plan.task_plugin.distribution}": plan.task_plugin.version,
        f"version.{plan.arch_plugin.distribution}": plan.arch_plugin.version,
    }
    if plan.git_commit:
        tags["harness.git_commit"] = plan.git_commit
    if spec.tuning is not None:  # a tuned suite: trials are never mixed with final runs
        tags["harness.tuning_role"] = spec.tuning.role
        tags["harness.tuning_contender"] = spec.tuning.contender
        if spec.tuning.trial is not None:
            tags["harness.trial"] = str(spec.tuning.trial)
    return tags


def child_tags(record: RunRecord) -> dict[str, str]:
    """Every tag of a finished cell's child run: :func:`spec_tags`, how it ended, where it ran
    (host, device, node) and the worker's python, torch, lightning and torchmetrics versions."""
    spec, runtime = record.spec, record.runtime
    tags = spec_tags(spec)
    tags.update(
        {
            "harness.status": record.status,
            "harness.host": runtime.host if runtime else "",
            "harness.device": runtime.device if runtime else "",
            "harness.attempts": str(record.attempts),
        }
    )
    plan = spec.provenance
    versions = {
        **(runtime.versions if runtime else {}),
        "harness": plan.harness,
        plan.task_plugin.distribution: plan.task_plugin.version,
        plan.arch_plugin.distribution: plan.arch_plugin.version,
    }
    tags.update({f"version.{name}": version for name, version in versions.items()})
    if record.failure is not None:
        tags["harness.error"] = record.failure.message[:4000]
        tags["harness.failure_kind"] = record.failure.kind
    if runtime is not None and runtime.node_id:
        tags["harness.node_id"] = runtime.node_id
    if record.spec.is_trial:
        tags["harness.early_stopped"] = str(record.early_stopped).lower()
    return tags


def child_params(spec: RunSpec) -> dict[str, str]:
    """What the MLflow UI compares: ``task``, ``architecture``, ``seed`` and the suite's labels
    (``label.task``, ``label.architecture``), then every resolved setting (``task.*``,
    ``architecture.*``, ``trainer.*``, ``resources.*``).

    The names are chosen for the compare page: its parallel-coordinates plot starts with the first
    three differing params in alphabetical order, so a comparison of architectures opens with
    ``architecture`` as its first axis (``arch.*`` would sort before it).
    """
    params = {
        "task": spec.task,
        "architecture": spec.architecture,
        "seed": str(spec.seed),
        "label.task": spec.task_label,
        "label.architecture": spec.arch_label,
    }
    params.update(flatten("task", spec.task_params))
    params.update(flatten("architecture", spec.arch_params))
    params.update(flatten("trainer", spec.trainer.model_dump(mode="json")))
    params.update(flatten("resources", spec.resources.model_dump(mode="json")))
    return params


def dataset_entity(record: RunRecord) -> Any:
    """The task's data as an MLflow dataset (the UI's Dataset column): named after the task, a
    digest of what makes the data (task, params, data version, seed), split sizes as its profile."""
    from mlflow.entities import Dataset

    spec = record.spec
    source = {
        "task": spec.task,
        "params": spec.task_params,
        "data_version": spec.provenance.data_version,
        "seed": spec.seed,
    }
    text = json.dumps(source, sort_keys=True, default=str)
    return Dataset(
        name=spec.task_label,
        digest=hashlib.sha256(text.encode()).hexdigest()[:12],
        source_type="harness",
        source=text,
        profile=json.dumps({"splits": record.data_sizes, "num_rows": sum(record.data_sizes.values())}),
    )


def row_metrics(row: Mapping[str, float], started: float) -> list[Any]:
    """MLflow metrics of one epoch row (step = epoch, timestamp = when the epoch ended)."""
    from mlflow.entities import Metric

    stamp = int((started + row.get("elapsed_s", 0.0)) * 1000)
    step = int(row.get("epoch", 0))
    return [
        Metric(mlflow_key(k), float(v), stamp, step)
        for k, v in row.items()
        if k not in HISTORY_SKIP and not math.isnan(float(v))
    ]


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _search(client: Any, experiment_id: str, filter_string: str) -> list[Any]:
    """Every run of ``experiment_id`` matching ``filter_string`` (read in pages)."""
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _chunks(items: list[Any], size: int = _BATCH) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def ui_link(uri: str, experiment_id: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs"
    if uri == resolve_uri(DEFAULT_URI):  # the default store of this folder
        return (
            f"run `harness ui --port 5000` in this folder and open "
            f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs"
        )
    return (
        f"run `harness ui --tracking-uri {uri} --port 5000` and open "
        f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs"
    )


def quiet_logs() -> None:
    """MLflow sets its loggers to INFO on import: keep table-creation chatter off the console."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


class MlflowTracker:
    def __init__(self, uri: str, experiment: str) -> None:
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        # MLflow prints "View run … at: <url>" for every run a server closes: from the writer thread,
        # in the middle of the live display; harness prints the runs table's link once instead
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        from mlflow.tracking import MlflowClient

        quiet_logs()

        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        self.experiment = experiment
        self.experiment_id = ""
        self.parent_id = ""

    def connect(self) -> None:
        """Open (or create) the experiment, before anything runs. A bad URI, or a tracking server
        that refuses or does not answer within ``HARNESS_TRACKING_CONNECT_TIMEOUT`` seconds (one
        try each request: no retries here), is a :class:`ServiceUnreachable` (exit 2)."""
        timeout = math.ceil(env_seconds(CONNECT_TIMEOUT_ENV, DEFAULT_CONNECT_TIMEOUT_S))
        bounded = _environ(MLFLOW_HTTP_REQUEST_TIMEOUT=str(timeout), MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
        try:
            with bounded:
                found = self.client.get_experiment_by_name(self.experiment)
                if found is not None and found.lifecycle_stage == "deleted":
                    self.client.restore_experiment(found.experiment_id)
                self.experiment_id = (
                    found.experiment_id
                    if found
                    else self.client.create_experiment(
                        self.experiment, artifact_location=artifact_location(self.uri)
                    )
                )
        except Exception as exc:
            raise ServiceUnreachable(
                f"Cannot use the MLflow tracking store `{self.uri}`: "
                f"{unreachable_cause(exc, self.uri, timeout).rstrip('.?')}. "
                "Check --tracking-uri / MLFLOW_TRACKING_URI / tracking.uri: for a server, start it first "
                "(`mlflow server --host 127.0.0.1 --port 5000`); "
                "or leave them unset to use sqlite:///mlflow.db."
            ) from None

    def begin_connect(self) -> None:
        """Nothing to start ahead in this process: :meth:`connect` opens the store."""

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(self, *args, **kwargs)`` (as :meth:`TrackingProcess.call` does it there)."""
        return function(self, *args, **kwargs)

    def close(self) -> None:
        """Nothing to release (the client holds no process)."""

    def start_parent(
        self, name: str, tags: Mapping[str, str], params: Mapping[str, Any], suite_text: str
    ) -> str:
        run = self.client.create_run(self.experiment_id, run_name=name, tags=dict(tags))
        self.parent_id = run.info.run_id
        self._log(self.parent_id, params=dict(flatten("", params)))
        self.client.log_text(self.parent_id, suite_text, "suite.yaml")
        return self.parent_id

    def finish_parent(self, status: str, summary: Mapping[str, float]) -> None:
        if not self.parent_id:
            return
        self._log(self.parent_id, metrics={f"suite/{k}": (v, 0) for k, v in summary.items()})
        self.client.set_terminated(self.parent_id, status=status)

    def start_tuning(self, contender: str, suite: str, params: Mapping[str, Any]) -> str:
        """The MLflow run that holds one contender's tuning trials: a child of the invocation."""
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"tuning {contender}",
            tags={
                "mlflow.parentRunId": self.parent_id,
                "harness.suite": suite,
                "harness.tuning_contender": contender,
                "harness.phase": "tune",
            },
        )
        run_id: str = run.info.run_id
        self._log(run_id, params=dict(flatten("", params)))
        return run_id

    def finish_tuning(self, run_id: str, status: str, summary: Mapping[str, Any]) -> None:
        """Close a contender's tuning run with its accounting (trials, early-stopped, compute, best)."""
        metrics = {f"tune/{k}": (float(v), 0) for k, v in summary.items() if isinstance(v, (int, float))}
        tags = {f"harness.best.{k}": str(v) for k, v in summary.get("best", {}).items()}
        self._log(run_id, metrics=metrics, tags=tags)
        self.client.set_terminated(run_id, status=status)

    def open_child(
        self, spec: RunSpec, source: str = "harness", started: float | None = None, parent: str | None = None
    ) -> str:
        """Create the child run of a cell that starts now: RUNNING, with its params and tags, under
        this invocation's parent run (or ``parent``: a record back-filled into its own invocation)."""
        run = self.client.create_run(
            self.experiment_id,
            start_time=int((started or time.time()) * 1000),
            tags={
                **spec_tags(spec),
                **system_tags(source, spec.provenance.git_commit),
                "mlflow.parentRunId": parent or self.parent_id,
            },
            run_name=f"{spec.task_label}/{spec.arch_label}/seed{spec.seed}",
        )
        run_id: str = run.info.run_id
        self._log(run_id, params=child_params(spec))
        return run_id

    def log_rows(self, run_id: str, rows: Iterable[Mapping[str, float]], started: float) -> None:
        """Log epoch rows of a running child run (one batch)."""
        metrics = [m for row in rows for m in row_metrics(row, started)]
        self._log(run_id, metric_objs=metrics)

    def close_child(
        self,
        run_id: str,
        record: RunRecord,
        logged_epochs: set[int] | None = None,
        model_logger: Any = None,
    ) -> None:
        """Finish a child run with ``record``: the epoch rows not logged live (``logged_epochs``:
        the epochs that were), final test metrics and costs, the dataset, artifacts, the model
        (``model_logger(uri, run_id, record)`` when the record carries one), then its status."""
        from mlflow.entities import DatasetInput, InputTag, Metric

        started = record.started_at or time.time()
        end = int((record.finished_at or time.time()) * 1000)
        logged = logged_epochs or set()
        metrics = [
            m
            for row in record.history
            if int(row.get("epoch", -1)) not in logged
            for m in row_metrics(row, started)
        ]
        metrics += [
            Metric(mlflow_key(k), float(v), end, 0) for k, v in record.metrics.items() if not math.isnan(v)
        ]
        metrics += [
            Metric(mlflow_key(k, "cost"), float(v), end, 0)
            for k, v in record.cost.items()
            if not math.isnan(v)
        ]
        opened = spec_tags(record.spec)  # set when the run was opened: only what changed since
        tags = {k: v for k, v in child_tags(record).items() if opened.get(k) != v}
        self._log(run_id, metric_objs=metrics, tags=tags)
        if record.data_sizes:
            self.client.log_inputs(
                run_id,
                datasets=[
                    DatasetInput(dataset_entity(record), tags=[InputTag("mlflow.data.context", "train")])
                ],
            )
        # the whole spec: `harness report` and `compare` read it back from MLflow exactly
        self.client.log_dict(run_id, {"spec": record.spec.model_dump(mode="json")}, "config.json")
        self.client.log_dict(run_id, {"history": record.history}, "history.json")
        if record.gradient_flow:  # the probe's per-step norms: a heatmap in the report
            self.client.log_dict(run_id, record.gradient_flow, "gradient_flow.json")
        if record.failure is not None and record.failure.traceback:
            self.client.log_text(run_id, record.failure.traceback, "error.txt")
        for name, text in record.artifacts.items():
            self.client.log_text(run_id, text, f"task/{name}")
        if record.model is not None and model_logger is not None:
            model_logger(self.uri, run_id, record)
        self.client.set_terminated(run_id, status=CHILD_STATUS[record.status], end_time=end)

    def log_child(self, record: RunRecord, source: str = "harness", parent: str | None = None) -> str:
        """Create, fill and close a cell's child run in one go (a record logged after the fact)."""
        run_id = self.open_child(record.spec, source, started=record.started_at or None, parent=parent)
        self.close_child(run_id, record)
        return run_id

    def retire_child(self, run_id: str, by_run: str, message: str) -> None:
        """Close the child run of an attempt whose worker died (the retry has its own child run):
        FAILED, kind ``infrastructure``, tagged superseded by the retry's child run."""
        self._log(
            run_id,
            tags={
                "harness.status": "failed",
                "harness.failure_kind": "infrastructure",
                "harness.error": message[:4000],
                SUPERSEDED_BY: self.parent_id,
                SUPERSEDED_BY_RUN: by_run,
            },
        )
        self.client.set_terminated(run_id, status="FAILED")

    def finished_children(self) -> dict[str, list[str]]:
        """``harness.run_id`` → MLflow run ids of this experiment's current FINISHED child runs.

        For resume (and for ``--rerun`` to know what it supersedes): child runs an earlier
        ``--rerun`` superseded are left out. Read in pages; resume trusts it as much as the results
        file, so a driver that died after logging a run but before appending it to the file does
        not run it twice.
        """
        found: dict[str, list[str]] = {}
        for run in _search(self.client, self.experiment_id, "attributes.status = 'FINISHED'"):
            tags = run.data.tags
            run_id = tags.get("harness.run_id")
            if run_id and "mlflow.parentRunId" in tags and SUPERSEDED_BY not in tags:
                found.setdefault(run_id, []).append(run.info.run_id)
        return found

    def close_orphans(self) -> int:
        """Close the RUNNING runs of this experiment that no driver will ever close; how many.

        A driver killed outright (kill -9, a lost machine) leaves its parent run and the child runs
        of the cells it was running RUNNING. Closed here, as KILLED with a ``harness.error``: a
        parent whose driver ran on this host and is gone (tag ``harness.driver_pid``), and a child
        whose parent run is closed or was just closed. Parents of drivers on other hosts are left
        alone (they may be running).
        """
        running = _search(self.client, self.experiment_id, "attributes.status = 'RUNNING'")
        parents = {r.info.run_id: r for r in running if "mlflow.parentRunId" not in r.data.tags}
        host = socket.gethostname()
        closed: set[str] = set()
        for run_id, parent in parents.items():
            tags = parent.data.tags
            pid = tags.get("harness.driver_pid", "")
            if tags.get("harness.host") == host and pid.isdigit() and not _alive(int(pid)):
                message = (
                    f"its driver (pid {pid} on {host}) ended without closing it: it was killed, or the "
                    "tracking store was unreachable when it ended"
                )
                self._log(run_id, tags={"harness.error": message})
                self.client.set_terminated(run_id, status="KILLED")
                closed.add(run_id)
        for run in running:
            parent_id = run.data.tags.get("mlflow.parentRunId")
            if parent_id is None or (parent_id in parents and parent_id not in closed):
                continue  # a parent, or the child of a driver that may still be running
            message = "its driver died before the cell ended; run the suite again to resume"
            tags = {"harness.status": "killed", "harness.failure_kind": "killed", "harness.error": message}
            self._log(run.info.run_id, tags=tags)
            self.client.set_terminated(run.info.run_id, status="KILLED")
            closed.add(run.info.run_id)
        return len(closed)

    def supersede(self, mlflow_run_ids: Iterable[str], by_parent: str, by_run: str) -> None:
        """Tag earlier FINISHED child runs of a cell that ``--rerun`` ran again as superseded.

        History is append-only: the runs stay (their invocation can still be reported and
        compared by its parent run id); resume and the "latest" views (an experiment target of
        ``harness report`` / ``compare``) leave them out.
        """
        for run_id in mlflow_run_ids:
            self.client.set_tag(run_id, SUPERSEDED_BY, by_parent)
            self.client.set_tag(run_id, SUPERSEDED_BY_RUN, by_run)

    def _log(
        self,
        run_id: str,
        params: Mapping[str, str] | None = None,
        metrics: Mapping[str, tuple[float, int]] | None = None,
        metric_objs: list[Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        param_chunks = list(_chunks([Param(k, str(v)[:6000]) for k, v in (params or {}).items()]))
        tag_chunks = list(_chunks([RunTag(k, str(v)) for k, v in (tags or {}).items()]))
        objs = list(metric_objs or []) + [
            Metric(k, float(v), now, s) for k, (v, s) in (metrics or {}).items()
        ]
        metric_chunks = list(_chunks(objs, 1000))
        # as few requests as MLflow's limits allow: one per 1,000 metrics / 100 params / 100 tags
        for i in range(max(len(param_chunks), len(tag_chunks), len(metric_chunks))):
            self.client.log_batch(
                run_id,
                metrics=metric_chunks[i] if i < len(metric_chunks) else (),
                params=param_chunks[i] if i < len(param_chunks) else (),
                tags=tag_chunks[i] if i < len(tag_chunks) else (),
            )
