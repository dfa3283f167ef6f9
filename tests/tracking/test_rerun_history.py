"""History is append-only: `--rerun` supersedes earlier child runs in MLflow, it never deletes them.

Real runs (`tests.fault_plugin`, `--executor local`) into a real sqlite MLflow store; the reports
and comparisons afterwards read MLflow alone (from a folder without the results file).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import mlflow_runs, write_suite

SUITE: dict[str, Any] = {
    "name": "history",
    "seeds": [0, 1],
    "tasks": [{"name": "fault"}],
    "architectures": [{"name": "instant"}],
    "trainer": {"max_epochs": 1, "batch_size": 32},
    "measure": {"latency": False, "flops": False, "memory": False},
}


def _parents(db: Path) -> list[str]:
    """Parent run ids of the suite's invocations, oldest first."""
    _, parents, _ = mlflow_runs(db, "history")
    return [p.info.run_id for p in sorted(parents, key=lambda p: p.info.start_time)]


def test_rerun_keeps_the_earlier_invocation_reportable_and_comparable(
    fault_workdir: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = write_suite(fault_workdir, SUITE)
    db = fault_workdir / "mlflow.db"
    first = cli("run", str(suite), "--executor", "local")
    assert first.exit_code == 0, first.output
    forced = cli("run", str(suite), "--executor", "local", "--rerun")
    assert forced.exit_code == 0 and "2 finished" in forced.output, forced.output
    old, new = _parents(db)

    # nothing deleted: the earlier children are tagged superseded by the new invocation
    client, _, children = mlflow_runs(db, "history")
    assert len(children) == 4 and all(c.info.lifecycle_stage == "active" for c in children)
    by_parent = Counter(c.data.tags["mlflow.parentRunId"] for c in children)
    assert by_parent == {old: 2, new: 2}
    superseded = {
        c.data.tags.get("harness.superseded_by") for c in children if c.data.tags["mlflow.parentRunId"] == old
    }
    assert superseded == {new}
    assert not any(
        "harness.superseded_by" in c.data.tags for c in children if c.data.tags["mlflow.parentRunId"] == new
    )

    # resume runs nothing twice
    again = cli("run", str(suite), "--executor", "local")
    assert again.exit_code == 0 and "0 finished, 0 failed, 0 skipped, 2 already done" in again.output, (
        again.output
    )
    _, _, children = mlflow_runs(db, "history")
    assert len(children) == 4
    resumed = _parents(db)[-1]

    # through MLflow alone (no results file in this folder)
    elsewhere = fault_workdir / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    uri = f"sqlite:///{db}"
    for parent in (old, new):
        report = cli("report", parent, "--tracking-uri", uri, "--out", str(elsewhere / "reports"))
        assert report.exit_code == 0, report.output
        assert f"(2 runs, invocation {parent})" in report.output
    compared = cli("compare", old, new, "--tracking-uri", uri)
    assert compared.exit_code == 0, compared.output
    assert f"A {old} → B {new}" in compared.output and "(2)" in compared.output
    assert "0 regressed" in compared.output
    latest = cli("report", "history", "--tracking-uri", uri, "--out", str(elsewhere / "latest"))
    assert latest.exit_code == 0 and "(2 runs" in latest.output, latest.output  # superseded runs left out

    # an invocation that ran nothing (all resumed) has nothing to report or compare
    empty = cli("report", resumed, "--tracking-uri", uri, "--out", str(elsewhere / "empty"))
    assert empty.exit_code == 2 and resumed in empty.output and "no child runs" in empty.output, empty.output
    assert not (elsewhere / "empty").exists()
    versus_empty = cli("compare", old, resumed, "--tracking-uri", uri)
    assert versus_empty.exit_code == 2 and "no child runs" in versus_empty.output, versus_empty.output
