"""Failure classification: the kinds, the trimmed traceback, run_trial's failure block, and the
record of a run the executor stopped (timeouts, deadline, dead workers)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from harness.errors import RunFailure
from harness.records import FAILURE_KINDS, PluginRef, RunRecord
from harness.train.failures import PluginMismatch, classify, failed_record, trimmed_traceback, worker_died
from tests.helpers import payloads, tiny_suite, write_suite

FAULT_SUITE: dict[str, Any] = {
    "name": "faults",
    "seeds": [0],
    "tasks": [{"name": "fault", "grid": {"mode": ["ok", "nan", "crash"]}}],
    "architectures": [{"name": "instant"}],
    "trainer": {"max_epochs": 2, "batch_size": 32},
    "measure": {"latency": False, "flops": False, "memory": False},
}


class WorkerCrashedError(Exception):  # same name as Ray's: classification goes by names
    pass


class OutOfMemoryError(RuntimeError):  # torch.OutOfMemoryError's name
    pass


def _raised(exc: BaseException, cause: BaseException | None = None) -> BaseException:
    try:
        try:
            if cause is not None:
                raise cause
        except BaseException as inner:
            raise exc from inner
        raise exc
    except BaseException as caught:
        return caught


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (RuntimeError("boom"), "exception"),
        (RunFailure("training loss became nan at step 3 (epoch 0)"), "nan"),
        (OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), "oom"),
        (MemoryError(), "oom"),
        (RuntimeError("[enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: can't allocate memory"), "oom"),
        (WorkerCrashedError("The worker died unexpectedly"), "infrastructure"),
        (PluginMismatch("node x has no task `t`"), "infrastructure"),
        (KeyboardInterrupt(), "killed"),
    ],
)
def test_classify(exc: BaseException, kind: str) -> None:
    assert classify(exc) == kind and kind in FAILURE_KINDS


def test_failed_record_keeps_the_executors_kind_status_and_partial_history(tmp_path: Path) -> None:
    """Timeouts are the executor's call (no exception says so): it names the kind, and the status
    (``killed`` for cells the suite deadline cancelled); the streamed epochs stay on the record."""
    (spec,) = payloads(write_suite(tmp_path, tiny_suite(tasks=["digits"])), tmp_path / "cache")
    rows = [{"epoch": 0.0, "step": 2.0, "elapsed_s": 0.5, "train_loss": 1.5, "val_loss": 1.25}]
    started = time.time() - 3.0
    message = "run still alive 16 s after it started (trainer.max_time 10 s); cancelled"
    timeout = failed_record(
        spec,
        None,
        kind="timeout",
        message=message,
        history=rows,
        started=started,
        attempts=2,
        node_id="node-a",
    )
    assert timeout.status == "failed" and timeout.failure is not None and timeout.failure.kind == "timeout"
    assert timeout.error == message and timeout.failure.traceback == ""
    assert timeout.history == rows and timeout.attempts == timeout.failure.attempts == 2
    assert timeout.started_at == started and timeout.wall_time_s >= 3.0 and timeout.spec == spec
    assert timeout.runtime is not None and timeout.runtime.node_id == "node-a"
    deadline = failed_record(spec, None, kind="timeout", message="suite deadline reached", status="killed")
    assert deadline.status == "killed" and deadline.failure is not None and deadline.failure.kind == "timeout"
    assert deadline.runtime is None and deadline.history == []
    # without a kind, the exception is classified; its one line follows the cause, its traceback is kept
    died = failed_record(
        spec, _raised(WorkerCrashedError("The worker died unexpectedly")), cause="worker died: "
    )
    assert died.status == "failed" and died.failure is not None and died.failure.kind == "infrastructure"
    assert died.error == "worker died: WorkerCrashedError: The worker died unexpectedly"
    assert "WorkerCrashedError" in died.failure.traceback
    killed = failed_record(spec, KeyboardInterrupt(), message="interrupted (Ctrl-C)")
    assert killed.status == "killed" and killed.failure is not None and killed.failure.kind == "killed"
    for record in (timeout, deadline, died, killed):  # each is one line of the results file
        assert RunRecord.from_json(record.to_json()).failure == record.failure


def test_classify_follows_the_cause_chain_and_retries_only_dead_workers() -> None:
    wrapped = _raised(RuntimeError("task failed"), cause=MemoryError())
    assert classify(wrapped) == "oom"
    assert worker_died(WorkerCrashedError("died"))
    assert not worker_died(PluginMismatch("missing")) and not worker_died(RuntimeError("x"))


def test_trimmed_traceback_keeps_the_raise_site_and_drops_the_middle() -> None:
    def deep(n: int) -> None:
        if n == 0:
            raise ValueError("at the bottom")
        deep(n - 1)

    try:
        deep(40)
    except ValueError as exc:
        text = trimmed_traceback(exc)
    assert "earlier frame(s) omitted" in text
    assert text.rstrip().endswith("ValueError: at the bottom")
    assert text.count("in deep") <= 12


def test_run_trial_records_failure_kinds_and_partial_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.plugins import clear_cache
    from harness.train.trial import run_trial

    monkeypatch.setenv("HARNESS_PLUGINS", "tests.fault_plugin")
    clear_cache()
    streamed: list[dict[str, float]] = []
    results = {
        p.task_params["mode"]: run_trial(p, on_epoch=streamed.append)
        for p in payloads(write_suite(tmp_path, FAULT_SUITE), tmp_path / "cache")
    }
    ok, nan, crash = results["ok"], results["nan"], results["crash"]
    assert ok.status == "finished" and ok.failure is None
    assert len(ok.history) == 2 and streamed[:2] == ok.history  # rows streamed as they happen
    assert nan.status == "failed" and nan.failure is not None and nan.failure.kind == "nan"
    assert "loss became nan" in nan.failure.message and nan.failure.attempts == 1
    assert crash.failure is not None and crash.failure.kind == "exception"
    assert crash.error == "RuntimeError: injected crash"
    assert "Traceback (most recent call last, trimmed)" in crash.failure.traceback
    clear_cache()


def test_run_trial_refuses_a_plugin_version_other_than_the_planned_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.plugins import clear_cache
    from harness.train.trial import run_trial

    monkeypatch.setenv("HARNESS_PLUGINS", "tests.fault_plugin")
    clear_cache()
    payload = payloads(write_suite(tmp_path, FAULT_SUITE), tmp_path / "cache")[0]
    planned = payload.provenance.model_copy(
        update={"task_plugin": PluginRef(distribution="harness-fault", version="9.9")}
    )
    result = run_trial(payload.model_copy(update={"provenance": planned}))
    assert (
        result.status == "failed" and result.failure is not None and result.failure.kind == "infrastructure"
    )
    assert "harness-fault==9.9" in result.error and "pip install 'harness-fault==9.9'" in result.error
    assert "node " in result.error
    clear_cache()


def test_one_line_of_a_ray_task_error_is_the_error_not_the_coloured_process_title() -> None:
    """Ray's task errors start with a colour-coded process title; the recorded message (results
    file, MLflow tag `harness.error`) is the error itself, with no terminal codes (issue 17)."""
    from harness.train.failures import one_line

    title = "\x1b[36mray::harness:abc()\x1b[39m (pid=123, ip=127.0.0.1)"
    text = f"{title}\n  File x\nRuntimeError: injected crash"
    line = one_line(RuntimeError(text))
    assert "\x1b" not in line and "ray::" not in line and line.startswith("RuntimeError: ")
    assert one_line(ValueError("plain\nsecond")) == "ValueError: plain"
