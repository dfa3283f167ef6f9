"""Where the harness itself comes from: its version and, in a git checkout, the commit.

Recorded with every run (plan-time provenance) so a result can be traced to the code that
produced it. Cheap and cached: one ``git`` call per process, none outside a checkout.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

#: the folder holding the ``harness`` package (the checkout root for an editable install)
_ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def git_commit() -> str | None:
    """The commit of the harness checkout (``<sha>-dirty`` with uncommitted changes to tracked
    files), or None when harness is not installed from a git checkout or git is missing."""
    if not (_ROOT / ".git").exists() or shutil.which("git") is None:
        return None
    try:
        sha = subprocess.run(
            ["git", "-C", str(_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = (
            subprocess.run(
                ["git", "-C", str(_ROOT), "diff", "--quiet", "HEAD", "--"],
                capture_output=True,
                timeout=30,
                check=False,
            ).returncode
            == 1
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if sha and dirty else (sha or None)


__all__ = ["git_commit"]
