"""What runs inside Ray: the per-cell task and the actor that keeps partial histories.

Kept apart from the executor so the worker side stays small: a task reports where it runs
(node id, pid) and streams each epoch row to the :class:`HistoryRecorder` actor, so the driver
still has a run's partial metrics when its worker is killed (kill -9, Ctrl-C, timeout).

A worker process's first task imports what runs need with the garbage collector paused, then
keeps those imports out of the collector's passes for the process's life (see
:mod:`harness.heap`); on a local instance that first task is a warm-up (:func:`warm_worker`) the
executor submits as Ray starts, so the imports overlap the driver's own set-up.
"""

from __future__ import annotations

import os
from typing import Any

from harness.records import RunRecord, RunSpec, RuntimeInfo

_prepared = False


def _prepare_worker() -> None:
    """Once per worker process: the runs' imports, the collector paused, then frozen."""
    global _prepared
    if _prepared:
        return
    from harness.heap import freeze_worker, import_paused
    from harness.scheduler.base import RUN_IMPORTS

    import_paused(RUN_IMPORTS)
    freeze_worker()
    _prepared = True


def warm_worker() -> int:
    """A warm-up task (:meth:`harness.scheduler.ray_executor.RayExecutor.start`): the runs' imports
    done in this worker process before its first run, while the driver opens MLflow. Its pid. Never
    raises: an import that fails here fails again, with its message, in the run that needs it."""
    try:
        _prepare_worker()
    except Exception:  # noqa: BLE001, S110 - the run reports it
        pass
    return os.getpid()


class HistoryRecorder:
    """Epoch rows and placement of the runs in flight, keyed by run id (one per suite)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, float]]] = {}
        self.where: dict[str, dict[str, Any]] = {}
        #: run id → how many of its rows the driver has seen (``drain``)
        self.seen: dict[str, int] = {}

    def started(self, run_id: str, node_id: str, pid: int, attempt: int) -> None:
        self.rows[run_id] = []  # a retry starts its history afresh
        self.seen[run_id] = 0
        self.where[run_id] = {"node_id": node_id, "pid": pid, "attempt": attempt}

    def add(self, run_id: str, row: dict[str, float]) -> None:
        self.rows.setdefault(run_id, []).append(row)

    def drain(self) -> dict[str, list[dict[str, float]]]:
        """The rows added since the last drain, per run id (the driver's live view)."""
        out: dict[str, list[dict[str, float]]] = {}
        for run_id, rows in self.rows.items():
            seen = self.seen.get(run_id, 0)
            if len(rows) > seen:
                out[run_id] = rows[seen:]
                self.seen[run_id] = len(rows)
        return out

    def take(self, run_id: str) -> dict[str, Any]:
        self.seen.pop(run_id, None)
        return {"history": self.rows.pop(run_id, []), **self.where.pop(run_id, {})}


def ray_trial(spec: RunSpec, recorder: Any) -> RunRecord:
    """One cell in a Ray worker: a plain Lightning run, or a Ray Train DDP run for ``workers`` > 1."""
    import ray

    _prepare_worker()
    from harness.train.trial import run_trial

    node_id = ray.get_runtime_context().get_node_id()

    def on_epoch(row: dict[str, float]) -> None:
        if recorder is not None:
            recorder.add.remote(spec.run_id, row)

    if recorder is not None:
        recorder.started.remote(spec.run_id, node_id, os.getpid(), spec.attempt)
    if spec.distributed:
        from harness.train.distributed import run_distributed

        record = run_distributed(spec, on_epoch)
    else:
        record = run_trial(spec, on_epoch)
    runtime = record.runtime or RuntimeInfo()
    if runtime.node_id is None:
        record.runtime = runtime.model_copy(update={"node_id": node_id})
    return record
