"""Safe YAML loading that remembers where every value came from (file and line).

Only plain data is accepted: a tag that would build a Python object is an
error, and so is a key given twice in one mapping. The work is bounded: a file
larger than :data:`MAX_SUITE_BYTES` is refused before it is read, and nesting
deeper than :data:`MAX_DEPTH` or aliases that expand to more than
:data:`MAX_ALIAS_NODES` values (an "alias bomb") are refused while parsing,
before anything is built.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import SuiteError, quote, shorten

Loc = tuple[str | int, ...]

#: the largest suite file read unless ``HARNESS_MAX_SUITE_BYTES`` allows more (1 MiB): a suite is
#: a few kilobytes of settings, so a larger one is a mistake (data pasted in) or an attack
MAX_SUITE_BYTES = 1024 * 1024
MAX_SUITE_BYTES_ENV = "HARNESS_MAX_SUITE_BYTES"
#: the deepest nesting of lists and mappings a suite may have (real suites use fewer than 10)
MAX_DEPTH = 64
#: the most values YAML aliases (``*name``) may add to a suite once expanded: an alias repeats
#: its anchor's whole value, so nested aliases grow exponentially (a 500-byte file can expand to
#: 10⁸ values); real suites share a trainer block or two
MAX_ALIAS_NODES = 100_000


def format_loc(loc: Loc) -> str:
    """``("tasks", 1, "params", "length")`` → ``tasks[1].params.length``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out and not (part.isidentifier()):
            out += f"[{quote(part, 60)}]"
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


class _Frame:
    """An open list or mapping while the events stream past: where it is, how many values it
    holds so far (itself included, aliases expanded), and which key or index comes next."""

    __slots__ = ("anchor", "is_map", "key", "key_next", "loc", "size", "index")

    def __init__(self, loc: Loc, anchor: str | None, is_map: bool) -> None:
        self.loc = loc
        self.anchor = anchor
        self.is_map = is_map
        self.size = 1
        self.index = 0
        self.key: str | int = "?"
        self.key_next = True

    def place(self, event: yaml.Event) -> Loc:
        """The location of the node that ``event`` starts (a key is placed at its mapping)."""
        if not self.is_map:
            self.index += 1
            return (*self.loc, self.index - 1)
        if self.key_next:
            self.key_next = False
            self.key = event.value if isinstance(event, yaml.ScalarEvent) else "?"
            return self.loc
        self.key_next = True
        return (*self.loc, self.key)


def _line(event: yaml.Event) -> str:
    mark = event.start_mark
    return f" (line {mark.line + 1})" if mark is not None else ""


def _check_shape(text: str, path: Path) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` and aliases that expand to more than
    :data:`MAX_ALIAS_NODES` values, from the parser's events (nothing is built or expanded).

    libyaml's parser (when PyYAML has it) does this in a fraction of the time; where it finds
    the YAML malformed the pure-Python parser, which the loader uses, checks it instead."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            _check_events(yaml.parse(text, Loader=fast), path)
            return
        except yaml.YAMLError:
            pass
    _check_events(yaml.parse(text, Loader=yaml.SafeLoader), path)


def _check_events(events: Iterator[yaml.Event], path: Path) -> None:
    stack: list[_Frame] = []
    sizes: dict[str, int] = {}  # anchor -> how many values its node holds, aliases expanded
    through_aliases = 0
    for event in events:
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            loc = stack[-1].place(event) if stack else ()
            if len(stack) >= MAX_DEPTH:
                raise SuiteError(
                    f"{path}: `{shorten(format_loc(loc), 120)}`{_line(event)}: the YAML nests deeper than "
                    f"{MAX_DEPTH} levels of lists and mappings. A suite needs only a few levels: flatten it "
                    "(a grid axis is one list of values)."
                )
            stack.append(_Frame(loc, event.anchor, isinstance(event, yaml.MappingStartEvent)))
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            done = stack.pop()
            if done.anchor is not None:
                sizes[done.anchor] = done.size
            if stack:
                stack[-1].size += done.size
        elif isinstance(event, yaml.ScalarEvent):
            if stack:
                stack[-1].place(event)
                stack[-1].size += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            loc = stack[-1].place(event) if stack else ()
            size = sizes.get(event.anchor or "", 1)  # an undefined alias: composing reports it
            through_aliases += size
            if through_aliases > MAX_ALIAS_NODES:
                raise SuiteError(
                    f"{path}: `{format_loc(loc)}`{_line(event)}: the alias "
                    f"`*{event.anchor}` repeats {size:,} value(s), bringing what the suite's aliases expand "
                    f"to past the limit of {MAX_ALIAS_NODES:,} values (nested aliases grow exponentially). "
                    "Write the values out, or share fewer and smaller anchored blocks."
                )
            if stack:
                stack[-1].size += size


def _max_bytes() -> int:
    raw = os.environ.get(MAX_SUITE_BYTES_ENV, "").strip()
    return int(raw) if raw.isdigit() else MAX_SUITE_BYTES


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
    size, limit = path.stat().st_size, _max_bytes()
    if size > limit:
        raise SuiteError(
            f"{path} is {size:,} bytes, more than the limit of {limit:,} bytes for a suite file. A suite is "
            "a few kilobytes of settings: keep long text (a description) short and data out of it. To load "
            f"a file this large on purpose, set {MAX_SUITE_BYTES_ENV}={size}."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(
            f"Cannot read suite file `{path}`: {exc}. Make it a readable UTF-8 text file."
        ) from None
    loader = yaml.SafeLoader(text)
    try:
        _check_shape(text, path)  # bounded work first: depth and alias expansion
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        loader.dispose()
        raise _syntax_error(path, exc) from None
    if node is None:
        loader.dispose()
        raise _empty(path)
    lines: dict[Loc, int] = {}
    try:
        _walk(node, (), lines, path)  # locations first: a bad tag is reported with its YAML path
        data = loader.construct_document(node)
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
    finally:
        loader.dispose()
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
