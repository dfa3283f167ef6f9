"""``harness profile``: records per (architecture, length), MLflow runs stepped by length, clear errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from tests.helpers import mlflow_runs


def _profile(tmp_path: Path, *args: str) -> object:
    return CliRunner().invoke(
        main,
        [
            "profile",
            "--out",
            str(tmp_path / "prof"),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            *args,
        ],
    )


def test_profile_writes_records_and_mlflow_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    result = _profile(
        tmp_path,
        "--task",
        "adding",
        "--lengths",
        "8,16",
        "--arch",
        "gru,transformer",
        "--batch-size",
        "4",
        "--steps",
        "2",
        "--rounds",
        "3",
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "prof" / "adding.jsonl").read_text().splitlines()]
    assert [(r["architecture"], r["length"]) for r in records] == [
        ("gru", 8),
        ("transformer", 8),
        ("gru", 16),
        ("transformer", 16),
    ]
    for r in records:
        assert r["batch_size"] == 4 and r["device"].startswith("cpu")
        for key in (
            "train_samples_per_s",
            "train_timesteps_per_s",
            "infer_samples_per_s",
            "latency_p50_ms",
            "flops_per_sample",
            "activation_memory_mb",
            "num_params",
        ):
            assert math.isfinite(r[key]) and r[key] > 0, key
    gru = [r for r in records if r["architecture"] == "gru"]
    assert gru[1]["flops_per_sample"] > 1.9 * gru[0]["flops_per_sample"]  # linear in T (plus the head)
    assert gru[1]["activation_memory_mb"] > gru[0]["activation_memory_mb"]
    client, runs, _ = mlflow_runs(tmp_path / "mlflow.db", "profile-adding")
    assert sorted(r.info.run_name for r in runs) == ["gru", "transformer"]
    history = client.get_metric_history(runs[0].info.run_id, "flops_per_sample")
    assert sorted(m.step for m in history) == [8, 16]


def test_profile_errors_are_clear(tmp_path: Path) -> None:
    no_length = _profile(tmp_path, "--task", "digits", "--lengths", "8")
    assert no_length.exit_code == 2 and "has no sequence-length parameter" in no_length.output
    unknown = _profile(tmp_path, "--task", "adding", "--arch", "lstn", "--lengths", "8")
    assert unknown.exit_code == 2 and "lstm" in unknown.output and "--arch" in unknown.output
    bad = _profile(tmp_path, "--task", "adding", "--lengths", "8,x")
    assert bad.exit_code == 2 and "--lengths" in bad.output
    missing = _profile(tmp_path, "--task", "addng", "--lengths", "8")
    assert missing.exit_code == 2 and "adding" in missing.output
