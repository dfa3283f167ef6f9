"""The plain results file: one JSON object (a :class:`~harness.records.RunRecord`) per line.

Appended as runs finish (flushed and fsynced), so reports and resume work without a tracking
server and nothing recorded is lost if the driver dies. Files written before the typed record
(flat objects) still load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import ValidationError

from harness.records import RunRecord


def default_results_path(suite_name: str) -> Path:
    """``results/<suite>.jsonl``: where a suite's records go unless ``tracking.results`` says otherwise."""
    return Path("results") / f"{suite_name}.jsonl"


class ResultsFile:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        #: lines the last :meth:`read` could not use (cut short by a crash, or not a record)
        self.unreadable = 0

    def append(self, record: RunRecord) -> None:
        """Append ``record`` as one line, on a line of its own: after a partial last line (a driver
        killed mid-write) it starts a new line, so the partial line alone is lost, not this record."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record.to_json(), sort_keys=True, default=str)
        with self.path.open("a+b") as handle:
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    line = "\n" + line
            handle.write((line + "\n").encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())

    def read(self) -> list[RunRecord]:
        self.unreadable = 0
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                records.append(RunRecord.from_json(data))
            except (
                ValueError,
                TypeError,
                AttributeError,
                ValidationError,
            ):  # a line cut short by a crash: skip it, keep the rest
                self.unreadable += 1
        return records


__all__ = ["ResultsFile", "default_results_path"]
