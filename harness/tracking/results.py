"""The plain results file: one JSON object per finished (or failed) run.

Appended as runs finish (flushed and fsynced), so reports and resume work
without a tracking server and nothing recorded is lost if the driver dies.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

RecordT = TypeVar("RecordT", bound=Mapping[str, Any])


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class ResultsFile:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(_clean(record), sort_keys=True, default=str)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a crash: ignore it, keep the rest
        return records

    def finished_ids(self) -> set[str]:
        return finished_ids(self.read())


def finished_ids(records: Iterable[dict[str, Any]]) -> set[str]:
    """Run ids recorded as finished (failed and skipped runs are never done)."""
    return {r["run_id"] for r in records if r.get("status") == "finished" and "run_id" in r}


def latest_by_run(records: Iterable[RecordT]) -> list[RecordT]:
    """The last record of each run id (a rerun replaces a failure), in order of first appearance."""
    latest: dict[str, RecordT] = {}
    for record in records:
        latest[record.get("run_id", str(id(record)))] = record
    return list(latest.values())
