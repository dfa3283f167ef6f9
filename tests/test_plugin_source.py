"""A plugin whose code can change without a new version is identified by its source (issue 13, 7).

A run id hashes the plugins' versions; for a plugin installed editable or from a local directory
(PEP 610 ``direct_url.json``), run from a source tree, or named in ``HARNESS_PLUGINS``, it also
hashes a digest of the plugin's Python source, so editing the plugin re-runs its cells instead of
reporting the old results. A wheel install keeps its old run ids (the version is the identity).
``validate`` and ``run`` answer "what will run" with one function (:mod:`harness.plan_status`).

The end-to-end test installs ``tests/example_plugin`` with a real ``pip install -e`` into a
throw-away prefix (not into this environment) and drives ``harness`` in fresh processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.matrix import build_plan, plugin_ref
from harness.plan_status import plan_status
from harness.plugins import clear_cache, get_registry
from harness.provenance import installed_from_source, source_digest
from harness.records import PlanProvenance, PluginRef
from harness.suite import load_suite
from harness.tracking.results import ResultsFile
from tests.helpers import make_record, pip_install_editable

if TYPE_CHECKING:
    from click.testing import Result

Cli = Callable[..., "Result"]

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_SOURCE = REPO / "tests" / "example_plugin"

SUITE = """\
name: editable-plugin
seeds: [0]
tasks:
  - name: digits
architectures:
  - name: editable_pool
    params: {hidden_size: 8}
  - name: gru
    params: {hidden_size: 8}
trainer:
  max_epochs: 1
  batch_size: 256
resources:
  cpus: 1
  gpus: 0
"""

#: run ``harness`` with the editable install's site folder added (pip wrote a .pth file there)
HARNESS = "import site, sys; site.addsitedir(sys.argv.pop(1)); from harness.cli import main; main()"


def _pip_editable(source: Path, prefix: Path) -> Path:
    """``pip install -e source --prefix prefix``; returns the prefix's site-packages."""
    command = pip_install_editable("--no-index", "--no-cache-dir", "--prefix", str(prefix), "-e", str(source))
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    (site,) = prefix.glob("lib/python*/site-packages")
    return site


