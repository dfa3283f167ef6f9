"""`harness ui` on a store written by a real suite run: the REST API shows the child runs nested
under the invocation with their metrics, and stopping the UI ends its whole process group."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import ctrl_c_able, write_suite

HARNESS = str(Path(sys.executable).with_name("harness"))


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ui_serves_nested_child_runs_and_stops_its_process_group(tmp_path: Path) -> None:
    env = {**os.environ, "RAY_ADDRESS": "", "HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("MLFLOW_TRACKING_URI", None)
    write_suite(
        tmp_path,
        {
            "name": "uitest",
            "seeds": [0, 1],
            "tasks": [{"name": "digits"}],
            "architectures": [{"name": "gru", "params": {"hidden_size": 8}}],
            "trainer": {"max_epochs": 1, "batch_size": 64},
        },
    )
    ran = subprocess.run(
        [HARNESS, "run", "suite.yaml", "--executor", "local"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr

    ui = subprocess.Popen(
        [HARNESS, "ui", "suite.yaml"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=ctrl_c_able,
    )
    mlflow_groups: list[int] = []
    try:
        assert ui.stdout is not None
        line = ui.stdout.readline()  # printed once the server answers /health
        match = re.search(r"http://127\.0\.0\.1:(\d+)/#/experiments/(\d+)/runs", line)
        assert match, line + (ui.stdout.read() if ui.poll() is not None else "")
        port, experiment = match.groups()
        children = subprocess.run(
            ["ps", "-o", "pgid=", "--ppid", str(ui.pid)], capture_output=True, text=True, check=False
        )
        mlflow_groups = sorted({int(g) for g in children.stdout.split()} - {os.getpgid(ui.pid)})
        assert mlflow_groups, "mlflow ui should run in its own process group"

        runs = _post(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search",
            {"experiment_ids": [experiment], "max_results": 100},
        )["runs"]
        tags = [{t["key"]: t["value"] for t in run["data"].get("tags", [])} for run in runs]
        parents = [run for run, tag in zip(runs, tags) if "mlflow.parentRunId" not in tag]
        assert len(parents) == 1 and len(runs) == 3
        parent_id = parents[0]["info"]["run_id"]
        for run, tag in zip(runs, tags):
            if run is parents[0]:
                continue
            assert tag["mlflow.parentRunId"] == parent_id
            assert tag["harness.task"] == "digits" and tag["harness.architecture"] == "gru"
            metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
            assert 0.0 <= metrics["test/accuracy"] <= 1.0 and metrics["cost/num_params"] > 0
    finally:
        ui.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            ui.wait(timeout=20)
        finally:
            if ui.poll() is None:
                os.killpg(ui.pid, signal.SIGKILL)
        if ui.stdout:
            ui.stdout.close()
    deadline = time.monotonic() + 10
    while any(_group_alive(g) for g in mlflow_groups) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_group_alive(g) for g in mlflow_groups), "mlflow ui processes survived `harness ui`"


def test_ui_of_a_missing_suite_file_is_a_clean_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [HARNESS, "ui", "nope.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2 and done.stderr.startswith("Error: ") and "nope.yaml" in done.stderr, (
        done.stderr
    )
    assert "Traceback" not in done.stderr
