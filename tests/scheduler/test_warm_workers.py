"""The Ray executor's start-up and running costs (issue 16): the private local instance without
the processes it does not need, warm-up tasks that import the runs' stack in the workers before
their first run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from harness.scheduler import ray_connect
from harness.scheduler.ray_connect import LEAN_ENV, LEAN_PARAMS, lean_local_instance
from tests.helpers import payloads, tiny_suite, write_suite


def _params() -> Any:
    from ray._private import parameter

    return parameter.RayParams()


def test_the_lean_instance_drops_the_monitors_only_while_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LEAN_ENV:
        monkeypatch.delenv(name, raising=False)
    plain = _params()
    with lean_local_instance():
        lean = _params()
        assert all(os.environ[name] == value for name, value in LEAN_ENV.items())
    for name, value in LEAN_PARAMS.items():
        assert getattr(lean, name) == value
        assert getattr(_params(), name) == getattr(plain, name)  # put back afterwards
    assert not any(name in os.environ for name in LEAN_ENV)


def test_the_lean_instance_keeps_what_the_user_set_and_can_be_off(monkeypatch: pytest.MonkeyPatch) -> None:
    (name,) = LEAN_ENV
    monkeypatch.setenv(name, "1234")
    with lean_local_instance():
        assert os.environ[name] == "1234"
        from ray._private import parameter

        assert parameter.RayParams(no_monitor=False).no_monitor is False  # an explicit value wins
    assert os.environ[name] == "1234"
    with lean_local_instance(enabled=False):
        assert _params().include_log_monitor is None  # Ray's default (its Node turns None into True)


def test_a_ray_without_the_fields_starts_as_usual(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ray_connect, "LEAN_PARAMS", {"no_such_field": True})
    with lean_local_instance():
        assert not hasattr(_params(), "no_such_field")


def _ray_processes() -> set[str]:
    from ray._private import worker

    node = worker._global_node
    return set(node.all_processes) if node is not None else set()


@pytest.mark.ray
def test_runs_land_on_warmed_workers_of_a_lean_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two slots: two warm-up tasks import the runs' stack while the driver would open MLflow; the
    runs then execute in those very worker processes (their first run does not import torch), on
    an instance without the autoscaler monitor and the log monitor."""
    import ray
    from ray._private import ray_constants

    from harness.records import RunRecord, RunSpec
    from harness.scheduler.ray_executor import RayExecutor
    from harness.settings import ExecutionSpec, ResourcesSpec

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("HARNESS_RAY_WARM_WORKERS", raising=False)
    suite = write_suite(tmp_path, tiny_suite(tasks=["adding"], seeds=[0, 1, 2, 3]))
    specs = payloads(suite, tmp_path / "cache")
    executor = RayExecutor()
    executor.start(ResourcesSpec(cpus=1), ExecutionSpec())
    records: list[RunRecord] = []
    try:
        running = _ray_processes()
        assert ray_constants.PROCESS_TYPE_MONITOR not in running
        assert ray_constants.PROCESS_TYPE_LOG_MONITOR not in running
        assert {ray_constants.PROCESS_TYPE_RAYLET, ray_constants.PROCESS_TYPE_GCS_SERVER} <= running
        assert len(executor.warming) == executor.capacity >= 1
        warmed = set(ray.get(executor.warming, timeout=300))

        def on_start(spec: RunSpec) -> None:
            return None

        executor.run(specs, on_start, records.append)
    finally:
        executor.close()
    assert not ray.is_initialized()
    assert [r.status for r in records] == ["finished"] * len(specs)
    assert {r.runtime.pid for r in records if r.runtime is not None} <= warmed


@pytest.mark.ray
def test_no_warm_up_when_turned_off_or_data_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    from harness.scheduler.ray_executor import WARM_ENV, RayExecutor
    from harness.settings import ExecutionSpec, ResourcesSpec

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv(WARM_ENV, "0")
    executor = RayExecutor()
    executor.start(ResourcesSpec(cpus=1), ExecutionSpec())
    try:
        assert executor.warming == [] and executor.recorder is not None
        monkeypatch.delenv(WARM_ENV)
        executor._warm_workers(ResourcesSpec(cpus=1, workers=2))
        assert executor.warming == []
    finally:
        executor.close()
    assert not ray.is_initialized()
