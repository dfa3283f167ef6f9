"""Live MLflow logging: child runs open when their cell starts and grow while it trains.

The driver's scheduling loop only puts work on a queue (:class:`LiveLogger`); one background
thread drains it and talks to MLflow, batching: the epoch rows that arrived for a child run
since the last drain go out in one ``log_batch``. The loop never waits on the tracking store,
except, when a cell ends, for the id of its child run (created long before, as a rule) so that
the results file can name it.

Each run id has at most one open child run per invocation. A retry after a worker died opens
a new child run and closes the dead attempt's one as FAILED, superseded by the new one; a
second finished record of a run id is dropped by the caller (:class:`harness.runner`), so no
run id ever has two FINISHED child runs. A failure to reach MLflow becomes one warning per
child run; the results file still gets every record.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.records import RunRecord, RunSpec

if TYPE_CHECKING:
    from harness.tracking.mlflow_store import MlflowTracker

#: how long a cell's end waits for its child run to exist before the record is written without it
CHILD_ID_WAIT_S = 10.0


@dataclass
class _Child:
    """One open child run: its id (once created), start time and the epochs already logged."""

    spec: RunSpec
    started: float
    run_id: Future[str | None] = field(default_factory=Future)
    epochs: set[int] = field(default_factory=set)
    warned: bool = False


@dataclass
class _Op:
    kind: str  # open | rows | close | retire | flush
    child: _Child | None = None
    rows: list[dict[str, float]] = field(default_factory=list)
    record: RunRecord | None = None
    extra: Any = None


class LiveLogger:
    """The driver's single MLflow writer for one invocation's child runs (a background thread)."""

    def __init__(
        self,
        tracker: MlflowTracker,
        warn: Callable[[str], None],
        source: str = "harness",
        model_logger: Callable[[str, str, RunRecord], Any] | None = None,
    ) -> None:
        self.tracker, self.warn, self.source, self.model_logger = tracker, warn, source, model_logger
        self._queue: queue.Queue[_Op | None] = queue.Queue()
        self._open: dict[str, _Child] = {}
        self._thread = threading.Thread(target=self._work, name="harness-mlflow", daemon=True)
        #: seconds the background thread spent talking to MLflow, and child runs it closed
        self.busy_s = 0.0
        self.closed = 0
        #: seconds the caller spent in this object's methods (the scheduling loop's share)
        self.caller_s = 0.0
        self._thread.start()

    # -- called from the scheduling loop (never blocks on MLflow) -------------------------------
    def open(self, spec: RunSpec) -> None:
        """A cell starts (a retry starts again: its earlier attempt's child run is retired)."""
        t0 = time.perf_counter()
        child = _Child(spec, time.time())
        earlier = self._open.get(spec.run_id)
        self._open[spec.run_id] = child
        self._queue.put(_Op("open", child))
        if earlier is not None:
            message = f"worker died; retried as attempt {spec.attempt}"
            self._queue.put(_Op("retire", earlier, extra=(child, message)))
        self.caller_s += time.perf_counter() - t0

    def rows(self, run_id: str, rows: list[dict[str, float]]) -> None:
        """Epoch rows streamed by a running cell (rows of a cell already closed are dropped)."""
        t0 = time.perf_counter()
        child = self._open.get(run_id)
        if child is not None and rows:
            self._queue.put(_Op("rows", child, rows=list(rows)))
        self.caller_s += time.perf_counter() - t0

    def close(self, record: RunRecord, supersede: list[str] | None = None) -> str | None:
        """A cell ended: queue its final logging; the child run's id (waits for its creation).

        ``supersede``: MLflow ids of earlier FINISHED child runs of this run id (``--rerun``),
        tagged as superseded by this one once it is closed.
        """
        t0 = time.perf_counter()
        child = self._open.pop(record.run_id, None)
        if child is None:  # a record for a cell never opened (stopped before it started)
            child = _Child(record.spec, record.started_at or time.time())
            self._queue.put(_Op("open", child))
        self._queue.put(_Op("close", child, record=record, extra=supersede))
        try:
            run_id = child.run_id.result(timeout=CHILD_ID_WAIT_S)
        except Exception:  # noqa: BLE001 - a slow or failed store: the record is written without it
            run_id = None
        self.caller_s += time.perf_counter() - t0
        return run_id

    def discard(self, run_id: str, message: str) -> None:
        """Close the open child run of ``run_id`` as superseded without a record (a duplicate)."""
        child = self._open.pop(run_id, None)
        if child is not None:
            self._queue.put(_Op("retire", child, extra=(_Child(child.spec, child.started), message)))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is in MLflow; False if ``timeout`` ran out."""
        done = threading.Event()
        self._queue.put(_Op("flush", extra=done))
        return done.wait(timeout)

    def stop(self, timeout: float | None = None) -> bool:
        """Flush, then end the thread; False if ``timeout`` ran out first."""
        flushed = self.flush(timeout)
        self._queue.put(None)
        self._thread.join(1.0 if not flushed else timeout)
        return flushed

    @property
    def running(self) -> int:
        return len(self._open)

    # -- the background thread ------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            while True:  # everything that piled up meanwhile, in order
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            t0 = time.perf_counter()
            stop = self._apply(batch)
            self.busy_s += time.perf_counter() - t0
            if stop:
                return

    def _apply(self, batch: list[_Op | None]) -> bool:
        pending: dict[int, tuple[_Child, list[dict[str, float]]]] = {}

        def send_rows(child: _Child) -> None:
            entry = pending.pop(id(child), None)
            if entry is None:
                return
            rows = [r for r in entry[1] if int(r.get("epoch", -1)) not in child.epochs]
            self._guard(child, lambda run_id: self.tracker.log_rows(run_id, rows, child.started))
            child.epochs.update(int(r.get("epoch", -1)) for r in rows)

        for op in batch:
            if op is None:
                for child, _ in list(pending.values()):
                    send_rows(child)
                return True
            if op.kind == "flush":
                for child, _ in list(pending.values()):
                    send_rows(child)
                op.extra.set()
                continue
            assert op.child is not None  # every other kind is about one child run
            if op.kind == "rows":
                pending.setdefault(id(op.child), (op.child, []))[1].extend(op.rows)
                continue
            send_rows(op.child)
            if op.kind == "open":
                self._create(op.child)
            elif op.kind == "close":
                self._finish(op.child, op.record, op.extra)
            elif op.kind == "retire":
                self._retire(op.child, *op.extra)
        for child, _ in list(pending.values()):
            send_rows(child)
        return False

    def _create(self, child: _Child) -> None:
        try:
            child.run_id.set_result(self.tracker.open_child(child.spec, self.source, child.started))
        except Exception as exc:  # noqa: BLE001 - the store is unreachable: warn, go on without it
            child.run_id.set_result(None)
            self._warn(child, exc)

    def _finish(self, child: _Child, record: Any, supersede: list[str] | None) -> None:
        def finish(run_id: str) -> None:
            self.tracker.close_child(run_id, record, child.epochs, self.model_logger)
            if supersede and record.finished:  # --rerun: the new run supersedes (tags) the earlier ones
                self.tracker.supersede(supersede, by_parent=self.tracker.parent_id, by_run=run_id)

        self._guard(child, finish)
        self.closed += 1

    def _retire(self, child: _Child, new: _Child, message: str) -> None:
        by = (new.run_id.result() if new.run_id.done() else None) or ""
        self._guard(child, lambda run_id: self.tracker.retire_child(run_id, by, message))

    def _guard(self, child: _Child, action: Callable[[str], Any]) -> None:
        """Run ``action(child run id)``; a store error becomes one warning for this child run."""
        if not child.run_id.done():
            return
        run_id = child.run_id.result()
        if run_id is None:
            return
        try:
            action(run_id)
        except Exception as exc:  # noqa: BLE001
            self._warn(child, exc)

    def _warn(self, child: _Child, exc: BaseException) -> None:
        if child.warned:
            return
        child.warned = True
        self.warn(
            f"could not log run {child.spec.run_id} to MLflow ({type(exc).__name__}: {str(exc)[:200]}); "
            "the results file has it"
        )


def per_child(seconds: float, children: int) -> float:
    return seconds / children if children else float("nan")


__all__ = ["LiveLogger", "per_child"]