def _harness(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "MLFLOW_", "RAY_"))}
    env.update(COLUMNS="250", HARNESS_CACHE_DIR=str(cwd / "cache"), PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-c", HARNESS, str(site), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


def _row(output: str, arch: str) -> str:
    return next(line for line in output.splitlines() if f" {arch} " in line and "│" in line)


def _copy_example(target: Path) -> Path:
    """A copy of tests/example_plugin renamed (distribution, package, entry point, architecture),
    so that it cannot clash with the example plugin another test may have installed."""
    ignore = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    shutil.copytree(EXAMPLE_SOURCE, target, ignore=ignore)
    (target / "src" / "harness_example_plugin").rename(target / "src" / "harness_editable_example")
    renames = {
        "harness_example_plugin": "harness_editable_example",
        "harness-example-plugin": "harness-editable-example",
        "example = ": "editable_example = ",
        "mean_pool": "editable_pool",
    }
    for path in [target / "pyproject.toml", *target.rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        for old, new in renames.items():
            text = text.replace(old, new)
        path.write_text(text, encoding="utf-8")
    return target


def test_editing_an_editable_plugin_reruns_its_cells(tmp_path: Path) -> None:
    source = _copy_example(tmp_path / "harness-editable-example")
    site = _pip_editable(source, tmp_path / "prefix")
    direct_url = json.loads(next(site.glob("*.dist-info/direct_url.json")).read_text(encoding="utf-8"))
    assert direct_url["dir_info"] == {"editable": True}  # a real editable install
    work = tmp_path / "work"
    work.mkdir()
    (work / "suite.yaml").write_text(SUITE, encoding="utf-8")

    first = _harness(site, work, "run", "suite.yaml", "--executor", "local")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 finished, 0 failed" in first.stdout

    unchanged = _harness(site, work, "validate", "suite.yaml")
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    assert "2 cells: 0 to run, 0 skipped, 2 already done" in unchanged.stdout
    pool_id = _row(unchanged.stdout, "editable_pool").split("│")[1].strip()

    # edit the plugin's code, in a module imported only when the network is built
    encoder = source / "src" / "harness_editable_example" / "_encoder.py"
    encoder.write_text(encoder.read_text(encoding="utf-8") + "\nEDITED = True\n", encoding="utf-8")

    edited = _harness(site, work, "validate", "suite.yaml")
    assert edited.returncode == 0, edited.stdout + edited.stderr
    assert "2 cells: 1 to run, 0 skipped, 1 already done" in edited.stdout, edited.stdout
    row = _row(edited.stdout, "editable_pool")
    assert row.rstrip("│ ").endswith("run") and pool_id not in row  # a new id, to run
    assert "done" in _row(edited.stdout, "gru")  # a built-in the edit did not touch keeps its id

    again = _harness(site, work, "run", "suite.yaml", "--executor", "local")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 finished, 0 failed, 0 skipped, 1 already done" in again.stdout, again.stdout
    records = ResultsFile(work / "results" / "editable-plugin.jsonl").read()
    pooled = [r for r in records if r.spec.architecture == "editable_pool"]
    assert len(pooled) == 2 and pooled[0].run_id != pooled[1].run_id
    sources = [r.spec.provenance.arch_plugin.source for r in pooled]
    assert all(isinstance(s, str) and len(s) == 16 for s in sources) and sources[0] != sources[1]

    # `run` trusts MLflow as much as the results file, and so does `validate`
    (work / "results" / "editable-plugin.jsonl").unlink()
    from_mlflow = _harness(site, work, "validate", "suite.yaml")
    assert from_mlflow.returncode == 0, from_mlflow.stdout + from_mlflow.stderr
    assert "2 cells: 0 to run, 0 skipped, 2 already done" in from_mlflow.stdout, from_mlflow.stdout
    assert "done: finished before (in MLflow)" in from_mlflow.stdout and "warning" not in from_mlflow.stdout


# --- which installs carry a digest ------------------------------------------------------------------

PLUGIN_SOURCE = """\
from harness import Architecture, hookimpl


class {cls}(Architecture):
    name = "{name}"


@hookimpl
def register_architectures(register):
    register({cls})
"""


@pytest.fixture
def installed(
    clean_plugins: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Path]]:
    """Factory: a package plus its ``.dist-info`` (entry point in group ``harness``), as pip lays
    out a wheel install, in a folder put on ``sys.path``; ``direct_url`` writes PEP 610's
    ``direct_url.json`` (what pip records for an install from a local directory). Returns the
    package folder."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    made: list[str] = []

    def install(dist: str, package: str, name: str, direct_url: dict[str, object] | None = None) -> Path:
        folder = site / package
        folder.mkdir()
        (folder / "__init__.py").write_text(PLUGIN_SOURCE.format(cls="Arch", name=name), encoding="utf-8")
        (folder / "_net.py").write_text("HIDDEN = 8\n", encoding="utf-8")
        info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n", encoding="utf-8"
        )
        (info / "entry_points.txt").write_text(f"[harness]\n{package} = {package}\n", encoding="utf-8")
        if direct_url is not None:
            (info / "direct_url.json").write_text(json.dumps(direct_url), encoding="utf-8")
        made.append(package)
        clear_cache()
        return folder

    yield install
    for package in made:
        for module in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
            del sys.modules[module]
    clear_cache()


def test_a_wheel_install_keeps_its_run_ids(installed: Callable[..., Path]) -> None:
    installed("harness-wheel-arch", "wheel_arch", "wheel_arch")  # no direct_url.json: from an index

    provenance = get_registry().architectures.get("wheel_arch").provenance
    assert provenance.source == ()
    ref = plugin_ref(provenance)
    assert ref == PluginRef(distribution="harness-wheel-arch", version="1.0") and ref.source is None
    plan = PlanProvenance(harness="0.1.0", task_plugin=ref, arch_plugin=ref, data_version="1")
    # exactly the layout every earlier run id was hashed with
    assert plan.id_versions() == {
        "harness": "0.1.0",
        "task_plugin": "harness-wheel-arch==1.0",
        "arch_plugin": "harness-wheel-arch==1.0",
        "data": "1",
    }


@pytest.mark.parametrize(
    "direct_url",
    [
        {"url": "file:///src/local-arch", "dir_info": {"editable": True}},  # pip install -e
        {"url": "file:///src/local-arch", "dir_info": {}},  # pip install ./local-arch
        {"url": "file:///src/local_arch-1.0-py3-none-any.whl", "archive_info": {}},  # a local wheel
    ],
)
def test_a_local_install_is_identified_by_its_source(
    installed: Callable[..., Path], direct_url: dict[str, object]
) -> None:
    package = installed("harness-local-arch", "local_arch", "local_arch", direct_url=direct_url)

    provenance = get_registry().architectures.get("local_arch").provenance
    assert provenance.source == (str(package.resolve()),)  # the top-level package of the entry point
    ref = plugin_ref(provenance)
    assert ref.source == source_digest((str(package.resolve()),)) and len(ref.source) == 16
    plan = PlanProvenance(harness="0.1.0", task_plugin=ref, arch_plugin=ref, data_version="1")
    assert plan.id_versions()["arch_plugin_source"] == ref.source

    (package / "_net.py").write_text("HIDDEN = 16\n", encoding="utf-8")  # an edit
    assert plugin_ref(provenance).source == ref.source  # cached for this process ...
    clear_cache()
    assert plugin_ref(provenance).source != ref.source  # ... until the caches are cleared


def test_source_digest_off_switch(installed: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    installed(
        "harness-local-arch", "local_arch", "local_arch", direct_url={"url": "file:///x", "dir_info": {}}
    )
    provenance = get_registry().architectures.get("local_arch").provenance

    monkeypatch.setenv("HARNESS_SOURCE_DIGEST", "0")

    assert plugin_ref(provenance) == PluginRef(distribution="harness-local-arch", version="1.0")


def test_a_harness_plugins_module_is_identified_by_its_source(make_plugin: Callable[..., str]) -> None:
    module = make_plugin("dev_arch_plugin", PLUGIN_SOURCE.format(cls="DevArch", name="dev_arch"))

    provenance = get_registry().architectures.get("dev_arch").provenance

    assert len(provenance.source) == 1 and provenance.source[0].endswith(f"{module}.py")
    assert plugin_ref(provenance).source is not None


def test_builtins_run_from_source_hash_only_their_own_package(clean_plugins: None) -> None:
    from importlib.metadata import entry_points

    (ep,) = [ep for ep in entry_points(group="harness") if ep.name == "builtin_architectures"]
    assert ep.dist is not None
    if not installed_from_source(ep.dist):
        pytest.skip("harness is installed from a wheel here: built-ins are identified by its version")
    registry = get_registry()

    archs = registry.architectures.get("gru").provenance
    tasks = registry.tasks.get("digits").provenance
    assert archs.source == (str(REPO / "plugins" / "architectures"),)
    assert tasks.source == (str(REPO / "plugins" / "tasks"),)
    assert plugin_ref(archs).source != plugin_ref(tasks).source


def test_source_digest_hashes_python_files_only_and_not_their_location(tmp_path: Path) -> None:
    package = tmp_path / "a" / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("X = 1\n", encoding="utf-8")
    (package / "sub" / "deep.py").write_text("Y = 2\n", encoding="utf-8")
    first = source_digest.__wrapped__((str(package),))

    moved = tmp_path / "b" / "pkg"
    shutil.copytree(package, moved)
    assert source_digest.__wrapped__((str(moved),)) == first  # the same code elsewhere: the same id
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "deep.cpython-311.pyc").write_bytes(b"\0")
    (package / "README.md").write_text("docs\n", encoding="utf-8")
    assert source_digest.__wrapped__((str(package),)) == first
    (package / "sub" / "deep.py").write_text("Y = 3\n", encoding="utf-8")
    assert source_digest.__wrapped__((str(package),)) != first
    (package / "sub" / "deep.py").rename(package / "sub" / "other.py")  # a renamed file
    assert source_digest.__wrapped__((str(package),)) != first


# --- planning stays fast ------------------------------------------------------------------------------


def test_each_plugin_is_hashed_once_per_process(installed: Callable[..., Path], tmp_path: Path) -> None:
    installed(
        "harness-local-arch", "local_arch", "local_arch", direct_url={"url": "file:///x", "dir_info": {}}
    )
    suite = tmp_path / "grid.yaml"
    suite.write_text(
        textwrap.dedent(
            """\
            name: grid
            seeds: [0, 1, 2, 3]
            tasks:
              - name: adding
                grid: {length: [5, 6, 7, 8, 9]}
            architectures:
              - name: local_arch
              - name: gru
                grid: {hidden_size: [4, 8, 16, 32, 64]}
            """
        ),
        encoding="utf-8",
    )
    registry = get_registry()
    source_digest.cache_clear()

    plan = build_plan(load_suite(suite), registry)
    build_plan(load_suite(suite), registry)

    assert len(plan.cells) == 5 * 6 * 4
    assert source_digest.cache_info().misses <= 3  # local_arch, the built-in tasks and architectures


# --- validate and run agree: one function -------------------------------------------------------------


def test_plan_status_says_what_run_does(tmp_path: Path, clean_plugins: None) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        textwrap.dedent(
            """\
            name: s
            seeds: [0, 1]
            tasks:
              - name: adding
                params: {length: 10}
            architectures:
              - name: gru
              - name: transformer
            trainer:
              tbptt: {k1: 5}
            """
        ),
        encoding="utf-8",
    )
    plan = build_plan(load_suite(suite), get_registry())
    gru0, gru1, tr0, tr1 = plan.cells  # transformer cannot carry state: skipped
    records = [
        make_record(run_id=gru0.run_id),  # finished
        make_record(run_id=gru1.run_id, status="failed"),  # failed: runs again
        make_record(run_id=tr0.run_id),  # a finished record of a cell the plan skips now
    ]

    status = plan_status(plan, records, in_mlflow=[], rerun=False)
    assert [s.action for s in status.cells] == ["done", "run", "skip", "skip"]
    assert status.cells[0].reason == "finished before (in the results file)"
    assert status.done_ids == {gru0.run_id} and status.to_run == [gru1] and status.skipped == [tr0, tr1]

    from_mlflow = plan_status(plan, [], in_mlflow=[gru1.run_id], rerun=False)
    assert [s.action for s in from_mlflow.cells] == ["run", "done", "skip", "skip"]
    assert from_mlflow.cells[1].reason == "finished before (in MLflow)"

    rerun = plan_status(plan, records, in_mlflow=[gru1.run_id], rerun=True)
    assert [s.action for s in rerun.cells] == ["run", "run", "skip", "skip"] and rerun.done_ids == set()


def test_validate_counts_finished_cells_as_done(
    tmp_path: Path, clean_plugins: None, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    """Without running anything: a results file holding a finished cell makes `validate` say it is
    done (and `--rerun` to run); failed records do not count."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}")
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nseeds: [0, 1]\ntasks: [{name: adding}]\narchitectures: [{name: gru}]\n")
    plan = build_plan(load_suite(suite), get_registry())
    results = ResultsFile(tmp_path / "results" / "s.jsonl")
    results.append(make_record(run_id=plan.cells[0].run_id, suite="s"))
    results.append(make_record(run_id=plan.cells[1].run_id, suite="s", status="failed"))

    result = cli("validate", str(suite))
    assert result.exit_code == 0, result.output
    assert "2 cells: 1 to run, 0 skipped, 1 already done" in result.output
    assert "done: finished before (in the results file)" in result.output
    rerun = cli("validate", str(suite), "--rerun")
    assert "2 cells: 2 to run, 0 skipped" in rerun.output
    assert not (tmp_path / "none").exists()  # validate created no MLflow store
