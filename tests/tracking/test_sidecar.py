"""``harness run``'s tracking process (:mod:`harness.tracking.sidecar`) against a real sqlite store:
it does what the in-process tracker does, errors come back as themselves, it outlives no driver,
ignores the signals that stop the driver, and a dead one is a store that stopped answering."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.errors import ServiceUnreachable
from harness.tracking.live import LiveLogger
from harness.tracking.mlflow_store import mlflow_key
from harness.tracking.reconcile import reconcile
from harness.tracking.results import ResultsFile
from harness.tracking.sidecar import TrackingProcess, TrackingProcessError
from tests.helpers import REPO, make_record, mlflow_runs, tiny_suite, write_suite

ROWS = [
    {"epoch": 0.0, "step": 2.0, "train_loss": 0.9, "val_loss": 0.8, "val_accuracy": 0.5, "elapsed_s": 0.1},
    {"epoch": 1.0, "step": 4.0, "train_loss": 0.7, "val_loss": 0.6, "val_accuracy": 0.6, "elapsed_s": 0.2},
]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not reaped yet) is gone for this purpose
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return not _alive(pid)


@pytest.fixture()
def tracking(tmp_path: Path):  # type: ignore[no-untyped-def]
    process = TrackingProcess(f"sqlite:///{tmp_path / 'mlflow.db'}", "sidecar")
    yield process
    process.close()


def test_it_logs_a_parent_and_a_child_run_as_the_in_process_tracker_does(
    tracking: TrackingProcess, tmp_path: Path
) -> None:
    tracking.begin_connect()  # returns at once; the next call waits for the store
    parent = tracking.start_parent("p", {"harness.suite": "sidecar"}, {"seeds": [0, 1]}, "name: sidecar\n")
    assert tracking.experiment_id and tracking.parent_id == parent  # mirrored from the process
    record = make_record(value=0.7, cost={"train_time_s": 1.5}, history=ROWS, run_id="cell-a")
    child = tracking.open_child(record.spec, "suites/sidecar.yaml", started=time.time())
    tracking.log_rows(child, ROWS[:1], time.time())
    tracking.close_child(child, record, {0})
    assert tracking.finished_children() == {"cell-a": [child]}
    tracking.finish_parent("FINISHED", {"runs_finished": 1.0})

    client, parents, children = mlflow_runs(tmp_path / "mlflow.db", "sidecar")
    assert [p.info.run_id for p in parents] == [parent] and parents[0].info.status == "FINISHED"
    assert parents[0].data.params["seeds"] == "[0, 1]"
    assert parents[0].data.metrics["suite/runs_finished"] == 1.0
    (run,) = children
    assert run.info.run_id == child and run.info.status == "FINISHED"
    assert run.data.tags["mlflow.source.name"] == "suites/sidecar.yaml"
    history = client.get_metric_history(child, mlflow_key("val_accuracy"))
    assert sorted((m.step, m.value) for m in history) == [(0, 0.5), (1, 0.6)]  # each epoch once


def test_a_store_that_cannot_be_used_is_the_same_clear_error(tmp_path: Path) -> None:
    process = TrackingProcess("http://127.0.0.1:9", "sidecar")  # nothing listens on port 9
    try:
        with pytest.raises(
            ServiceUnreachable, match="Cannot use the MLflow tracking store `http://127.0.0.1:9`"
        ):
            process.connect()
    finally:
        process.close()


def test_an_error_in_a_call_comes_back_and_the_process_goes_on(tracking: TrackingProcess) -> None:
    tracking.connect()
    with pytest.raises(Exception, match="not-a-run") as caught:
        tracking.log_rows("not-a-run", ROWS, time.time())
    assert not isinstance(caught.value, TrackingProcessError)  # MLflow's own error, not a lost process
    assert tracking.finished_children() == {}


def test_a_reply_whose_wait_was_cut_short_is_not_taken_for_the_next_one(tracking: TrackingProcess) -> None:
    tracking.connect()
    tracking._send("method", "start_parent", ("p", {}, {}, "x"), {})  # a wait a signal interrupted
    assert tracking.finished_children() == {}  # its own reply, not start_parent's run id


def test_reconcile_runs_in_the_process_with_its_tracker(tracking: TrackingProcess, tmp_path: Path) -> None:
    tracking.connect()
    parent = tracking.start_parent("p", {"harness.suite": "digits-suite"}, {}, "x")
    results = ResultsFile(tmp_path / "results.jsonl")
    record = make_record(value=0.7, history=ROWS, run_id="cell-b")
    record.parent_run_id = parent
    results.append(record)  # in the results file only: the store went away before it was logged
    synced = tracking.call(reconcile, results, record.spec.suite, [record.spec])
    assert synced.to_mlflow == 1
    assert set(tracking.finished_children()) == {"cell-b"}


def test_it_ignores_the_signals_that_stop_the_driver(tracking: TrackingProcess) -> None:
    tracking.connect()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        os.kill(tracking.process.pid, sig)
    time.sleep(0.3)
    assert tracking.finished_children() == {}  # still answering
    assert os.getpgid(tracking.process.pid) != os.getpgid(0)  # a Ctrl-C of the group misses it


def test_a_dead_tracking_process_is_a_store_that_stopped_answering(tracking: TrackingProcess) -> None:
    tracking.connect()
    tracking.start_parent("p", {}, {}, "x")
    os.kill(tracking.process.pid, signal.SIGKILL)
    tracking.process.wait(10)
    with pytest.raises(TrackingProcessError, match=r"exited with code -9"):
        tracking.finished_children()
    with pytest.raises(TrackingProcessError):  # and stays so, at once
        tracking.finished_children()

    warnings: list[str] = []
    live = LiveLogger(tracking, warnings.append)
    record = make_record(value=0.7, history=ROWS, run_id="cell-c")
    live.open(record.spec)
    live.close(record)
    assert live.stop(timeout=30)
    assert live.incomplete == 1 and len(warnings) == 1 and "stopped answering" in warnings[0]


def test_it_exits_when_its_driver_is_killed(tmp_path: Path) -> None:
    driver = textwrap.dedent(
        f"""
        import os, signal, sys, time
        from harness.tracking.sidecar import TrackingProcess
        process = TrackingProcess("sqlite:///{tmp_path / "mlflow.db"}", "orphan")
        process.connect()
        process.start_parent("p", {{}}, {{}}, "x")
        print(process.process.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", driver], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    pid = int(done.stdout.split()[0])
    assert _gone_within(pid, 15), f"the tracking process {pid} outlived its driver"
    _, parents, _ = mlflow_runs(tmp_path / "mlflow.db", "orphan")
    assert len(parents) == 1  # what it had logged stays


def test_harness_run_never_imports_mlflow_in_the_driver(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, tiny_suite("nomlflow", tasks=["adding"]))
    script = textwrap.dedent(
        f"""
        import json, sys
        from harness.cli import main
        try:
            main(["run", {str(suite)!r}, "--executor", "local"])
        except SystemExit as exc:
            code = exc.code
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "mlflow")
        print(json.dumps({{"code": code, "mlflow": loaded}}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["HARNESS_CACHE_DIR"] = str(tmp_path / "cache")
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome == {"code": 0, "mlflow": []}, done.stderr[-3000:]
    assert "INFO mlflow" not in done.stdout + done.stderr  # its table-creation chatter stays quiet
    _, parents, children = mlflow_runs(tmp_path / "mlflow.db", "nomlflow")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert [c.info.status for c in children] == ["FINISHED"]


def test_a_new_sqlite_store_is_made_ahead_and_placed_only_when_it_opens(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    process = TrackingProcess(f"sqlite:///{db}", "ahead")
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".mlflow.db.new-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not db.exists()  # made under a temporary name: nothing where the store goes yet
        process.connect()
        assert db.exists() and not list(tmp_path.glob(".mlflow.db.new-*"))
        parent = process.start_parent("p", {}, {}, "x")
    finally:
        process.close()
    _, parents, _ = mlflow_runs(db, "ahead")
    assert [p.info.run_id for p in parents] == [parent]
    client = mlflow_runs(db, "ahead")[0]
    assert client.get_experiment_by_name("Default") is not None  # as a first connection makes it


def test_a_process_closed_before_it_opened_the_store_leaves_nothing(tmp_path: Path) -> None:
    """A cluster that cannot be joined, infeasible resources: the driver stops before connecting."""
    db = tmp_path / "mlflow.db"
    process = TrackingProcess(f"sqlite:///{db}", "never")
    time.sleep(2)  # the store is being made, or made, under its temporary name
    process.close()
    assert list(tmp_path.iterdir()) == []


def test_a_store_that_appeared_meanwhile_is_never_replaced(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    process = TrackingProcess(f"sqlite:///{db}", "theirs")
    try:
        from harness.tracking.mlflow_store import MlflowTracker

        other = MlflowTracker(f"sqlite:///{db}", "theirs")  # another process got there first
        other.connect()
        first = other.start_parent("first", {}, {}, "x")
        process.connect()
        process.start_parent("second", {}, {}, "x")
    finally:
        process.close()
    _, parents, _ = mlflow_runs(db, "theirs")
    assert first in {p.info.run_id for p in parents} and len(parents) == 2
    assert not list(tmp_path.glob(".mlflow.db.new-*"))


def test_a_tracking_process_that_cannot_start_leaves_mlflow_to_the_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken environment (the process cannot import harness, say): one warning, MLflow in the
    driver, the suite runs and is logged as usual."""
    from click.testing import CliRunner

    from harness import cli
    from harness.tracking import sidecar

    monkeypatch.setattr(sidecar, "command", lambda *_: [sys.executable, "-c", "raise SystemExit(3)"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    suite = write_suite(tmp_path, tiny_suite("fallback", tasks=["adding"]))
    result = CliRunner().invoke(cli.main, ["run", str(suite), "--executor", "local"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # the console wraps lines
    assert "exited with code 3" in said and "MLflow is used from this process instead" in said, said
    _, parents, children = mlflow_runs(tmp_path / "mlflow.db", "fallback")
    assert [p.info.status for p in parents] == ["FINISHED"]
    assert [c.info.status for c in children] == ["FINISHED"]


def test_an_mlflow_that_cannot_load_is_a_clear_error_and_nothing_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen on the GPU machine: MLflow's sqlite store imports ``cryptography``, which an
    environment lacked; that was a traceback. The tracking process inherits PYTHONPATH."""
    from click.testing import CliRunner

    from harness import cli

    broken = tmp_path / "broken"
    (broken / "cryptography").mkdir(parents=True)
    (broken / "cryptography" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'cryptography'\", name='cryptography')\n"
    )
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    path = [str(broken), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    suite = write_suite(work, tiny_suite("nocrypto", tasks=["adding"]))
    result = CliRunner().invoke(cli.main, ["run", str(suite), "--executor", "local"])
    said = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "MLflow could not open the tracking store" in said, said
    assert "No module named 'cryptography'" in said, said
    assert "Traceback" not in result.output
    assert not (work / "results").exists()  # nothing was run


def test_an_mlflow_that_cannot_import_at_all_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tracking process's early imports fail: it stays up and the store's opening reports it
    (it used to die, the driver fell back to MLflow in its own process, and that failed with a
    traceback)."""
    from tests.helpers import harness_local

    broken = tmp_path / "broken"
    (broken / "mlflow").mkdir(parents=True)
    (broken / "mlflow" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'mlflow'\", name='mlflow')\n"
    )
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(broken), *filter(None, [os.environ.get("PYTHONPATH")])])
    )
    suite = write_suite(tmp_path, tiny_suite("nomlflowatall", tasks=["adding"]))
    done = harness_local(tmp_path, suite)
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 2, said
    assert "MLflow could not open the tracking store" in said and "No module named 'mlflow'" in said, said
    assert "Traceback" not in said and not (tmp_path / "results").exists()
