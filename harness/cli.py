"""The `harness` command: thin click commands over library functions.

Imports here stay light (click only at module level) so `harness --help` is
fast; torch, lightning, ray and mlflow load only inside the commands that need
them.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from harness import __version__, completion
from harness.completion import ONLY_KEYS
from harness.scheduler import EXECUTORS


class HarnessGroup(click.Group):
    """Prints HarnessError messages without a traceback and exits with their code."""

    def invoke(self, ctx: click.Context) -> Any:
        from harness.errors import HarnessError
        from harness.interrupts import Interrupted

        try:
            return super().invoke(ctx)
        except HarnessError as exc:
            if ctx.meta.get("harness.traceback"):
                raise
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except (KeyboardInterrupt, Interrupted) as exc:
            # Ctrl-C (or SIGTERM/SIGHUP) before a suite started running, or in a command that only
            # reads: nothing was recorded. 128 + the signal, as a shell reports it (not click's
            # "Aborted!" with exit code 1)
            stop = exc if isinstance(exc, Interrupted) else Interrupted()
            click.echo(f"Interrupted ({stop.how}).", err=True)
            ctx.exit(stop.exit_code)


def _console() -> Any:
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:  # logs and CI: don't squeeze tables into 80 columns
        from typing import IO, cast

        from harness.console import PlainWriter

        # and no raw colour codes: rich adds none off a terminal, text that carries some (an error
        # a library coloured) loses them on the way out
        plain = cast("IO[str]", PlainWriter(sys.stdout))
        console = Console(highlight=False, width=max(console.width, 140), file=plain)
    return console


def _parse_only(values: tuple[str, ...]) -> dict[str, set[str]]:
    from harness.errors import HarnessError

    only: dict[str, set[str]] = {}
    for value in values:
        key, sep, name = value.partition("=")
        if not sep or key not in ONLY_KEYS or not name:
            raise HarnessError(f"--only {value!r}: write --only task=NAME or --only arch=NAME (repeatable).")
        only.setdefault(ONLY_KEYS[key], set()).update(n for n in name.split(",") if n)
    return only


def _resources(gpus: float | None, cpus: float | None) -> dict[str, float]:
    import math

    from harness.errors import HarnessError

    for flag, value in (("--gpus", gpus), ("--cpus", cpus)):
        if value is not None and not math.isfinite(value):
            raise HarnessError(f"{flag} {value}: give a finite number of {flag[2:].upper()}s per run.")
    if gpus is not None and gpus > 1 and not float(gpus).is_integer():
        raise HarnessError(f"--gpus {gpus}: above 1 it must be a whole number (fractions share one GPU).")
    return {k: v for k, v in (("gpus", gpus), ("cpus", cpus)) if v is not None}


def _check_dashboard(dashboard: bool, executor: str, address: str | None, console: Any) -> None:
    """--dashboard needs a Ray instance of our own; refuse or explain before anything starts."""
    from harness.errors import HarnessError

    if not dashboard:
        return
    if executor != "ray":
        raise HarnessError(
            f"--dashboard shows the Ray dashboard, but --executor {executor} runs the cells in this "
            "process, without Ray. Drop --dashboard, or use --executor ray (the default)."
        )
    if address:
        console.print(
            f"note: --dashboard: joining the Ray cluster at {address}, so no local dashboard is "
            "started; use the cluster's own dashboard (served by its head node, by default on port 8265)."
        )


def _report_summary(paths: list[Any]) -> str:
    """``reports/S/latest/index.html (+ report.md, results.csv; this invocation: reports/S/<id>/)``."""
    if not paths:
        return "none (no reporter selected)"
    folder = paths[0].parent
    latest = folder.parent / "latest"
    names = [p.name for p in paths]
    shown = latest if latest.is_dir() else folder
    first = next((n for n in names if n.endswith(".html")), names[0])
    rest = [n for n in names if n != first]
    extra = f" (+ {', '.join(rest)}" if rest else " ("
    return f"{shown / first}{extra}{'; ' if rest else ''}this invocation: {folder}/)"


def _warn_plugins(console: Any) -> None:
    from harness.plugins import get_registry

    for warning in get_registry().warnings:
        console.print(f"[yellow]warning:[/] {warning}")


completion.register_bash()  # our bash script: `--only task=NAME` despite COMP_WORDBREAKS


@click.group(cls=HarnessGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="harness")
@click.option("--traceback", is_flag=True, help="Show the full traceback of errors (for bug reports).")
@click.pass_context
def main(ctx: click.Context, traceback: bool) -> None:
    """Benchmark sequence models: suites of tasks × architectures × grids × seeds,
    trained with Lightning, scheduled on Ray, tracked in MLflow."""
    ctx.meta["harness.traceback"] = traceback


@main.command()
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option(
    "--only",
    multiple=True,
    metavar="task=NAME|arch=NAME",
    shell_complete=completion.complete_only,
    help="Run only matching cells (repeatable).",
)
@click.option(
    "--executor",
    type=click.Choice(EXECUTORS),
    default="ray",
    show_default=True,
    help="ray (local instance or --address) or local (in-process).",
)
@click.option("--address", envvar="RAY_ADDRESS", help="Ray cluster to join (default: start a local one).")
@click.option(
    "--dashboard",
    is_flag=True,
    help="Start the local Ray instance with its dashboard on 127.0.0.1 and print its URL (off by "
    "default: it adds start-up time). Not with --executor local; with --address the cluster's own "
    "dashboard is used.",
)
@click.option(
    "--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI (default: sqlite:///mlflow.db)."
)
@click.option(
    "--results",
    type=click.Path(dir_okay=False),
    help="JSON-lines results file (default: results/<suite>.jsonl).",
)
@click.option(
    "--rerun",
    is_flag=True,
    help="Run every cell again, even those finished before (in the results file or MLflow).",
)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False),
    help="Where summary reports go (default: reports/<suite>).",
)
@click.option(
    "--gpus",
    type=click.FloatRange(min=0),
    help="GPUs per run, overriding the suite's resources (0: run on CPU).",
)
@click.option(
    "--cpus",
    type=click.FloatRange(min=0, min_open=True),
    help="CPUs per run, overriding the suite's resources.",
)
@click.option(
    "--timings",
    "show_timings",
    is_flag=True,
    help="After the summary, show where this invocation's wall time went (start-up, imports, "
    "suite, MLflow, Ray, each run's setup / fit / test, report), measured.",
)
def run(
    suite: str,
    only: tuple[str, ...],
    executor: str,
    address: str | None,
    dashboard: bool,
    tracking_uri: str | None,
    results: str | None,
    rerun: bool,
    report_dir: str | None,
    gpus: float | None,
    cpus: float | None,
    show_timings: bool,
) -> None:
    """Run every cell of SUITE and record it in MLflow.

    Exit code 0: all runs finished; 1: some runs failed; 2: bad input; 130 / 143 / 129:
    interrupted by Ctrl-C / SIGTERM / SIGHUP (running cells are recorded as killed; run the same
    command again to resume).
    """
    from harness.timings import Timings

    timings = Timings()  # the time before this line is the start-up row
    from harness.heap import freeze_at_exit, paused_gc

    freeze_at_exit()  # Python's exit skips the collector's passes over torch, Lightning, MLflow
    with paused_gc():  # import-heavy: see harness.heap
        with timings.span("imports: harness driver"):
            from rich.text import Text

            from harness.console import summary_table, timings_table, tuning_table, verdict_lines
            from harness.report.summary import summarize
            from harness.runner import RunOptions, SuiteInterrupted, plan_suite, run_plan
            from harness.tracking.mlflow_store import ui_link

        console = _console()
        _check_dashboard(dashboard, executor, address, console)
        with timings.span("plugins: discovery and imports"):
            _warn_plugins(console)
        with timings.span("suite: load, validate, plan"):
            plan = plan_suite(suite, _parse_only(only), _resources(gpus, cpus))
            from harness.preflight import check_run_outputs  # before Ray, MLflow or anything is recorded

            check_run_outputs(plan.suite, results, report_dir)
    options = RunOptions(
        executor=executor,
        address=address,
        tracking_uri=tracking_uri,
        results=results,
        rerun=rerun,
        report_dir=report_dir,
        dashboard=dashboard and not address,  # a cluster serves its own dashboard
        timings=timings,
    )
    console.print(
        f"Suite [bold]{plan.suite.spec.name}[/]: {len(plan.runnable)} runs "
        f"({len(plan.skipped)} skipped) on executor `{executor}`"
    )
    results_path, uri = _destinations(plan.suite.spec, results, tracking_uri)
    console.print(f"Results go to {results_path} and MLflow {uri}", style="dim")
    try:
        outcome = run_plan(plan, options, console)
    except SuiteInterrupted as stop:
        console.print(
            f"[yellow]Interrupted ({stop.how}):[/] {stop.killed} running cell(s) cancelled and recorded "
            f"as killed, {len(stop.results) - stop.killed} recorded before, {stop.unscheduled} not started."
        )
        console.print(
            f"Resume with `harness run {suite}` (finished cells are skipped; "
            "killed and failed ones run again)."
        )
        sys.exit(stop.exit_code)
    with timings.span("summary: statistics, console"):
        in_plan = {c.run_id for c in plan.cells}
        pairs = {f"{c.task_label} × {c.arch_label}" for c in plan.cells}  # a tuned suite's runs: by pair
        records = [
            r
            for r in outcome.records
            if r.run_id in in_plan or (r.spec.tuning is not None and r.spec.tuning.contender in pairs)
        ]
        summary = summarize(records)
        console.print(summary_table(summary, title=f"{plan.suite.spec.name}: primary test metric over seeds"))
        console.print(verdict_lines(summary))
        tuning = tuning_table(outcome.records)  # None unless the suite has tuning trials
        if tuning is not None:
            console.print(tuning)
        for cell in outcome.skipped_cells:
            console.print(Text(f"skipped {cell.label}: {cell.skip_reason}", style="dim"))
        failed = outcome.failed
        console.print(
            f"{len(outcome.finals) - failed} finished, {failed} failed, {len(outcome.skipped_cells)} skipped"
            + (f", {outcome.resumed} already done" if outcome.resumed else "")
            + (f"; {outcome.trials} tuning trial(s)" if outcome.trials else "")
            + (f", {outcome.unstarted} not started (deadline)" if outcome.unstarted else "")
            + "."
        )
        console.print(f"Results: {outcome.results_path}  Report: {_report_summary(outcome.reports)}")
        link = ui_link(outcome.tracking_uri, outcome.experiment_id)
        console.print(f"MLflow ({outcome.tracking_uri}): {link}")
    if show_timings:
        console.print(timings_table(timings))
    sys.exit(1 if failed or outcome.unstarted else 0)


def _destinations(spec: Any, results: str | None, tracking_uri: str | None) -> tuple[Any, str]:
    """Where a suite's records go: its results file and MLflow store (CLI over suite over default)."""
    from harness.tracking.mlflow_store import resolve_uri
    from harness.tracking.results import default_results_path

    path = results or spec.tracking.results or default_results_path(spec.name)
    return path, resolve_uri(tracking_uri or spec.tracking.uri)


