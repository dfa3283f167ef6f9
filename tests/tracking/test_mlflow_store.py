"""MLflow contents read back from a real store (sqlite, and a real `mlflow server`)."""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.errors import ServiceUnreachable
from harness.records import RunSpec, finished_ids
from harness.tracking.mlflow_store import MlflowTracker
from harness.tracking.results import ResultsFile
from tests.helpers import free_port, make_record, mlflow_runs, tiny_suite, write_suite


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def test_child_runs_carry_params_history_final_metrics_tags_and_artifacts(workdir: Path) -> None:
    suite = write_suite(
        workdir, tiny_suite(name="tracked", tasks=["digits"], archs=["gru", "transformer"], seeds=[0, 1])
    )
    result = CliRunner().invoke(main, ["run", str(suite), "--executor", "local"])
    assert result.exit_code == 0, result.output
    client, parents, children = mlflow_runs(workdir / "mlflow.db", "tracked")
    assert len(parents) == 1 and len(children) == 4
    parent = parents[0]
    assert parent.data.params["cells"] == "4" and parent.data.metrics["suite/runs_finished"] == 4
    assert "suite.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    records = {r.run_id: r for r in ResultsFile(workdir / "results" / "tracked.jsonl").read()}
    for child in children:
        tags, params, metrics = child.data.tags, child.data.params, child.data.metrics
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags["harness.task"] == "digits" and tags["harness.architecture"] in {"gru", "transformer"}
        assert tags["harness.seed"] in {"0", "1"}
        assert tags["version.harness"] and tags["version.torch"] and tags["harness.host"]
        assert tags["harness.device"].startswith("cpu")
        record = records[tags["harness.run_id"]]  # the content-hash id links MLflow and the results file
        assert record.mlflow_run_id == child.info.run_id
        plan = record.spec.provenance  # the plan-time provenance is tagged too
        assert tags["harness.task_plugin"] == plan.task_plugin.pin
        assert tags["harness.arch_plugin"] == plan.arch_plugin.pin
        assert tags["harness.data_version"] == plan.data_version and tags["harness.attempts"] == "1"
        assert tags[f"version.{plan.task_plugin.distribution}"] == plan.task_plugin.version
        assert params["seed"] == tags["harness.seed"] and params["trainer.max_epochs"] == "2"
        assert params["task.test_fraction"] == "0.2"
        for key in ("test/accuracy", "test/f1", "test/auroc", "cost/train_time_s", "cost/num_params"):
            assert key in metrics
        assert metrics["test/accuracy"] == pytest.approx(record.metrics["test_accuracy"])
        losses = client.get_metric_history(child.info.run_id, "train/loss")
        assert [m.step for m in losses] == [0, 1]
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"config.json", "history.json"} <= artifacts
        config = json.loads(
            Path(client.download_artifacts(child.info.run_id, "config.json", str(workdir))).read_text()
        )
        assert config["spec"]["architecture"] == tags["harness.architecture"]
        assert RunSpec.model_validate(config["spec"]) == record.spec


def test_results_file_survives_a_truncated_last_line(tmp_path: Path) -> None:
    results = ResultsFile(tmp_path / "r.jsonl")
    results.append(make_record(run_id="a", value=float("nan")))
    results.append(make_record(run_id="b", status="failed"))
    with results.path.open("a") as handle:
        handle.write('{"format": 2, "spec": {"run_id": "c", "status": "fin')  # the driver died mid-write
    records = results.read()
    assert [r.run_id for r in records] == ["a", "b"] and results.unreadable == [3]
    assert finished_ids(records) == {"a"}
    first = json.loads(results.path.read_text().splitlines()[0])
    assert first["metrics"]["test_accuracy"] is None  # NaN is stored as null, and read back as NaN
    assert math.isnan(records[0].metrics["test_accuracy"])


def test_a_record_appended_after_a_partial_last_line_is_not_lost(tmp_path: Path) -> None:
    """The driver died mid-write (the file ends in a partial line): the next record starts a line
    of its own, so only the partial line is unreadable (issue 17, defect 2)."""
    results = ResultsFile(tmp_path / "r.jsonl")
    results.append(make_record(run_id="a", value=0.5))
    results.append(make_record(run_id="b", value=0.6))
    text = results.path.read_bytes()
    results.path.write_bytes(text[:-40])  # cut into the last record
    results.append(make_record(run_id="c", value=0.7))
    records = results.read()
    assert [r.run_id for r in records] == ["a", "c"] and len(results.unreadable) == 1
    results.append(make_record(run_id="d", value=0.8))  # after a whole line: no blank line added
    assert [r.run_id for r in results.read()] == ["a", "c", "d"]
    assert "\n\n" not in results.path.read_text()


