"""Where an invocation's wall time went: measured spans (``harness run --timings``).

A :class:`Timings` recorder collects ``time.perf_counter`` spans on the driver's main thread:
``with timings.span("suite: load, validate, plan"): ...``. A span opened inside another becomes
one of its parts; figures measured elsewhere (a worker's ``train_time_s``) are added as parts with
:meth:`Timings.add`. Top-level spans never overlap, so together with :meth:`Timings.rows`'s
``other`` row they add up to the total: the process's age (from its start, read from
``/proc/self/stat`` on Linux; from the recorder's creation elsewhere) when the table is made.

A span's parts may overlap each other (runs in parallel on Ray): the table then shows them as
sums over runs and leaves out that span's ``other`` row (see :attr:`Row.overlapping`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

#: the name of the remainder rows
OTHER = "other"


def process_age() -> float | None:
    """Seconds since this process started (Linux: its start time in ``/proc/self/stat``, to the
    clock tick, on the boot-time clock); None where that cannot be read."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of proc(5): starttime
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, IndexError, ValueError, AttributeError):
        return None
    return age if 0.0 <= age < 86_400 * 365 else None


@dataclass
class Span:
    """A measured span and its parts (spans opened inside it, figures added to it)."""

    name: str
    seconds: float = 0.0
    parts: list[Span] = field(default_factory=list)
    #: how many times it was entered (or added to)
    count: int = 0

    def part(self, name: str) -> Span:
        """The part called ``name`` (created, at the end, if new)."""
        for existing in self.parts:
            if existing.name == name:
                return existing
        created = Span(name)
        self.parts.append(created)
        return created


@dataclass(frozen=True)
class Row:
    """One line of the table: its depth (0: adds up to the total), name, seconds and share."""

    depth: int
    name: str
    seconds: float
    #: the parts of this row's span overlap (parallel runs): they are sums, with no ``other`` row
    overlapping: bool = False


class Timings:
    """A recorder of the driver's spans for one invocation.

    Spans are recorded on the thread that made the recorder (the driver's main thread); a span
    entered on another thread records nothing (it would overlap the main thread's)."""

    def __init__(self, age: float | None = None) -> None:
        """``age``: seconds the process had run when the recorder was made (default:
        :func:`process_age`); the time before is the ``start-up`` row."""
        self._created = time.perf_counter()
        self.startup = process_age() if age is None else age
        self.root = Span("total")
        self._stack: list[Span] = [self.root]
        self._thread = threading.get_ident()
        #: figures shown below the total, not part of the sum (work that overlapped the spans)
        self.notes: dict[str, float] = {}

    @contextmanager
    def span(self, name: str) -> Iterator[None]:
        """Time the block as ``name``, a part of the innermost open span (or top-level)."""
        if threading.get_ident() != self._thread:
            yield
            return
        node = self._stack[-1].part(name)
        self._stack.append(node)
        start = time.perf_counter()
        try:
            yield
        finally:
            node.seconds += time.perf_counter() - start
            node.count += 1
            self._stack.pop()

    def add(self, path: tuple[str, ...], seconds: float) -> None:
        """Add ``seconds`` measured elsewhere to the span at ``path`` (names from the top)."""
        node = self.root
        for name in path:
            node = node.part(name)
        node.seconds += seconds
        node.count += 1

    def note(self, name: str, seconds: float) -> None:
        """A figure that overlapped the spans (a background thread's busy time): shown, not summed."""
        self.notes[name] = self.notes.get(name, 0.0) + seconds

    def get(self, *path: str) -> Span | None:
        node: Span | None = self.root
        for name in path:
            node = next((p for p in node.parts if p.name == name), None) if node else None
        return node

    def elapsed(self) -> float:
        """Seconds since the process started (or, without its start time, since the recorder was made)."""
        return (self.startup or 0.0) + time.perf_counter() - self._created

    def rows(self, total: float | None = None) -> list[Row]:
        """The table: start-up, each top-level span with its parts (indented), and ``other`` rows,
        so that the top-level rows add up to ``total`` (default: :meth:`elapsed`), the last row."""
        total = self.elapsed() if total is None else total
        rows: list[Row] = []
        if self.startup is not None:
            rows.append(Row(0, "start-up: Python, harness CLI", self.startup))
        for span in self.root.parts:
            rows.extend(_rows(span, 0))
        counted = sum(r.seconds for r in rows if r.depth == 0)
        rows.append(Row(0, OTHER, max(0.0, total - counted)))
        rows.append(Row(0, "total", total))
        return rows


def _rows(span: Span, depth: int) -> list[Row]:
    parts = sum(p.seconds for p in span.parts)
    overlapping = parts > span.seconds * 1.001 + 1e-6
    out = [Row(depth, span.name, span.seconds, overlapping)]
    for part in span.parts:
        out.extend(_rows(part, depth + 1))
    if span.parts and not overlapping:
        out.append(Row(depth + 1, OTHER, span.seconds - parts))
    return out


__all__ = ["OTHER", "Row", "Span", "Timings", "process_age"]
