"""The plain results file: one JSON object (a :class:`~harness.records.RunRecord`) per line.

Appended as runs finish (flushed and fsynced), so reports and resume work without a tracking
server and nothing recorded is lost if the driver dies. Files written before the typed record
(flat objects) still load.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from harness.errors import HarnessError
from harness.records import RunRecord


def default_results_path(suite_name: str) -> Path:
    """``results/<suite>.jsonl``: where a suite's records go unless ``tracking.results`` says otherwise."""
    return Path("results") / f"{suite_name}.jsonl"


class ResultsFile:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        #: line numbers (1-based) the last :meth:`read` could not use (cut short by a crash, or not
        #: a record)
        self.unreadable: list[int] = []

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

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold this results file for one invocation (an advisory lock on ``<file>.lock``).

        Two ``harness run`` of the same suite in the same folder at once would both find every
        cell not done and run it twice; the second one is refused instead, naming the first. The
        lock dies with its process (kill -9 included), so a crashed driver never blocks the next
        run. (Where the platform has no ``fcntl``, or on a file system without locks, no lock is
        taken.)
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        created = [p for p in (self.path.parent, *self.path.parent.parents) if not p.exists()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        handle = lock_path.open("a+", encoding="utf-8")
        try:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise HarnessError(
                    f"The results file {self.path} is in use by another `harness run` ({holder}): "
                    "two invocations of one suite in one folder would run every cell twice. Wait for "
                    "it to finish (then run again to resume), or give this invocation its own results "
                    "file and experiment (--results, and tracking.experiment in the suite)."
                ) from None
            except OSError:  # a file system without locks: go on unlocked
                pass
            handle.seek(0)
            handle.truncate()
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since {stamp}\n")
            handle.flush()
            yield
        finally:
            handle.close()  # releases the lock
            if not self.path.exists():  # nothing recorded (bad input, say): leave no trace either
                lock_path.unlink(missing_ok=True)
                for folder in created:  # innermost first
                    try:
                        folder.rmdir()
                    except OSError:
                        break

    def read(self) -> list[RunRecord]:
        self.unreadable = []
        if not self.path.exists():
            return []
        records = []
        text = self.path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
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
                self.unreadable.append(number)
        return records

    def describe_unreadable(self) -> str | None:
        """One line about the lines the last :meth:`read` skipped, or None."""
        if not self.unreadable:
            return None
        shown = ", ".join(str(n) for n in self.unreadable[:10]) + (" …" if len(self.unreadable) > 10 else "")
        return (
            f"{self.path}: skipped {len(self.unreadable)} line(s) that are not whole records "
            f"(line {shown}; cut short by a crash, or edited by hand); the cells they were are run again"
        )


__all__ = ["ResultsFile", "default_results_path"]