@main.command()
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option(
    "--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow store (default: sqlite:///mlflow.db)."
)
@click.option(
    "--results",
    type=click.Path(dir_okay=False),
    help="Results file (default: the suite's tracking.results, else results/<suite>.jsonl).",
)
def sync(suite: str, tracking_uri: str | None, results: str | None) -> None:
    """Make SUITE's results file and MLflow agree, without running anything.

    Logs into MLflow the records it lacks (the tracking server was down mid-suite), completes the
    child runs left RUNNING for them, appends to the results file the finished runs only MLflow
    has, and closes as KILLED the runs a dead driver left RUNNING. `harness run` does the same
    before it starts; running it twice adds nothing.
    """
    from harness.runner import plan_suite
    from harness.tracking.mlflow_store import MlflowTracker
    from harness.tracking.reconcile import reconcile
    from harness.tracking.results import ResultsFile

    plan = plan_suite(suite)
    spec = plan.suite.spec
    path, uri = _destinations(spec, results, tracking_uri)
    results_file = ResultsFile(path)
    with results_file.locked():
        tracker = MlflowTracker(uri, spec.tracking.experiment or spec.name)
        tracker.connect()
        outcome = reconcile(tracker, results_file, spec.name, plan.cells)
    click.echo(f"{path} and MLflow ({uri}): " + (outcome.describe() or "already in agreement") + ".")
    skipped = results_file.describe_unreadable()
    if skipped:
        click.echo(f"warning: {skipped}", err=True)
    if outcome.failed:
        sys.exit(1)


