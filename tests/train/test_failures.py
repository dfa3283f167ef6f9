"""Failure classification: the kinds, the trimmed traceback, and run_trial's failure block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.errors import RunFailure
from harness.train.failures import PluginMismatch, RunTimeout, classify, trimmed_traceback, worker_died
from tests.helpers import payloads, write_suite

FAULT_SUITE: dict[str, Any] = {
    "name": "faults", "seeds": [0],
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


@pytest.mark.parametrize(("exc", "kind"), [
    (RuntimeError("boom"), "exception"),
    (RunFailure("training loss became nan at step 3 (epoch 0)"), "nan"),
    (OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), "oom"),
    (MemoryError(), "oom"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: can't allocate memory"), "oom"),
    (WorkerCrashedError("The worker died unexpectedly"), "infrastructure"),
    (PluginMismatch("node x has no task `t`"), "infrastructure"),
    (RunTimeout("ran past 10 s"), "timeout"),
    (KeyboardInterrupt(), "killed"),
])
def test_classify(exc: BaseException, kind: str) -> None:
    assert classify(exc) == kind


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
    results = {p["task_params"]["mode"]: run_trial(p, on_epoch=streamed.append)
               for p in payloads(write_suite(tmp_path, FAULT_SUITE), tmp_path / "cache")}
    ok, nan, crash = results["ok"], results["nan"], results["crash"]
    assert ok["status"] == "finished" and "failure" not in ok
    assert len(ok["history"]) == 2 and streamed[:2] == ok["history"]  # rows streamed as they happen
    assert nan["status"] == "failed" and nan["failure"]["kind"] == "nan"
    assert "loss became nan" in nan["failure"]["message"] and nan["failure"]["attempts"] == 1
    assert crash["failure"]["kind"] == "exception" and crash["error"] == "RuntimeError: injected crash"
    assert "Traceback (most recent call last, trimmed)" in crash["traceback"]
    clear_cache()


def test_run_trial_refuses_a_plugin_version_other_than_the_planned_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.plugins import clear_cache
    from harness.train.trial import run_trial

    monkeypatch.setenv("HARNESS_PLUGINS", "tests.fault_plugin")
    clear_cache()
    payload = payloads(write_suite(tmp_path, FAULT_SUITE), tmp_path / "cache")[0]
    payload["versions"] = {**payload["versions"], "task_plugin": "harness-fault==9.9"}
    result = run_trial(payload)
    assert result["status"] == "failed" and result["failure"]["kind"] == "infrastructure"
    assert "harness-fault==9.9" in result["error"] and "pip install 'harness-fault==9.9'" in result["error"]
    assert "node " in result["error"]
    clear_cache()
