"""Type-check the project the way CI does (``tox -e type`` runs this script).

Checks ``harness/``, ``benchmarks/`` and ``scripts/`` strict and the built-in plugins in the mode
that ``[tool.mypy]`` in pyproject.toml gives them, in one mypy run.

Why a script and not a bare ``mypy``: mypy names a module after its folder, but ``plugins/`` is the
package ``harness_builtins`` (``[tool.setuptools.package-dir]``), and the editable install maps it
with an import hook that mypy cannot follow. Checked as ``plugins/`` its absolute imports
(``from harness_builtins.tasks import ...``) would not resolve. So the script checks ``plugins/``
through a symlink named ``harness_builtins`` under ``.mypy_cache/`` (git-ignored) and prints
mypy's paths back as ``plugins/...``.

Usage: python scripts/typecheck.py [mypy options]   e.g. ``--no-incremental``
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: strict (the [tool.mypy] defaults); the built-ins come on top through the symlink
TARGETS = ["harness", "benchmarks", "scripts"]
LINK = Path(".mypy_cache", "src", "harness_builtins")


def _link_plugins() -> Path:
    """``.mypy_cache/src/harness_builtins`` → ``plugins/`` (made or repaired; relative to ROOT)."""
    link, plugins = ROOT / LINK, ROOT / "plugins"
    if link.is_symlink() and link.resolve() == plugins.resolve():
        return LINK
    if link.is_symlink() or link.exists():
        link.unlink()
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(plugins, link.parent), target_is_directory=True)
    return LINK


def main(argv: list[str]) -> int:
    link = _link_plugins()
    cmd = [sys.executable, "-m", "mypy", *argv, *TARGETS, str(link)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    prefix = f"{link.as_posix()}/"
    sys.stdout.write(proc.stdout.replace(prefix, "plugins/"))
    sys.stderr.write(proc.stderr.replace(prefix, "plugins/"))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