@main.command()
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option(
    "--only",
    multiple=True,
    metavar="task=NAME|arch=NAME",
    shell_complete=completion.complete_only,
    help="Show only matching cells.",
)
@click.option("--gpus", type=click.FloatRange(min=0), help="GPUs per run, overriding the suite's resources.")
@click.option(
    "--cpus",
    type=click.FloatRange(min=0, min_open=True),
    help="CPUs per run, overriding the suite's resources.",
)
@click.option(
    "--tracking-uri",
    envvar="MLFLOW_TRACKING_URI",
    help="MLflow store `harness run` would use (default: sqlite:///mlflow.db); read, never written.",
)
@click.option(
    "--results",
    type=click.Path(dir_okay=False),
    help="Results file `harness run` would use (default: results/<suite>.jsonl).",
)
@click.option("--rerun", is_flag=True, help="Count finished cells as to run, as `harness run --rerun` would.")
def validate(
    suite: str,
    only: tuple[str, ...],
    gpus: float | None,
    cpus: float | None,
    tracking_uri: str | None,
    results: str | None,
    rerun: bool,
) -> None:
    """Check SUITE and print its plan without running: each cell runs, is skipped (with the
    reason), or is already done (finished before, in the results file or MLflow), exactly as
    `harness run` with the same options would treat it."""
    from rich.table import Table
    from rich.text import Text

    from harness.plan_status import finished_in_mlflow, plan_status, previous_records
    from harness.runner import plan_suite

    console = _console()
    _warn_plugins(console)
    plan = plan_suite(suite, _parse_only(only), _resources(gpus, cpus))
    in_mlflow, problem = (set(), None) if rerun else finished_in_mlflow(plan, tracking_uri)
    if problem:
        console.print(Text.assemble(("warning: ", "yellow"), problem))
    status = plan_status(plan, [] if rerun else previous_records(plan, results), in_mlflow, rerun)
    table = Table(title=f"{plan.suite.spec.name}: plan")
    for column in ("run id", "task", "architecture", "seed", "status"):
        table.add_column(column)
    for cell in status.cells:
        shown = {"run": "run", "done": f"done: {cell.reason}", "skip": f"skip: {cell.reason}"}
        table.add_row(
            cell.cell.run_id,
            Text(cell.cell.task_label),
            Text(cell.cell.arch_label),
            str(cell.cell.seed),
            Text(shown[cell.action], style="dim" if cell.action == "done" else ""),
        )
    console.print(table)
    _print_budget(console, plan)
    _print_tuning(console, plan)
    spec = plan.suite.spec
    done = len(status.done)
    console.print(
        f"{len(plan.cells)} cells: {len(status.to_run)} to run, {len(status.skipped)} skipped"
        + (f", {done} already done" if done else "")
        + f" ({len(spec.tasks)} task entries × {len(spec.architectures)} architecture entries × "
        f"grid × {len(spec.seeds)} seed(s)). Suite is valid."
    )
    if done:
        console.print(f"`harness run` skips the {done} finished cell(s); --rerun runs them again.")


