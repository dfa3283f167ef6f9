"""Reaching Ray with bounded waits, and what the private local instance exposes.

Joining ``--address`` / ``RAY_ADDRESS`` is probed first (:func:`probe_gcs`: a TCP connection and
the HTTP/2 greeting a GCS answers at once) and bounded by ``HARNESS_RAY_CONNECT_TIMEOUT``; the
private local instance starts within ``HARNESS_RAY_START_TIMEOUT`` and listens on 127.0.0.1 only
(:func:`loopback_node`), without the processes it does not need when no dashboard is asked for
(:func:`lean_local_instance`). A wait cut short (:func:`time_limit`) ends what it had started
(:func:`undo_init`). While a suite runs, what Ray publishes to the driver stays off the console
(:func:`ray_console`); :func:`dead_local_processes` tells when the local instance itself died.
"""

from __future__ import annotations

import inspect
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from harness.errors import ServiceUnreachable

#: seconds to wait for the Ray cluster of ``--address`` / ``RAY_ADDRESS`` (the address is probed
#: first: nothing listening there fails at once)
CONNECT_TIMEOUT_ENV = "HARNESS_RAY_CONNECT_TIMEOUT"
DEFAULT_CONNECT_TIMEOUT_S = 20.0
#: seconds to wait for the private local Ray instance to start (a few seconds on a laptop)
START_TIMEOUT_ENV = "HARNESS_RAY_START_TIMEOUT"
DEFAULT_START_TIMEOUT_S = 120.0
#: the HTTP/2 client preface and an empty SETTINGS frame: a Ray GCS (a gRPC server) answers with
#: a SETTINGS frame of its own at once
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_H2_SETTINGS = 4
HOW_TO_JOIN = (
    "Check --address / RAY_ADDRESS: it is HOST:PORT of the head node's GCS (the --port of "
    "`ray start --head`, 6379 by default; `ray status` on the head shows it), or `auto` on a node "
    "of the cluster. Drop --address (and unset RAY_ADDRESS) to start a private local Ray "
    "instance, or use --executor local."
)


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of ``HOST:PORT`` / ``[V6]:PORT``; None for ``auto``, ``ray://…`` and the like."""
    if "://" in address or ":" not in address:
        return None
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        return None
    return host, int(port)


def plain_line(text: str) -> str:
    """``text`` without terminal colour codes (Ray colours parts of its messages), on one line."""
    from harness.console import plain

    return " ".join(plain(text).split())


def probe_gcs(address: str, timeout: float) -> None:
    """Refuse ``address`` at once unless a Ray GCS answers there within ``timeout`` seconds.

    ``ray.init`` retries an address where nothing listens for minutes, printing a warning every
    5 s; a TCP connection plus the HTTP/2 greeting every gRPC server (the GCS is one) answers at
    once tells in milliseconds. Addresses that are not ``HOST:PORT`` (``auto``, ``ray://``) are
    left to Ray; with TLS (``RAY_USE_TLS``) only the TCP connection is checked.
    """
    where = _host_port(address)
    if where is None:
        return
    host, port = where
    cause = ""
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
                return
            sock.settimeout(max(0.1, timeout - (time.monotonic() - started)))
            sock.sendall(_H2_PREFACE)
            answer = b""
            while len(answer) < 9:  # a frame header; TCP may hand it over in pieces
                chunk = sock.recv(9 - len(answer))
                if not chunk:
                    break
                answer += chunk
            if not answer:
                cause = "the listener closed the connection without answering: it is not a Ray GCS"
            elif len(answer) < 4 or answer[3] != _H2_SETTINGS:
                cause = "something answers there, but not as a Ray GCS (gRPC) server"
    except ConnectionRefusedError:
        cause = f"connection refused at {host}:{port}: nothing listens there"
    except socket.gaierror as exc:
        cause = f"cannot resolve the host `{host}` ({exc.strerror})"
    except TimeoutError:
        cause = (
            f"no answer within {timeout:g} s ({CONNECT_TIMEOUT_ENV}; a firewall that drops packets, "
            "or a service that is not a Ray GCS)"
        )
    except OSError as exc:
        cause = f"cannot connect to {host}:{port} ({exc.strerror or type(exc).__name__})"
    if cause:
        raise ServiceUnreachable(f"Cannot join the Ray cluster at `{address}`: {cause}. {HOW_TO_JOIN}")


class TimeUp(BaseException):  # noqa: N818 - a BaseException: Ray's retry loops catch Exception
    """The time limit of :func:`time_limit` passed."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`TimeUp` in the block after ``seconds`` (and every second after that, in case
    Ray swallowed it). A no-op outside the main thread or where there is no SIGALRM; Ray's own
    waits end a start-up that hangs there, only later."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeUp

    previous = signal.signal(signal.SIGALRM, expire)
    started = time.monotonic()
    # someone else's timer (pytest-timeout uses SIGALRM too) is put back afterwards, less the time spent
    delay, interval = signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if delay > 0:
            left = max(delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, interval)


@contextmanager
def loopback_node() -> Iterator[None]:
    """Ray's single-machine mode (its default on macOS and Windows) while the local instance starts:
    its node address is 127.0.0.1, so the GCS, the raylet, the object manager, the agents and the
    workers listen on the loopback interface only. On Linux Ray would replace 127.0.0.1 by the
    machine's network address and listen on every interface."""
    try:
        from ray._private import ray_constants
    except ImportError:  # Ray moved it: Ray's own default
        yield
        return
    previous = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    if previous is None:
        yield
        return
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = previous


