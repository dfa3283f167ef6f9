"""``harness plugin new``: write a pip-installable plugin project from templates.

The templates live in ``harness/scaffold/templates`` (package data): ``common/`` for every
kind, then ``<kind>/`` (a file there replaces the common one of the same path). Template
files end in ``.tmpl`` (so no tool mistakes them for code); path parts named ``__module__``
become the import package, and a ``dot-`` file name prefix becomes ``.`` (``dot-gitignore``).
Files whose name starts with ``_fragment`` are not written: they fill placeholders of other
files. Placeholders are ``{{key}}``; see :func:`names`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

KINDS = ("architecture", "task", "metric", "reporter")
TEMPLATES = Path(__file__).parent / "templates"
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
_SUFFIX = ".tmpl"
_FRAGMENT = "_fragment"


@dataclass(frozen=True)
class PluginNames:
    """Every spelling of a plugin's name the templates use."""

    name: str  # as given: the entry-point name
    component: str  # the registered name (snake_case), e.g. what suites write
    module: str  # the import package, harness_<component>
    dist: str  # the distribution (PEP 503 form), harness-<name with hyphens>
    cls: str  # CamelCase stem of class names

    def placeholders(self, kind: str) -> dict[str, str]:
        from harness import __version__

        return {
            "name": self.name,
            "component": self.component,
            "module": self.module,
            "dist": self.dist,
            "class": self.cls,
            "kind": kind,
            "harness_version": __version__,
        }


def names(name: str) -> PluginNames:
    """Validate ``name`` and derive the distribution, module and class names from it."""
    raw = name
    name = name.strip()
    for prefix in ("harness-", "harness_"):
        if name.startswith(prefix) and len(name) > len(prefix):  # `harness plugin new harness-foo` means foo
            name = name[len(prefix) :]
    if not NAME_RE.match(name) or name.endswith(("-", "_")) or re.search(r"[-_]{2}", name):
        raise HarnessError(
            f"Plugin name {raw!r} is not valid: use lowercase letters, digits, and single `_` or `-` between "
            "them, starting with a letter (e.g. `my_conv` or `my-conv`). The project becomes distribution "
            "`harness-NAME` with import package `harness_NAME` (hyphens become underscores)."
        )
    component = name.replace("-", "_")
    return PluginNames(
        name=name,
        component=component,
        module=f"harness_{component}",
        dist=f"harness-{component.replace('_', '-')}",
        cls="".join(part.capitalize() for part in component.split("_")),
    )


def _check_free(plugin: PluginNames, kind: str) -> None:
    """Refuse a component name that an installed plugin already registers (it would collide)."""
    from harness.plugins import get_registry

    try:
        entries = get_registry().namespace(f"{kind}s").entries
    except HarnessError:  # e.g. installed plugins that collide with each other: not this name's problem
        return
    if plugin.component in entries:
        raise HarnessError(
            f"{article(kind).capitalize()} {kind} named `{plugin.component}` is already registered by "
            f"{entries[plugin.component].provenance}; "
            "a plugin registering the same name would be refused. Choose another NAME."
        )


def article(noun: str) -> str:
    return "an" if noun[:1] in "aeiou" else "a"


def _templates(kind: str) -> dict[str, Path]:
    """Relative template path (without .tmpl) -> template file; the kind's files win."""
    if kind not in KINDS:
        raise HarnessError(f"Unknown plugin kind `{kind}`. Choose one of: {', '.join(KINDS)}.")
    found: dict[str, Path] = {}
    for root in (TEMPLATES / "common", TEMPLATES / kind):
        for path in sorted(root.rglob(f"*{_SUFFIX}")):
            found[path.relative_to(root).as_posix()[: -len(_SUFFIX)]] = path
    return found


def _render(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    left = re.findall(r"\{\{[a-z_]+\}\}", text)
    if left:  # a template bug, not a user error
        raise RuntimeError(f"unfilled placeholders in a scaffold template: {sorted(set(left))}")
    return text


def render_files(name: str, kind: str) -> dict[str, str]:
    """The generated project as relative path -> content (nothing written)."""
    plugin = names(name)
    templates = _templates(kind)
    values = plugin.placeholders(kind)
    fragments = {rel: path for rel, path in templates.items() if Path(rel).name.startswith(_FRAGMENT)}
    # fragments first (in name order), so that files can include them and a fragment can use earlier ones
    for rel in sorted(fragments, key=lambda r: Path(r).name):
        values[Path(rel).stem.removeprefix(_FRAGMENT + "_")] = _render(
            fragments[rel].read_text("utf-8"), values
        )
    values["suite_snippet"] = _render(templates["suites/example.yaml"].read_text("utf-8"), values).rstrip(
        "\n"
    )
    out: dict[str, str] = {}
    for rel, path in templates.items():
        if rel in fragments:
            continue
        parts = [plugin.module if part == "__module__" else part for part in rel.split("/")]
        parts[-1] = "." + parts[-1][len("dot-") :] if parts[-1].startswith("dot-") else parts[-1]
        target = "/".join(parts)
        out[target] = _render(path.read_text("utf-8"), values)
    return out


def create_plugin(name: str, kind: str = "architecture", directory: str | Path = ".") -> Path:
    """Write a new plugin project ``<directory>/harness-NAME`` and return its path.

    Raises :class:`HarnessError` (exit code 2 on the command line) for a bad name or kind, a
    name already registered, or a target folder that exists.
    """
    plugin = names(name)
    files = render_files(name, kind)
    target = Path(directory).expanduser().resolve() / plugin.dist
    if target.exists():
        raise HarnessError(
            f"{target} already exists; harness will not overwrite it. Remove it, choose another NAME, "
            "or write elsewhere with --dir PATH."
        )
    _check_free(plugin, kind)
    for rel, content in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return target


def next_steps(target: Path, name: str) -> list[str]:
    """The commands to run after generating (printed by the CLI, repeated in the README)."""
    plugin = names(name)
    return [
        f"cd {target}",
        "pip install -e .            # registers the plugin (entry point in group `harness`)",
        "pytest                      # its conformance tests",
        f"harness plugins check {plugin.dist}",
        "harness run suites/example.yaml",
    ]
