"""Find the records a report or a comparison is about.

A target is, in the order tried: a suite YAML (its results file; its text gives the suite
hash), a results file (``.jsonl``), a suite name with ``results/<name>.jsonl``, an invocation id
(parent run id) found in a results file, or — through MLflow — a parent run id or an experiment.

With ``--results FILE`` the target is looked up *in that file*: a parent run id selects that
invocation's records, a suite name that suite's latest records. So ``harness compare --results
FILE A B`` selects each side by its own invocation, exactly as without ``--results``.

A tuned suite (``tune:``) records its tuning trials and its untuned ("default") final runs beside
the runs it compares: :func:`final_records` keeps the runs every table, statistic, plot, CSV and
``harness compare`` counts; :func:`tuning_records` the ones the report's tuning section reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.records import RunRecord, latest_by_run
from harness.report.context import ReportContext
from harness.tracking.results import ResultsFile, default_results_path


def is_final(record: RunRecord) -> bool:
    """Whether the main comparison counts ``record``: a run of an untuned suite, or the final run
    of a tuned contender's best configuration (role ``tuned``). Tuning trials (validation only,
    never tested) and the untuned ``default`` runs (shown only as tuned vs default) are not."""
    tuning = record.spec.tuning
    return tuning is None or tuning.role == "tuned"


def final_records(records: Iterable[RunRecord]) -> list[RunRecord]:
    """The records the main comparison counts (see :func:`is_final`), in their order."""
    return [r for r in records if is_final(r)]


def tuning_records(records: Iterable[RunRecord]) -> list[RunRecord]:
    """The records of a tuned suite's tuning (trials, ``tuned`` and ``default`` final runs)."""
    return [r for r in records if r.spec.tuning is not None]


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


def _nothing_in(path: Path, invocation: str | None, suite: str | None) -> str:
    """Why a results file gave no records, with what it does hold (its invocations and suites)."""
    held = ResultsFile(path).read()
    what = " and ".join(
        part
        for part in (f"suite {suite}" if suite else "", f"invocation {invocation}" if invocation else "")
        if part
    )
    message = f"No records in {path}" + (f" for {what}" if what else "") + "."
    if not held:
        return message + " The file is empty: run the suite first (`harness run SUITE --results FILE`)."
    invocations = list(dict.fromkeys(r.parent_run_id or "?" for r in held))
    suites = sorted({r.spec.suite for r in held})
    shown = ", ".join(invocations[-8:]) + (
        f" (and {len(invocations) - 8} older)" if len(invocations) > 8 else ""
    )
    return (
        message
        + f" It holds suite(s) {', '.join(suites)} and invocation(s) (parent run ids, oldest first) {shown}. "
        "Pass one of those, or leave out --results to look the target up in MLflow (--tracking-uri)."
    )


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
        if path is not None and path.resolve() != Path(target).resolve():
            raise HarnessError(
                f"Two results files: the target {target} and --results {path}. "
                "Pass one: a results file as the target, or --results with a parent run id or suite name."
            )
        path = Path(target)
    elif target and RUN_ID.match(target):
        if invocation and invocation != target:
            raise HarnessError(
                f"Two invocations: the target {target} and --invocation {invocation}. Pass one of them."
            )
        if path is not None:  # an invocation of the given results file
            invocation = target
        else:
            for candidate in sorted(Path("results").glob("*.jsonl")) if Path("results").is_dir() else []:
                # a text search skips the files that cannot hold it; only a candidate is parsed
                if target in candidate.read_text(encoding="utf-8") and any(
                    r.parent_run_id == target for r in ResultsFile(candidate).read()
                ):
                    path, invocation = candidate, target
                    break
    elif target:  # a suite name: its records in the given results file, or in results/<name>.jsonl
        if path is not None:
            suite = target
        else:
            candidate = default_results_path(target)
            if candidate.is_file():
                path, suite = candidate, target
    if path is not None:
        if not path.is_file():
            raise HarnessError(
                f"Results file {path} not found: run the suite first (`harness run SUITE`), "
                "or pass --results / a parent run id with --tracking-uri."
            )
        records = _from_file(path, invocation, suite)
        if not records:
            raise HarnessError(_nothing_in(path, invocation, suite))
        context = ReportContext.from_records(records, suite_text=suite_text, source=str(path))
        if invocation:
            context.invocation = invocation
        info = parent_info(uri, context.invocation) if RUN_ID.match(context.invocation) else {}
        context.command = info.get("command")
        if context.suite_text is None:
            context.suite_text = info.get("suite_text")
        context.load_profiles(path.parent / "profile", [r.spec.task for r in records])
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
    context.load_profiles(Path("results") / "profile", [r.spec.task for r in records])
    return Selection(records, context, None)


__all__ = ["Selection", "final_records", "is_final", "select", "tuning_records"]
