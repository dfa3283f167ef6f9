"""Shared helpers of the task tests: a one-task suite, its plan, and smoke training runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.matrix import Plan, build_plan
from harness.plugins import get_registry
from harness.records import RunRecord
from harness.suite import load_suite
from harness.train.trial import run_trial
from tests.helpers import failure_details, write_suite

ALL_ARCHS = ["rnn", "lstm", "gru", "birnn", "cnn_rnn", "transformer"]
SMOKE_TRAINER = {"max_epochs": 1, "batch_size": 32, "lr": 0.003}


def task_suite(
    task: str,
    params: dict[str, Any],
    archs: list[str] | None = None,
    *,
    metrics: list[str] | None = None,
    **trainer: Any,
) -> dict[str, Any]:
    """A one-task suite (``metrics``: the task's metrics instead of its defaults)."""
    entry: dict[str, Any] = {"name": task, "params": dict(params)}
    if metrics is not None:
        entry["metrics"] = list(metrics)
    return {
        "name": f"smoke-{task}",
        "seeds": [0],
        "tasks": [entry],
        "architectures": [{"name": a} for a in (archs or ALL_ARCHS)],
        "trainer": {**SMOKE_TRAINER, **trainer},
    }


def task_plan(
    tmp: Path,
    task: str,
    params: dict[str, Any],
    archs: list[str] | None = None,
    *,
    metrics: list[str] | None = None,
    **trainer: Any,
) -> Plan:
    """The plan of a one-task suite (every built-in architecture by default)."""
    path = write_suite(tmp, task_suite(task, params, archs, metrics=metrics, **trainer), name=f"{task}.yaml")
    return build_plan(load_suite(path), get_registry())


def smoke_runs(
    tmp: Path, task: str, params: dict[str, Any], archs: list[str] | None = None, **trainer: Any
) -> dict[str, RunRecord]:
    """Train every runnable cell of a one-task suite; records by architecture label.

    Raises AssertionError with the worker's traceback for any failed run.
    """
    plan = task_plan(tmp, task, params, archs, **trainer)
    results: dict[str, RunRecord] = {}
    for spec in plan.runnable:
        spec = spec.model_copy(update={"cache_dir": str(tmp / "cache")})
        record = run_trial(spec)
        assert record.finished, failure_details(record)
        assert record.spec == spec  # the record names the run it answers
        results[spec.arch_label] = record
    return results
