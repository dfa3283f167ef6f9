"""MLflow in a process of its own: ``harness run``'s tracking process.

MLflow's client costs the driver about 1.5 s before anything trains (importing it, 0.7 s; opening
the store, 0.6 s, or 1.8 s for a new sqlite store: its schema migrations) and CPU time on every
call after that, which a training loop in the driver (``--executor local``) shares the
interpreter with. :class:`TrackingProcess` starts a second Python process when the invocation
starts; it imports MLflow while the driver starts Ray or imports torch and Lightning, opens the
store when asked (:meth:`TrackingProcess.begin_connect`: after the executor started, so that a
cluster that cannot be joined leaves no store behind), and then does every MLflow call the driver
makes, on the other core. A new sqlite store (a first run in a folder: ~60 schema migrations,
~1,100 disk syncs, 1–2 s) is made before that, under a temporary name beside it, and linked into
place when the store opens (``os.link``: never over a store that appeared meanwhile); a process
that ends without opening it removes it. The driver never imports MLflow (``harness run --timings``: "MLflow:
wait for the tracking process").

The calls are synchronous (a request, then its reply; one at a time, from any thread), so the
driver sees exactly what :class:`harness.tracking.mlflow_store.MlflowTracker` would do in its
place: return values, MLflow's exceptions (pickled back; one that pickle cannot carry comes
back as an exception with its type and message), the experiment and parent run ids.
Each reply carries its request's number, so a wait cut short by a signal (Ctrl-C) never pairs a
later request with an earlier reply.

Lifetime and failures:

- the process ignores SIGINT, SIGTERM and SIGHUP and has a process group of its own (in the
  driver's session): a Ctrl-C or a ``kill`` of the driver's process group stops the driver,
  which still records the runs it stops and closes its MLflow runs through this process before
  it exits;
- it exits when the driver closes it, or when its request pipe closes: a driver that dies
  (``kill -9`` included) leaves no process behind, and what MLflow had from it stays;
- a tracking process that dies is a store that stopped answering: every later call raises
  :class:`TrackingProcessError`, which the live logger turns into one warning, and the results
  file still gets every record (``harness sync`` or the next ``harness run`` back-fills MLflow);
  one that dies before it opened the store (it could not start) leaves MLflow to the driver, with
  one warning (:func:`harness.runner._connect`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from harness.errors import HarnessError
from harness.records import RunRecord, RunSpec

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from harness.tracking.mlflow_store import MlflowTracker

T = TypeVar("T")

#: how long :meth:`TrackingProcess.close` waits for the process to finish its last request
CLOSE_TIMEOUT_S = 30.0


class TrackingProcessError(ConnectionError):
    """The tracking process is gone, or an error in it could not be sent back as itself."""


class _RemoteError(Exception):
    """Stands for an exception of the tracking process that pickle cannot carry."""


class TrackingProcess:
    """An :class:`~harness.tracking.mlflow_store.MlflowTracker` in a process of its own (see the
    module doc); the methods are the tracker's (:class:`harness.tracking.base.Tracker`)."""

    def __init__(self, uri: str, experiment: str) -> None:
        from multiprocessing.connection import Connection

        self.uri, self.experiment = uri, experiment
        self.experiment_id = ""
        self.parent_id = ""
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._connecting: int | None = None
        self._gone: str | None = None
        requests_read, requests_write = os.pipe()
        replies_read, replies_write = os.pipe()
        try:
            self.process = subprocess.Popen(
                command(requests_read, replies_write, uri),
                stdin=subprocess.DEVNULL,
                stdout=sys.stderr.fileno() if _has_fileno(sys.stderr) else subprocess.DEVNULL,
                pass_fds=(requests_read, replies_write),
                process_group=0,  # its own group: a Ctrl-C or `kill -- -PGID` of the driver's misses it
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            os.close(requests_read)
            os.close(replies_write)
        self._requests = Connection(requests_write, readable=False)
        self._replies = Connection(replies_read, writable=False)

    # -- the protocol ----------------------------------------------------------------------------

    def _send(self, kind: str, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
        if self._gone is not None:
            raise TrackingProcessError(self._gone)
        number = next(self._numbers)
        try:
            self._requests.send((number, kind, target, args, kwargs))
        except OSError as exc:
            raise self._lost(f"{type(exc).__name__}: {exc}") from None
        return number

    def _receive(self, number: int) -> Any:
        while True:
            try:
                got, ok, value, state = self._replies.recv()
            except (EOFError, OSError) as exc:
                raise self._lost(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None
            if got != number:  # the reply to a request whose wait a signal cut short
                continue
            self.experiment_id, self.parent_id = state
            if ok:
                return value
            raise value

    def _opened(self) -> None:
        """Wait for the store to open, if that was asked and not yet answered (under the lock)."""
        if self._connecting is not None:
            number, self._connecting = self._connecting, None
            self._receive(number)

    def _call(self, kind: str, target: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._opened()  # the store opens before anything else is asked of it
            return self._receive(self._send(kind, target, args, kwargs))

    def _lost(self, how: str) -> TrackingProcessError:
        code = self.process.poll()
        ended = f"exited with code {code}" if code is not None else "stopped answering"
        self._gone = (
            f"the MLflow tracking process (pid {self.process.pid}) {ended} ({how}); its stderr is the "
            "driver's, above"
        )
        return TrackingProcessError(self._gone)

    # -- the tracker -----------------------------------------------------------------------------

    def begin_connect(self) -> None:
        """Ask the process to open the store and the experiment, without waiting (see the module
        doc); :meth:`connect` waits for it, and so does any other call."""
        with self._lock:
            if self._connecting is None and not self.experiment_id and self._gone is None:
                with contextlib.suppress(TrackingProcessError):  # connect() raises it
                    self._connecting = self._send("connect", None, (self.uri, self.experiment), {})

    def connect(self) -> None:
        """Open the store and the experiment (:meth:`MlflowTracker.connect`: a store that cannot be
        used is a :class:`~harness.errors.ServiceUnreachable`)."""
        self.begin_connect()
        with self._lock:
            if self._connecting is None and self._gone is not None:  # it died before it was asked
                raise TrackingProcessError(self._gone)
            self._opened()

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(tracker, *args, **kwargs)`` in the tracking process, with its tracker: for
        work that reads MLflow's client directly (:func:`harness.tracking.reconcile.reconcile`).
        ``function`` must be importable by name (a module-level function)."""
        result: T = self._call("call", function, *args, **kwargs)
        return result

    def start_parent(
        self, name: str, tags: Mapping[str, str], params: Mapping[str, Any], suite_text: str
    ) -> str:
        run_id: str = self._call("method", "start_parent", name, dict(tags), dict(params), suite_text)
        return run_id

    def finish_parent(self, status: str, summary: Mapping[str, float]) -> None:
        self._call("method", "finish_parent", status, dict(summary))

    def start_tuning(self, contender: str, suite: str, params: Mapping[str, Any]) -> str:
        run_id: str = self._call("method", "start_tuning", contender, suite, dict(params))
        return run_id

    def finish_tuning(self, run_id: str, status: str, summary: Mapping[str, Any]) -> None:
        self._call("method", "finish_tuning", run_id, status, dict(summary))

    def open_child(
        self, spec: RunSpec, source: str = "harness", started: float | None = None, parent: str | None = None
    ) -> str:
        run_id: str = self._call("method", "open_child", spec, source, started, parent)
        return run_id

    def log_rows(self, run_id: str, rows: Iterable[Mapping[str, float]], started: float) -> None:
        self._call("method", "log_rows", run_id, [dict(r) for r in rows], started)

    def close_child(
        self,
        run_id: str,
        record: RunRecord,
        logged_epochs: set[int] | None = None,
        model_logger: Callable[[str, str, RunRecord], Any] | None = None,
    ) -> None:
        self._call("method", "close_child", run_id, record, set(logged_epochs or ()), model_logger)

    def retire_child(self, run_id: str, by_run: str, message: str) -> None:
        self._call("method", "retire_child", run_id, by_run, message)

    def finished_children(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = self._call("method", "finished_children")
        return found

    def supersede(self, mlflow_run_ids: Iterable[str], by_parent: str, by_run: str) -> None:
        self._call("method", "supersede", list(mlflow_run_ids), by_parent, by_run)

    def close(self) -> None:
        """Let the process finish what it was asked and exit; kill it if it does not within
        :data:`CLOSE_TIMEOUT_S` (an MLflow server that hangs). Safe to call twice."""
        try:
            self._requests.close()  # end of requests: the process exits after its last reply
        except OSError:
            pass
        try:
            self.process.wait(CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        try:
            self._replies.close()
        except OSError:
            pass


#: the folder that holds the ``harness`` package: on the process's ``sys.path`` (last), so that it
#: imports the same harness where this one was put on ``sys.path`` by hand
_ROOT = str(Path(__file__).resolve().parents[2])


def command(requests_fd: int, replies_fd: int, uri: str) -> list[str]:
    """The tracking process's command line."""
    code = (
        f"import sys; sys.path.append({_ROOT!r}); "
        "from harness.tracking.sidecar import main; main(sys.argv[1:])"
    )
    return [sys.executable, "-c", code, str(requests_fd), str(replies_fd), uri]


def _has_fileno(stream: Any) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):  # pytest's capture, a notebook's stream
        return False
    return True


# -- the process -----------------------------------------------------------------------------------


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a :class:`_RemoteError` with its type and message."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any exception an exception's pickling raises
        return _RemoteError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")
    return exc


def _warm() -> None:
    """Import what the first requests need while the driver does something else. An import that
    fails here fails again in the request that needs it, and goes back to the driver as an error."""
    try:
        import mlflow.entities  # noqa: F401
        import mlflow.tracking  # noqa: F401

        import harness.tracking.reconcile  # noqa: F401
        from harness.tracking.mlflow_store import quiet_logs
    except Exception:  # noqa: BLE001, S110 - see the doc
        return
    quiet_logs()


SQLITE = "sqlite:///"


class _NewStore:
    """A new sqlite store made ahead, under a temporary name beside where it goes (the module doc)."""

    def __init__(self, uri: str) -> None:
        #: where the store goes, and its temporary name; None when it exists, is not a sqlite file
        #: at an absolute path, or its folder cannot be written
        self.path: Path | None = None
        self.scratch: Path | None = None
        path = Path(uri[len(SQLITE) :])
        if (
            uri.startswith(SQLITE)
            and path.is_absolute()
            and not path.exists()
            and os.access(path.parent, os.W_OK)
        ):
            self.path, self.scratch = path, path.with_name(f".{path.name}.new-{os.getpid()}")

    def make(self) -> None:
        """Create it as a first connection would: tables, migrations, the Default experiment."""
        if self.scratch is None:
            return
        try:
            from mlflow.tracking import MlflowClient

            MlflowClient(tracking_uri=f"{SQLITE}{self.scratch}").search_experiments(max_results=1)
        except Exception:  # noqa: BLE001 - then the store is created where it goes, when it opens
            self.discard()

    def place(self) -> None:
        """Move it into place, unless a store appeared there meanwhile; then forget it."""
        if self.path is not None and self.scratch is not None and self.scratch.exists():
            with contextlib.suppress(OSError):
                os.link(self.scratch, self.path)
        self.discard()

    def discard(self) -> None:
        if self.scratch is not None:
            for leftover in (self.scratch, self.scratch.with_name(self.scratch.name + "-journal")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
        self.scratch = None


def serve(requests: Connection, replies: Connection, uri: str) -> None:
    """Answer requests until the driver closes the pipe (the module doc)."""
    _warm()
    new_store = _NewStore(uri)
    try:
        new_store.make()
        _serve(requests, replies, new_store)
    finally:
        new_store.discard()


def _serve(requests: Connection, replies: Connection, new_store: _NewStore) -> None:
    from harness.tracking.mlflow_store import MlflowTracker

    tracker: MlflowTracker | None = None
    while True:
        try:
            number, kind, target, args, kwargs = requests.recv()
        except (EOFError, OSError):
            return
        try:
            if kind == "connect":
                new_store.place()
                tracker = MlflowTracker(*args)
                tracker.connect()
                value: Any = None
            elif tracker is None:
                raise HarnessError("the tracking process was asked to log before it opened the store")
            elif kind == "method":
                value = getattr(tracker, target)(*args, **kwargs)
            else:
                value = target(tracker, *args, **kwargs)
            reply = (number, True, value, _state(tracker))
        except BaseException as exc:  # noqa: BLE001 - every error goes back to the driver
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            reply = (number, False, _portable(exc), _state(tracker))
        try:
            replies.send(reply)
        except (BrokenPipeError, OSError):  # the driver is gone
            return


def _state(tracker: MlflowTracker | None) -> tuple[str, str]:
    return (tracker.experiment_id, tracker.parent_id) if tracker is not None else ("", "")


def main(argv: list[str]) -> NoReturn:
    from multiprocessing.connection import Connection

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # the driver decides when this process ends
    requests = Connection(int(argv[0]), writable=False)
    replies = Connection(int(argv[1]), readable=False)
    serve(requests, replies, argv[2])
    # every request was answered, so everything asked of MLflow is written: skip the interpreter's
    # teardown (~0.8 s of MLflow's and SQLAlchemy's modules), which the driver would wait for
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])


__all__ = ["TrackingProcess", "TrackingProcessError"]
