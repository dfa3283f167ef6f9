"""Write the report folder: ``<root>/<invocation>/`` plus a stable ``<root>/latest/`` copy.

``latest`` is a plain copy (not a symlink) so README links and CI artifact paths work on every
file system; ``latest/INVOCATION`` names the invocation it copies.
"""

from __future__ import annotations

import inspect
import re
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.records import RunRecord
from harness.report.context import ReportContext

LATEST = "latest"


def _folder_name(invocation: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", invocation).strip("-") or "invocation"


def write_with(reporter: Any, records: Sequence[RunRecord], out_dir: Path, context: ReportContext) -> Path:
    """Call ``reporter.write``, passing ``context`` only to reporters whose ``write`` accepts it."""
    try:
        accepts = "context" in inspect.signature(reporter.write).parameters
    except (TypeError, ValueError):
        accepts = False
    path: Path = (
        reporter.write(records, out_dir, context=context) if accepts else reporter.write(records, out_dir)
    )
    return path


def write_report_set(
    records: Sequence[RunRecord],
    root: Path,
    context: ReportContext,
    reporters: Sequence[str] | None = None,
    latest: bool = True,
) -> list[Path]:
    """Every selected reporter (None = all installed) writes into ``root/<invocation>/``.

    Reporters are given the final runs only (:func:`harness.report.records.final_records`), so no
    reporter can mix a tuned suite's trials into its comparison; the tuning records travel in
    ``context.tuning_records`` for the tuning section.
    """
    from harness.plugins import get_registry
    from harness.report.records import final_records, tuning_records

    tuning = tuning_records(records)
    if tuning:
        context = replace(context, tuning_records=tuning)
        records = final_records(records)

    registry = get_registry()
    entries = (
        [registry.reporters.get(name, where="reporters") for name in reporters]
        if reporters is not None
        else list(registry.reporters)
    )
    out_dir = root / _folder_name(context.invocation)
    paths = [write_with(entry.obj(), records, out_dir, context) for entry in entries]
    if latest and out_dir.name != LATEST:
        target = root / LATEST
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        shutil.copytree(out_dir, target)
        (target / "INVOCATION").write_text(context.invocation + "\n", encoding="utf-8")
    return paths


__all__ = ["LATEST", "write_report_set", "write_with"]
