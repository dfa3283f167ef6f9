"""Signals that stop a suite, all handled the same way as Ctrl-C.

SIGINT (Ctrl-C), SIGTERM (what a batch scheduler, ``timeout``, systemd and Kubernetes send) and
SIGHUP (a closed terminal) stop a suite cleanly: running cells are cancelled and recorded as
killed, the MLflow parent run is closed KILLED, and the driver exits ``128 + signal number``
(130, 143, 129) with the resume hint.

The handlers never raise in the middle of bookkeeping. Inside :func:`deferred` (a turn of the
Ray executor's scheduling loop, recording a result, starting Ray) a signal is only noted, and
:class:`Interrupted` is raised when the block ends; elsewhere (a cell training in-process) it is
raised at once. A signal whose exception Python swallowed (raised inside a ``__del__`` or a
callback: "Exception ignored in …") is still noted, so the next :func:`check` stops the suite.

:class:`Interrupted` is a ``BaseException`` but not a ``KeyboardInterrupt`` on purpose: Lightning
turns a ``KeyboardInterrupt`` raised inside ``fit`` into ``sys.exit(1)`` and ignores SIGINT from
then on; anything else it re-raises after its teardown.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

#: the signals that stop a suite gracefully (SIGHUP where the platform has it)
STOP_SIGNALS: tuple[int, ...] = tuple(
    int(getattr(signal, name)) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Interrupted(BaseException):  # noqa: N818 - it is what happened, not an error
    """A stop signal arrived; ``exit_code`` is the shell's convention, 128 + its number."""

    def __init__(self, signum: int = int(signal.SIGINT)) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def how(self) -> str:
        """How the user would say it: ``Ctrl-C`` or the signal's name."""
        return "Ctrl-C" if self.signum == signal.SIGINT else signal_name(self.signum)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class _State:
    def __init__(self) -> None:
        self.signum: int | None = None
        #: code that caught the Interrupted is cleaning up: later blocks do not raise it again
        self.acknowledged = False
        self.deferring = 0
        self.installed = 0
        self.previous: dict[int, Any] = {}


_STATE = _State()


def _handler(signum: int, frame: FrameType | None) -> None:
    if _STATE.acknowledged:
        # a second signal while the first one's clean-up runs: the user insists, stop now
        raise Interrupted(signum)
    if _STATE.signum is None:
        _STATE.signum = signum
    if _STATE.deferring == 0:
        check()


def check() -> None:
    """Raise :class:`Interrupted` if a stop signal arrived and was not raised yet (it was deferred,
    or Python swallowed the exception)."""
    if _STATE.signum is not None and not _STATE.acknowledged:
        raise Interrupted(_STATE.signum)


def acknowledge() -> None:
    """Called by the code that caught :class:`Interrupted` before it cleans up: the signal is
    not raised again by :func:`check` or :func:`deferred`; a further signal is (the user insists)."""
    _STATE.acknowledged = True


def install() -> None:
    """(Re)install the handlers: after ``ray.init``, which sets a SIGTERM handler of its own that
    calls ``sys.exit`` (the driver then dies of SIGABRT without recording its running cells)."""
    if _STATE.installed and threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, _handler)


@contextmanager
def handled() -> Iterator[None]:
    """Stop signals become :class:`Interrupted` for the duration (main thread only; a no-op in
    others, where Python cannot set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _STATE.installed == 0:
        _STATE.signum, _STATE.acknowledged = None, False
        _STATE.previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    _STATE.installed += 1
    install()
    try:
        yield
    finally:
        _STATE.installed -= 1
        if _STATE.installed == 0:
            for signum, previous in _STATE.previous.items():
                signal.signal(signum, previous)
            _STATE.deferring = 0


@contextmanager
def deferred(check_at_end: bool = True) -> Iterator[None]:
    """Run the block whole: a stop signal that arrives inside is raised when it ends (or, with
    ``check_at_end=False``, by the next :func:`check`)."""
    _STATE.deferring += 1
    try:
        yield
    finally:
        _STATE.deferring -= 1
    if _STATE.deferring == 0 and check_at_end:
        check()


__all__ = [
    "STOP_SIGNALS",
    "Interrupted",
    "acknowledge",
    "check",
    "deferred",
    "handled",
    "install",
    "signal_name",
]
