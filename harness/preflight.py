"""Up-front checks of where `harness run` writes: the results file, the report folder and the
data cache.

A path that cannot be written (``--results /proc/x.jsonl``, a report folder that is a file,
``HARNESS_CACHE_DIR`` pointing at a file) would otherwise fail after every cell has trained, or
fail every cell. These checks run right after planning, before an executor, Ray or MLflow starts:
a missing folder is created to be test-written and removed again, so a refused run leaves no
trace and an accepted one starts from the state it found.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from harness.errors import HarnessError
from harness.suite import Suite

__all__ = ["CACHE_ENV", "check_outputs", "check_run_outputs"]

#: the environment variable that chooses the data cache (see harness.train.trial.default_cache_dir)
CACHE_ENV = "HARNESS_CACHE_DIR"


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first."""
    missing: list[Path] = []
    current = folder
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    return missing


def _folder_problem(folder: Path) -> str | None:
    """Why files cannot be written into ``folder`` (created for the test if missing), or None."""
    if folder.exists() and not folder.is_dir():
        return f"`{folder}` exists and is not a folder"
    missing = _missing_folders(folder)
    if missing:
        parent = missing[-1].parent
        if not parent.is_dir():
            return f"`{parent}` is not a folder"
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle, probe = tempfile.mkstemp(dir=folder, prefix=".harness-write-check-")
            os.close(handle)
            os.unlink(probe)
        except OSError as exc:
            return f"cannot write into `{folder}` ({exc.strerror or exc})"
    finally:
        for created in missing:  # leave no trace: remove what the test created, deepest first
            try:
                created.rmdir()
            except OSError:
                break
    return None


def _results_problem(path: Path) -> str | None:
    if path.is_dir():
        return f"`{path}` is a folder, not a file"
    if path.exists() and not os.access(path, os.W_OK):
        return f"`{path}` exists but is not writable"
    return _folder_problem(path.parent)


def check_outputs(
    results: Path,
    report_dir: Path,
    cache_dir: Path | None,
    *,
    results_origin: str = "--results",
    report_origin: str = "--report-dir",
    cache_origin: str = CACHE_ENV,
) -> None:
    """Raise a :class:`HarnessError` (exit 2) unless ``results`` can be appended to and
    ``report_dir`` and ``cache_dir`` (None: not chosen, nothing to check) can be written into.

    The ``*_origin`` strings say where each path came from (an option, a suite key with its line,
    an environment variable), for the message."""
    problem = _results_problem(Path(results))
    if problem:
        raise HarnessError(
            f"{results_origin}: cannot write the results file `{results}`: {problem}. Pick a writable path "
            "(--results PATH, or `tracking.results` in the suite); nothing was run or recorded."
        )
    problem = _folder_problem(Path(report_dir))
    if problem:
        raise HarnessError(
            f"{report_origin}: cannot write the reports into `{report_dir}`: {problem}. Pick a writable "
            "folder with --report-dir DIR; nothing was run or recorded."
        )
    if cache_dir is not None:
        problem = _folder_problem(Path(cache_dir))
        if problem:
            raise HarnessError(
                f"{cache_origin}: cannot write the data cache into `{cache_dir}`: {problem}. Point "
                f"{CACHE_ENV} at a writable folder (or unset it for ~/.cache/harness); nothing was run or "
                "recorded."
            )


def check_run_outputs(suite: Suite, results: str | None, report_dir: str | None) -> None:
    """:func:`check_outputs` for `harness run SUITE [--results R] [--report-dir D]`, with the
    defaults the runner uses: ``tracking.results``, else ``results/<suite>.jsonl``;
    ``reports/<suite>``; ``$HARNESS_CACHE_DIR`` when set (else each worker uses its own default)."""
    from harness.tracking.results import default_results_path

    spec = suite.spec
    if results:
        results_path, results_origin = Path(results), f"--results {results}"
    elif spec.tracking.results:
        results_path = Path(spec.tracking.results)
        results_origin = suite.source.where(("tracking", "results"))
    else:
        results_path = default_results_path(spec.name)
        results_origin = f"the default results file (`{results_path}`)"
    if report_dir:
        report_path, report_origin = Path(report_dir), f"--report-dir {report_dir}"
    else:
        report_path = Path("reports") / spec.name
        report_origin = f"the default report folder (`{report_path}`)"
    chosen = os.environ.get(CACHE_ENV)
    cache = Path(chosen).expanduser() if chosen else None
    check_outputs(
        results_path,
        report_path,
        cache,
        results_origin=results_origin,
        report_origin=report_origin,
        cache_origin=f"{CACHE_ENV}={chosen}",
    )
