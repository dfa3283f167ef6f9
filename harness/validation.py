"""Turns pydantic validation errors into messages that name the YAML place and the fix."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from harness.errors import SuiteError, quote, shorten, suggest
from harness.yamlsrc import Loc, Source, format_loc

MAX_ERRORS = 5
#: the most characters of one error's own text (a validator's message may quote a value too)
MAX_MESSAGE = 1000


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out.extend(_models_in(arg))
    return out


def allowed_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys the model accepts at ``loc`` (a path inside it)."""
    current: list[type[BaseModel]] = [model]
    for part in loc:
        if isinstance(part, int):
            continue
        nxt: list[type[BaseModel]] = []
        for m in current:
            info = m.model_fields.get(part)
            if info is not None:
                nxt.extend(_models_in(info.annotation))
        if not nxt:
            return []
        current = nxt
    keys: list[str] = []
    for m in current:
        keys.extend(k for k in m.model_fields if k not in keys)
    return keys


def _clean_loc(loc: tuple[Any, ...]) -> Loc:
    # pydantic adds union-member names ("int", "list[int]", "function-after[...]") to locs
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and ("[" in part or part in {"int", "float", "str", "bool", "list", "dict"}):
            continue
        out.append(part)
    return tuple(out)


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
        type(None): "empty (null)",
    }.get(type(value), type(value).__name__)


def _hint(kind: str, loc: Loc, value: Any) -> str:
    """A fix for the common error kinds, beyond pydantic's own message."""
    if kind in {"model_type", "dict_type", "model_attributes_type"}:
        if isinstance(value, str) and len(loc) >= 2 and loc[-2] in {"tasks", "architectures"}:
            return f"Write the entry as a mapping: `- name: {value}`."
        if value is None:
            return "Give it `key: value` lines, or remove the key to use the defaults."
        return "Write it as a mapping of `key: value` lines."
    if loc == ("seeds",):
        return (
            "Give a count (e.g. `seeds: 3` for seeds 0, 1, 2) or a list of seeds (e.g. `seeds: [0, 1, 2]`)."
        )
    if kind == "list_type":
        return "Write it as a list, e.g. `[a, b]` or one `- item` per line."
    if kind == "string_pattern_mismatch":
        return "Use letters, digits, `_`, `.` and `-` only, starting with a letter or digit."
    if kind == "string_too_long":
        return "Shorten it."
    if kind == "bool_not_number":
        return "Write a number, e.g. `10` (`true` and `false` are booleans, never counts or sizes)."
    return f"Fix the value of `{format_loc(loc)}`."


def _covered_by_typo(key: Any, extras: list[str]) -> bool:
    """A missing key that an unknown sibling key misspells: the unknown-key message says it all."""
    return isinstance(key, str) and bool(suggest(key, extras))


def describe_errors(
    exc: ValidationError,
    source: Source,
    model: type[BaseModel],
    prefix: Loc = (),
    relocate: typing.Callable[[Loc], Loc | None] | None = None,
) -> list[str]:
    """One sentence per error: where (path and line), what, and how to fix."""
    messages: list[str] = []
    seen: set[Loc] = set()
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    extras: dict[Loc, list[str]] = {}
    for err in errors:
        if err["type"] == "extra_forbidden":
            inner = _clean_loc(err["loc"])
            extras.setdefault(inner[:-1], []).append(str(inner[-1]) if inner else "")
    for err in errors:
        inner = _clean_loc(err["loc"])
        if inner in seen:
            continue
        seen.add(inner)
        if err["type"] == "missing" and inner and _covered_by_typo(inner[-1], extras.get(inner[:-1], [])):
            continue
        moved = relocate(inner) if relocate is not None else None
        loc = moved if moved is not None else (*prefix, *inner)
        where = source.where(loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            key = shorten(str(inner[-1]), 80) if inner else "?"
            keys = allowed_keys(model, inner[:-1])
            hint = suggest(key, keys)
            allowed = f"Allowed keys here: {', '.join(keys)}." if keys else ""
            messages.append(f"{where}: unknown key `{key}`. {hint}{allowed}".rstrip())
        elif kind == "missing":
            messages.append(f"{where}: required key `{inner[-1]}` is missing. Add it.")
        else:
            value = err.get("input")
            # values are quoted through `quote`: a long (or alias-expanded) value is cut, never printed whole
            got = f" (got {quote(value)}, {_type_name(value)})" if not isinstance(value, (dict, list)) else ""
            msg = shorten(err["msg"].removeprefix("Value error, "), MAX_MESSAGE)
            messages.append(f"{where}: {msg}{got}. {_hint(kind, loc, value)}")
        if len(messages) >= MAX_ERRORS:
            break
    return messages


def raise_for(
    exc: ValidationError,
    source: Source,
    model: type[BaseModel],
    prefix: Loc = (),
    relocate: typing.Callable[[Loc], Loc | None] | None = None,
) -> typing.NoReturn:
    """Raise a SuiteError for ``exc``; ``relocate`` may map an inner loc elsewhere."""
    messages = describe_errors(exc, source, model, prefix, relocate)
    # count what was cut at MAX_ERRORS, not what was folded (duplicates, typos reported once)
    extra = len({_clean_loc(e["loc"]) for e in exc.errors()}) - len(messages)
    tail = " (and more errors: fix these first.)" if extra > 0 and len(messages) >= MAX_ERRORS else ""
    raise SuiteError(" ".join(messages) + tail) from None


__all__ = ["allowed_keys", "describe_errors", "raise_for"]
