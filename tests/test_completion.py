"""Shell completion, driven the way the shells drive it, and `harness run --dashboard`.

The completion tests run `harness` as a subprocess with click's protocol: `_HARNESS_COMPLETE`
names the shell and the instruction, COMP_WORDS / COMP_CWORD the command line and the word being
completed; the reply is one `type,value` line per candidate (bash), or `type`, `value`, `help`
lines (zsh). Real bash splits `task=di` into `task`, `=`, `di` (COMP_WORDBREAKS) and replaces
only the text after the `=`, so its replies are the bare names.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from harness.cli import main

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "harness"
QUICKSTART_TASKS = ["digits", "adding"]
QUICKSTART_ARCHS = ["rnn", "lstm", "gru", "birnn", "cnn_rnn", "transformer"]
GRID_SUITE = """\
name: grid
tasks: [{name: adding, label: add, grid: {length: [50, 100]}}]
architectures: [{name: gru, grid: {hidden_size: [8, 16], num_layers: [1]}}]
"""


def complete(line: str, cword: int | None = None, shell: str = "bash", **env: str) -> list[str]:
    """The reply of `harness` to <TAB> on ``line`` (the last word is the one completed).

    ``cword``: COMP_CWORD; default: the last word, or a new empty one if ``line`` ends in a space.
    """
    words = line.split()
    if cword is None:
        cword = len(words) if line.endswith(" ") else len(words) - 1
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "harness.cli"]
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={
            **os.environ,
            "_HARNESS_COMPLETE": f"{shell}_complete",
            "COMP_WORDS": line,
            "COMP_CWORD": str(cword),
            **env,
        },
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout.splitlines()


def plain(reply: list[str]) -> list[str]:
    return [line.removeprefix("plain,") for line in reply if line.startswith("plain,")]


@pytest.fixture(autouse=True)
def _no_plugin_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HARNESS_PLUGINS", "HARNESS_DISABLE_PLUGINS", "COMP_WORDBREAKS"):
        monkeypatch.delenv(name, raising=False)


# --- --only ---------------------------------------------------------------------------------------


def test_only_offers_the_keys() -> None:
    assert plain(complete("harness run suites/quickstart.yaml --only ")) == ["task=", "arch="]
    assert plain(complete("harness run suites/quickstart.yaml --only ar")) == ["arch="]


def test_only_task_names_come_from_the_suite() -> None:
    reply = complete("harness run suites/quickstart.yaml --only task=", cword=4)
    assert plain(reply) == QUICKSTART_TASKS  # the suite's tasks only, not every registered one
    assert plain(complete("harness run suites/quickstart.yaml --only task=ad")) == ["adding"]


def test_only_arch_names_come_from_the_suite() -> None:
    assert plain(complete("harness run suites/quickstart.yaml --only arch=")) == QUICKSTART_ARCHS
    assert plain(complete("harness validate suites/quickstart.yaml --only arch=g")) == ["gru"]
    assert plain(complete("harness prepare suites/quickstart.yaml --only architecture=r")) == ["rnn"]


def test_only_as_real_bash_splits_it() -> None:
    """bash: `task=` arrives as `task`, `=` (COMP_CWORD on the `=`), `task=ad` as `task`, `=`, `ad`."""
    line = "harness run suites/quickstart.yaml --only task ="
    assert plain(complete(line, cword=5)) == QUICKSTART_TASKS
    assert plain(complete(line + " ad", cword=6)) == ["adding"]
    assert plain(complete("harness run suites/quickstart.yaml --only = arch = tr", cword=7)) == [
        "transformer"
    ]


def test_only_completes_the_last_item_of_a_list() -> None:
    reply = plain(complete("harness run suites/quickstart.yaml --only arch=rnn,l"))
    assert reply == ["rnn,lstm"]  # bash keeps `arch=`: the reply is the text after it
    assert "rnn,rnn" not in plain(complete("harness run suites/quickstart.yaml --only arch=rnn,"))


def test_zsh_and_fish_get_the_whole_word() -> None:
    zsh = complete("harness run suites/quickstart.yaml --only task=", shell="zsh")
    assert [zsh[i + 1] for i in range(0, len(zsh), 3)] == [f"task={t}" for t in QUICKSTART_TASKS]
    fish = complete("harness run suites/quickstart.yaml --only task=d", shell="fish", COMP_CWORD="task=d")
    assert plain(fish) == ["task=digits"]


def test_only_offers_labels_and_grid_points(tmp_path: Path) -> None:
    suite = tmp_path / "grid.yaml"
    suite.write_text(GRID_SUITE, encoding="utf-8")
    tasks = plain(complete(f"harness run {suite} --only task="))
    assert tasks == ["adding", "add", "add[length=50]", "add[length=100]"]
    # a grid point of two keys has a comma in its label, which --only cannot take
    assert plain(complete(f"harness run {suite} --only arch=")) == ["gru"]
    # bash splits `add[length=5` at both `=`: the reply is what follows the last one
    assert plain(complete(f"harness run {suite} --only task = add[length = 5", cword=8)) == ["50]"]


def test_only_without_a_readable_suite_uses_the_registry(tmp_path: Path) -> None:
    for line in ("harness run --only arch=", f"harness run {tmp_path / 'missing.yaml'} --only arch="):
        names = plain(complete(line))
        assert set(QUICKSTART_ARCHS) <= set(names), names
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n", encoding="utf-8")
    assert "copy_memory" in plain(complete(f"harness run {broken} --only task="))


def test_only_with_an_unknown_key_offers_nothing() -> None:
    assert plain(complete("harness run suites/quickstart.yaml --only seed=")) == []


# --- other arguments ------------------------------------------------------------------------------


def test_list_kinds() -> None:
    assert plain(complete("harness list ")) == ["architectures", "tasks", "metrics", "reporters", "hooks"]
    assert plain(complete("harness list t")) == ["tasks"]


def test_suite_arguments_complete_as_files() -> None:
    for line in ("harness run sui", "harness validate sui", "harness prepare sui", "harness ui sui"):
        assert complete(line) == ["file,sui"], line


def test_registered_names_for_profile_and_report() -> None:
    assert plain(complete("harness profile --task copy_")) == ["copy_memory"]
    assert plain(complete("harness profile --suite suites/quickstart.yaml --arch rnn,b")) == ["rnn,birnn"]
    assert "html" in plain(complete("harness report --reporter "))


def test_choice_after_an_equals_sign() -> None:
    assert plain(complete("harness run suites/quickstart.yaml --executor = lo", cword=5)) == ["local"]


# --- the scripts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_source_prints_the_script(shell: str) -> None:
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "harness.cli"]
    env = {**os.environ, "_HARNESS_COMPLETE": f"{shell}_source"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "_harness_completion" in proc.stdout
    if shell == "bash":  # ours: passes COMP_WORDBREAKS on, no space after `task=`
        assert 'COMP_WORDBREAKS="$COMP_WORDBREAKS"' in proc.stdout
        assert "compopt -o nospace" in proc.stdout
        assert "complete -o nosort -F _harness_completion harness" in proc.stdout


def test_bash_script_is_valid_bash() -> None:
    bash = subprocess.run(["bash", "--version"], capture_output=True).returncode == 0
    if not bash:
        pytest.skip("no bash")
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "harness.cli"]
    env = {**os.environ, "_HARNESS_COMPLETE": "bash_source"}
    script = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env).stdout
    proc = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# --- the module ----------------------------------------------------------------------------------


def test_cli_registers_our_bash_class() -> None:
    from click.shell_completion import get_completion_class

    from harness.completion import HarnessBashComplete

    assert get_completion_class("bash") is HarnessBashComplete


def test_bash_words_are_joined_at_the_breaks(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.completion import HarnessBashComplete

    monkeypatch.setenv("COMP_WORDS", "harness run s.yaml --only task = ad")
    monkeypatch.setenv("COMP_CWORD", "6")
    bash = HarnessBashComplete(main, {}, "harness", "_HARNESS_COMPLETE")
    assert bash.get_completion_args() == (["run", "s.yaml", "--only"], "task=ad")


def test_callbacks_without_a_suite() -> None:
    from harness.completion import complete_file, complete_only

    ctx = click.Context(main)
    param = click.Option(["--only"])
    assert [i.value for i in complete_only(ctx, param, "t")] == ["task="]
    assert complete_only(ctx, param, "seed=x") == []
    assert [(i.type, i.value) for i in complete_file(ctx, param, "sui")] == [("file", "sui")]


def test_importing_completion_stays_light() -> None:
    code = (
        "import sys, harness.completion; "
        "print(','.join(m for m in ('harness.suite', 'harness.matrix', 'harness.plugins', 'yaml', "
        "'torch', 'ray', 'mlflow', 'lightning') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


# --- run --dashboard ------------------------------------------------------------------------------


def test_dashboard_is_listed_in_help() -> None:
    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    assert "--dashboard" in result.stdout


def test_dashboard_with_the_local_executor_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    suite = REPO / "suites" / "quickstart.yaml"
    result = CliRunner().invoke(main, ["run", str(suite), "--dashboard", "--executor", "local"])
    assert result.exit_code == 2, result.output
    assert "--dashboard" in result.stderr and "--executor local" in result.stderr
    assert "Drop --dashboard, or use --executor ray" in result.stderr
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []  # refused before anything was recorded


def test_dashboard_with_an_address_notes_the_clusters_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    broken = tmp_path / "broken.yaml"  # stops the run right after the note, before any Ray call
    broken.write_text("name: broken\n", encoding="utf-8")
    args = ["run", str(broken), "--dashboard", "--address", "127.0.0.1:1"]
    result = CliRunner().invoke(main, args, env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert "joining the Ray cluster at 127.0.0.1:1, so no local dashboard is started" in result.stdout
