"""The plugin author guide (docs/plugin-guide.md) runs as written.

Its fenced blocks are executed in order in an empty folder: ```` ```LANG file=PATH ```` writes
PATH (``append`` adds to it), ```` ```bash run ```` runs each line with this environment's
``harness``, ``python`` and ``pytest`` first on PATH. ``pip install -e .`` installs the package
into this interpreter's environment (``--no-deps --no-build-isolation``); it is uninstalled at
teardown. Blocks without ``file=`` or ``run`` (e.g. publishing) are shown, not run.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.plugins import clear_cache
from tests.helpers import pip_install_editable

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugin-guide.md"
DIST, MODULE = "harness-tinyconv", "harness_tinyconv"
INSTALL = "pip install -e ."
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    lang: str
    file: str | None
    append: bool
    run: bool
    text: str


def guide_blocks(text: str) -> list[Block]:
    blocks = []
    for lang, info, body in FENCE.findall(text):
        words = info.split()
        file = next((w.removeprefix("file=") for w in words if w.startswith("file=")), None)
        blocks.append(Block(lang, file, "append" in words, "run" in words, body))
    return blocks


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def _forget_module() -> None:
    for name in [m for m in sys.modules if m == MODULE or m.startswith(f"{MODULE}.")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    clear_cache()


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """An empty project folder; the guide's package is uninstalled afterwards if it was installed."""
    folder = tmp_path / "harness-tinyconv"
    folder.mkdir()
    try:
        yield folder
    finally:
        if _pip("show", DIST).returncode == 0:
            done = _pip("uninstall", "-y", DIST)
            assert done.returncode == 0, done.stderr
        _forget_module()


def _env(tmp_path: Path) -> dict[str, str]:
    drop = ("HARNESS_PLUGINS", "HARNESS_DISABLE_PLUGINS", "MLFLOW_TRACKING_URI", "RAY_ADDRESS", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HARNESS_CACHE_DIR"] = str(tmp_path / "cache")
    env["COLUMNS"] = "200"
    return env


def _run_line(line: str, cwd: Path, env: dict[str, str]) -> str:
    if line == INSTALL:
        command = pip_install_editable("-e", ".")
    else:
        command = ["bash", "-c", line]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"`{line}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_guide_blocks_are_annotated() -> None:
    blocks = guide_blocks(GUIDE.read_text(encoding="utf-8"))
    files = {b.file for b in blocks if b.file}
    assert {
        "pyproject.toml",
        f"{MODULE}/__init__.py",
        "suites/tiny.yaml",
        "tests/test_tinyconv.py",
        "tests/test_conformance.py",
    } <= files
    commands = [line for b in blocks if b.run for line in b.text.splitlines()]
    assert INSTALL in commands and "harness plugins" in commands
    assert "harness run suites/tiny.yaml --executor local" in commands
    for block in blocks:  # nothing runnable is left unmarked by mistake
        assert block.file or block.run or block.lang in ("bash",), block
    assert "max_epochs: 1" in next(b.text for b in blocks if b.file == "suites/tiny.yaml")


@pytest.mark.slow
def test_guide_runs_as_written(project: Path, tmp_path: Path) -> None:
    env = _env(tmp_path)
    outputs: dict[str, str] = {}
    for block in guide_blocks(GUIDE.read_text(encoding="utf-8")):
        if block.file:
            path = project / block.file
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a" if block.append else "w", encoding="utf-8") as handle:
                handle.write(block.text)
        elif block.run:
            for line in block.text.splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    outputs[line] = _run_line(line.strip(), project, env)

    row = next(line for line in outputs["harness plugins"].splitlines() if line.startswith("│ tinyconv "))
    assert DIST in row and "0.1.0" in row and "tinyconv" in row and "majority" in row
    assert "failed" not in outputs["harness plugins"]
    assert "majority" in outputs["harness list tasks"]
    checks = outputs["harness plugins check harness-tinyconv"]
    assert "architecture tinyconv" in checks and "task majority" in checks and " 0 failed." in checks
    assert "1 finished, 0 failed" in outputs["harness run suites/tiny.yaml --executor local"]
    assert "2 finished, 0 failed" in outputs["harness run suites/majority.yaml --executor local"]
    assert (project / "mlflow.db").exists()
    assert (project / "results" / "majority-tiny.jsonl").exists()
