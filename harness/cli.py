"""The `harness` command: thin click commands over library functions.

Imports here stay light (click only at module level) so `harness --help` is
fast; torch, lightning, ray and mlflow load only inside the commands that need
them.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from harness import __version__

ONLY_KEYS = {"task": "task", "arch": "arch", "architecture": "arch"}


class HarnessGroup(click.Group):
    """Prints HarnessError messages without a traceback and exits with their code."""

    def invoke(self, ctx: click.Context) -> Any:
        from harness.errors import HarnessError

        try:
            return super().invoke(ctx)
        except HarnessError as exc:
            if ctx.meta.get("harness.traceback"):
                raise
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)


def _console() -> Any:
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:  # logs and CI: don't squeeze tables into 80 columns
        console = Console(highlight=False, width=max(console.width, 140))
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
    from harness.errors import HarnessError

    if gpus is not None and gpus > 1 and not float(gpus).is_integer():
        raise HarnessError(f"--gpus {gpus}: above 1 it must be a whole number (fractions share one GPU).")
    return {k: v for k, v in (("gpus", gpus), ("cpus", cpus)) if v is not None}


def _warn_plugins(console: Any) -> None:
    from harness.plugins import get_registry

    for warning in get_registry().warnings:
        console.print(f"[yellow]warning:[/] {warning}")


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
@click.option("--only", multiple=True, metavar="task=NAME|arch=NAME", help="Run only matching cells (repeatable).")
@click.option("--executor", default="ray", show_default=True, help="ray (local instance or --address) or local (in-process).")
@click.option("--address", envvar="RAY_ADDRESS", help="Ray cluster to join (default: start a local one).")
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI (default: sqlite:///mlflow.db).")
@click.option("--results", type=click.Path(dir_okay=False), help="JSON-lines results file (default: results/<suite>.jsonl).")
@click.option("--rerun", is_flag=True, help="Run cells again even if the results file has them finished.")
@click.option("--report-dir", type=click.Path(file_okay=False), help="Where summary reports go (default: reports/<suite>).")
@click.option("--gpus", type=click.FloatRange(min=0), help="GPUs per run, overriding the suite's resources (0: run on CPU).")
@click.option("--cpus", type=click.FloatRange(min=0, min_open=True), help="CPUs per run, overriding the suite's resources.")
def run(suite: str, only: tuple[str, ...], executor: str, address: str | None, tracking_uri: str | None,
        results: str | None, rerun: bool, report_dir: str | None, gpus: float | None, cpus: float | None) -> None:
    """Run every cell of SUITE and record it in MLflow.

    Exit code 0: all runs finished; 1: some runs failed; 2: bad input.
    """
    from rich.text import Text

    from harness.console import summary_table
    from harness.report.summary import summarize
    from harness.runner import RunOptions, plan_suite, run_plan
    from harness.tracking.mlflow_store import ui_link

    console = _console()
    _warn_plugins(console)
    plan = plan_suite(suite, _parse_only(only), _resources(gpus, cpus))
    options = RunOptions(executor, address, tracking_uri, results, rerun, report_dir)
    console.print(f"Suite [bold]{plan.suite.spec.name}[/]: {len(plan.runnable)} runs "
                  f"({len(plan.skipped)} skipped) on executor `{executor}`")
    outcome = run_plan(plan, options, console)
    in_plan = {c.run_id for c in plan.cells}
    records = [r for r in outcome.records if r.get("run_id") in in_plan]
    console.print(summary_table(summarize(records), title=f"{plan.suite.spec.name}: mean over seeds"))
    for cell in outcome.skipped_cells:
        console.print(Text(f"skipped {cell.label}: {cell.skip_reason}", style="dim"))
    failed = outcome.failed
    console.print(f"{len(outcome.results) - failed} finished, {failed} failed, {len(outcome.skipped_cells)} skipped"
                  + (f", {outcome.resumed} already done" if outcome.resumed else "") + ".")
    console.print(f"Results: {outcome.results_path}  Reports: {', '.join(str(p) for p in outcome.reports)}")
    console.print(f"MLflow ({outcome.tracking_uri}): {ui_link(outcome.tracking_uri, outcome.experiment_id)}")
    sys.exit(1 if failed else 0)


@main.command()
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option("--only", multiple=True, metavar="task=NAME|arch=NAME", help="Show only matching cells.")
@click.option("--gpus", type=click.FloatRange(min=0), help="GPUs per run, overriding the suite's resources.")
@click.option("--cpus", type=click.FloatRange(min=0, min_open=True), help="CPUs per run, overriding the suite's resources.")
def validate(suite: str, only: tuple[str, ...], gpus: float | None, cpus: float | None) -> None:
    """Check SUITE and print its plan (cells, skip reasons, counts) without running."""
    from rich.table import Table
    from rich.text import Text

    from harness.runner import plan_suite

    console = _console()
    _warn_plugins(console)
    plan = plan_suite(suite, _parse_only(only), _resources(gpus, cpus))
    table = Table(title=f"{plan.suite.spec.name}: plan")
    for column in ("run id", "task", "architecture", "seed", "status"):
        table.add_column(column)
    for cell in plan.cells:
        table.add_row(cell.run_id, Text(cell.task_label), Text(cell.arch_label), str(cell.seed),
                      Text(f"skip: {cell.skip_reason}" if cell.skip_reason else "run"))
    console.print(table)
    spec = plan.suite.spec
    console.print(f"{len(plan.cells)} cells: {len(plan.runnable)} to run, {len(plan.skipped)} skipped "
                  f"({len(spec.tasks)} task entries × {len(spec.architectures)} architecture entries × "
                  f"grid × {len(spec.seeds)} seed(s)). Suite is valid.")


@main.command()
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option("--only", multiple=True, metavar="task=NAME|arch=NAME", help="Prepare only matching cells' tasks.")
@click.option("--cache-dir", type=click.Path(file_okay=False), envvar="HARNESS_CACHE_DIR",
              help="Data cache (default: $HARNESS_CACHE_DIR or ~/.cache/harness).")
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
            console.print(Text.assemble(("skipped ", "yellow"), f"{item.task}: unavailable: {item.unavailable}"))
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

    registry = get_registry(strict=False)  # show every plugin, then report duplicates
    console = _console()
    table = Table(title="harness plugins")
    for column in ("plugin", "distribution", "version", "registers"):
        table.add_column(column)
    for info in registry.plugins:
        what = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in info.registered.items())
        table.add_row(info.name, info.distribution, info.version,
                      Text(f"{info.status}: {info.error}", style="red") if info.error else Text(what))
    console.print(table)
    for warning in registry.warnings:
        console.print(Text.assemble(("warning: ", "yellow"), warning))
    registry.check()  # two plugins registering one name: an error (exit 2) after the table


@plugins.command(name="check")
@click.argument("target", metavar="DIST_OR_MODULE")
@click.option("--kind", "kinds", multiple=True,
              type=click.Choice(["architectures", "tasks", "metrics", "reporters"]),
              help="Check only components of this kind (repeatable; default: every kind).")
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
        table.add_row(Text(r.component), Text(r.check), Text("pass", style="green") if r.passed
                      else Text("FAIL", style="bold red"), Text(r.detail))
    console.print(table)
    failed = [r for r in results if not r.passed]
    console.print(f"{len(results)} checks: {len(results) - len(failed)} passed, {len(failed)} failed.")
    sys.exit(1 if failed else 0)


@main.group(name="plugin")
def plugin_group() -> None:
    """Write your own plugin: `harness plugin new NAME` makes a pip-installable project."""


@plugin_group.command(name="new")
@click.argument("name")
@click.option("--kind", type=click.Choice(["architecture", "task", "metric", "reporter"]), default="architecture",
              show_default=True, help="What the plugin registers (the example it starts from).")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Folder in which the project folder harness-NAME is created.")
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
@click.option("--format", "fmt", type=click.Choice(["table", "markdown"]), default="table", show_default=True,
              help="markdown: the reference page (docs/<kind>.md is generated this way).")
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
    for entry in registry.namespace(kind):
        table.add_row(entry.name, str(entry.provenance), entry.description, describe_params(entry.obj))
    console.print(table)
    _warn_plugins(console)


if __name__ == "__main__":  # pragma: no cover
    main()