@pytest.mark.parametrize("command", ["run", "ui"])
def test_a_tracking_uri_mlflow_cannot_store_runs_in_is_exit_2_before_anything_runs(
    workdir: Path, command: str
) -> None:
    """`--tracking-uri ftp://x/y` named with the schemes that work (issue 17, defect 8)."""
    suite = write_suite(workdir, tiny_suite(name="ftp", tasks=["digits"]))
    args = ["run", str(suite), "--executor", "local"] if command == "run" else ["ui", str(suite)]
    result = CliRunner().invoke(main, [*args, "--tracking-uri", "ftp://x/y"])
    assert result.exit_code == 2, result.output
    assert "`ftp://`" in result.output and "sqlite://" in result.output and "http://" in result.output
    assert "Traceback" not in result.output
    assert not (workdir / "results").exists() and not (workdir / "mlflow.db").exists()


@pytest.mark.slow
def test_runs_are_tracked_on_a_real_mlflow_server(workdir: Path, mlflow_server: str) -> None:
    from mlflow.tracking import MlflowClient

    suite = write_suite(workdir, tiny_suite(name="served", tasks=["digits"], archs=["gru"]))
    result = CliRunner().invoke(
        main, ["run", str(suite), "--executor", "local", "--tracking-uri", mlflow_server]
    )
    assert result.exit_code == 0, result.output
    assert f"{mlflow_server}/#/experiments/" in result.output
    assert "View run" not in result.output  # MLflow's own per-run link lines would break the display
    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name("served")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 2  # parent + one child
    child = next(r for r in runs if "mlflow.parentRunId" in r.data.tags)
    assert child.data.metrics["test/accuracy"] > 0
    assert not (workdir / "mlflow.db").exists()


def test_unreachable_tracking_server_is_bad_input_and_records_nothing(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused at once, said in one clean line (it was urllib3's text cut at 300 characters,
    ending in a mangled `port=)` fragment, after MLflow's retries)."""
    for name in (
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
        "HARNESS_TRACKING_CONNECT_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)
    suite = write_suite(workdir, tiny_suite(name="nowhere", tasks=["digits"]))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    result = CliRunner().invoke(main, ["run", str(suite), "--executor", "local", "--tracking-uri", url])
    took = time.monotonic() - started
    assert result.exit_code == 2, result.output
    assert "Cannot use the MLflow tracking store" in result.output and "mlflow server" in result.output
    assert f"connection refused at 127.0.0.1:{port}" in result.output
    for noise in ("port=", "HTTPConnection", "Max retries", "NewConnectionError", "Traceback"):
        assert noise not in result.output, noise
    assert took < 5, took
    assert not (workdir / "mlflow.db").exists()


@contextmanager
def _silent_server() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections and never answers (a hung server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()


def test_a_tracking_server_that_never_answers_fails_within_the_connect_timeout(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17, defect 15: exit 2 came only after 71 s (MLflow's 20 s timeout, 2 retries, back-off)."""
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    monkeypatch.setenv("HARNESS_TRACKING_CONNECT_TIMEOUT", "2")
    suite = write_suite(workdir, tiny_suite(name="silent", tasks=["digits"]))
    with _silent_server() as port:
        started = time.monotonic()
        result = CliRunner().invoke(
            main, ["run", str(suite), "--executor", "local", "--tracking-uri", f"http://127.0.0.1:{port}"]
        )
        took = time.monotonic() - started
        # the limit is for connecting only: the writes during the run keep MLflow's longer timeouts
        # (checked here on the tracker itself: `harness run` holds it in its tracking process)
        tracker = MlflowTracker(f"http://127.0.0.1:{port}", "silent")
        with pytest.raises(ServiceUnreachable, match="within 2 s"):
            tracker.connect()
    assert result.exit_code == 2, result.output
    assert f"no answer from 127.0.0.1:{port} within 2 s" in result.output
    assert "HARNESS_TRACKING_CONNECT_TIMEOUT" in result.output and "Traceback" not in result.output
    assert took < 10, took
    assert os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") == "20"
    assert os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES") == "2"


def test_sqlite_artifacts_go_beside_the_database_not_the_working_directory(
    workdir: Path, tmp_path_factory
) -> None:
    elsewhere = tmp_path_factory.mktemp("store")
    suite = write_suite(workdir, tiny_suite(name="placed", tasks=["digits"], archs=["gru"]))
    uri = f"sqlite:///{elsewhere / 'runs.db'}"
    result = CliRunner().invoke(main, ["run", str(suite), "--executor", "local", "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    client, parents, children = mlflow_runs(elsewhere / "runs.db", "placed")
    assert {a.path for a in client.list_artifacts(children[0].info.run_id)} >= {"config.json", "history.json"}
    assert list((elsewhere / "mlruns").rglob("config.json"))
    assert not (workdir / "mlruns").exists()
