"""The results file and MLflow, made to agree again (``harness sync``, and the start of every run).

The results file is the local source of truth: every record is appended (whole lines, fsynced)
as its cell ends, whatever happens to the tracking store. MLflow can fall behind it (the server
died or was unreachable mid-suite: child runs missing, left RUNNING, a parent never closed) and,
more rarely, ahead of it (the driver died between closing a child run and appending the record,
or the file was cut or replaced). :func:`reconcile` closes both gaps, with no duplicates:

- **file → MLflow**: each record of an invocation that this store knows (its parent run exists)
  and that has no child run of its status there is logged into that invocation, as a new child
  run or by completing the child run left RUNNING for it (epochs already logged are not repeated);
- **MLflow → file**: each FINISHED child run (not superseded) of this suite whose run id has no
  finished record in the file is appended to the file, so resume, the table and the report read
  one merged view;
- then the runs a dead driver left RUNNING are closed KILLED (``MlflowTracker.close_orphans``).

Run it again and it finds nothing to do: both directions are keyed by the run id (the content
hash) and the invocation (the parent run id).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.tracking.mlflow_store import CHILD_STATUS, SUPERSEDED_BY, _search, mlflow_key
from harness.tracking.query import record_from_run

if TYPE_CHECKING:
    from harness.records import RunSpec
    from harness.tracking.mlflow_store import MlflowTracker
    from harness.tracking.results import ResultsFile

#: the record statuses that have a child run in MLflow (skipped cells are in the results file only)
LOGGED = ("finished", "failed", "killed")


@dataclass
class SyncOutcome:
    #: records of the results file logged into MLflow (child runs created, or completed)
    to_mlflow: int = 0
    #: finished runs that only MLflow had, appended to the results file
    to_file: int = 0
    #: runs left RUNNING by a driver that died, closed KILLED
    orphans: int = 0
    #: records whose invocation is not in this store (another store, or a deleted run): left alone
    foreign: int = 0
    #: records that could not be logged (the store failed during the sync)
    failed: int = 0

    def describe(self) -> str:
        parts = []
        if self.to_mlflow:
            parts.append(f"{self.to_mlflow} record(s) of the results file back-filled into MLflow")
        if self.to_file:
            parts.append(f"{self.to_file} finished run(s) only MLflow had back-filled into the results file")
        if self.orphans:
            parts.append(f"{self.orphans} run(s) left RUNNING by a driver that died closed as KILLED")
        if self.failed:
            parts.append(f"{self.failed} record(s) could not be logged (the store failed; sync again)")
        return "; ".join(parts)


def _logged_epochs(client: Any, run_id: str) -> set[int]:
    """The epochs a child run left RUNNING already has (its live rows), read from ``train/loss``."""
    try:
        return {int(m.step) for m in client.get_metric_history(run_id, mlflow_key("train_loss"))}
    except Exception:  # noqa: BLE001 - unknown: log every epoch (a repeated point, not a lost one)
        return set()


def reconcile(
    tracker: MlflowTracker, results_file: ResultsFile, suite: str, cells: Iterable[RunSpec]
) -> SyncOutcome:
    """Make the results file and the connected ``tracker``'s experiment agree (see the module doc).

    Only the runs of ``cells`` (the suite's plan as it is now; for a tuned suite, also the trials
    and tuned runs of its (task, architecture) pairs) are written back into the file: one
    experiment can hold other variants of a suite, each with its own results file."""
    outcome = SyncOutcome()
    client = tracker.client
    runs = _search(client, tracker.experiment_id, "")
    # invocations, and a tuned suite's tuning runs (children of an invocation, parents of trials)
    parents = {r.info.run_id: r for r in runs if "harness.run_id" not in r.data.tags}
    children: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for run in runs:
        tags = run.data.tags
        if "mlflow.parentRunId" in tags and "harness.run_id" in tags:
            children[(tags["harness.run_id"], tags["mlflow.parentRunId"])].append(run)
    statuses: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for key, found in children.items():
        statuses[key] = {run.info.status for run in found}

    records = [r for r in results_file.read() if r.spec.suite == suite]
    for record in records:
        if record.status not in LOGGED or not record.parent_run_id:
            continue
        if record.parent_run_id not in parents:
            outcome.foreign += 1
            continue
        key = (record.run_id, record.parent_run_id)
        wanted = CHILD_STATUS[record.status]
        if wanted in statuses[key]:
            continue
        running = [run for run in children[key] if run.info.status == "RUNNING"]
        try:
            if running:  # the cell's child run opened live; the store went away before it was closed
                run_id = running[0].info.run_id
                tracker.close_child(run_id, record, _logged_epochs(client, run_id))
                children[key].remove(running[0])
            else:
                tracker.log_child(record, source=record.spec.suite, parent=record.parent_run_id)
        except Exception:  # noqa: BLE001 - the store failed mid-sync: the next sync tries again
            outcome.failed += 1
            continue
        statuses[key].add(wanted)
        outcome.to_mlflow += 1

    in_file = {r.run_id for r in records if r.finished}
    planned = {cell.run_id for cell in cells}
    pairs = {f"{cell.task_label} × {cell.arch_label}" for cell in cells}

    def ours(run: Any) -> bool:
        tags = run.data.tags
        return tags.get("harness.run_id") in planned or tags.get("harness.tuning_contender") in pairs

    suites = {pid: p.data.tags.get("harness.suite") for pid, p in parents.items()}
    only_mlflow = [
        run
        for run in runs
        if run.info.status == "FINISHED"
        and SUPERSEDED_BY not in run.data.tags
        and run.data.tags.get("harness.run_id") not in (None, *in_file)
        and suites.get(run.data.tags.get("mlflow.parentRunId", "")) == suite
        and ours(run)
    ]
    seen: set[str] = set()
    for run in sorted(only_mlflow, key=lambda r: r.info.start_time or 0):
        back = record_from_run(client, run, suite)
        if back.run_id in seen:
            continue
        seen.add(back.run_id)
        results_file.append(back)
        outcome.to_file += 1

    outcome.orphans = tracker.close_orphans()
    return outcome


__all__ = ["SyncOutcome", "reconcile"]