def _print_tuning(console: Any, plan: Any) -> None:
    """The tuning plan (`tune:` in the suite): per task and architecture its trials and space."""
    from rich.table import Table
    from rich.text import Text

    from harness.plugins import get_registry
    from harness.tuning import plan_contenders

    tune = plan.suite.spec.tune
    if tune is None:
        return
    contenders = plan_contenders(plan.runnable, tune, get_registry())
    budget = tune.trials_per_architecture or "as many as fit"
    limit = f", at most {tune.time_per_architecture:g} s" if tune.time_per_architecture else ""
    table = Table(title=f"{plan.suite.spec.name}: tuning ({tune.search} search, scheduler {tune.scheduler})")
    for column in ("task × architecture", "trials", "search space", "final runs"):
        table.add_column(column)
    for contender in contenders:
        targets = sorted(contender.space.items())
        space = "\n".join(f"{target}: {domain.describe()}" for target, domain in targets)
        finals = len(contender.cells) * (2 if tune.compare_default else 1)
        table.add_row(Text(contender.key), f"{budget}{limit}", Text(space), str(finals))
    console.print(table)
    console.print(
        f"Trials train with seed {tune.seed} and are validated only (val_<primary metric>); then each "
        "best configuration runs over the suite's seeds and is tested"
        + (", beside the suite's own configuration (tuned vs default)." if tune.compare_default else ".")
    )


def _print_budget(console: Any, plan: Any) -> None:
    """The parameter budget's table (`budget:` in the suite): per task and architecture the chosen
    width, the exact parameter count and its share of the budget."""
    from rich.table import Table
    from rich.text import Text

    from harness.budget import sizing_note

    spec = plan.suite.spec
    if spec.budget is None and all(t.budget is None for t in spec.tasks):
        return
    budgeted = {c.task_label for c in plan.cells if c.sizing is not None}
    table = Table(title=f"{spec.name}: parameter budget")
    for column in ("task", "architecture", "width", "parameters", "% of budget", "note"):
        table.add_column(column, justify="right" if column in ("parameters", "% of budget") else "left")
    seen: set[tuple[str, str]] = set()
    for cell in plan.cells:
        key = (cell.task_label, cell.arch_label)
        if key in seen or cell.task_label not in budgeted:
            continue
        seen.add(key)
        sizing = cell.sizing
        if sizing is None:
            why = "skipped" if cell.skip_reason else "not sized (declares no width, or budget: false)"
            table.add_row(Text(cell.task_label), Text(cell.arch_label), "", "", "", Text(why, style="dim"))
            continue
        value = cell.arch_params[sizing.width]
        table.add_row(
            Text(cell.task_label),
            Text(cell.arch_label),
            Text(f"{sizing.width} = {value}"),
            f"{sizing.params:,} / {sizing.budget:,}",
            f"{sizing.fraction:.1%}",
            Text(sizing_note(sizing, value)),
        )
    if seen:
        console.print(table)
    else:
        console.print("Parameter budget: no cell of this suite was sized (no architecture declares a width).")


