"""Safe YAML loading that remembers where every value came from (file and line).

Only plain data is accepted: a tag that would build a Python object is an
error, and so is a key given twice in one mapping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import SuiteError

Loc = tuple[str | int, ...]


def format_loc(loc: Loc) -> str:
    """``("tasks", 1, "params", "length")`` → ``tasks[1].params.length``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out and not (part.isidentifier()):
            out += f"[{part!r}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


@dataclass
class Source:
    """A loaded YAML document and the line of every location in it."""

    path: Path
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line(self, loc: Loc) -> int | None:
        """The line of ``loc``, or of its closest ancestor that has one."""
        for cut in range(len(loc), -1, -1):
            if loc[:cut] in self.lines:
                return self.lines[loc[:cut]]
        return None

    def where(self, loc: Loc) -> str:
        line = self.line(loc)
        suffix = f" (line {line})" if line is not None else ""
        return f"{self.path}: `{format_loc(loc)}`{suffix}"


#: tags a suite may carry: the plain-data ones SafeLoader builds, plus merge keys (``<<``)
PLAIN_TAGS = frozenset(tag for tag in yaml.SafeLoader.yaml_constructors if tag) | {"tag:yaml.org,2002:merge"}


def _check_tag(node: yaml.Node, loc: Loc, path: Path) -> None:
    if node.tag in PLAIN_TAGS:
        return
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    raise SuiteError(
        f"{path}: `{format_loc(loc)}` (line {node.start_mark.line + 1}): the tag `{tag}` is not plain data "
        "(suites never build Python objects). Remove the tag and write the value as a string, number, "
        "list or mapping."
    )


def _walk(
    node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: Path, seen_nodes: set[int] | None = None
) -> None:
    seen_nodes = set() if seen_nodes is None else seen_nodes
    _check_tag(node, loc, path)
    lines[loc] = node.start_mark.line + 1
    if id(node) in seen_nodes:
        return  # an alias of a node walked already: don't walk it again (aliases can nest exponentially)
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            _check_tag(key_node, loc, path)
            key = key_node.value
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):  # a complex key (a list or mapping); construction rejects it
                continue
            if key in seen:
                raise SuiteError(
                    f"{path}: key `{format_loc((*loc, key))}` appears twice (lines {seen[key]} and {line}). "
                    "Keep one of them."
                )
            seen[key] = line
            child = (*loc, key)
            _walk(value_node, child, lines, path, seen_nodes)
            lines[child] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*loc, i), lines, path, seen_nodes)


def load_yaml(path: str | Path) -> Source:
    """Read a YAML file into plain data plus a location → line map."""
    path = Path(path)
    if not path.exists():
        raise SuiteError(
            f"Suite file `{path}` does not exist. Check the path (it is relative to the current "
            f"directory, {Path.cwd()}); the shipped suites live in suites/, e.g. suites/quickstart.yaml."
        )
    if not path.is_file():
        raise SuiteError(
            f"`{path}` is not a file. Pass the path of a suite YAML file, e.g. suites/quickstart.yaml."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(
            f"Cannot read suite file `{path}`: {exc}. Make it a readable UTF-8 text file."
        ) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise _syntax_error(path, exc) from None
    if node is None:
        raise _empty(path)
    lines: dict[Loc, int] = {}
    _walk(node, (), lines, path)  # locations first: a bad tag is reported with its YAML path
    try:
        data = yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506 - SafeLoader
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise SuiteError(
            f"{path}{line}: {exc.problem}. Suites are plain data: remove the `!!` tag and write the "
            "value as a string, number, list or mapping."
        ) from None
    except yaml.YAMLError as exc:
        raise _syntax_error(path, exc) from None
    except RecursionError:
        raise SuiteError(
            f"{path}: the YAML nests too deeply (or an alias refers to itself). Flatten it."
        ) from None
    if data is None:  # only `---`, `~` or `null`
        raise _empty(path)
    return Source(path=path, data=data, lines=lines)


def _empty(path: Path) -> SuiteError:
    return SuiteError(
        f"{path} is empty. A suite needs at least `name`, `tasks` and `architectures`; "
        "copy suites/quickstart.yaml as a starting point."
    )


def _syntax_error(path: Path, exc: yaml.YAMLError) -> SuiteError:
    mark = getattr(exc, "problem_mark", None)
    line = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return SuiteError(
        f"{path}:{line}: invalid YAML ({problem}). Fix the syntax there: check indentation, "
        "colons after keys, and quotes around values containing `:` or `#`."
    )
