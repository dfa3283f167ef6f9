"""Shell completion for the `harness` command.

`eval "$(_HARNESS_COMPLETE=bash_source harness)"` (zsh_source, fish_source): click calls the
callbacks below at every <TAB>. They never raise (a traceback would land in the prompt), keep
stdout clean (it is the reply) and read only the suite YAML or the plugin registry (no torch).

`cli.py` wires them in as ``shell_complete=`` callbacks and calls :func:`register_bash` once.
Imports stay light (click and the stdlib at module level): the suite, matrix and plugin modules
load inside the callbacks, so `harness --help` does not pay for them.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import click
from click.shell_completion import BashComplete, CompletionItem, add_completion_class, split_arg_string

#: the keys `--only` accepts, and the kind each selects (parsed by the CLI, completed here)
ONLY_KEYS = {"task": "task", "arch": "arch", "architecture": "arch"}
#: the keys `--only` offers; `architecture=` is accepted as well, but not offered next to `arch=`
ONLY_OFFERED = {"task": "a task of the suite (name or label)", "arch": "an architecture (name or label)"}
#: grid points offered per suite entry at most (a big grid would flood the prompt)
MAX_GRID_LABELS = 50

#: a ``shell_complete=`` callback, as click calls it
Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


def _quietly(names: Callable[[], list[str]]) -> list[str]:
    """``names()``, or [] on any error; plugin chatter on stdout/stderr and warnings are dropped."""
    import contextlib
    import io
    import warnings

    try:
        with (
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            return names()
    except BaseException:  # completion must never fail (SystemExit from a plugin too)
        return []


def _suite_names(path: str, kind: str) -> list[str]:
    """Names and labels of the suite's tasks or architectures, as ``--only`` accepts them."""
    # private helpers of harness.matrix, imported on purpose: they make the labels `harness
    # validate` shows, and completion must offer exactly those (no public equivalent yet)
    from harness.matrix import _grid_points, _label
    from harness.suite import load_suite

    spec = load_suite(path).spec
    names: list[str] = []
    for entry in spec.tasks if kind == "task" else spec.architectures:
        names += [entry.name, entry.label or entry.name]
        names += [_label(entry, point) for point in _grid_points(entry)[:MAX_GRID_LABELS] if point]
    # --only splits its value at commas, so a label with one cannot be given
    return [n for n in dict.fromkeys(names) if "," not in n]


def _names(ctx: click.Context, kind: str) -> list[str]:
    """The suite's names when a readable suite is on the command line, else the registry's."""
    # completing an option's value stops click's parsing before the positional arguments: the
    # suite is then among the leftover ctx.args rather than in ctx.params
    given = [ctx.params.get("suite"), ctx.params.get("suite_path"), *ctx.args]
    suites = [s for s in given if isinstance(s, str) and s.endswith((".yaml", ".yml"))]
    if kind in ("task", "arch") and suites:
        names = _quietly(lambda: _suite_names(suites[0], kind))
        if names:
            return names

    def registered() -> list[str]:
        from harness.plugins import get_registry

        namespace = {"task": "tasks", "arch": "architectures"}.get(kind, kind)
        return [entry.name for entry in get_registry().namespace(namespace)]

    return _quietly(registered)


def _complete_list(ctx: click.Context, incomplete: str, kind: str, head: str = "") -> list[CompletionItem]:
    """``kind`` names for the comma-separated list ``incomplete`` (its last item completes)."""
    done, comma, current = incomplete.rpartition(",")
    chosen = set(done.split(",")) if comma else set()
    prefix = head + done + comma
    return [
        CompletionItem(prefix + name)
        for name in _names(ctx, kind)
        if name.startswith(current) and name not in chosen
    ]


