"""Bounded waits for Ray (issue 17, defect 6): joining a cluster that is not there, or a listener
that never answers, and starting the local instance, each end in a clear exit 2 within a
documented, configurable time; never a silent hang with Ray's warnings every 5 s."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port, tiny_suite, write_suite

HARNESS = [sys.executable, "-m", "harness.cli"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "HARNESS_CACHE_DIR": str(tmp_path / "cache"), **extra}
    for name in (
        "MLFLOW_TRACKING_URI",
        "RAY_ADDRESS",
        "HARNESS_RAY_CONNECT_TIMEOUT",
        "HARNESS_RAY_START_TIMEOUT",
    ):
        env.pop(name, None)
    env.update(extra)
    return env


def _run(
    tmp_path: Path, *args: str, timeout: float = 120, **env: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    suite = write_suite(tmp_path, tiny_suite(name="joined", tasks=["digits"]))
    started = time.monotonic()
    proc = subprocess.run(
        [*HARNESS, "run", str(suite), *args],
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc, time.monotonic() - started


@pytest.fixture()
def silent_listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()


def test_joining_an_address_where_nothing_listens_fails_at_once(tmp_path: Path) -> None:
    """`--address 127.0.0.1:1` hung for over 120 s with a Ray warning every 5 s."""
    proc, took = _run(tmp_path, "--address", "127.0.0.1:1", timeout=90)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert took < 20, took  # the driver's start-up; the probe itself takes milliseconds
    assert "`127.0.0.1:1`" in out and "connection refused" in out
    assert "--address" in out and "RAY_ADDRESS" in out and "ray start --head" in out
    assert "Traceback" not in out and "rpc_client" not in out
    assert not (tmp_path / "mlflow.db").exists()


def test_joining_a_listener_that_never_answers_gives_up_within_the_connect_timeout(
    tmp_path: Path, silent_listener: int
) -> None:
    address = f"127.0.0.1:{silent_listener}"
    proc, took = _run(tmp_path, "--address", address, timeout=90, HARNESS_RAY_CONNECT_TIMEOUT="2")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert took < 20, took
    assert f"`{address}`" in out and "no answer within 2 s" in out and "HARNESS_RAY_CONNECT_TIMEOUT" in out
    assert "Traceback" not in out


def test_a_connect_timeout_that_is_not_a_number_is_bad_input(tmp_path: Path) -> None:
    proc, _ = _run(
        tmp_path, "--address", f"127.0.0.1:{free_port()}", timeout=60, HARNESS_RAY_CONNECT_TIMEOUT="soon"
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "HARNESS_RAY_CONNECT_TIMEOUT" in out and "'soon'" in out and "Traceback" not in out


@pytest.mark.ray
def test_starting_the_local_ray_instance_is_bounded(tmp_path: Path) -> None:
    """A local start that takes longer than HARNESS_RAY_START_TIMEOUT ends in exit 2, promptly."""
    proc, took = _run(tmp_path, timeout=120, HARNESS_RAY_START_TIMEOUT="0.2")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert took < 60, took
    assert "did not start within 0.2 s" in out and "HARNESS_RAY_START_TIMEOUT" in out
    assert "--executor local" in out and "Traceback" not in out
