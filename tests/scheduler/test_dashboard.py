"""`harness run --dashboard`: the local Ray instance starts with its dashboard, bound to 127.0.0.1,
and the run prints its URL (Ray's dashboard packages come with the dev extra: harness[dashboard])."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import write_suite

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


def _other_address() -> str | None:
    """An address of this machine that is not loopback (None when it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent: it only picks an interface
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_dashboard_starts_on_loopback_and_its_url_is_printed(tmp_path: Path) -> None:
    suite = write_suite(
        tmp_path,
        {
            "name": "dash",
            "seeds": [0],
            "tasks": [{"name": "fault", "params": {"mode": "sleep", "sleep_s": 0.3}}],
            "architectures": [{"name": "instant"}],
            "trainer": {"max_epochs": 4, "batch_size": 32},
            "measure": {"latency": False, "flops": False, "memory": False},
        },
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    env.update(
        HARNESS_PLUGINS="tests.fault_plugin",
        HARNESS_CACHE_DIR=str(tmp_path / "cache"),
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", str(suite), "--dashboard"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Ray dashboard: "):
                break
        url, _, hint = lines[-1].removeprefix("Ray dashboard: ").strip().partition("  ")
        assert url.startswith("http://127.0.0.1:"), "".join(lines)
        request = urllib.request.Request(f"{url}/api/version")
        if hint:  # Ray's token authentication is on: the printed hint says where the token is
            token_file = Path(hint.rsplit(" ", 1)[1].rstrip(")")).expanduser()
            request.add_header("Authorization", f"Bearer {token_file.read_text().strip()}")
        with urllib.request.urlopen(request, timeout=10) as response:  # it answers
            assert response.status == 200
        other = _other_address()
        if other is not None:  # and only on loopback
            port = int(url.rsplit(":", 1)[1])
            with socket.socket() as sock, pytest.raises(OSError):
                sock.settimeout(2)
                sock.connect((other, port))
        rest = proc.stdout.read()
        assert proc.wait(timeout=240) == 0, "".join(lines) + rest
        assert "1 finished, 0 failed" in rest
    finally:
        proc.kill()
        time.sleep(0.1)