@main.command()
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option(
    "--only",
    multiple=True,
    metavar="task=NAME|arch=NAME",
    shell_complete=completion.complete_only,
    help="Prepare only matching cells' tasks.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    envvar="HARNESS_CACHE_DIR",
    help="Data cache (default: $HARNESS_CACHE_DIR or ~/.cache/harness).",
)
def prepare(suite: str, only: tuple[str, ...], cache_dir: str | None) -> None:
    """Build and cache the data of every task in SUITE, ahead of `harness run`.

    Exit code 0: all data ready; 1: some task's data could not be built.
    """
    from pathlib import Path

    from rich.text import Text

    from harness.prepare import prepare_plan
    from harness.runner import plan_suite
    from harness.train.trial import default_cache_dir

    console = _console()
    _warn_plugins(console)
    plan = plan_suite(suite, _parse_only(only))
    cache = Path(cache_dir).resolve() if cache_dir else default_cache_dir()

    def show(item: Any) -> None:
        if item.unavailable:
            console.print(
                Text.assemble(("skipped ", "yellow"), f"{item.task}: unavailable: {item.unavailable}")
            )
        elif item.error:
            console.print(Text.assemble(("✗ ", "red"), f"{item.task}: {item.error}"))
        else:
            console.print(Text.assemble(("✓ ", "green"), f"{item.task} ({item.seconds:.1f} s)"))

    done = prepare_plan(plan, cache, show)
    failed = sum(1 for item in done if item.error)
    ready = sum(1 for item in done if not item.error and not item.unavailable)
    console.print(f"{ready} task data sets ready in {cache}" + (f", {failed} failed." if failed else "."))
    sys.exit(1 if failed else 0)


@main.group(invoke_without_command=True)
@click.pass_context
def plugins(ctx: click.Context) -> None:
    """List installed plugins, their versions and what each registers.

    `harness plugins check DIST_OR_MODULE` runs the conformance checks on one of them.
    """
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table
    from rich.text import Text

    from harness.plugins import get_registry

    registry = get_registry()
    console = _console()
    table = Table(title="harness plugins")
    for column in ("plugin", "distribution", "version", "registers"):
        table.add_column(column)
    for info in registry.plugins:
        what = Text("; ".join(f"{kind}: {', '.join(names)}" for kind, names in info.registered.items()))
        for conflict in info.conflicts:  # names another plugin registered first: refused
            what.append(
                f"{'; ' if what else ''}refused {conflict.singular} `{conflict.name}` "
                f"(registered first by {conflict.kept})",
                style="yellow",
            )
        table.add_row(
            info.name,
            info.distribution,
            info.version,
            Text(f"{info.status}: {info.error}", style="red") if info.error else what,
        )
    console.print(table)
    for warning in registry.warnings:  # a contested name fails only the suites that use it
        console.print(Text.assemble(("warning: ", "yellow"), warning))


@plugins.command(name="check")
@click.argument("target", metavar="DIST_OR_MODULE")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(["architectures", "tasks", "metrics", "reporters"]),
    help="Check only components of this kind (repeatable; default: every kind).",
)
def plugins_check(target: str, kinds: tuple[str, ...]) -> None:
    """Run the conformance checks on every component an installed plugin registers.

    DIST_OR_MODULE: a distribution (harness-example-plugin), a plugin module
    (harness_example_plugin) or an entry-point name, as `harness plugins` lists them. Tasks
    are checked with their default params (their data are built in a temporary folder).

    Exit code 0: every check passed; 1: some check failed; 2: no such plugin.
    """
    from rich.table import Table
    from rich.text import Text

    from harness.testing import check_plugin

    console = _console()
    with console.status(f"Checking {target}..."):
        results = check_plugin(target, kinds=kinds or None)
    table = Table(title=f"harness plugins check {target}")
    for column in ("component", "check", "result", "detail"):
        table.add_column(column)
    for r in results:
        table.add_row(
            Text(r.component),
            Text(r.check),
            Text("pass", style="green") if r.passed else Text("FAIL", style="bold red"),
            Text(r.detail),
        )
    console.print(table)
    failed = [r for r in results if not r.passed]
    console.print(f"{len(results)} checks: {len(results) - len(failed)} passed, {len(failed)} failed.")
    sys.exit(1 if failed else 0)


@main.group(name="plugin")
def plugin_group() -> None:
    """Write your own plugin: `harness plugin new NAME` makes a pip-installable project."""


@plugin_group.command(name="new")
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(["architecture", "task", "metric", "reporter"]),
    default="architecture",
    show_default=True,
    help="What the plugin registers (the example it starts from).",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Folder in which the project folder harness-NAME is created.",
)
def plugin_new(name: str, kind: str, directory: str) -> None:
    """Create harness-NAME/: a plugin package (import name harness_NAME) with a working
    example KIND, its conformance tests, a README and an example suite.

    NAME: lowercase letters, digits, `_` or `-` (e.g. my_conv). Exit code 2: bad name,
    name taken, or the folder exists.
    """
    from harness.scaffold import article, create_plugin, next_steps

    target = create_plugin(name, kind, directory)
    click.echo(f"Wrote {article(kind)} {kind} plugin to {target}")
    for path in sorted(p for p in target.rglob("*") if p.is_file()):
        click.echo(f"  {path.relative_to(target).as_posix()}")
    click.echo("Next steps:")
    for step in next_steps(target, name):
        click.echo(f"  {step}")


