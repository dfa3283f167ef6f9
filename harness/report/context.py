"""What a report knows besides the records: which invocation, how it was run, profile data.

Reporters receive it as ``write(results, out_dir, context=...)`` when their ``write`` accepts a
``context`` keyword (the built-ins do); reporters written against the original contract
(``render(results)``/``write(results, out_dir)``) keep working unchanged.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.records import RunRecord


def suite_hash(text: str) -> str:
    """sha256 of the suite file's text (first 16 hex digits): same text, same hash."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def load_profiles(root: Path, tasks: Sequence[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """``results/profile/<task>.jsonl`` records (``harness profile``), by task; absent → empty."""
    out: dict[str, list[dict[str, Any]]] = {}
    if not root.is_dir():
        return out
    for path in sorted(root.glob("*.jsonl")):
        if tasks is not None and path.stem not in tasks:
            continue
        rows = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        if rows:
            out[path.stem] = rows
    return out


@dataclass
class ReportContext:
    suite: str = "?"
    #: the invocation shown (an MLflow parent run id, or a timestamp)
    invocation: str = ""
    suite_text: str | None = None
    command: str | None = None
    source: str = ""  # where the records came from (results file or tracking URI)
    profiles: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    generated_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S %Z"))

    @property
    def suite_hash(self) -> str | None:
        return suite_hash(self.suite_text) if self.suite_text is not None else None

    @classmethod
    def from_records(cls, records: Sequence[RunRecord], **extra: Any) -> ReportContext:
        """Suite name and invocation (the newest record's parent run id) taken from the records."""
        suite = next((r.spec.suite for r in records if r.spec.suite), "?")
        newest = max(records, key=lambda r: r.finished_at, default=None)
        invocation = (newest.parent_run_id or "") if newest else ""
        return cls(suite=suite, invocation=invocation or time.strftime("%Y%m%d-%H%M%S"), **extra)


__all__ = ["ReportContext", "load_profiles", "suite_hash"]
