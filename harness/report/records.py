"""Find the records a report or a comparison is about.

A target is, in the order tried: a suite YAML (its results file; its text gives the suite
hash), a results file (``.jsonl``), a suite name with ``results/<name>.jsonl``, an invocation id
(parent run id) found in a results file, or — through MLflow — a parent run id or an experiment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.records import RunRecord, latest_by_run
from harness.report.context import ReportContext, load_profiles
from harness.tracking.results import ResultsFile, default_results_path


@dataclass
class Selection:
    records: list[RunRecord]
    context: ReportContext
    results_path: Path | None


def _from_file(path: Path, invocation: str | None, suite: str | None) -> list[RunRecord]:
    records = ResultsFile(path).read()
    if suite:
        records = [r for r in records if r.spec.suite in (suite, "?")]
    if invocation:
        records = [r for r in records if r.parent_run_id == invocation]
    return latest_by_run(records)


def select(
    target: str | None,
    results: str | None = None,
    tracking_uri: str | None = None,
    invocation: str | None = None,
) -> Selection:
    """Records and context for ``target`` (see the module docstring); ``invocation`` narrows a
    results file."""
    from harness.tracking.mlflow_store import resolve_uri
    from harness.tracking.query import RUN_ID, invocation_records, parent_info

    uri = resolve_uri(tracking_uri)
    suite_text: str | None = None
    suite: str | None = None
    path: Path | None = Path(results) if results else None
    if target and target.endswith((".yaml", ".yml")):
        if not Path(target).is_file():
            raise HarnessError(f"Suite file {target} not found.")
        from harness.suite import load_suite

        loaded = load_suite(target)  # a broken suite file is reported with its place, like `harness run`
        suite, suite_text = loaded.spec.name, loaded.path.read_text(encoding="utf-8")
        path = path or Path(loaded.spec.tracking.results or default_results_path(suite))
    elif target and target.endswith(".jsonl"):
        path = Path(target)
    elif target and not RUN_ID.match(target) and path is None:
        candidate = Path("results") / f"{target}.jsonl"
        if candidate.is_file():
            path, suite = candidate, target
    elif target and RUN_ID.match(target) and path is None:
        for candidate in sorted(Path("results").glob("*.jsonl")) if Path("results").is_dir() else []:
            # a text search skips the files that cannot hold it; only a candidate is parsed
            if target in candidate.read_text(encoding="utf-8") and any(
                r.parent_run_id == target for r in ResultsFile(candidate).read()
            ):
                path, invocation = candidate, target
                break
    if path is not None:
        if not path.is_file():
            raise HarnessError(
                f"Results file {path} not found: run the suite first (`harness run SUITE`), "
                "or pass --results / a parent run id with --tracking-uri."
            )
        records = _from_file(path, invocation, suite)
        if not records:
            raise HarnessError(
                f"No records in {path}" + (f" for invocation {invocation}" if invocation else "") + "."
            )
        context = ReportContext.from_records(records, suite_text=suite_text, source=str(path))
        if invocation:
            context.invocation = invocation
        info = parent_info(uri, context.invocation) if RUN_ID.match(context.invocation) else {}
        context.command = info.get("command")
        if context.suite_text is None:
            context.suite_text = info.get("suite_text")
        context.profiles = load_profiles(path.parent / "profile", [r.spec.task for r in records])
        return Selection(records, context, path)
    if not target:
        raise HarnessError("Which suite? Pass a suite file, a suite name, a results file or a parent run id.")
    records, info = invocation_records(uri, target)
    context = ReportContext(
        suite=info["suite"],
        invocation=info["invocation"],
        suite_text=info["suite_text"],
        command=info["command"],
        source=uri,
    )
    context.profiles = load_profiles(Path("results") / "profile", [r.spec.task for r in records])
    return Selection(records, context, None)


__all__ = ["Selection", "select"]
