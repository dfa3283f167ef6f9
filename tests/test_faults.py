"""Nothing lost, whatever dies (issue 17): the tracking server, the results file, the driver.

Real components only: a real ``mlflow server`` subprocess on 127.0.0.1 that the tests kill and
start again, real Ray (the tests marked ``ray``), real signals sent to a real ``harness run``.
Suites use the ``fault`` test plugin (``tests/fault_plugin.py``): its ``instant`` architecture
trains in milliseconds, and its ``hold`` mode keeps a cell running until the test releases it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness.records import RunRecord
from harness.tracking.results import ResultsFile
from tests.helpers import MlflowServer, ctrl_c_able, fault_env, harness_run, write_suite

REPO = Path(__file__).resolve().parents[1]
HARNESS = [sys.executable, "-m", "harness.cli"]
NO_MEASURE = {"latency": False, "flops": False, "memory": False}


def _env(tmp_path: Path) -> dict[str, str]:
    return fault_env(tmp_path / "cache")


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


def _start(tmp_path: Path, suite: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*HARNESS, "run", str(suite), *args],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=(tmp_path / "out.txt").open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=ctrl_c_able,
    )


def _run(tmp_path: Path, suite: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return harness_run(tmp_path, suite, *args)


def _records(path: Path) -> list[RunRecord]:
    return ResultsFile(path).read()


def _wait(condition: Any, timeout: float = 120, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _store(url: str, experiment: str) -> tuple[list[Any], list[Any]]:
    """(parents, children) of ``experiment`` on the server ``url``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def _finished_once(children: list[Any]) -> Counter[str]:
    """FINISHED child runs per harness run id, leaving out the ones a --rerun superseded."""
    return Counter(
        c.data.tags["harness.run_id"]
        for c in children
        if c.info.status == "FINISHED" and "harness.superseded_by" not in c.data.tags
    )


def _finished_records(path: Path) -> Counter[str]:
    return Counter(r.run_id for r in _records(path) if r.finished)


