"""The typed run record: its results-file form, and files written before it.

``tests/data/legacy-format.jsonl`` was written by harness at commit 391deb1 (before the typed
RunRecord) for ``tests/data/legacy-format.yaml``: a skipped cell, a finished one, and a failed
one (the old ``failed_result`` of a NaN loss). It must keep loading, resuming and reporting.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from harness.records import RunRecord, finished_ids, latest_by_run
from harness.tracking.results import ResultsFile

DATA = Path(__file__).parent / "data"
LEGACY = DATA / "legacy-format.jsonl"
LEGACY_SUITE = DATA / "legacy-format.yaml"


def _legacy() -> list[RunRecord]:
    return ResultsFile(LEGACY).read()


def test_a_results_file_of_the_old_flat_format_loads() -> None:
    skipped, finished, failed = _legacy()
    assert [r.status for r in (skipped, finished, failed)] == ["skipped", "finished", "failed"]
    # the plan's provenance survives where the old records kept it (skipped cells) ...
    assert skipped.spec.provenance.task_plugin.pin == "harness==0.1.0"
    assert skipped.spec.provenance.data_version == "1"
    assert "tbptt" in skipped.error and skipped.runtime is None
    # ... and the runtime's where they kept that instead (executed runs)
    assert finished.runtime is not None and finished.runtime.versions["torch"].startswith("2.")
    assert finished.spec.provenance.task_plugin.distribution == "unknown"
    assert finished.spec.trainer.tbptt is not None and finished.spec.trainer.tbptt.k1 == 4
    assert finished.spec.primary_metric == "accuracy" and finished.spec.direction == "max"
    assert 0.0 <= finished.metrics["test_accuracy"] <= 1.0 and finished.primary_value is not None
    assert failed.failure is not None and failed.failure.kind == "nan" and "loss became nan" in failed.error
    assert math.isnan(failed.history[0]["train_loss"])  # NaN was stored as null
    assert finished_ids(_legacy()) == {finished.run_id}


def test_a_record_survives_the_results_file(tmp_path: Path) -> None:
    record = _legacy()[1]
    record.cost["ttt_time_s"] = float("inf")
    record.metrics["test_auroc"] = float("nan")
    path = tmp_path / "r.jsonl"
    ResultsFile(path).append(record)
    line = json.loads(path.read_text(encoding="utf-8"))
    assert line["format"] == 2 and line["spec"]["run_id"] == record.run_id
    assert line["cost"]["ttt_time_s"] == "inf" and line["metrics"]["test_auroc"] is None
    (back,) = ResultsFile(path).read()
    assert back.cost["ttt_time_s"] == math.inf and math.isnan(back.metrics["test_auroc"])
    back.metrics["test_auroc"] = record.metrics["test_auroc"] = 0.0  # NaN != NaN
    assert back == record


def test_unreadable_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    good = LEGACY.read_text(encoding="utf-8").splitlines()
    broken = [
        json.loads(good[1]) | change for change in ({"seed": "x"}, {"versions": [1, 2]}, {"history": 3})
    ]
    path.write_text(
        "\n".join([good[0], "[1, 2, 3]", '{"run_id": "x"}', *map(json.dumps, broken), good[1], good[2][:40]])
        + "\n",
        encoding="utf-8",
    )
    results = ResultsFile(path)
    assert [r.status for r in results.read()] == [
        "skipped",
        "finished",
        "finished",
    ]  # versions: [1, 2] is ignored
    assert len(results.unreadable) == 5


def test_from_json_refuses_what_is_not_a_record() -> None:
    with pytest.raises(ValueError, match="not a run record"):
        RunRecord.from_json({"hello": 1})


def test_latest_by_run_keeps_the_last_record_of_each_run() -> None:
    skipped, finished, failed = _legacy()
    rerun = failed.model_copy(update={"status": "finished", "failure": None})
    assert [r.status for r in latest_by_run([skipped, failed, finished, rerun])] == [
        "skipped",
        "finished",
        "finished",
    ]


def test_reporters_of_hook_api_1_0_can_still_read_a_record_as_a_mapping() -> None:
    finished = _legacy()[1]
    assert finished.get("task") == "digits" and finished["arch_label"] == "gru"
    assert finished["metrics"]["test_accuracy"] == finished.metrics["test_accuracy"]
    assert finished.get("status") == "finished" and finished.get("no such key", "-") == "-"
    assert RunRecord.from_json(finished.flat()).run_id == finished.run_id


def test_an_old_results_file_resumes_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Result]
) -> None:
    """`harness run` on a results file of the old format skips its finished cell (run ids are
    unchanged), runs the failed one again, and the report reads old and new records together."""
    monkeypatch.chdir(tmp_path)
    # the file was written by a wheel install: built-ins identified by version, not source digest
    monkeypatch.setenv("HARNESS_SOURCE_DIGEST", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    suite = shutil.copy(LEGACY_SUITE, tmp_path / "legacy-format.yaml")
    (tmp_path / "results").mkdir()
    shutil.copy(LEGACY, tmp_path / "results" / "legacy-format.jsonl")
    old = _legacy()

    result = cli("run", str(suite), "--executor", "local")
    assert "1 already done" in result.output, result.output
    records = ResultsFile(tmp_path / "results" / "legacy-format.jsonl").read()
    new = records[len(old) :]
    assert sorted(r.spec.arch_label for r in new) == [
        "gru-diverges",
        "transformer",
    ]  # the finished gru is kept
    assert {r.run_id for r in new} == {old[0].run_id, old[2].run_id}
    rerun = next(r for r in new if r.spec.arch_label == "gru-diverges")
    assert rerun.spec.provenance.arch_plugin.pin == old[0].spec.provenance.arch_plugin.pin

    report = cli("report", "legacy-format", "--out", str(tmp_path / "reports"))
    assert report.exit_code == 0, report.output
    markdown = (tmp_path / "reports" / "latest" / "report.md").read_text(encoding="utf-8")
    assert "gru-diverges" in markdown and "| gru |" in markdown.replace("**", "")
