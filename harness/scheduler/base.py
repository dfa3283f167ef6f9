"""The executor contract: run specs, report starts and records as they happen."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from harness.records import FailureKind, RunRecord, RunSpec, RuntimeInfo, Status
from harness.settings import ExecutionSpec, ResourcesSpec

OnStart = Callable[[RunSpec], None]
OnResult = Callable[[RunRecord], None]


class Executor(Protocol):
    name: str
    #: how many runs can execute at once (for the progress display)
    capacity: int
    #: cells never started because the suite stopped early (Ctrl-C, deadline)
    unscheduled: int
    #: whether ``execution.deadline`` stopped the suite
    deadline_hit: bool

    def start(self, resources: ResourcesSpec, execution: ExecutionSpec) -> None:
        """Acquire compute for runs of ``resources`` each; raise ResourceError if no node can host one.

        ``execution`` is the suite's ``execution:`` section (``max_retries``, ``deadline``).
        """

    def run(self, specs: Sequence[RunSpec], on_start: OnStart, on_result: OnResult) -> None:
        """Run every spec; call ``on_result`` once per spec, in finishing order.

        On KeyboardInterrupt: cancel what runs, report each as ``killed`` and re-raise.
        """

    def close(self) -> None:
        """Release what ``start`` acquired."""


def stopped_record(
    spec: RunSpec,
    exc: BaseException | None,
    *,
    kind: FailureKind | None = None,
    message: str | None = None,
    cause: str = "",
    attempts: int = 1,
    history: Sequence[dict[str, float]] = (),
    started: float | None = None,
    status: Status | None = None,
    node_id: str | None = None,
) -> RunRecord:
    """The record of a run that ended outside ``run_trial``: its worker died, or the driver stopped it.

    ``kind`` overrides the classification of ``exc`` (e.g. ``killed`` for Ctrl-C, ``timeout``);
    ``status`` overrides the status (``killed`` for cells the suite deadline cancelled);
    ``history`` holds the epoch rows the worker streamed before it stopped (partial metrics).
    """
    from harness.train.failures import classify, one_line, trimmed_traceback

    kind = kind or (classify(exc) if exc is not None else "exception")
    text = cause + (message or (one_line(exc) if exc is not None else kind))
    return RunRecord.failed(
        spec,
        kind,
        text,
        traceback=trimmed_traceback(exc) if exc is not None else "",
        attempts=attempts,
        history=history,
        started_at=started,
        finished_at=time.time(),
        status=status,
        runtime=RuntimeInfo(node_id=node_id) if node_id else None,
    )


def describe_request(resources: ResourcesSpec) -> str:
    text = f"cpus: {resources.cpus:g}, gpus: {resources.gpus:g}"
    return text + (f", workers: {resources.workers}" if resources.workers > 1 else "")
