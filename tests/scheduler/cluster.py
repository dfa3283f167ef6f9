"""A real two-node Ray cluster on 127.0.0.1 for tests: ``ray start --head`` plus a second node.

Each node is a ``ray start --block`` process in its own process session with its own ports and
temp folder, so the test ends exactly what it started (the whole session is killed at teardown;
never ``ray stop``, which would end other people's Ray processes too). Token authentication is
on for both nodes and for every driver (``RAY_AUTH_MODE=token``), as Ray 2.60 requires.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ports() -> list[str]:
    return [
        "--node-manager-port",
        str(free_port()),
        "--object-manager-port",
        str(free_port()),
        "--dashboard-agent-listen-port",
        str(free_port()),
        "--dashboard-agent-grpc-port",
        str(free_port()),
        "--metrics-export-port",
        str(free_port()),
        "--runtime-env-agent-port",
        str(free_port()),
    ]


def _wait_nodes(address: str, env: dict[str, str], count: int, timeout: float = 30.0) -> None:
    probe = (
        "import ray,sys,time\nray.init(address=sys.argv[1], logging_level='ERROR')\n"
        "end=time.time()+float(sys.argv[3])\n"
        "while time.time()<end and sum(n['Alive'] for n in ray.nodes())<int(sys.argv[2]): time.sleep(0.5)\n"
        "sys.exit(0 if sum(n['Alive'] for n in ray.nodes())>=int(sys.argv[2]) else 1)\n"
    )
    subprocess.run(
        [sys.executable, "-c", probe, address, str(count), str(timeout)],
        env=env,
        check=True,
        timeout=timeout + 30,
        capture_output=True,
    )


@contextmanager
def ray_cluster(env: dict[str, str], nodes: int = 2, cpus: int = 2) -> Iterator[str]:
    """Start ``nodes`` Ray nodes (``cpus`` logical CPUs each, resource ``node<i>: 1``); yields the address."""
    env = {**env, "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    temp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # unix socket paths must stay short
    port = free_port()
    address = f"127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    log = (temp / "nodes.log").open("wb")
    try:
        for i in range(nodes):
            where = (
                ["--head", f"--port={port}", f"--temp-dir={temp}", "--include-dashboard=false"]
                if i == 0
                else [f"--address={address}"]
            )
            cmd = [
                RAY,
                "start",
                "--block",
                "--node-ip-address=127.0.0.1",
                f"--num-cpus={cpus}",
                "--object-store-memory=200000000",
                f'--resources={{"node{i}": 1}}',
                "--disable-usage-stats",
                *where,
                *_ports(),
            ]
            procs.append(
                subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            )
            _wait_nodes(address, env, i + 1)
        yield address
    finally:
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(2)
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)
        log.close()
        if not os.environ.get("HARNESS_KEEP_RAY_TEMP"):
            shutil.rmtree(temp, ignore_errors=True)