def complete_only(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """``--only``: the keys (``task=``, ``arch=``), then the suite's names after ``KEY=``."""
    try:
        key, sep, value = incomplete.partition("=")
        if not sep:
            return [CompletionItem(f"{k}=", help=h) for k, h in ONLY_OFFERED.items() if k.startswith(key)]
        if key not in ONLY_KEYS:
            return []
        return _complete_list(ctx, value, ONLY_KEYS[key], head=f"{key}=")
    except Exception:  # never a traceback at the prompt
        return []


def completer(kind: str) -> Completer:
    """Completion of a (comma-separated) list of registered ``kind`` names."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        try:
            return _complete_list(ctx, incomplete, kind)
        except Exception:  # never a traceback at the prompt
            return []

    return complete


def complete_file(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """A file path, completed by the shell (for arguments that also take names or ids)."""
    return [CompletionItem(incomplete, type="file")]


class HarnessBashComplete(BashComplete):
    """click's bash completion, fixed for ``--only task=NAME``.

    bash splits the word being completed at the characters of COMP_WORDBREAKS (``=`` and ``:``
    among them): ``task=di`` reaches us as ``task``, ``=``, ``di``, and bash replaces only the
    text after the last break with the reply. So the words are joined again for click, and each
    reply loses what bash keeps; values ending in ``=`` get no trailing space.
    """

    # click's script, plus COMP_WORDBREAKS passed on and `nospace` after a value ending in `=`
    source_template = """\
%(complete_func)s() {
    local IFS=$'\\n'
    local response

    response=$(env COMP_WORDS="${COMP_WORDS[*]}" COMP_CWORD=$COMP_CWORD \\
COMP_WORDBREAKS="$COMP_WORDBREAKS" %(complete_var)s=bash_complete $1)

    for completion in $response; do
        IFS=',' read type value <<< "$completion"

        if [[ $type == 'dir' ]]; then
            COMPREPLY=()
            compopt -o dirnames
        elif [[ $type == 'file' ]]; then
            COMPREPLY=()
            compopt -o default
        elif [[ $type == 'plain' ]]; then
            COMPREPLY+=($value)
            [[ $value == *= ]] && compopt -o nospace
        fi
    done

    return 0
}

%(complete_func)s_setup() {
    complete -o nosort -F %(complete_func)s %(prog_name)s
}

%(complete_func)s_setup;
"""

    @staticmethod
    def _breaks() -> str:
        return "".join(c for c in os.environ.get("COMP_WORDBREAKS", "=:") if c not in " \t\n\"'")

    def get_completion_args(self) -> tuple[list[str], str]:
        words = split_arg_string(os.environ["COMP_WORDS"])
        cword = int(os.environ["COMP_CWORD"])
        breaks = self._breaks()
        joined: list[str] = []
        glue = False
        for word in words[1 : cword + 1]:
            is_break = bool(word) and all(c in breaks for c in word)
            if joined and (is_break or glue):
                joined[-1] += word
                glue = is_break
            else:
                joined.append(word)
                glue = False
        if cword >= len(words) or not joined:  # the cursor after a space: a new, empty word
            return joined, ""
        return joined[:-1], joined[-1]

    def complete(self) -> str:
        args, incomplete = self.get_completion_args()
        # click completes the value of `--opt=value` on its own; bash keeps the text up to the break
        split = "=" in incomplete and incomplete[:1] in ("-", "=")
        value = incomplete.partition("=")[2] if split else incomplete
        kept = incomplete[: len(incomplete) - len(value)]
        cut = max((incomplete.rfind(c) for c in self._breaks()), default=-1) + 1
        out = []
        try:
            items = self.get_completions(args, incomplete)
        except Exception:  # never a traceback at the prompt
            items = []
        for item in items:
            full = kept + str(item.value)
            if item.type == "plain" and cut and full[:cut] == incomplete[:cut]:
                item.value = full[cut:]
            out.append(self.format_completion(item))
        return "\n".join(out)


def register_bash() -> None:
    """Make ``_HARNESS_COMPLETE=bash_source|bash_complete`` use :class:`HarnessBashComplete`."""
    add_completion_class(HarnessBashComplete, "bash")
