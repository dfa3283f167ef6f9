"""The executor contract: run specs, report starts and records as they happen."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from harness.records import RunRecord, RunSpec
from harness.settings import ExecutionSpec, ResourcesSpec

#: what every run imports in its worker (:func:`harness.train.trial.run_trial`); executors import
#: them up front with the garbage collector paused (:func:`harness.heap.import_paused`)
RUN_IMPORTS = ("torch", "pytorch_lightning", "harness.train.trial")

OnStart = Callable[[RunSpec], None]
OnResult = Callable[[RunRecord], None]
#: epoch rows a running cell streamed since the last call: (run id, rows)
OnProgress = Callable[[str, list[dict[str, float]]], None]


class Executor(Protocol):
    name: str
    #: how many runs can execute at once (for the progress display)
    capacity: int
    #: cells never started because the suite stopped early (Ctrl-C, deadline)
    unscheduled: int
    #: whether ``execution.deadline`` stopped the suite
    deadline_hit: bool
    #: the Ray dashboard's address when ``--dashboard`` started one (else None)
    dashboard_url: str | None

    def start(self, resources: ResourcesSpec, execution: ExecutionSpec) -> None:
        """Acquire compute for runs of ``resources`` each; raise ResourceError if no node can host one.

        ``execution`` is the suite's ``execution:`` section (``max_retries``, ``deadline``).
        """

    def run(
        self,
        specs: Sequence[RunSpec],
        on_start: OnStart,
        on_result: OnResult,
        on_progress: OnProgress | None = None,
    ) -> None:
        """Run every spec; call ``on_result`` once per spec, in finishing order, and ``on_progress``
        with the epoch rows of running cells as they arrive (from the scheduling loop's thread).

        On KeyboardInterrupt: cancel what runs, report each as ``killed`` and re-raise.
        """

    def close(self) -> None:
        """Release what ``start`` acquired."""


def describe_request(resources: ResourcesSpec) -> str:
    text = f"cpus: {resources.cpus:g}, gpus: {resources.gpus:g}"
    return text + (f", workers: {resources.workers}" if resources.workers > 1 else "")
