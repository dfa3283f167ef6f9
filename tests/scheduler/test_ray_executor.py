"""The Ray executor end to end: the quickstart suite, failures, resume, MLflow contents."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.tracking.results import ResultsFile
from tests.helpers import (
    BROKEN_TASKS,
    CHROMIUM,
    chromium,
    console_messages,
    mlflow_runs,
    tiny_suite,
    write_suite,
)

REPO = Path(__file__).resolve().parents[2]
HARNESS = [sys.executable, "-m", "harness.cli"]

pytestmark = pytest.mark.ray


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "HARNESS_CACHE_DIR": str(tmp_path / "cache"), **extra}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("RAY_ADDRESS", None)
    return env


def _run(
    args: list[str], cwd: Path, env: dict[str, str], timeout: int = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HARNESS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_quickstart_on_ray_records_twelve_child_runs(tmp_path: Path) -> None:
    proc = _run(["run", str(REPO / "suites" / "quickstart.yaml")], tmp_path, _env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "12 finished, 0 failed" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    client, parents, children = mlflow_runs(tmp_path / "mlflow.db", "quickstart")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 12
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    pairs = {(c.data.tags["harness.task"], c.data.tags["harness.architecture"]) for c in children}
    assert len(pairs) == 12
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.params[
            "architecture.hidden_size"
            if "architecture.hidden_size" in child.data.params
            else "architecture.d_model"
        ]
        assert child.data.params["trainer.lr"] == "0.003"
        cost_keys = {
            "flops_per_sample",
            "latency_p50_ms",
            "latency_p95_ms",
            "latency_p99_ms",
            "train_samples_per_s",
            "train_timesteps_per_s",
            "infer_samples_per_s",
            "peak_memory_mb",
            "activation_memory_mb",
            "num_params",
            "train_time_s",
            "steps",
            "ttt_reached",
        }
        costs = {k.removeprefix("cost/") for k in child.data.metrics if k.startswith("cost/")}
        assert cost_keys <= costs, cost_keys - costs
        for key in ("train_time_s", "train_samples_per_s", "infer_samples_per_s", "num_params"):
            assert child.data.metrics[f"cost/{key}"] > 0
        if child.data.tags["harness.task"] == "digits":
            # the bar: every architecture >= 85 % test accuracy on digits
            assert child.data.metrics["test/accuracy"] >= 0.85, child.data.tags["harness.architecture"]
            history = client.get_metric_history(child.info.run_id, "val/accuracy")
            assert len(history) == 30 and [m.step for m in history] == list(range(30))
        elif child.data.tags["harness.architecture"] != "rnn":
            # gated and attention models learn the adding problem: far below the trivial MSE of 1/6
            # (the vanilla RNN stays at the trivial level, the textbook result, so it is not held to this)
            assert child.data.metrics["test/mse"] < 0.05, child.data.tags["harness.architecture"]
    results = ResultsFile(tmp_path / "results" / "quickstart.jsonl")
    records = results.read()
    assert results.unreadable == 0 and len(records) == 12 and all(r.status == "finished" for r in records)
    report = (tmp_path / "reports" / "quickstart" / "latest" / "report.md").read_text()
    # rows follow the suite's order, not the order in which parallel runs finished
    digits = report.split("## digits", 1)[1].split("## adding", 1)[0]
    rows = [line.split("|")[1].strip(" *≈") for line in digits.splitlines() if line.startswith("| ")][1:]
    assert rows == ["rnn", "lstm", "gru", "birnn", "cnn_rnn", "transformer"], rows
    # every run carries the cost metrics, and the quickstart's HTML report renders without errors
    for record in records:
        assert {"flops_per_sample", "latency_p99_ms", "train_samples_per_s", "activation_memory_mb"} <= set(
            record.cost
        )
    if CHROMIUM is not None:
        dom = chromium("--dump-dom", (tmp_path / "reports" / "quickstart" / "latest" / "index.html").as_uri())
        # 2 learning curves, 2 quality-vs-cost, 2 cost plots; no CD diagram with 2 tasks (no power): said why
        assert dom.returncode == 0 and dom.stdout.count("<table") >= 4 and dom.stdout.count("<svg") >= 6
        assert "No critical-difference diagram" in dom.stdout and ">Verdict<" in dom.stdout
        assert console_messages(dom.stderr) == []


def test_failed_runs_are_recorded_and_the_suite_goes_on_then_resumes(tmp_path: Path) -> None:
    plugin_dir = tmp_path / "plugin"
    plugin_dir.mkdir()
    (plugin_dir / "crash_plugin.py").write_text(BROKEN_TASKS)
    env = _env(
        tmp_path,
        HARNESS_PLUGINS="crash_plugin",
        PYTHONPATH=os.pathsep.join([str(plugin_dir), os.environ.get("PYTHONPATH", "")]),
    )
    suite = write_suite(
        tmp_path, tiny_suite(name="faulty", tasks=["digits", "crash_task"], archs=["gru", "lstm"])
    )

    first = _run(["run", str(suite)], tmp_path, env)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "2 finished, 2 failed" in first.stdout
    assert "RuntimeError: data source unavailable" in first.stdout
    client, parents, children = mlflow_runs(tmp_path / "mlflow.db", "faulty")
    assert len(parents) == 1 and parents[0].info.status == "FAILED"
    failed = [c for c in children if c.info.status == "FAILED"]
    assert len(failed) == 2 and len(children) == 4
    assert all(c.data.tags["harness.error"] == "RuntimeError: data source unavailable" for c in failed)

    # Re-running skips the finished ids and retries only the failed ones.
    second = _run(["run", str(suite)], tmp_path, env)
    assert second.returncode == 1
    assert "2 already done" in second.stdout
    _, parents, children = mlflow_runs(tmp_path / "mlflow.db", "faulty")
    assert len(parents) == 2 and len(children) == 6
    records = ResultsFile(tmp_path / "results" / "faulty.jsonl").read()
    assert len(records) == 6 and [r.status for r in records].count("finished") == 2
    failed = [r for r in records if r.status == "failed"]
    assert len(failed) == 4 and all(r.failure is not None and r.failure.kind == "exception" for r in failed)
    assert {r.error for r in failed} == {"RuntimeError: data source unavailable"}
