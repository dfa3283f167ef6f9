"""Read-only MLflow queries: an invocation's child runs back as result records.

Reports and ``harness compare`` work from the results file by default; this lets them work from
a tracking server too (a team's shared store, or another machine's runs). The layout read here
is the one ``mlflow_store.MlflowTracker`` writes.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.records import RunRecord, RunSpec, latest_by_run
from harness.tracking.mlflow_store import SUPERSEDED_BY, record_key

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def _sections(metrics: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """(test metrics, costs) of a child run's latest metric values, as record keys: sectioned
    names (``test/accuracy``, ``cost/train_time_s``) and the flat names of older runs alike."""
    tests: dict[str, float] = {}
    costs: dict[str, float] = {}
    for name, value in metrics.items():
        section, key = record_key(name)
        if section == "test":
            tests[key] = value
        elif section == "cost":
            costs[key] = value
    return tests, costs


def _client(uri: str) -> Any:
    import logging
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars on the console
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=uri)


def _artifact(client: Any, run_id: str, name: str) -> str | None:
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return Path(client.download_artifacts(run_id, name, tmp)).read_text(encoding="utf-8")
    except Exception:  # noqa: BLE001 - an artifact store that is gone, or a run without the file
        return None


def record_from_run(client: Any, run: Any, suite: str) -> RunRecord:
    """A child run back as a record: its spec from ``config.json`` (older runs: from the tags)."""
    tags = run.data.tags
    tests, costs = _sections(run.data.metrics)
    history_text = _artifact(client, run.info.run_id, "history.json")
    status = tags.get("harness.status") or ("finished" if run.info.status == "FINISHED" else "failed")
    flat: dict[str, Any] = {
        "run_id": tags.get("harness.run_id", run.info.run_id),
        "suite": suite,
        "task": tags.get("harness.task", "?"),
        "task_label": tags.get("harness.task_label", tags.get("harness.task", "?")),
        "architecture": tags.get("harness.architecture", "?"),
        "arch_label": tags.get("harness.arch_label", tags.get("harness.architecture", "?")),
        "seed": int(tags.get("harness.seed", "0")),
        "status": status,
        "primary_metric": tags.get("harness.primary_metric", ""),
        "direction": tags.get("harness.direction"),
        "metrics": tests,
        "cost": costs,
        "history": json.loads(history_text).get("history", []) if history_text else [],
        "versions": {k[len("version.") :]: v for k, v in tags.items() if k.startswith("version.")},
        "device": tags.get("harness.device", ""),
        "host": tags.get("harness.host", ""),
        "node_id": tags.get("harness.node_id"),
        "attempts": int(tags.get("harness.attempts") or 1),
        "parent_run_id": tags.get("mlflow.parentRunId", ""),
        "mlflow_run_id": run.info.run_id,
        "started_at": (run.info.start_time or 0) / 1000,
        "finished_at": (run.info.end_time or 0) / 1000,
    }
    if tags.get("harness.error"):
        flat["error"] = tags["harness.error"]
        flat["failure"] = {"kind": tags.get("harness.failure_kind"), "message": tags["harness.error"]}
    record = RunRecord.from_json(flat)
    config_text = _artifact(client, run.info.run_id, "config.json")
    spec = json.loads(config_text).get("spec") if config_text else None
    if isinstance(spec, dict):
        record.spec = RunSpec.model_validate(spec)
    return record


def _search_all(client: Any, experiment_id: str, filter_string: str) -> list[Any]:
    """Every run of ``experiment_id`` matching ``filter_string``, oldest first (read in pages)."""
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string,
            order_by=["attributes.start_time ASC"],
            max_results=1000,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def invocation_records(uri: str, target: str) -> tuple[list[RunRecord], dict[str, Any]]:
    """Records of ``target``: a parent run id (a child's id means its parent) gives every child run
    of that invocation, superseded ones included (any past invocation stays reportable); an
    experiment name or id gives the latest: the newest record of each cell's run over all its
    invocations, leaving out the child runs a ``--rerun`` superseded (as a suite's results file does).

    Returns (records, info: suite, invocation — the parent, or the newest one —, command,
    suite_text). No child run to return is a :class:`HarnessError`: a report or a comparison of
    nothing would look like a result.
    """
    client = _client(uri)
    try:
        parent = None
        if RUN_ID.match(target):
            run = client.get_run(target)
            parent_id = run.data.tags.get("mlflow.parentRunId")
            parent = client.get_run(parent_id) if parent_id else run
        else:
            experiment = client.get_experiment_by_name(target)
            if experiment is None and target.isdigit():
                experiment = client.get_experiment(target)
            if experiment is None:
                raise HarnessError(
                    f"`{target}` is neither a run id nor an experiment in the MLflow store {uri}. "
                    "Pass a suite name, a results file, a parent run id or an experiment name/id "
                    "(see `harness ui` to browse the store)."
                )
            parents = client.search_runs(
                [experiment.experiment_id],
                "tags.`harness.suite` != ''",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            if not parents:
                raise HarnessError(f"The experiment `{experiment.name}` in {uri} has no harness invocation.")
            parent = parents[0]
        experiment_name = client.get_experiment(parent.info.experiment_id).name
        suite = parent.data.tags.get("harness.suite", experiment_name)
        if RUN_ID.match(target):
            children = _search_all(
                client, parent.info.experiment_id, f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
            )
        else:
            children = [
                run
                for run in _search_all(client, parent.info.experiment_id, "tags.mlflow.parentRunId != ''")
                if SUPERSEDED_BY not in run.data.tags
            ]
        # a cell still running (or whose driver died) has no result yet; a tuned suite's tuning
        # runs (one per contender, holding its trials) are not cells
        children = [
            run for run in children if run.info.status != "RUNNING" and "harness.run_id" in run.data.tags
        ]
    except HarnessError:
        raise
    except Exception as exc:  # noqa: BLE001 - any store failure becomes a user-facing error
        raise HarnessError(
            f"Cannot read `{target}` from the MLflow store {uri} ({type(exc).__name__}: "
            f"{str(exc)[:200]}). Check --tracking-uri."
        ) from None
    if not children:
        ran = parent.data.params.get("to_run")
        why = (
            f" (it had {ran} cell(s) to run: every other cell was already done and resumed)"
            if ran is not None and RUN_ID.match(target)
            else ""
        )
        raise HarnessError(
            f"Invocation {parent.info.run_id} of `{suite}` in the MLflow store {uri} has no child runs"
            f"{why}, so there is nothing to report or compare. Pass the parent run id of an invocation "
            f"that ran cells (see `harness ui`), or the experiment `{experiment_name}` for the latest "
            "run of every cell."
        )
    # oldest first, as in the file
    records = latest_by_run(record_from_run(client, run, suite) for run in children)
    info = {
        "suite": suite,
        "invocation": parent.info.run_id,
        "command": parent.data.tags.get("harness.command"),
        "suite_text": _artifact(client, parent.info.run_id, "suite.yaml"),
    }
    return records, info


def parent_info(uri: str, parent_run_id: str) -> dict[str, Any]:
    """Command and suite text of an invocation, when its store is reachable (else empty).

    A sqlite store that does not exist is not created (MLflow would create an empty one).
    """
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        return {}
    try:
        client = _client(uri)
        run = client.get_run(parent_run_id)
    except Exception:  # noqa: BLE001 - provenance is best effort: an unreachable store leaves it unknown
        return {}
    return {
        "command": run.data.tags.get("harness.command"),
        "suite_text": _artifact(client, parent_run_id, "suite.yaml"),
    }


__all__ = ["RUN_ID", "invocation_records", "parent_info", "record_from_run"]
