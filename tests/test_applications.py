"""suites/smoke.yaml end to end: every application task trains on Ray and lands in MLflow.

One architecture (gru) plus the naive forecaster keeps it to ~15 runs; the per-task tests under
tests/plugins/tasks/ train every compatible architecture on each task.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import mlflow_runs

REPO = Path(__file__).resolve().parents[1]
TASK_ARTIFACTS = {
    "language_model": "task/samples.txt",
    "scan": "task/examples.tsv",
    "number_translation": "task/examples.tsv",
    "speech_digits": "task/test_transcripts.tsv",
}

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_smoke_suite_runs_every_task_on_ray_into_mlflow(tmp_path: Path) -> None:
    env = {**os.environ, "HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("RAY_ADDRESS", None)
    args = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        str(REPO / "suites" / "smoke.yaml"),
        "--only",
        "arch=gru,naive",
    ]
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Traceback" not in output

    client, parents, children = mlflow_runs(tmp_path / "mlflow.db", "smoke")
    by_task = {child.data.tags["harness.task"]: child for child in children}
    expected = {
        "adding",
        "copy_memory",
        "digits",
        "sentiment",
        "language_model",
        "scan",
        "number_translation",
        "spoken_digits",
        "seq_mnist",
        "mnist1d",
        "moving_digits",
        "ucr",
        "forecasting",
    }
    if shutil.which("espeak-ng"):
        expected.add("speech_digits")
    else:  # skipped, with the install command shown
        assert "espeak-ng not found on PATH" in output
    assert set(by_task) == expected
    forecasters = {
        c.data.tags["harness.architecture"] for c in children if c.data.tags["harness.task"] == "forecasting"
    }
    assert forecasters == {"gru", "naive"}
    for task, child in by_task.items():
        assert child.info.status == "FINISHED", task
        primary = child.data.tags["harness.primary_metric"]
        assert f"test/{primary}" in child.data.metrics, (task, sorted(child.data.metrics))
    for task, artifact in TASK_ARTIFACTS.items():
        if task in by_task:
            run_id = by_task[task].info.run_id
            listed = {a.path for a in client.list_artifacts(run_id, "task")}
            assert artifact in listed, (task, listed)