@main.command(name="list")
@click.argument("kind", type=click.Choice(["architectures", "tasks", "metrics", "reporters", "hooks"]))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown"]),
    default="table",
    show_default=True,
    help="markdown: the reference page (docs/<kind>.md is generated this way).",
)
def list_(kind: str, fmt: str) -> None:
    """List registered architectures, tasks, metrics or reporters, with their parameters
    (or the plugin hooks: `harness list hooks`)."""
    from rich.table import Table

    from harness.introspect import describe_params, hook_docs, hooks_markdown, reference_markdown
    from harness.plugins import get_registry

    if kind == "hooks":
        if fmt == "markdown":
            click.echo(hooks_markdown(), nl=False)
            return
        hooks = Table(title="harness hooks", show_lines=True)
        for column in ("hook", "runs in", "since API", "description"):
            hooks.add_column(column)
        for hook in hook_docs():
            hooks.add_row(hook["signature"], hook["runs_in"], hook["since"], hook["doc"].split("\n\n")[0])
        _console().print(hooks)
        return
    registry = get_registry()
    if fmt == "markdown":
        click.echo(reference_markdown(kind, registry.namespace(kind)), nl=False)
        return
    console = _console()
    table = Table(title=f"harness {kind}", show_lines=True)
    for column in ("name", "provider", "description", "parameters"):
        table.add_column(column)
    namespace = registry.namespace(kind)
    for entry in namespace:
        provider = str(entry.provenance)
        for conflict in namespace.contested.get(entry.name, []):  # see the warning below the table
            provider += f"\ncontested by {conflict.refused}: suites cannot use it"
        table.add_row(entry.name, provider, entry.description, describe_params(entry.obj))
    console.print(table)
    _warn_plugins(console)


@main.command()
@click.argument(
    "target",
    required=False,
    metavar="[SUITE | RESULTS.jsonl | RUN_ID | EXPERIMENT]",
    shell_complete=completion.complete_file,
)
@click.option(
    "--results",
    type=click.Path(dir_okay=False),
    help="Results file to read (default: results/<suite>.jsonl).",
)
@click.option("--invocation", help="Only records of this invocation (parent run id) of the results file.")
@click.option(
    "--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow store for RUN_ID / EXPERIMENT targets."
)
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), help="Report root (default: reports/<suite>)."
)
@click.option(
    "--reporter",
    "reporters",
    multiple=True,
    shell_complete=completion.completer("reporters"),
    help="Only these reporters (repeatable; default: all installed).",
)
def report(
    target: str | None,
    results: str | None,
    invocation: str | None,
    tracking_uri: str | None,
    out_dir: str | None,
    reporters: tuple[str, ...],
) -> None:
    """Write the report (index.html, report.md, results.csv) of a suite's runs.

    TARGET: a suite file or name (its results file: every run's latest record), a results
    file, a parent run id (one invocation, all its runs) or an MLflow experiment (every cell's
    latest run, leaving out runs a --rerun superseded). An invocation without runs is an error.
    Output: <out>/<invocation>/ and a copy in <out>/latest/.
    """
    from pathlib import Path

    from harness.report.output import write_report_set
    from harness.report.records import select

    selection = select(target, results, tracking_uri, invocation)
    root = Path(out_dir) if out_dir else Path("reports") / selection.context.suite
    paths = write_report_set(selection.records, root, selection.context, list(reporters) or None)
    click.echo(
        f"Report of {selection.context.suite} ({len(selection.records)} runs, invocation "
        f"{selection.context.invocation}):"
    )
    for path in paths:
        click.echo(f"  {path}")
    click.echo(f"  (copied to {root / 'latest'})")


