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


def load_profiles(
    root: Path,
    tasks: Sequence[str] | None = None,
    *,
    suite: str | None,
    suite_hash: str | None,
) -> dict[str, list[dict[str, Any]]]:
    """The ``harness profile`` records in ``root/<task>.jsonl`` that belong to one suite, by task.

    A row belongs to the suite when it was profiled for it (``harness profile --suite``): its
    ``suite_hash`` equals ``suite_hash`` (the suite file's text), or — when the report does not
    know the suite's text — its ``suite`` equals ``suite``. Rows of other sessions of the same task
    are left out; no matching row → nothing (the report shows no profile section). Profiled more
    than once, the newest row of each (architecture, length, batch size, device) wins.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    if not root.is_dir() or (suite_hash is None and suite is None):
        return out
    for path in sorted(root.glob("*.jsonl")):
        if tasks is not None and path.stem not in tasks:
            continue
        newest: dict[tuple[Any, ...], dict[str, Any]] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(row, dict) or not _belongs(row, suite, suite_hash):
                continue
            key = tuple(row.get(k) for k in ("architecture", "length", "batch_size", "device"))
            if key not in newest or row.get("profiled_at", 0) >= newest[key].get("profiled_at", 0):
                newest.pop(key, None)  # keep file order: the newest row takes the last place
                newest[key] = row
        if newest:
            out[path.stem] = list(newest.values())
    return out


def _belongs(row: dict[str, Any], suite: str | None, suite_hash: str | None) -> bool:
    if suite_hash is not None:
        return bool(row.get("suite_hash") == suite_hash)
    return suite is not None and row.get("suite") == suite


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
    #: a tuned suite's tuning records (trials, ``tuned`` and ``default`` runs) for the report's tuning
    #: section: reporters are given the final runs only (see :func:`harness.report.output.write_report_set`)
    tuning_records: list[RunRecord] = field(default_factory=list)

    @property
    def suite_hash(self) -> str | None:
        return suite_hash(self.suite_text) if self.suite_text is not None else None

    def load_profiles(self, root: Path, tasks: Sequence[str] | None = None) -> None:
        """``profiles``: the rows under ``root`` profiled for this suite (see :func:`load_profiles`);
        call it once ``suite`` and ``suite_text`` are set."""
        self.profiles = load_profiles(root, tasks, suite=self.suite, suite_hash=self.suite_hash)

    @classmethod
    def from_records(cls, records: Sequence[RunRecord], **extra: Any) -> ReportContext:
        """Suite name and invocation (the newest record's parent run id) taken from the records."""
        suite = next((r.spec.suite for r in records if r.spec.suite), "?")
        newest = max(records, key=lambda r: r.finished_at, default=None)
        invocation = (newest.parent_run_id or "") if newest else ""
        return cls(suite=suite, invocation=invocation or time.strftime("%Y%m%d-%H%M%S"), **extra)


__all__ = ["ReportContext", "load_profiles", "suite_hash"]
