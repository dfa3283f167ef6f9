"""MLflow layout: experiment = suite, a parent run per invocation, a child run per cell.

Only the driver talks to MLflow: workers return plain results and the driver
logs them (with the original per-epoch timestamps). A sqlite store therefore
works on a cluster too, and no two processes write to it at once.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

DEFAULT_URI = "sqlite:///mlflow.db"
_BATCH = 100
HISTORY_SKIP = {"epoch", "step", "elapsed_s"}
#: result status -> MLflow run status of the child run
CHILD_STATUS = {"finished": "FINISHED", "failed": "FAILED", "killed": "KILLED"}


def artifact_location(uri: str) -> str | None:
    """Artifacts of a sqlite store go beside the database file (``<db folder>/mlruns``).

    MLflow's default is ``./mlruns`` of whatever folder the experiment is created from, which
    scatters artifacts when the database lives elsewhere. Other stores keep their own default.
    """
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return (Path(uri[len(prefix):]).parent / "mlruns").resolve().as_uri()


def resolve_uri(uri: str | None) -> str:
    """CLI flag > suite's tracking.uri > MLFLOW_TRACKING_URI > sqlite:///mlflow.db.

    A relative sqlite path is made absolute: MLflow caches stores per URI string, so
    a relative one would follow the first working directory of the process.
    """
    resolved = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    prefix = "sqlite:///"
    if resolved.startswith(prefix) and not resolved[len(prefix):].startswith("/"):
        resolved = prefix + str(Path(resolved[len(prefix):]).resolve())
    return resolved


def flatten(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from flatten(f"{prefix}.{key}" if prefix else str(key), inner)
    else:
        yield prefix, json.dumps(value) if isinstance(value, (list, tuple)) else str(value)


def _chunks(items: list[Any], size: int = _BATCH) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def ui_link(uri: str, experiment_id: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs"
    if uri == resolve_uri(DEFAULT_URI):  # the default store of this folder
        return (f"run `harness ui --port 5000` in this folder and open "
                f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs")
    return (f"run `harness ui --tracking-uri {uri} --port 5000` and open "
            f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs")


class MlflowTracker:
    def __init__(self, uri: str, experiment: str) -> None:
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        from mlflow.tracking import MlflowClient

        # mlflow sets its loggers to INFO on import; keep table-creation chatter off the console
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)

        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        self.experiment = experiment
        self.experiment_id = ""
        self.parent_id = ""

    def connect(self) -> None:
        """Open (or create) the experiment; a bad URI is a HarnessError, before anything runs."""
        try:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is not None and found.lifecycle_stage == "deleted":
                self.client.restore_experiment(found.experiment_id)
            self.experiment_id = found.experiment_id if found else self.client.create_experiment(
                self.experiment, artifact_location=artifact_location(self.uri))
        except Exception as exc:
            raise HarnessError(
                f"Cannot use the MLflow tracking store `{self.uri}` ({type(exc).__name__}: {str(exc)[:300]}). "
                "Check --tracking-uri / MLFLOW_TRACKING_URI / tracking.uri: for a server, start it first "
                "(`mlflow server --host 127.0.0.1 --port 5000`); or leave them unset to use sqlite:///mlflow.db."
            ) from None

    def start_parent(self, name: str, tags: Mapping[str, str], params: Mapping[str, Any], suite_text: str) -> str:
        run = self.client.create_run(self.experiment_id, run_name=name, tags=dict(tags))
        self.parent_id = run.info.run_id
        self._log(self.parent_id, params=dict(flatten("", params)))
        self.client.log_text(self.parent_id, suite_text, "suite.yaml")
        return self.parent_id

    def finish_parent(self, status: str, summary: Mapping[str, float]) -> None:
        if not self.parent_id:
            return
        self._log(self.parent_id, metrics={k: (v, 0) for k, v in summary.items()})
        self.client.set_terminated(self.parent_id, status=status)

    def log_child(self, result: Mapping[str, Any]) -> str:
        from mlflow.entities import Metric

        started = float(result.get("started_at") or time.time())
        tags = {
            "mlflow.parentRunId": self.parent_id,
            "harness.run_id": result["run_id"],
            "harness.task": result["task"],
            "harness.architecture": result["architecture"],
            "harness.task_label": result.get("task_label", result["task"]),
            "harness.arch_label": result.get("arch_label", result["architecture"]),
            "harness.seed": str(result["seed"]),
            "harness.primary_metric": str(result.get("primary_metric", "")),
            "harness.direction": str(result.get("direction", "")),
            "harness.status": result["status"],
            "harness.host": str(result.get("host", "")),
            "harness.device": str(result.get("device", "")),
        }
        tags.update({f"version.{k}": str(v) for k, v in (result.get("versions") or {}).items()})
        if result.get("error"):
            tags["harness.error"] = str(result["error"])[:4000]
        if result.get("failure"):
            tags["harness.failure_kind"] = str(result["failure"].get("kind", ""))
        for key in ("attempts", "node_id"):
            if result.get(key) is not None:
                tags[f"harness.{key}"] = str(result[key])
        name = f"{result.get('task_label', result['task'])}/{result.get('arch_label', result['architecture'])}/seed{result['seed']}"
        run = self.client.create_run(self.experiment_id, start_time=int(started * 1000), tags=tags, run_name=name)
        run_id = run.info.run_id
        params = dict(flatten("task", result.get("task_params", {})))
        params.update(flatten("arch", result.get("arch_params", {})))
        params.update(flatten("trainer", result.get("trainer", {})))
        params.update(flatten("resources", result.get("resources", {})))
        params["seed"] = str(result["seed"])
        metrics: list[Metric] = []
        for row in result.get("history", []):
            stamp = int((started + row.get("elapsed_s", 0.0)) * 1000)
            step = int(row.get("epoch", 0))
            metrics += [Metric(k, float(v), stamp, step) for k, v in row.items() if k not in HISTORY_SKIP]
        end = int(float(result.get("finished_at") or time.time()) * 1000)
        for group in ("metrics", "cost"):
            metrics += [Metric(k, float(v), end, 0) for k, v in (result.get(group) or {}).items() if v is not None]
        self._log(run_id, params=params, metric_objs=metrics)
        config = {k: result.get(k) for k in ("run_id", "task", "task_params", "architecture", "arch_params",
                                             "trainer", "seed", "resources", "versions")}
        self.client.log_dict(run_id, config, "config.json")
        self.client.log_dict(run_id, {"history": result.get("history", [])}, "history.json")
        if result.get("gradient_flow"):  # the probe's per-step norms: a heatmap in the report
            self.client.log_dict(run_id, result["gradient_flow"], "gradient_flow.json")
        if result.get("traceback"):
            self.client.log_text(run_id, result["traceback"], "error.txt")
        for name, text in (result.get("artifacts") or {}).items():
            self.client.log_text(run_id, text, f"task/{name}")
        self.client.set_terminated(run_id, status=CHILD_STATUS.get(result["status"], "FAILED"), end_time=end)
        return run_id

    def finished_children(self) -> dict[str, list[str]]:
        """``harness.run_id`` → MLflow run ids of this experiment's FINISHED child runs (for resume).

        Read in pages; resume trusts it as much as the results file, so a driver that died
        after logging a run but before appending it to the file does not run it twice.
        """
        found: dict[str, list[str]] = {}
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], filter_string="attributes.status = 'FINISHED'",
                max_results=1000, page_token=token)
            for run in page:
                run_id = run.data.tags.get("harness.run_id")
                if run_id and "mlflow.parentRunId" in run.data.tags:
                    found.setdefault(run_id, []).append(run.info.run_id)
            token = page.token
            if not token:
                return found

    def supersede(self, mlflow_run_ids: Iterable[str], by: str) -> None:
        """Soft-delete earlier FINISHED child runs of a cell that ``--rerun`` ran again.

        Keeps "one FINISHED child run per run id" true; ``mlflow runs restore`` brings one back.
        """
        for run_id in mlflow_run_ids:
            self.client.set_tag(run_id, "harness.superseded_by", by)
            self.client.delete_run(run_id)

    def _log(
        self, run_id: str, params: Mapping[str, str] | None = None,
        metrics: Mapping[str, tuple[float, int]] | None = None, metric_objs: list[Any] | None = None,
    ) -> None:
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        for chunk in _chunks([Param(k, str(v)[:6000]) for k, v in (params or {}).items()]):
            self.client.log_batch(run_id, params=chunk)
        objs = list(metric_objs or []) + [Metric(k, float(v), now, s) for k, (v, s) in (metrics or {}).items()]
        for chunk in _chunks(objs, 1000):
            self.client.log_batch(run_id, metrics=chunk)
