"""The driver's garbage-collector policy: the imports stay out of the collector's passes.

Measured with ``harness run --timings`` and ``gc.callbacks`` on a single small run (2-core CPU):
once torch, Lightning and MLflow are imported the heap holds some 400,000 objects, and CPython's
cyclic collector walks all of them in every full collection — nine of them in that run, 1.2 s in
all, most while the imports grow the heap — and again when the interpreter exits (~1.8 s after
the last line of output). Imports make next to no garbage, so the driver:

* pauses the collector while it imports and sets up (:func:`paused_gc`, :class:`GcWindow`);
* then moves what exists into the collector's permanent generation (``gc.freeze``) and resumes
  collecting: the runs that train in the driver's process (``--executor local``) and the report
  only pay for their own objects; the window's end gives the objects back (``gc.unfreeze``), so a
  library caller's (a test's) process is left as it was;
* at interpreter exit freezes the heap again (:func:`freeze_at_exit`), which skips the final
  passes; ``atexit`` handlers, stream flushing and closing happen as before.

Objects are still freed by reference counting the moment they are unused; only garbage in
reference cycles that already existed at a freeze waits (for the window's end, or for the
process's end, where Python does not promise to collect it anyway).
"""

from __future__ import annotations

import atexit
import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic collector for an import-heavy block (left as it was after)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def import_paused(names: Iterable[str]) -> None:
    """Import the modules ``names`` (those not imported yet) with the collector paused."""
    import importlib
    import sys

    with paused_gc():
        for name in names:
            if name not in sys.modules:
                importlib.import_module(name)


def freeze_worker() -> None:
    """In a worker process that lives for runs only (a Ray worker), once its imports are done: keep
    them out of the collector's passes for the process's life (unless something froze objects
    already)."""
    if gc.get_freeze_count() == 0:
        gc.freeze()


class GcWindow:
    """One invocation's collector policy: paused from :meth:`open` (the set-up: imports, the MLflow
    store), :meth:`settle` freezes what exists and resumes collecting (before the runs), :meth:`close`
    puts everything back: collecting as before, the frozen objects back in the oldest generation.

    Where something else froze objects already (``gc.freeze`` is process-wide) it freezes nothing."""

    def __init__(self) -> None:
        self._enabled = gc.isenabled()
        self._ours = gc.get_freeze_count() == 0
        self._paused = False
        self._frozen = False

    def open(self) -> None:
        if self._enabled and not self._paused:
            gc.disable()
            self._paused = True

    def settle(self) -> None:
        """Freeze what exists (no collection, just a move) and collect again from here."""
        if self._ours:
            gc.freeze()
            self._frozen = True
        if self._paused:
            gc.enable()
            self._paused = False

    def close(self) -> None:
        if self._paused:
            gc.enable()
            self._paused = False
        if self._frozen:
            gc.unfreeze()
            self._frozen = False


@contextmanager
def gc_window() -> Iterator[GcWindow]:
    """A :class:`GcWindow`, opened (collector paused), closed at the end of the block."""
    window = GcWindow()
    window.open()
    try:
        yield window
    finally:
        window.close()


_exit_freeze = False


def freeze_at_exit() -> None:
    """At interpreter exit, skip the collector's final passes over the heap (~1.8 s once torch
    and Lightning are imported). Registered once; it runs before the ``atexit`` handlers
    registered earlier (last in, first out), which all still run."""
    global _exit_freeze
    if not _exit_freeze:
        _exit_freeze = True
        atexit.register(gc.freeze)


__all__ = ["GcWindow", "freeze_at_exit", "freeze_worker", "gc_window", "import_paused", "paused_gc"]
