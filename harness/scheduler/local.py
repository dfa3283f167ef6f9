"""In-process executor: one run after another, for debugging and tests.

It cannot kill a run it hosts: the suite deadline is checked between runs, and a per-run
timeout is left to Lightning's ``max_time``. Ctrl-C (or SIGTERM, SIGHUP) records the current run
as killed.

The runs train in the driver's process: the executor imports what they need up front, with the
garbage collector paused (:meth:`LocalExecutor.preload`; see :mod:`harness.heap`), and the driver
times it (``harness run --timings``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from harness import interrupts
from harness.errors import ResourceError
from harness.heap import import_paused
from harness.records import RunSpec
from harness.scheduler.base import RUN_IMPORTS, OnProgress, OnResult, OnStart, describe_request
from harness.settings import ExecutionSpec, ResourcesSpec
from harness.train.failures import failed_record


class LocalExecutor:
    name = "local"
    capacity = 1

    def __init__(self) -> None:
        self.dashboard_url: str | None = None
        self.unscheduled = 0
        self.deadline_hit = False
        self.deadline: float | None = None

    def start(self, resources: ResourcesSpec, execution: ExecutionSpec) -> None:
        self.deadline = float(execution.deadline) if execution.deadline else None
        if resources.workers > 1:
            raise ResourceError(
                f"The suite asks for {describe_request(resources)} per run: multi-worker (data-parallel) "
                "runs need Ray Train. Use --executor ray, or set resources.workers to 1."
            )
        gpus = resources.gpus
        if gpus <= 0:
            return
        import torch

        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if available < max(1, int(gpus)):
            raise ResourceError(
                f"The suite asks for {describe_request(resources)} per run, but this machine has "
                f"{available} CUDA GPU(s). Set resources.gpus to 0 (or at most {available}), "
                "or run on a machine or Ray cluster with GPUs."
            )

    def preload(self) -> None:
        """Import what the runs need (:data:`~harness.scheduler.base.RUN_IMPORTS`), the garbage
        collector paused (it would walk the growing heap of imports again and again)."""
        import_paused(RUN_IMPORTS)

    def run(
        self,
        specs: Sequence[RunSpec],
        on_start: OnStart,
        on_result: OnResult,
        on_progress: OnProgress | None = None,
    ) -> None:
        if specs:
            self.preload()  # a no-op when the driver did it already (to time it)
        from harness.train.trial import run_trial

        suite_start = time.monotonic()
        for i, spec in enumerate(specs):
            if self.deadline and time.monotonic() - suite_start > self.deadline:
                self.deadline_hit = True
                self.unscheduled = len(specs) - i
                return
            try:
                interrupts.check()  # a signal that arrived while the last cell was being recorded
            except interrupts.Interrupted:
                interrupts.acknowledge()
                self.unscheduled = len(specs) - i
                raise
            history: list[dict[str, float]] = []
            started = time.time()

            def on_epoch(
                row: dict[str, float], run_id: str = spec.run_id, history: list[dict[str, float]] = history
            ) -> None:
                history.append(row)
                if on_progress is not None:
                    on_progress(run_id, [row])

            try:
                with interrupts.deferred():  # the cell is started whole
                    on_start(spec)
                # the cell trains here: a stop signal interrupts it at once
                record = run_trial(spec, on_epoch=on_epoch)
            except interrupts.Interrupted as stop:
                interrupts.acknowledge()
                on_result(
                    failed_record(
                        spec,
                        None,
                        kind="killed",
                        history=history,
                        started=started,
                        message=f"interrupted ({stop.how}); run the suite again to resume",
                    )
                )
                self.unscheduled = len(specs) - i - 1
                raise
            except Exception as exc:  # run_trial records its own failures; this is a last resort
                record = failed_record(spec, exc, history=history, started=started)
            with interrupts.deferred(check_at_end=False):  # recorded whole; the next turn sees a signal
                on_result(record)

    def close(self) -> None:
        return None