#: what the private local instance runs without when no dashboard is asked for (RayParams fields,
#: the options ``ray start --no-monitor --include-log-monitor=False`` sets): the autoscaler's
#: monitor (nothing to scale on one machine) and the log monitor (it ships worker output to the
#: driver, which ``log_to_driver=False`` turns away). Each is a Python process that imports Ray
#: (~0.5 s of CPU at start-up) and takes ~0.5 s to stop at ``ray.shutdown``, one after another.
LEAN_PARAMS = {"no_monitor": True, "include_log_monitor": False}
#: the dashboard agent's resource reporter collects every Ray process's CPU and memory for the
#: dashboard every 5 s (Ray's default); without a dashboard, once a minute
LEAN_ENV = {"REPORTER_UPDATE_INTERVAL_MS": "60000"}


@contextmanager
def lean_local_instance(enabled: bool = True) -> Iterator[None]:
    """While the private local instance starts without a dashboard: Ray without the processes of
    :data:`LEAN_PARAMS` and with :data:`LEAN_ENV` in the environment its processes inherit (a value
    the user set is kept). ``ray.init`` has no arguments for these, so its ``RayParams`` is swapped
    for a subclass for the duration; a Ray whose ``RayParams`` lacks the fields starts as usual."""
    try:
        from ray._private import parameter

        original = parameter.RayParams
        fields = inspect.signature(original.__init__).parameters
    except (ImportError, AttributeError, TypeError, ValueError):  # Ray moved it: Ray's own defaults
        enabled = False
    if not enabled or not all(name in fields for name in LEAN_PARAMS):
        yield
        return

    class LeanRayParams(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            for name, value in LEAN_PARAMS.items():
                kwargs.setdefault(name, value)
            super().__init__(*args, **kwargs)

    added = {k: v for k, v in LEAN_ENV.items() if k not in os.environ}
    setattr(parameter, "RayParams", LeanRayParams)  # noqa: B010 - a class, not a variable, to mypy
    os.environ.update(added)
    try:
        yield
    finally:
        setattr(parameter, "RayParams", original)  # noqa: B010
        for name in added:
            os.environ.pop(name, None)


def clip(text: str, limit: int = 300) -> str:
    """``text`` cut at a word boundary to at most about ``limit`` characters, with "…"."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:(") + " …"


def child_pids() -> set[int]:
    """The pids of this process's children (none where Ray's bundled psutil is missing)."""
    try:
        import psutil  # type: ignore[import-untyped]  # Ray's own copy: `import ray` puts it on sys.path

        return {child.pid for child in psutil.Process().children()}
    except Exception:  # noqa: BLE001 - no psutil: nothing to tell apart
        return set()


def undo_init(ray: Any, before: set[int] | None = None) -> None:
    """Undo a ``ray.init`` that failed or was cut short. ``ray.shutdown`` ends what Ray knows it
    started; processes of a start cut short (a GCS, a raylet and its agents) Ray never got hold of,
    so the children this process gained since ``before`` are ended here, with theirs."""
    try:
        ray.shutdown()
    except Exception:  # noqa: BLE001 - nothing more Ray can undo
        pass
    if before is None:
        return
    try:
        import psutil

        started = [c for c in psutil.Process().children() if c.pid not in before]
        for child in started:
            for process in [*child.children(recursive=True), child]:
                try:
                    process.kill()
                except psutil.Error:
                    pass
        psutil.wait_procs(started, timeout=5)
    except Exception:  # noqa: BLE001 - best effort: Ray's own processes notice a dead parent later
        pass


def dead_local_processes() -> str | None:
    """How the raylet or GCS of the local Ray instance this process started ended, if one did."""
    try:
        from ray._private import worker

        node = worker._global_node
        dead: list[tuple[str, Any]] = [] if node is None else node.dead_processes()
    except Exception:  # noqa: BLE001 - Ray moved it: the exception alone decides
        return None
    for kind, process in dead:
        if kind in ("raylet", "gcs_server"):
            code = process.poll()
            how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited ({code})"
            return f"its {kind} process (pid {process.pid}) {how}"
    return None


def ray_console(enabled: bool) -> None:
    """Let Ray print what it publishes to the driver, or not. Off while a suite runs: a dead
    raylet's last 20 log lines (twice, in raw colour codes) would flood the console; they stay in
    Ray's session logs, and the executor says what matters in one line."""
    try:
        from ray._private import worker
    except ImportError:
        return
    if hasattr(worker, "_worker_logs_enabled"):
        worker._worker_logs_enabled = enabled
