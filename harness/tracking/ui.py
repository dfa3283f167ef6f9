"""``harness ui``: the MLflow UI on a suite's store, bound to 127.0.0.1.

``mlflow ui`` starts uvicorn and job-queue children; killing only its main process leaves them
running. So it starts in a new process session and is stopped by signalling the whole group.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import IO

from harness.errors import HarnessError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def runs_url(port: int, experiment_id: str | None) -> str:
    base = f"http://127.0.0.1:{port}"
    return f"{base}/#/experiments/{experiment_id}/runs" if experiment_id else base


def experiment_id(uri: str, name: str | None) -> str | None:
    """The id of experiment ``name`` in the store (None when absent or unreadable)."""
    if not name:
        return None
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        return None
    try:
        from harness.tracking.query import _client

        found = _client(uri).get_experiment_by_name(name)
    except Exception:  # noqa: BLE001 - no link to the experiment is not worth failing the UI
        return None
    return found.experiment_id if found else None


def _mlflow_command(uri: str, port: int) -> list[str]:
    mlflow = Path(sys.executable).with_name("mlflow")
    head = [str(mlflow)] if mlflow.exists() else [sys.executable, "-m", "mlflow"]
    command = [*head, "ui", "--host", "127.0.0.1", "--port", str(port), "--backend-store-uri", uri]
    if uri.startswith("sqlite:///"):  # artifacts beside the database, as MlflowTracker creates them
        from harness.tracking.mlflow_store import artifact_location

        location = artifact_location(uri)
        if location:
            command += ["--default-artifact-root", location]
    return command


def start(uri: str, port: int) -> subprocess.Popen[bytes]:
    """Start the UI in its own process group (stop it with :func:`stop`)."""
    if uri.startswith(("http://", "https://")):
        raise HarnessError(
            f"{uri} is already a tracking server: open {uri.rstrip('/')} in a browser instead of "
            "`harness ui`."
        )
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        raise HarnessError(
            f"No MLflow store at {uri[len('sqlite:///') :]}: run a suite first (`harness run SUITE`) "
            "in this folder, or pass --tracking-uri."
        )
    # lives as long as the server; not a pipe: a chatty server would block on a full pipe
    log = tempfile.TemporaryFile()  # noqa: SIM115
    process = subprocess.Popen(_mlflow_command(uri, port), start_new_session=True, stdout=log, stderr=log)
    process._harness_log = log  # type: ignore[attr-defined]
    return process


def _log_tail(process: subprocess.Popen[bytes]) -> str:
    log: IO[bytes] | None = getattr(process, "_harness_log", None)
    if log is None:
        return ""
    log.seek(0)
    return log.read().decode(errors="replace")[-800:]


def wait_ready(process: subprocess.Popen[bytes], port: int, timeout: float = 60.0) -> None:
    """Poll the health endpoint until the server answers (or the process dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = _log_tail(process)
            raise HarnessError(f"mlflow ui exited with code {process.returncode} before serving: {err}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    stop(process)
    raise HarnessError(f"mlflow ui did not answer on port {port} within {timeout:.0f} s.")


def stop(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the whole process group, SIGKILL what is left after ``grace`` seconds."""
    try:
        group = os.getpgid(process.pid)
    except ProcessLookupError:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                process.poll()
                return
            process.poll()  # reap the leader so the group can empty
            time.sleep(0.1)
    process.poll()


__all__ = ["experiment_id", "free_port", "runs_url", "start", "stop", "wait_ready"]
