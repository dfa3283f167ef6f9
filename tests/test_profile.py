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
        "--max-time",
        "0.05",
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


QUICK = ("--task", "adding", "--lengths", "8", "--arch", "gru", "--batch-size", "4")
QUICK_TIMING = ("--steps", "3", "--rounds", "3", "--max-time", "0.05")


def test_profile_records_median_and_iqr_and_labels_its_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13, defect 4: every timed figure comes with its spread, columns say what they count."""
    from harness.measure import NOISE

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    result = _profile(tmp_path, *QUICK, *QUICK_TIMING)
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in (tmp_path / "prof" / "adding.jsonl").read_text().splitlines()]
    for key, spread in NOISE.items():
        assert math.isfinite(record[key]) and record[key] > 0, key
        assert math.isfinite(record[spread]) and record[spread] >= 0, spread
    assert record["train_rounds"] >= 3 and record["latency_rounds"] >= 3
    assert record["session"] and record["profiled_at"] > 0
    output = " ".join(result.output.split())
    assert "timesteps/s" in output and "steps/s" not in output.replace("timesteps/s", "")
    assert "IQR" in output


def test_profile_rows_belong_to_their_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A report pulls in only the profile rows of its own suite (same name and text), not those of
    other `harness profile` sessions of the same task."""
    from harness.report.context import load_profiles, suite_hash
    from tests.helpers import tiny_suite, write_suite

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    suite = write_suite(tmp_path, tiny_suite("scoped", archs=["gru"], tasks=["adding"]))
    ours = _profile(tmp_path, *QUICK, *QUICK_TIMING, "--suite", str(suite))
    assert ours.exit_code == 0, ours.output
    other = _profile(tmp_path, *QUICK, *QUICK_TIMING)  # an unrelated session, same task
    assert other.exit_code == 0, other.output
    rows = [json.loads(line) for line in (tmp_path / "prof" / "adding.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and len({r["session"] for r in rows}) == 2  # appended, not overwritten
    text = suite.read_text()
    found = load_profiles(tmp_path / "prof", ["adding"], suite="scoped", suite_hash=suite_hash(text))
    assert [r["session"] for r in found["adding"]] == [rows[0]["session"]]
    assert found["adding"][0]["suite"] == "scoped" and found["adding"][0]["suite_hash"] == suite_hash(text)
    assert (
        load_profiles(tmp_path / "prof", ["adding"], suite="scoped", suite_hash=suite_hash(text + "#")) == {}
    )
    assert load_profiles(tmp_path / "prof", ["adding"], suite="other", suite_hash=None) == {}
