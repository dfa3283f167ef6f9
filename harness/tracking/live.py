"""Live MLflow logging: child runs open when their cell starts and grow while it trains.

The driver's scheduling loop only puts work on a queue (:class:`LiveLogger`); one background
thread drains it and talks to MLflow, batching: the epoch rows that arrived for a child run
since the last drain go out in one ``log_batch``. The loop never waits on the tracking store.
Opening a child run goes before any other queued work, so a cell's child run exists within
moments of its start; a record whose child run did not exist yet when the cell ended (cells of
well under a second, a slow store) goes to the results file without ``mlflow_run_id`` — the
content-hash run id (tag ``harness.run_id``) and the invocation still link the two.

Each run id has at most one open child run per invocation. A retry after a worker died opens
a new child run and closes the dead attempt's one as FAILED, superseded by the new one; a
second finished record of a run id is dropped by the caller (:class:`harness.runner`), so no
run id ever has two FINISHED child runs. A failure to reach MLflow becomes one warning per
outage: while the store does not answer, the writer skips its work for a while instead of
waiting on every request (:data:`RETRY_AFTER_S`), and the child runs it could not complete are
counted (:attr:`LiveLogger.incomplete`); the results file still gets every record, and the next
``harness run`` or ``harness sync`` back-fills MLflow from it (:mod:`harness.tracking.reconcile`).
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.records import RunRecord, RunSpec

if TYPE_CHECKING:
    from harness.tracking.base import Tracker

#: after a store error, the writer skips MLflow for this long before it tries again
RETRY_AFTER_S = 5.0

#: queue priorities: opening a child run first, then everything else in order, stopping last
_OPEN, _WORK, _STOP = 0, 1, 2


@dataclass
class _Child:
    """One open child run: its id (once created), start time and the epochs already logged."""

    spec: RunSpec
    started: float
    run_id: Future[str | None] = field(default_factory=Future)
    #: the MLflow parent run (None: the invocation's; a tuning trial's: its contender's tuning run)
    parent: str | None = None
    epochs: set[int] = field(default_factory=set)
    #: some of its logging did not reach the store (the next run or `harness sync` back-fills it)
    incomplete: bool = False


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
        tracker: Tracker,
        warn: Callable[[str], None],
        source: str = "harness",
        model_logger: Callable[[str, str, RunRecord], Any] | None = None,
    ) -> None:
        self.tracker, self.warn, self.source, self.model_logger = tracker, warn, source, model_logger
        self._queue: queue.PriorityQueue[tuple[int, int, _Op | None]] = queue.PriorityQueue()
        self._seq = itertools.count()
        self._open: dict[str, _Child] = {}
        self._thread = threading.Thread(target=self._work, name="harness-mlflow", daemon=True)
        #: seconds the background thread spent talking to MLflow, and child runs it closed
        self.busy_s = 0.0
        self.closed = 0
        #: seconds the caller spent in this object's methods (the scheduling loop's share)
        self.caller_s = 0.0
        #: child runs whose logging did not (all) reach MLflow
        self.incomplete = 0
        self._down_until = 0.0
        self._thread.start()

    # -- called from the scheduling loop (never blocks on MLflow) -------------------------------
    def open(self, spec: RunSpec, parent: str | None = None) -> None:
        """A cell starts (a retry starts again: its earlier attempt's child run is retired);
        ``parent``: its MLflow parent run when not the invocation's (a tuning trial's)."""
        t0 = time.perf_counter()
        child = _Child(spec, time.time(), parent=parent)
        earlier = self._open.get(spec.run_id)
        self._open[spec.run_id] = child
        self._put(_Op("open", child))
        if earlier is not None:
            message = f"worker died; retried as attempt {spec.attempt}"
            self._put(_Op("retire", earlier, extra=(child, message)))
        self.caller_s += time.perf_counter() - t0

    def rows(self, run_id: str, rows: list[dict[str, float]]) -> None:
        """Epoch rows streamed by a running cell (rows of a cell already closed are dropped)."""
        t0 = time.perf_counter()
        child = self._open.get(run_id)
        if child is not None and rows:
            self._put(_Op("rows", child, rows=list(rows)))
        self.caller_s += time.perf_counter() - t0

    def close(self, record: RunRecord, supersede: list[str] | None = None) -> str | None:
        """A cell ended: queue its final logging; the child run's id if it exists yet (no waiting).

        ``supersede``: MLflow ids of earlier FINISHED child runs of this run id (``--rerun``),
        tagged as superseded by this one once it is closed.
        """
        t0 = time.perf_counter()
        child = self._open.pop(record.run_id, None)
        if child is None:  # a record for a cell never opened (stopped before it started)
            child = _Child(record.spec, record.started_at or time.time())
            self._put(_Op("open", child))
        self._put(_Op("close", child, record=record, extra=supersede))
        run_id = child.run_id.result() if child.run_id.done() else None
        self.caller_s += time.perf_counter() - t0
        return run_id

    def discard(self, run_id: str, message: str) -> None:
        """Close the open child run of ``run_id`` as superseded without a record (a duplicate)."""
        child = self._open.pop(run_id, None)
        if child is not None:
            self._put(_Op("retire", child, extra=(_Child(child.spec, child.started), message)))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is in MLflow; False if ``timeout`` ran out."""
        done = threading.Event()
        self._put(_Op("flush", extra=done))
        return done.wait(timeout)

    def stop(self, timeout: float | None = None) -> bool:
        """Flush, then end the thread; False if ``timeout`` ran out first."""
        flushed = self.flush(timeout)
        self._queue.put((_STOP, next(self._seq), None))
        self._thread.join(1.0 if not flushed else timeout)
        return flushed

    def _put(self, op: _Op) -> None:
        self._queue.put((_OPEN if op.kind == "open" else _WORK, next(self._seq), op))

    # -- the background thread ------------------------------------------------------------------
    def _work(self) -> None:
        """Apply queued work in order, except that a child run is opened as soon as its opening is
        queued (checked before every other operation); epoch rows of a child run that piled up
        are sent in one batch, before that child run's next other operation."""
        work: deque[_Op | None] = deque()
        rows: dict[int, tuple[_Child, list[dict[str, float]]]] = {}
        while True:
            if not work:
                self._send_all(rows)
                work.append(self._queue.get()[2])
            t0 = time.perf_counter()
            self._take_openings(work)
            op = work.popleft()
            if op is None:
                self._send_all(rows)
                self.busy_s += time.perf_counter() - t0
                return
            if op.kind == "rows":
                assert op.child is not None
                rows.setdefault(id(op.child), (op.child, []))[1].extend(op.rows)
            elif op.kind == "flush":
                self._send_all(rows)
                op.extra.set()
            else:
                assert op.child is not None  # every other kind is about one child run
                pending = rows.pop(id(op.child), None)
                if op.kind != "close":  # closing logs the record's rows not logged yet, in its batch
                    self._send_rows(pending)
                if op.kind == "open":
                    self._create(op.child)
                elif op.kind == "close":
                    self._finish(op.child, op.record, op.extra)
                elif op.kind == "retire":
                    self._retire(op.child, *op.extra)
            self.busy_s += time.perf_counter() - t0

    def _take_openings(self, work: deque[_Op | None]) -> None:
        """Open the child runs whose opening is queued; queue the rest behind ``work`` (in order)."""
        while True:
            try:
                priority, _, op = self._queue.get_nowait()
            except queue.Empty:
                return
            if priority == _OPEN and op is not None and op.child is not None:
                self._create(op.child)
            else:
                work.append(op)

    def _send_all(self, rows: dict[int, tuple[_Child, list[dict[str, float]]]]) -> None:
        for entry in list(rows.values()):
            self._send_rows(entry)
        rows.clear()

    def _send_rows(self, entry: tuple[_Child, list[dict[str, float]]] | None) -> None:
        if entry is None:
            return
        child, rows = entry
        fresh = [r for r in rows if int(r.get("epoch", -1)) not in child.epochs]
        if fresh:
            self._guard(child, lambda run_id: self.tracker.log_rows(run_id, fresh, child.started))
            child.epochs.update(int(r.get("epoch", -1)) for r in fresh)

    def _create(self, child: _Child) -> None:
        if time.monotonic() < self._down_until:
            child.run_id.set_result(None)
            self._lost(child)
            return
        try:
            child.run_id.set_result(
                self.tracker.open_child(child.spec, self.source, child.started, parent=child.parent)
            )
            self._down_until = 0.0
        except Exception as exc:  # noqa: BLE001 - the store is unreachable: warn, go on without it
            child.run_id.set_result(None)
            self._failed(child, exc)

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
        if run_id is None or time.monotonic() < self._down_until:
            self._lost(child)
            return
        try:
            action(run_id)
        except Exception as exc:  # noqa: BLE001
            self._failed(child, exc)
        else:
            self._down_until = 0.0  # the store answers (again)

    def _lost(self, child: _Child) -> None:
        if not child.incomplete:
            child.incomplete = True
            self.incomplete += 1

    def _failed(self, child: _Child, exc: BaseException) -> None:
        """A store error: warn once per outage, skip MLflow for :data:`RETRY_AFTER_S`."""
        self._lost(child)
        if self._down_until == 0.0:  # the first error of an outage
            self.warn(
                f"MLflow ({self.tracker.uri}) stopped answering while logging run {child.spec.run_id} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); runs go "
                "on and the results file has every record; the next `harness run` (or `harness sync`) "
                "back-fills MLflow"
            )
        self._down_until = time.monotonic() + RETRY_AFTER_S


def per_child(seconds: float, children: int) -> float:
    return seconds / children if children else float("nan")


__all__ = ["LiveLogger", "per_child"]
