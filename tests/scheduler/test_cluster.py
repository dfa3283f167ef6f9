"""Scale-out on a real two-node Ray cluster on 127.0.0.1 (``ray start --head`` + a joined node).

One module-scoped cluster serves every test; suites use the ``fault`` test plugin
(``tests/fault_plugin.py``) and its trivially fast ``instant`` architecture, so what is measured
is the orchestration: spreading over nodes, Ray Train DDP, retries after kill -9, Ctrl-C and
resume, failure classification, and MLflow holding exactly one current FINISHED child per run id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.records import RunRecord
from harness.tracking.results import ResultsFile
from tests.helpers import ctrl_c_able, fault_env, mlflow_runs, write_suite
from tests.scheduler.cluster import ray_cluster

REPO = Path(__file__).resolve().parents[2]
HARNESS = [sys.executable, "-m", "harness.cli"]
NO_MEASURE = {"latency": False, "flops": False, "memory": False}

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]


def _env(cache: Path) -> dict[str, str]:
    return fault_env(cache)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """Two Ray nodes (2 logical CPUs each) whose workers load the fault plugin; (address, env)."""
    env = _env(tmp_path_factory.mktemp("cache"))
    with ray_cluster(env, nodes=2, cpus=2) as address:
        yield address, env


def _suite(tmp_path: Path, name: str, tasks: list[dict[str, Any]], **extra: Any) -> Path:
    data = {
        "name": name,
        "seeds": [0],
        "tasks": tasks,
        "architectures": [{"name": "instant"}],
        "trainer": {"max_epochs": 2, "batch_size": 32},
        "measure": NO_MEASURE,
        **extra,
    }
    return write_suite(tmp_path, data)


def _run(
    cluster: tuple[str, dict[str, str]], suite: Path, cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    address, env = cluster
    return subprocess.run(
        [*HARNESS, "run", str(suite), "--address", address, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )


def _records(path: Path) -> list[RunRecord]:
    return ResultsFile(path).read()


def _finished_per_run_id(children: list[Any]) -> Counter[str]:
    return Counter(c.data.tags["harness.run_id"] for c in children if c.info.status == "FINISHED")


def test_cells_spread_over_both_nodes_and_a_nan_cell_is_classified(
    cluster: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    tasks = [
        {"name": "fault", "params": {"mode": "sleep", "sleep_s": 0.3}},
        {"name": "fault", "label": "diverges", "params": {"mode": "nan"}},
    ]
    suite = _suite(tmp_path, "spread", tasks, seeds=[0, 1, 2, 3])
    proc = _run(cluster, suite, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "4 finished, 4 failed" in proc.stdout
    records = _records(tmp_path / "results" / "spread.jsonl")
    finished = [r for r in records if r.status == "finished"]
    assert all(r.runtime is not None and r.runtime.node_id for r in records)
    assert (
        len(finished) == 4 and len({r.runtime.node_id for r in records if r.runtime}) == 2
    )  # both nodes ran cells
    nan = [r for r in records if r.spec.task_label == "diverges"]
    assert len(nan) == 4 and all(
        r.failure is not None and r.failure.kind == "nan" and r.status == "failed" for r in nan
    )
    # the plan's provenance came back from the workers with each record, the workers' versions too
    # a module named in HARNESS_PLUGINS: identified by its version and a digest of its source
    refs = [ref for r in records for ref in (r.spec.provenance.task_plugin, r.spec.provenance.arch_plugin)]
    assert {(ref.distribution, ref.version) for ref in refs} == {("HARNESS_PLUGINS", "-")}
    assert all(ref.source for ref in refs) and len({ref.source for ref in refs}) == 1
    assert all(r.runtime is not None and r.runtime.versions["torch"] for r in finished)
    client, _, children = mlflow_runs(tmp_path / "mlflow.db", "spread")
    assert sorted(c.data.tags.get("harness.failure_kind", "-") for c in children) == ["-"] * 4 + ["nan"] * 4
    for child in children:  # per-epoch metrics logged once each: no lost or duplicated rows
        if child.info.status == "FINISHED":
            history = client.get_metric_history(child.info.run_id, "val/accuracy")
            assert [m.step for m in history] == [0, 1]


def test_two_worker_ddp_run_finishes_with_one_set_of_metrics(
    cluster: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    suite = _suite(
        tmp_path,
        "ddp",
        [{"name": "fault", "params": {"num_train": 256}}],
        resources={"cpus": 1, "workers": 2},
    )
    proc = _run(cluster, suite, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (record,) = _records(tmp_path / "results" / "ddp.jsonl")
    assert record.status == "finished" and record.world_size == 2 and record.spec.distributed
    assert 0.0 <= record.metrics["test_accuracy"] <= 1.0 and len(record.history) == 2
    client, _, children = mlflow_runs(tmp_path / "mlflow.db", "ddp")
    assert len(children) == 1 and children[0].info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(children[0].info.run_id, "val/accuracy")] == [0, 1]


def test_a_worker_killed_mid_run_is_retried_to_completion(
    cluster: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    suite = _suite(
        tmp_path,
        "killed",
        [{"name": "fault", "params": {"mode": "sleep_first", "sleep_s": 60, "pid_dir": str(pids)}}],
    )
    address, env = cluster
    log = (tmp_path / "out.txt").open("w")
    proc = subprocess.Popen(
        [*HARNESS, "run", str(suite), "--address", address],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        end = time.time() + 120
        while time.time() < end and not any(p.name.isdigit() for p in pids.glob("*")):
            time.sleep(0.2)
        (victim,) = [int(p.name) for p in pids.glob("*") if p.name.isdigit()]
        os.kill(victim, signal.SIGKILL)
        assert proc.wait(timeout=180) == 0, (tmp_path / "out.txt").read_text()
    finally:
        proc.kill()
        log.close()
    (record,) = _records(tmp_path / "results" / "killed.jsonl")
    assert record.status == "finished" and record.attempts == 2 and record.spec.attempt == 2
    assert sorted(p.read_text() for p in pids.glob("*") if p.name.isdigit()) == ["again", "first"]
    _, _, children = mlflow_runs(tmp_path / "mlflow.db", "killed")
    # the dead attempt's child run is closed FAILED, superseded by the retry's: one FINISHED, none RUNNING
    by_status = {c.info.status: c for c in children}
    assert sorted(by_status) == ["FAILED", "FINISHED"] and len(children) == 2
    retry, dead = by_status["FINISHED"], by_status["FAILED"]
    assert retry.data.tags["harness.attempts"] == "2"
    assert dead.data.tags["harness.failure_kind"] == "infrastructure"
    assert dead.data.tags["harness.superseded_by_run"] == retry.info.run_id


@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_child_runs_are_running_with_epoch_metrics_while_their_cell_trains(
    cluster: tuple[str, dict[str, str]], tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    """Three 20-epoch cells: MLflow shows a RUNNING child with logged epoch metrics before that cell
    ends (a sqlite store and a real `mlflow server`), then exactly one FINISHED child per run id."""
    from mlflow.tracking import MlflowClient

    server = store == "server"
    uri = request.getfixturevalue("mlflow_server") if server else f"sqlite:///{tmp_path / 'live.db'}"
    name = f"live-{store}"
    tasks = [{"name": "fault", "params": {"mode": "sleep", "sleep_s": 0.03}}]
    suite = _suite(tmp_path, name, tasks, seeds=[0, 1, 2], trainer={"max_epochs": 20, "batch_size": 32})
    address, env = cluster
    client = MlflowClient(tracking_uri=uri)
    client.search_experiments()  # creates the sqlite store's tables before the driver opens it
    log = (tmp_path / "out.txt").open("w")
    proc = subprocess.Popen(
        [*HARNESS, "run", str(suite), "--address", address, "--tracking-uri", uri],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: dict[str, int] = {}  # child run id -> epochs logged while it was RUNNING
    try:
        end = time.time() + 240
        while proc.poll() is None and time.time() < end and not seen:
            experiment = client.get_experiment_by_name(name)
            if experiment is not None:
                for run in client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'"):
                    if "mlflow.parentRunId" in run.data.tags and "val/accuracy" in run.data.metrics:
                        steps = client.get_metric_history(run.info.run_id, "val/accuracy")
                        seen[run.info.run_id] = len(steps)
                        assert run.data.params["architecture"] == "instant"
            time.sleep(0.2)
        assert proc.wait(timeout=240) == 0, (tmp_path / "out.txt").read_text()
    finally:
        proc.kill()
        log.close()
    assert seen, "no RUNNING child run with an epoch metric was ever seen"
    experiment = client.get_experiment_by_name(name)
    children = [
        r for r in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" in r.data.tags
    ]
    assert sorted(c.info.status for c in children) == ["FINISHED"] * 3  # no orphan RUNNING child
    assert set(_finished_per_run_id(children).values()) == {1}
    for run_id, epochs in seen.items():
        assert 1 <= epochs < 20  # seen mid-cell; the finished run has all 20, each epoch logged once
        history = client.get_metric_history(run_id, "val/accuracy")
        assert [m.step for m in history] == list(range(20))


def test_interrupted_suite_resumes_only_unfinished_cells_without_duplicates(
    cluster: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    tasks = [
        {"name": "fault", "label": "quick"},
        {"name": "fault", "label": "held", "params": {"mode": "hold", "sleep_s": 3.0, "pid_dir": str(pids)}},
    ]
    suite = _suite(tmp_path, "interrupted", tasks, seeds=[0, 1])
    results = tmp_path / "results" / "interrupted.jsonl"
    address, env = cluster
    log = (tmp_path / "out.txt").open("w")
    proc = subprocess.Popen(
        [*HARNESS, "run", str(suite), "--address", address],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=ctrl_c_able,
    )
    try:
        end = time.time() + 150
        while time.time() < end and (
            not results.exists()
            or len(_records(results)) < 2
            or len([p for p in pids.glob("*") if p.name.isdigit()]) < 2
        ):
            time.sleep(0.3)
        time.sleep(1.5)  # the held runs are inside their first epoch
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130
    finally:
        proc.kill()
        log.close()
    out = (tmp_path / "out.txt").read_text()
    assert "Resume with `harness run" in out, out
    first = _records(results)
    assert sorted((r.spec.task_label, r.status) for r in first) == [
        ("held", "killed"),
        ("held", "killed"),
        ("quick", "finished"),
        ("quick", "finished"),
    ]
    assert all(r.failure is not None and r.failure.kind == "killed" for r in first if r.status == "killed")
    _, parents, children = mlflow_runs(tmp_path / "mlflow.db", "interrupted")
    assert [p.info.status for p in parents] == ["KILLED"]
    assert sorted(c.info.status for c in children) == ["FINISHED", "FINISHED", "KILLED", "KILLED"]

    (pids / "release").touch()
    again = _run(cluster, suite, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 finished, 0 failed, 0 skipped, 2 already done" in again.stdout
    rerun = _records(results)[len(first) :]
    killed_ids = {r.run_id for r in first if r.status == "killed"}
    assert {r.run_id for r in rerun} == killed_ids and all(r.status == "finished" for r in rerun)
    _, _, children = mlflow_runs(tmp_path / "mlflow.db", "interrupted")
    per_id = _finished_per_run_id(children)
    assert len(per_id) == 4 and set(per_id.values()) == {1}  # every cell finished exactly once

    # --rerun runs everything again but still leaves one current FINISHED child per run id: the older
    # ones are kept (history is append-only), tagged superseded by the new invocation
    forced = _run(cluster, suite, tmp_path, "--rerun")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    _, _, children = mlflow_runs(tmp_path / "mlflow.db", "interrupted")
    current = [c for c in children if "harness.superseded_by" not in c.data.tags]
    per_id = _finished_per_run_id(current)
    assert len(per_id) == 4 and set(per_id.values()) == {1}
    assert len(_finished_per_run_id([c for c in children if c not in current])) == 4


def test_run_timeout_and_suite_deadline_keep_partial_history(
    cluster: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    address, env = cluster
    tasks = [{"name": "fault", "params": {"mode": "hold", "sleep_s": 1.0, "pid_dir": str(tmp_path / "pids")}}]
    suite = _suite(
        tmp_path,
        "limits",
        tasks,
        architectures=[
            {"name": "instant"},
            {"name": "instant", "label": "capped", "trainer": {"max_time": 1}},
        ],
        trainer={"max_epochs": 100, "batch_size": 32},
        execution={"deadline": 20},
    )
    proc = subprocess.run(
        [*HARNESS, "run", str(suite), "--address", address],
        cwd=tmp_path,
        env={**env, "HARNESS_RUN_TIMEOUT_GRACE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Suite deadline reached: running cells were cancelled, 0 cell(s) not started" in proc.stdout
    records = {r.spec.arch_label: r for r in _records(tmp_path / "results" / "limits.jsonl")}
    capped, stuck = records["capped"], records["instant"]
    assert capped.status == "failed" and capped.failure is not None and capped.failure.kind == "timeout"
    assert "still alive" in capped.error
    assert stuck.status == "killed" and stuck.failure is not None and stuck.failure.kind == "timeout"
    assert "deadline" in stuck.error and len(stuck.history) >= 1  # epochs streamed before the kill
    _, parents, children = mlflow_runs(tmp_path / "mlflow.db", "limits")
    assert parents[0].info.status == "KILLED"
    assert sorted(c.info.status for c in children) == ["FAILED", "KILLED"]
    assert {c.data.tags["harness.failure_kind"] for c in children} == {"timeout"}


def test_load_100_cells_all_recorded_once(cluster: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    """The CI-sized load test (``benchmarks/load_test.py --cells 1000`` is the full one)."""
    sys.path.insert(0, str(REPO))
    from benchmarks.load_test import run_load

    figures = run_load(100, tmp_path, address=cluster[0])
    assert figures["finished_records"] == 100 and figures["finished_run_ids"] == 100
    assert figures["lost"] == 0 and figures["duplicated_run_ids"] == 0 and figures["children"] == 100
    assert figures["parents"] == 1 and figures["nodes_used"] == 2
