"""Where the code of a run comes from: harness's git commit, and plugin source digests.

Recorded with every run (plan-time provenance) so a result can be traced to the code that
produced it. Cheap and cached: one ``git`` call per process, none outside a checkout; each
plugin's source is hashed once per process (:func:`source_digest`, cleared by
:func:`harness.plugins.clear_cache`).

A plugin installed from a wheel is identified by its version. One installed editable or from a
local directory (PEP 610 ``direct_url.json``), or loaded through ``HARNESS_PLUGINS``, can change
without a new version, so the run id also hashes its Python source (see docs/plugin-guide.md).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from importlib.metadata import Distribution
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


#: ``HARNESS_SOURCE_DIGEST=0``: identify every plugin by its version only (as for a wheel install)
DIGEST_SWITCH = "HARNESS_SOURCE_DIGEST"


def digests_enabled() -> bool:
    """False when ``HARNESS_SOURCE_DIGEST`` is ``0``/``off``/``false``/``no``."""
    return os.environ.get(DIGEST_SWITCH, "").strip().lower() not in ("0", "off", "false", "no")


def installed_from_source(dist: Distribution) -> bool:
    """True when ``dist`` was installed editable or from a local directory or file (PEP 610),
    or runs from a source tree.

    pip writes ``direct_url.json`` for a direct-URL install: ``dir_info`` for a directory
    (``"editable": true`` for ``pip install -e``), a ``file://`` url for a local path. A source
    tree on ``sys.path`` (a checkout's root, ``setup.py develop``) is found through setuptools'
    ``<name>.egg-info`` folder (``PKG-INFO``, no ``METADATA``). A wheel from an index has
    neither: its version identifies its code.
    """
    try:
        if dist.read_text("METADATA") is None and dist.read_text("PKG-INFO") is not None:
            return True
        text = dist.read_text("direct_url.json")
        data = json.loads(text) if text else None
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict):
        return False
    url = data.get("url")
    return isinstance(data.get("dir_info"), dict) or (isinstance(url, str) and url.startswith("file:"))


def _python_files(root: Path) -> Iterable[tuple[str, Path]]:
    """``(name, path)`` of every ``.py`` file of ``root`` (a folder, recursively, or one file);
    names are relative to ``root``'s parent, so the digest does not depend on where it lives."""
    if root.is_file():
        yield root.name, root
        return
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        for name in sorted(files):
            if name.endswith(".py"):
                path = Path(folder, name)
                yield path.relative_to(root.parent).as_posix(), path


@functools.cache
def source_digest(roots: tuple[str, ...]) -> str:
    """sha256 (16 hex digits) over the ``.py`` files under ``roots`` (folders or files): each
    file's path relative to its root's parent, then its bytes. Cached per process."""
    digest = hashlib.sha256()
    files = sorted(item for root in roots for item in _python_files(Path(root)))
    for name, path in files:
        try:
            content = path.read_bytes()
        except OSError:  # removed while we walked: hash what is there
            continue
        digest.update(name.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()[:16]


__all__ = ["DIGEST_SWITCH", "digests_enabled", "git_commit", "installed_from_source", "source_digest"]