@main.command()
@click.argument("a", metavar="A", shell_complete=completion.complete_file)
@click.argument("b", metavar="B", shell_complete=completion.complete_file)
@click.option("--results", type=click.Path(dir_okay=False), help="Results file holding both invocations.")
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow store for run-id targets.")
@click.option(
    "--min-effect",
    type=click.FloatRange(min=0),
    help="Relative change that counts when a side has one seed (e.g. 0.05).",
)
@click.option(
    "--fail-on-cost", is_flag=True, help="Exit 1 on cost regressions (throughput, latency, memory) too."
)
@click.option(
    "--paired",
    is_flag=True,
    help="Pair runs by seed: a paired t-test over the seeds both sides ran (default: Welch's t-test).",
)
def compare(
    a: str,
    b: str,
    results: str | None,
    tracking_uri: str | None,
    min_effect: float | None,
    fail_on_cost: bool,
    paired: bool,
) -> None:
    """Compare two invocations of a suite (before → after): per-cell deltas and verdicts.

    A and B: results files, suite names (their latest runs), or parent run ids (one invocation
    each; with --results, invocations of that file). Verdicts come from the seed spread (Welch
    t-test over seeds, or with --paired a paired t-test over shared seeds; Holm-corrected over
    cells, α=0.05); one seed cannot be judged unless --min-effect is given.

    Exit code 0: no regression; 1: the primary metric regressed in some cell (or a cost,
    with --fail-on-cost); 2: bad input (a side without records, the same runs on both sides,
    no cell in common).
    """
    from rich.table import Table
    from rich.text import Text

    from harness.report.compare import check_comparable, environment_warnings
    from harness.report.compare import compare as compare_runs
    from harness.report.records import select
    from harness.report.tables import number

    before, after = select(a, results, tracking_uri), select(b, results, tracking_uri)
    check_comparable(before.records, after.records, paired, names=(a, b))
    console = _console()
    if before.context.suite != after.context.suite:
        console.print(
            f"[yellow]warning:[/] different suites: {before.context.suite} vs {after.context.suite}"
        )
    for warning in environment_warnings(before.records, after.records):
        console.print(f"[yellow]warning:[/] environments differ: {warning}")
    deltas = compare_runs(before.records, after.records, min_effect, paired=paired)
    table = Table(
        title=f"{before.context.suite}: A {before.context.invocation} → B {after.context.invocation}"
    )
    for column in (
        "task",
        "architecture",
        "metric",
        "A (mean, n)",
        "B (mean, n)",
        "Δ",
        "p (paired t, pairs)" if paired else "p (Welch)",
        "verdict",
    ):
        table.add_column(column)
    styles = {"improved": "green", "regressed": "bold red"}
    for d in deltas:
        table.add_row(
            Text(d.task),
            Text(d.arch),
            f"{d.metric} {'↑' if d.direction == 'max' else '↓'}",
            f"{number(d.mean_a)} ({len(d.a)})",
            f"{number(d.mean_b)} ({len(d.b)})",
            number(d.delta),
            f"{number(d.pvalue, 2)} ({d.pairs} pairs)" if paired else number(d.pvalue, 2),
            Text(d.verdict, style=styles.get(d.verdict, "")),
        )
    console.print(table)
    primary = {(d.task, d.arch): d.metric for d in deltas if d.metric not in {k for k, _ in _cost_keys()}}
    regressed = [
        d
        for d in deltas
        if d.verdict == "regressed" and (fail_on_cost or primary.get((d.task, d.arch)) == d.metric)
    ]
    counts = {v: sum(1 for d in deltas if d.verdict == v) for v in ("improved", "regressed", "unchanged")}
    console.print(", ".join(f"{n} {v}" for v, n in counts.items()) + f" (of {len(deltas)} comparisons).")
    sys.exit(1 if regressed else 0)


