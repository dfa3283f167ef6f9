"""The driver's live MLflow writer against a real sqlite store: child runs open RUNNING, grow epoch
by epoch, close with their record; retries, duplicates and an unreachable store."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from harness.tracking.live import LiveLogger
from harness.tracking.mlflow_store import MlflowTracker, mlflow_key, record_key
from harness.tracking.query import _sections
from tests.helpers import make_record

ROWS = [
    {"epoch": 0.0, "step": 2.0, "train_loss": 0.9, "val_loss": 0.8, "val_accuracy": 0.5, "elapsed_s": 0.1},
    {"epoch": 1.0, "step": 4.0, "train_loss": 0.7, "val_loss": 0.6, "val_accuracy": 0.6, "elapsed_s": 0.2},
    {"epoch": 2.0, "step": 6.0, "train_loss": 0.5, "val_loss": 0.4, "val_accuracy": 0.7, "elapsed_s": 0.3},
]


@pytest.fixture()
def tracker(tmp_path: Path) -> MlflowTracker:
    tracker = MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "live")
    tracker.connect()
    tracker.start_parent("parent", {"harness.suite": "live"}, {}, "name: live\n")
    return tracker


def _children(tracker: MlflowTracker) -> list[Any]:
    runs = tracker.client.search_runs([tracker.experiment_id], max_results=100)
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def _steps(tracker: MlflowTracker, run_id: str, name: str) -> list[int]:
    return [m.step for m in tracker.client.get_metric_history(run_id, name)]


def test_a_child_run_is_running_with_its_epochs_then_finished_with_each_epoch_once(
    tracker: MlflowTracker,
) -> None:
    warnings: list[str] = []
    live = LiveLogger(tracker, warnings.append, source="suites/live.yaml")
    record = make_record(value=0.7, cost={"train_time_s": 1.5}, history=ROWS, run_id="cell-a")
    record.data_sizes = {"train": 64, "val": 16, "test": 16}
    live.open(record.spec)
    live.rows("cell-a", ROWS[:2])
    assert live.flush(timeout=30)
    (child,) = _children(tracker)
    assert child.info.status == "RUNNING" and child.data.tags["mlflow.parentRunId"] == tracker.parent_id
    assert child.data.params["architecture"] == "gru" and child.data.params["task"] == "digits"
    assert child.data.tags["mlflow.source.name"] == "suites/live.yaml" and child.data.tags["mlflow.user"]
    assert "harness.status" not in child.data.tags  # how it ends is not known yet
    assert _steps(tracker, child.info.run_id, "val/accuracy") == [0, 1]

    mlflow_id = live.close(record)  # the record's history repeats epochs 0 and 1: not logged twice
    assert live.stop(timeout=30)
    (child,) = _children(tracker)
    assert mlflow_id == child.info.run_id and child.info.status == "FINISHED"
    assert child.data.tags["harness.status"] == "finished"
    for name in ("val/accuracy", "val/loss", "train/loss"):
        assert _steps(tracker, mlflow_id, name) == [0, 1, 2], name
    assert child.data.metrics["test/accuracy"] == pytest.approx(0.7)
    assert child.data.metrics["cost/train_time_s"] == pytest.approx(1.5)
    (dataset,) = tracker.client.get_run(mlflow_id).inputs.dataset_inputs
    assert dataset.dataset.name == "digits" and '"train": 64' in dataset.dataset.profile
    assert warnings == [] and live.closed == 1 and live.busy_s > 0


def test_a_retry_gets_its_own_child_run_and_the_dead_attempt_is_closed_failed(
    tracker: MlflowTracker,
) -> None:
    live = LiveLogger(tracker, print)
    first = make_record(run_id="cell-b").spec
    live.open(first)
    live.rows("cell-b", ROWS[:1])
    retry = first.model_copy(update={"attempt": 2})
    live.open(retry)  # the executor starts the cell again after its worker died
    live.rows("cell-b", ROWS)
    record = make_record(value=0.6, history=ROWS, run_id="cell-b")
    record.spec, record.attempts = retry, 2
    assert live.flush(timeout=30)  # the retry's child run exists: close() names it without waiting
    new_id = live.close(record)
    assert live.stop(timeout=30)
    by_status = {c.info.status: c for c in _children(tracker)}
    assert sorted(by_status) == ["FAILED", "FINISHED"]
    dead, done = by_status["FAILED"], by_status["FINISHED"]
    assert done.info.run_id == new_id and done.data.tags["harness.attempts"] == "2"
    assert dead.data.tags["harness.superseded_by_run"] == new_id
    assert dead.data.tags["harness.failure_kind"] == "infrastructure"
    assert "attempt 2" in dead.data.tags["harness.error"]
    assert _steps(tracker, new_id, "val/accuracy") == [0, 1, 2]


def test_a_duplicate_is_closed_and_a_cell_killed_before_it_started_still_gets_a_child(
    tracker: MlflowTracker,
) -> None:
    live = LiveLogger(tracker, print)
    spec = make_record(run_id="cell-c").spec
    live.open(spec)
    live.discard("cell-c", "a second finished result of this run id was dropped")
    killed = make_record(status="killed", kind="killed", error="interrupted", run_id="cell-d")
    assert live.close(killed) is None  # never opened: created and closed in one go, later
    live.rows("cell-d", ROWS)  # rows of a closed cell are dropped
    assert live.stop(timeout=30)
    statuses = sorted((c.data.tags["harness.run_id"], c.info.status) for c in _children(tracker))
    assert statuses == [("cell-c", "FAILED"), ("cell-d", "KILLED")]


def test_an_unreachable_store_is_one_warning_per_outage_and_never_an_exception(tmp_path: Path) -> None:
    """A store that stops answering: one warning for the outage (not one per cell: a 1,000-cell
    suite would print a thousand), every affected child run counted for the back-fill, no waiting."""
    tracker = MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "gone")
    tracker.connect()
    tracker.start_parent("parent", {}, {}, "")
    tracker.experiment_id = "999999"  # every create_run now fails (no such experiment)
    warnings: list[str] = []
    live = LiveLogger(tracker, warnings.append)
    started = time.perf_counter()
    for run_id in ("cell-e", "cell-f"):
        record = make_record(value=0.5, history=ROWS, run_id=run_id)
        live.open(record.spec)
        live.rows(run_id, ROWS)
        assert live.close(record) is None
    assert time.perf_counter() - started < 30
    assert live.stop(timeout=30)
    assert len(warnings) == 1 and "run cell-" in warnings[0], warnings
    assert "results file has every record" in warnings[0] and "harness sync" in warnings[0]
    assert live.incomplete == 2


def test_metric_names_are_sectioned_and_flat_names_of_older_runs_still_read() -> None:
    assert mlflow_key("test_accuracy") == "test/accuracy"
    assert mlflow_key("val_loss") == "val/loss" and mlflow_key("train_loss") == "train/loss"
    assert mlflow_key("train_time_s", "cost") == "cost/train_time_s"  # a cost, whatever its name
    for key, section in (("test_f1", None), ("val_accuracy", None), ("train_samples_per_s", "cost")):
        name = mlflow_key(key, section)
        assert record_key(name)[1] == key
    new = {"test/accuracy": 0.9, "cost/train_samples_per_s": 10.0, "val/accuracy": 0.8, "train/loss": 0.1}
    old = {"test_accuracy": 0.9, "train_samples_per_s": 10.0, "val_accuracy": 0.8, "train_loss": 0.1}
    expected = ({"test_accuracy": 0.9}, {"train_samples_per_s": 10.0})
    assert _sections(new) == expected and _sections(old) == expected
