"""What the driver asks of a tracking store during ``harness run``.

Two classes have this shape: :class:`harness.tracking.mlflow_store.MlflowTracker` (MLflow's client
in this process) and :class:`harness.tracking.sidecar.TrackingProcess` (the same tracker in a
process of its own, which ``harness run`` uses: see that module).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

from harness.records import RunRecord, RunSpec

T = TypeVar("T")


class Tracker(Protocol):
    uri: str
    experiment: str
    experiment_id: str
    parent_id: str

    def begin_connect(self) -> None:
        """Start opening the store and the experiment; :meth:`connect` (or any call) waits for it."""

    def connect(self) -> None: ...

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(tracker, *args, **kwargs)`` where the tracker is (for work that reads MLflow's
        client directly)."""
        ...

    def close(self) -> None: ...

    def start_parent(
        self, name: str, tags: Mapping[str, str], params: Mapping[str, Any], suite_text: str
    ) -> str: ...

    def finish_parent(self, status: str, summary: Mapping[str, float]) -> None: ...

    def start_tuning(self, contender: str, suite: str, params: Mapping[str, Any]) -> str: ...

    def finish_tuning(self, run_id: str, status: str, summary: Mapping[str, Any]) -> None: ...

    def open_child(
        self, spec: RunSpec, source: str = "harness", started: float | None = None, parent: str | None = None
    ) -> str: ...

    def log_rows(self, run_id: str, rows: Iterable[Mapping[str, float]], started: float) -> None: ...

    def close_child(
        self,
        run_id: str,
        record: RunRecord,
        logged_epochs: set[int] | None = None,
        model_logger: Callable[[str, str, RunRecord], Any] | None = None,
    ) -> None: ...

    def retire_child(self, run_id: str, by_run: str, message: str) -> None: ...

    def finished_children(self) -> dict[str, list[str]]: ...

    def supersede(self, mlflow_run_ids: Iterable[str], by_parent: str, by_run: str) -> None: ...


__all__ = ["Tracker"]