def _cost_keys() -> tuple[tuple[str, bool], ...]:
    from harness.report.compare import COST_KEYS

    return COST_KEYS


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@main.command()
@click.argument("suite", required=False, shell_complete=completion.complete_file)
@click.option("--port", type=int, default=0, help="Port (default: a free one).")
@click.option(
    "--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow store (default: sqlite:///mlflow.db here)."
)
def ui(suite: str | None, port: int, tracking_uri: str | None) -> None:
    """Start the MLflow UI on the suite's store, bound to 127.0.0.1; Ctrl-C stops it.

    SUITE: a suite file or name; the printed link opens its runs table.
    """
    import signal

    from harness.tracking import ui as mlflow_ui
    from harness.tracking.mlflow_store import resolve_uri

    name, suite_uri = suite, None
    if suite and suite.endswith((".yaml", ".yml")):
        from harness.suite import load_suite

        spec = load_suite(suite).spec  # a missing or broken file: the usual located error, exit 2
        name, suite_uri = spec.tracking.experiment or spec.name, spec.tracking.uri
    uri = resolve_uri(tracking_uri or suite_uri)
    port = port or mlflow_ui.free_port()
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` stops the UI's process group too
    process = mlflow_ui.start(uri, port)
    try:
        mlflow_ui.wait_ready(process, port)
        experiment = mlflow_ui.experiment_id(uri, name)
        if name and experiment is None:
            click.echo(f"warning: no experiment `{name}` in {uri}; showing the experiment list.", err=True)
        click.echo(f"MLflow UI on {uri}: {mlflow_ui.runs_url(port, experiment)}  (Ctrl-C to stop)", nl=True)
        sys.stdout.flush()
        process.wait()
    except KeyboardInterrupt:
        click.echo("Stopping the MLflow UI.")
    finally:
        mlflow_ui.stop(process)


@main.command()
@click.option(
    "--task",
    "task_name",
    required=True,
    shell_complete=completion.completer("task"),
    help="Task with a length parameter (e.g. adding, copy_memory).",
)
@click.option(
    "--lengths", default="50,100,200,400,800", show_default=True, help="Sequence lengths, comma-separated."
)
@click.option(
    "--arch",
    "archs",
    default=None,
    shell_complete=completion.completer("arch"),
    help="Architectures, comma-separated (default: every one that fits).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option(
    "--gpus", type=click.FloatRange(min=0), default=0, show_default=True, help="1: profile on the GPU."
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Fewest timed training steps (more until the median is stable).",
)
@click.option(
    "--rounds",
    type=click.IntRange(min=3),
    default=10,
    show_default=True,
    help="Fewest timed inference rounds (more until the median is stable).",
)
@click.option(
    "--max-time",
    "max_time_s",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Seconds of timed calls at most per figure.",
)
@click.option(
    "--rel-error",
    type=click.FloatRange(min=0, min_open=True),
    default=0.02,
    show_default=True,
    help="Stop timing once the median's standard error is below this fraction of it.",
)
@click.option(
    "--suite",
    "suite_path",
    type=click.Path(dir_okay=False),
    help="Profile for this suite: rows are tagged with it, its reports show them "
    "(default --arch: the suite's architectures).",
)
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), default="results/profile", show_default=True
)
@click.option(
    "--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow store (default: sqlite:///mlflow.db here)."
)
def profile(
    task_name: str,
    lengths: str,
    archs: str | None,
    batch_size: int,
    gpus: float,
    steps: int,
    rounds: int,
    max_time_s: float,
    rel_error: float,
    suite_path: str | None,
    out_dir: str,
    tracking_uri: str | None,
) -> None:
    """Throughput, latency, memory and FLOPs of each architecture as the sequence grows.

    No training to convergence: each (architecture, length) is timed until its medians are
    stable, and shown as median [IQR]. Appends to OUT/<task>.jsonl and logs to the MLflow
    experiment profile-<task>.
    """
    from pathlib import Path

    from rich.table import Table

    from harness.measure import NOISY_RATIO, noisy
    from harness.profile import parse_lengths, run_profile

    console = _console()
    names = [a.strip() for a in archs.split(",") if a.strip()] if archs else None
    suite_name = suite_digest = None
    if suite_path:
        from harness.report.context import suite_hash
        from harness.suite import load_suite

        suite_spec = load_suite(suite_path).spec  # a missing or broken file: the usual located error
        suite_name = suite_spec.name
        suite_digest = suite_hash(Path(suite_path).read_text(encoding="utf-8"))
        names = names or list(dict.fromkeys(a.name for a in suite_spec.architectures))
    table = Table(
        "arch",
        "T",
        "train samples/s",
        "train timesteps/s",
        "infer samples/s",
        "latency p50 ms",
        "p99 ms",
        "act. MB",
        "peak MB",
        "MFLOPs/sample",
        title=f"profile: {task_name}",
    )

    def cell(r: dict[str, Any], key: str, digits: str) -> str:
        from harness.measure import NOISE

        text = f"{r[key]:{digits}} [{r[NOISE[key]]:{digits}}]"
        return f"[yellow]{text} noisy[/]" if noisy(r, key) else text

    def show(r: dict[str, Any]) -> None:
        if "error" in r:
            table.add_row(r["architecture"], str(r["length"]), r["error"])
            return
        table.add_row(
            r["architecture"],
            str(r["length"]),
            cell(r, "train_samples_per_s", ".3g"),
            cell(r, "train_timesteps_per_s", ".3g"),
            cell(r, "infer_samples_per_s", ".3g"),
            cell(r, "latency_p50_ms", ".3g"),
            f"{r['latency_p99_ms']:.3g}",
            f"{r['activation_memory_mb']:.2f}",
            f"{r['peak_memory_mb']:.2f}",
            f"{r['flops_per_sample'] / 1e6:.3g}",
        )

    records = run_profile(
        task_name,
        parse_lengths(lengths),
        names,
        batch_size=batch_size,
        gpus=gpus,
        steps=steps,
        rounds=rounds,
        max_time_s=max_time_s,
        rel_error=rel_error,
        suite=suite_name,
        suite_hash=suite_digest,
        out_dir=Path(out_dir),
        tracking_uri=tracking_uri,
        on_record=show,
    )
    console.print(table)
    console.print(
        f"median [IQR] of repeated timings (at least {steps} training steps / {rounds} inference "
        f"rounds, more until the median is within {rel_error:.0%} or {max_time_s:g} s are spent); "
        f"noisy: IQR above {NOISY_RATIO:.0%} of the median, not a reliable figure. "
        "samples/s counts sequences, timesteps/s sequence positions (samples × T). "
        "peak MB: tensor peak of a training step; act. MB: tensors saved for backward."
    )
    console.print(
        f"{len(records)} records -> {Path(out_dir) / (task_name + '.jsonl')}"
        + (f" (suite {suite_name})" if suite_name else "")
        + f"; MLflow experiment profile-{task_name}"
    )


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="harness")  # `python -m harness.cli` answers to _HARNESS_COMPLETE too