@pytest.mark.timeout(400)
def test_a_tracking_server_dying_mid_suite_is_back_filled_by_the_next_run(tmp_path: Path) -> None:
    """Defect 1: the server dies after the first cell; the suite still ends with its summary and
    report (no traceback, exit 0), and once the server is back the next run back-fills every
    missing child run and closes the parent left RUNNING: each cell FINISHED exactly once."""
    tasks = [{"name": "fault", "params": {"mode": "sleep", "sleep_s": 0.3}}]
    suite = _suite(tmp_path, "serverdies", tasks, seeds=[0, 1, 2, 3])
    results = tmp_path / "results" / "serverdies.jsonl"
    server = MlflowServer(tmp_path)
    url = server.start()
    try:
        proc = _start(tmp_path, suite, "--executor", "local", "--tracking-uri", url)
        _wait(lambda: results.exists() and len(_records(results)) >= 1, what="the first record")
        server.kill()  # the tracking server dies mid-suite
        assert proc.wait(timeout=300) == 0
        out = (tmp_path / "out.txt").read_text()
        assert "Traceback" not in out, out
        assert "4 finished, 0 failed" in out and "stopped answering" in out, out
        assert "harness sync serverdies" in out, out
        assert (tmp_path / "reports" / "serverdies" / "latest").is_dir()
        assert sorted(_finished_records(results).values()) == [1, 1, 1, 1]

        server.start()  # back, same port and store
        parents, children = _store(url, "serverdies")
        assert "RUNNING" in [p.info.status for p in parents]  # the parent it could not close
        assert len(_finished_once(children)) < 4  # what the dead server never got

        again = _run(tmp_path, suite, "--executor", "local", "--tracking-uri", url)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "back-filled into MLflow" in again.stdout, again.stdout
        assert "4 already done" in again.stdout, again.stdout
        parents, children = _store(url, "serverdies")
        assert "RUNNING" not in [p.info.status for p in parents]
        assert "RUNNING" not in [c.info.status for c in children]
        assert sorted(_finished_once(children).values()) == [1, 1, 1, 1]

        synced = subprocess.run(
            [*HARNESS, "sync", str(suite), "--tracking-uri", url],
            cwd=tmp_path,
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert synced.returncode == 0 and "already in agreement" in synced.stdout, synced.stdout
        assert sorted(_finished_once(_store(url, "serverdies")[1]).values()) == [1, 1, 1, 1]
    finally:
        server.kill()


def test_a_finished_run_only_mlflow_has_is_back_filled_into_the_results_file(tmp_path: Path) -> None:
    """Defect 10: MLflow has a finished run the results file lacks (the driver died between the
    two, or the file was cut): resume skips it *and* the table counts it, because the file is
    back-filled from MLflow."""
    suite = _suite(tmp_path, "backfill", [{"name": "fault"}], seeds=[0, 1])
    results = tmp_path / "results" / "backfill.jsonl"
    first = _run(tmp_path, suite, "--executor", "local")
    assert first.returncode == 0, first.stdout + first.stderr
    lines = results.read_text().splitlines()
    results.write_text(lines[0] + "\n")  # the second record is gone from the file
    again = _run(tmp_path, suite, "--executor", "local")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 finished run(s) only MLflow had back-filled into the results file" in again.stdout
    assert "0 finished, 0 failed, 0 skipped, 2 already done" in again.stdout, again.stdout
    assert sorted(_finished_records(results).values()) == [1, 1]
    assert "(n=2)" in again.stdout, again.stdout  # the table and verdict count both seeds


def test_a_partial_or_malformed_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    """Defects 2 and 3: a results file cut mid-line, or with a valid-JSON line of the wrong shape,
    is reported once with the line numbers, never fatal; the lost cell runs again."""
    suite = _suite(tmp_path, "partial", [{"name": "fault"}], seeds=[0, 1])
    results = tmp_path / "results" / "partial.jsonl"
    assert _run(tmp_path, suite, "--executor", "local", "--tracking-uri", "sqlite:///a.db").returncode == 0
    results.write_bytes(results.read_bytes()[:-400])  # the driver died writing the last record
    with results.open("a") as handle:
        handle.write("\n[1, 2, 3]\n")
    again = _run(tmp_path, suite, "--executor", "local", "--tracking-uri", "sqlite:///b.db")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "skipped 2 line(s) that are not whole records (line 2, 3" in again.stdout, again.stdout
    assert "1 finished, 0 failed, 0 skipped, 1 already done" in again.stdout, again.stdout
    assert sorted(_finished_records(results).values()) == [1, 1]


def test_a_second_run_of_the_same_suite_is_refused_while_the_first_holds_it(tmp_path: Path) -> None:
    """Defect 13: two `harness run` of one suite in one folder would run every cell twice; the
    second is refused (exit 2, naming the first) and runs nothing."""
    suite = _suite(tmp_path, "twice", [{"name": "fault"}])
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from harness.tracking.results import ResultsFile\n"
            "with ResultsFile(sys.argv[1]).locked():\n"
            "    print('held', flush=True)\n"
            "    time.sleep(120)\n",
            str(tmp_path / "results" / "twice.jsonl"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        second = _run(tmp_path, suite, "--executor", "local")
        assert second.returncode == 2, second.stdout + second.stderr
        assert "in use by another `harness run` (pid " in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        assert not (tmp_path / "results" / "twice.jsonl").exists()  # nothing ran
    finally:
        holder.kill()
        holder.wait()
    third = _run(tmp_path, suite, "--executor", "local")  # the lock died with its process
    assert third.returncode == 0, third.stdout + third.stderr


@pytest.mark.timeout(300)
def test_sigterm_records_the_running_cell_as_killed_and_exits_143(tmp_path: Path) -> None:
    """Defect 5 (in-process executor): SIGTERM — what a batch scheduler or `timeout` sends —
    stops the suite like Ctrl-C: the running cell is recorded as killed, exit 143, and the
    suite resumes."""
    pids = tmp_path / "pids"
    tasks = [{"name": "fault", "params": {"mode": "hold", "sleep_s": 0.5, "pid_dir": str(pids)}}]
    suite = _suite(tmp_path, "term", tasks, seeds=[0, 1])
    results = tmp_path / "results" / "term.jsonl"
    proc = _start(tmp_path, suite, "--executor", "local")
    try:
        _wait(lambda: pids.exists() and any(p.name.isdigit() for p in pids.iterdir()), what="training")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 143
    finally:
        proc.kill()
    out = (tmp_path / "out.txt").read_text()
    assert "Interrupted (SIGTERM)" in out and "Resume with `harness run" in out, out
    assert "Traceback" not in out, out
    assert [r.status for r in _records(results)] == ["killed"]
    (pids / "release").touch()
    again = _run(tmp_path, suite, "--executor", "local")
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(_finished_records(results).values()) == [1, 1]


def test_ctrl_c_before_the_suite_starts_is_exit_130_not_aborted(tmp_path: Path) -> None:
    """Defect 14 (start-up): Ctrl-C while harness is still importing and planning is exit 130
    with one line, not click's "Aborted!" with exit code 1."""
    suite = _suite(tmp_path, "early", [{"name": "fault"}])
    proc = _start(tmp_path, suite, "--executor", "local")
    time.sleep(0.4)  # inside the imports
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    out = (tmp_path / "out.txt").read_text()
    assert "Aborted!" not in out and "Traceback" not in out, out
    assert "Interrupted" in out, out


@pytest.mark.ray
@pytest.mark.timeout(600)
@pytest.mark.parametrize("delay", [2.5, 4.5])
def test_ctrl_c_at_any_moment_stops_cleanly_and_accounts_for_every_cell(tmp_path: Path, delay: float) -> None:
    """Defect 14: Ctrl-C while Ray starts (~4-5 s after launch) was swallowed ("Exception ignored
    in …") and the suite ran on to exit 0; Ctrl-C as a cell ended lost the cell being started.
    Now it is always exit 130, and killed + recorded + not started = every cell."""
    tasks = [{"name": "fault", "params": {"mode": "sleep", "sleep_s": 0.2}}]
    suite = _suite(tmp_path, "anytime", tasks, seeds=list(range(6)), resources={"cpus": 1})
    proc = _start(tmp_path, suite)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=300) == 130
    out = (tmp_path / "out.txt").read_text()
    assert "Traceback" not in out and "Exception ignored" not in out, out
    line = next((line for line in out.splitlines() if line.startswith("Interrupted")), "")
    if "running cell(s) cancelled" in line:  # it stopped inside the suite: every cell accounted for
        numbers = [int(word) for word in line.replace(",", " ").split() if word.isdigit()]
        killed, recorded, unstarted = numbers[0], numbers[1], numbers[2]
        assert killed + recorded + unstarted == 6, line
        results = tmp_path / "results" / "anytime.jsonl"
        assert len(_records(results)) == killed + recorded


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_fault_drill(tmp_path: Path) -> None:
    """The drill: a 20-cell suite on real Ray with a real `mlflow server`. During it, the tracking
    server is killed and started again, a worker is killed (kill -9), the results file's last line
    is cut and the driver gets SIGTERM. Then the suite is run again: every cell is FINISHED exactly
    once in MLflow and in the results file, no parent run is left RUNNING, no record is lost."""
    pids = tmp_path / "pids"
    tasks = [
        {"name": "fault", "label": "quick", "params": {"mode": "sleep", "sleep_s": 0.15}},
        {"name": "fault", "label": "held", "params": {"mode": "hold", "sleep_s": 0.3, "pid_dir": str(pids)}},
    ]
    suite = _suite(
        tmp_path, "drill", tasks, seeds=list(range(10)), resources={"cpus": 1}, execution={"max_retries": 2}
    )
    results = tmp_path / "results" / "drill.jsonl"
    server = MlflowServer(tmp_path)
    url = server.start()
    try:
        proc = _start(tmp_path, suite, "--tracking-uri", url)
        try:
            count = lambda: len(_records(results)) if results.exists() else 0  # noqa: E731
            _wait(lambda: count() >= 2, what="two records")
            server.kill()  # the tracking server dies
            _wait(lambda: count() >= 5, what="five records")
            server.start()  # and comes back
            _wait(lambda: count() >= 8, what="eight records")
            results.write_bytes(results.read_bytes()[:-60])  # cut into the last record
            workers = lambda: [p for p in pids.glob("*") if p.name.isdigit()] if pids.exists() else []  # noqa: E731
            _wait(lambda: len(workers()) >= 2, timeout=180, what="held cells")
            os.kill(int(workers()[0].name), signal.SIGKILL)  # a worker dies: its cell is retried
            _wait(lambda: len(workers()) >= 3, timeout=120, what="the retry")
            time.sleep(1.0)
            proc.send_signal(signal.SIGTERM)  # the batch scheduler's time is up
            assert proc.wait(timeout=180) == 143
        finally:
            proc.kill()
        out = (tmp_path / "out.txt").read_text()
        assert "Traceback" not in out, out
        assert "Interrupted (SIGTERM)" in out, out

        (pids / "release").touch()
        again = _run(tmp_path, suite, "--tracking-uri", url)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "Traceback" not in again.stdout + again.stderr

        plan_ids = {r.run_id for r in _records(results)}
        assert len(plan_ids) == 20
        assert sorted(_finished_records(results).values()) == [1] * 20  # nothing lost, nothing twice
        parents, children = _store(url, "drill")
        assert "RUNNING" not in [p.info.status for p in parents]
        assert "RUNNING" not in [c.info.status for c in children]
        finished = _finished_once(children)
        assert set(finished) == plan_ids and set(finished.values()) == {1}
    finally:
        server.kill()


def test_where_records_go_is_printed_before_anything_runs(tmp_path: Path) -> None:
    """Defect 16: a suite's own `tracking.results` can write anywhere (and `tracking.uri` send
    results to any server): `harness run` says where its records go before it starts."""
    work = tmp_path / "work"
    work.mkdir()
    suite = _suite(work, "where", [{"name": "fault"}], tracking={"results": "../elsewhere/where.jsonl"})
    done = _run(work, suite, "--executor", "local")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    where = next(i for i, line in enumerate(lines) if line.startswith("Results go to"))
    assert "../elsewhere/where.jsonl" in lines[where] and "sqlite:///" in lines[where]
    assert where < next(i for i, line in enumerate(lines) if "fault × instant" in line)  # before the runs
    assert (tmp_path / "elsewhere" / "where.jsonl").is_file()
