"""Resume and stop semantics of the driver, with the in-process executor (no Ray needed).

Finished cells are found in the results file *or* in MLflow (a driver that died after logging a
run but before appending it to the file must not run it again); a suite deadline leaves the
unstarted cells for the next invocation.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from harness.tracking.results import ResultsFile
from tests.helpers import mlflow_runs, write_suite

SUITE: dict[str, Any] = {
    "name": "resumable",
    "seeds": [0, 1],
    "tasks": [{"name": "fault"}],
    "architectures": [{"name": "instant"}],
    "trainer": {"max_epochs": 1, "batch_size": 32},
    "measure": {"latency": False, "flops": False, "memory": False},
}


def test_finished_runs_found_only_in_mlflow_are_not_run_again(
    fault_workdir: Path, cli: Any, tmp_path: Path
) -> None:
    suite = write_suite(tmp_path, SUITE)
    first = cli("run", str(suite), "--executor", "local")
    assert first.exit_code == 0, first.output
    (tmp_path / "results" / "resumable.jsonl").unlink()  # as if the driver died before writing the file

    again = cli("run", str(suite), "--executor", "local")
    assert again.exit_code == 0, again.output
    assert "0 finished, 0 failed, 0 skipped, 2 already done" in again.output
    _, parents, children = mlflow_runs(tmp_path / "mlflow.db", "resumable")
    assert len(parents) == 2 and len(children) == 2

    forced = cli("run", str(suite), "--executor", "local", "--rerun")
    assert forced.exit_code == 0, forced.output
    _, parents, children = mlflow_runs(tmp_path / "mlflow.db", "resumable")
    newest = max(parents, key=lambda p: p.info.start_time).info.run_id
    current = [c for c in children if "harness.superseded_by" not in c.data.tags]
    per_id = Counter(c.data.tags["harness.run_id"] for c in current if c.info.status == "FINISHED")
    assert len(per_id) == 2 and set(per_id.values()) == {1}  # one current FINISHED run per cell
    superseded = [c for c in children if "harness.superseded_by" in c.data.tags]
    assert len(superseded) == 2 and {c.data.tags["harness.superseded_by"] for c in superseded} == {newest}
    assert all(c.info.lifecycle_stage == "active" for c in children)  # tagged, never deleted

    after_rerun = cli("run", str(suite), "--executor", "local")  # resume ignores the superseded runs
    assert after_rerun.exit_code == 0 and "2 already done" in after_rerun.output, after_rerun.output
    assert len(mlflow_runs(tmp_path / "mlflow.db", "resumable")[2]) == 4

    gone = cli("run", str(suite), "--executor", "local", "--resume")  # resuming is the default: no flag
    assert gone.exit_code == 2 and "No such option '--resume'" in gone.output


def test_suite_deadline_leaves_unstarted_cells_for_the_next_run(
    fault_workdir: Path, cli: Any, tmp_path: Path
) -> None:
    suite = write_suite(tmp_path, {**SUITE, "execution": {"deadline": 0.001}})
    out = cli("run", str(suite), "--executor", "local")
    # the in-process executor checks the deadline between runs: the first run starts, the second does not
    assert "Suite deadline reached: running cells were cancelled, 1 cell(s) not started" in out.output, (
        out.output
    )
    assert out.exit_code == 1 and "1 finished, 0 failed, 0 skipped, 1 not started (deadline)." in out.output
    _, parents, children = mlflow_runs(tmp_path / "mlflow.db", "resumable")
    assert [p.info.status for p in parents] == ["KILLED"] and len(children) == 1

    write_suite(
        tmp_path, {**SUITE, "execution": {"deadline": 3600}}
    )  # same cells (deadline is not in run ids)
    again = cli("run", str(suite), "--executor", "local")
    assert again.exit_code == 0 and "1 finished, 0 failed, 0 skipped, 1 already done." in again.output, (
        again.output
    )
    results = ResultsFile(tmp_path / "results" / "resumable.jsonl")
    records = results.read()
    assert results.unreadable == [] and len(records) == 2
    assert Counter(r.run_id for r in records if r.finished).most_common(1)[0][1] == 1


def test_runs_left_running_by_a_killed_driver_are_closed_killed_when_the_suite_runs_again(
    fault_workdir: Path, cli: Any, tmp_path: Path
) -> None:
    """kill -9 of the driver mid-cell leaves its parent and the cell's child run RUNNING (the child
    opened when the cell started); the next invocation closes both as KILLED and runs the cell."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from mlflow.tracking import MlflowClient

    repo = Path(__file__).resolve().parents[1]
    params = {"mode": "sleep", "sleep_s": 0.05}  # ~0.15 s an epoch: 3 s of training
    slow = {**SUITE, "seeds": [0], "tasks": [{"name": "fault", "params": params}]}
    slow["trainer"] = {"max_epochs": 20, "batch_size": 32}
    suite = write_suite(tmp_path, slow)
    path = os.pathsep.join(p for p in (str(repo), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.search_experiments()  # creates the store's tables before the driver opens it
    driver = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", str(suite), "--executor", "local"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        running: list[Any] = []
        while time.time() < deadline and len(running) < 2:  # the parent and the cell's child run
            time.sleep(0.5)
            experiment = (
                client.get_experiment_by_name("resumable") if (tmp_path / "mlflow.db").exists() else None
            )
            if experiment is not None:
                running = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")
        assert len(running) == 2, "the driver never opened its parent and child runs"
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)

    again = cli("run", str(suite), "--executor", "local")
    assert again.exit_code == 0, again.output
    assert "2 run(s) left RUNNING by a driver that died closed as KILLED" in again.output
    _, parents, children = mlflow_runs(tmp_path / "mlflow.db", "resumable")
    assert sorted(p.info.status for p in parents) == ["FINISHED", "KILLED"]
    assert sorted(c.info.status for c in children) == ["FINISHED", "KILLED"]  # none RUNNING
    killed = next(c for c in children if c.info.status == "KILLED")
    assert (
        killed.data.tags["harness.failure_kind"] == "killed"
        and "driver died" in killed.data.tags["harness.error"]
    )
