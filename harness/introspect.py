"""Human-readable descriptions of registered components (for `harness list`)."""

from __future__ import annotations

import typing
from typing import Any


def _type_name(annotation: Any) -> str:
    if annotation is None or annotation is type(None):
        return "None"
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "|".join(str(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = [_type_name(a) for a in typing.get_args(annotation)]
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            return " | ".join(args)
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(args)}]"
    return getattr(annotation, "__name__", str(annotation))


def describe_params(obj: Any) -> str:
    """``name: type = default — description`` per parameter, one per line."""
    model = getattr(obj, "Params", None)
    if model is None or not hasattr(model, "model_fields"):
        kinds = getattr(obj, "output_kinds", None)
        if kinds is not None:
            return f"for: {', '.join(sorted(kinds))}; better: {'higher' if obj.direction == 'max' else 'lower'}"
        return ""
    lines = []
    for name, field in model.model_fields.items():
        default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
        text = f"{name}: {_type_name(field.annotation)} = {default}"
        if field.description:
            text += f" — {field.description}"
        lines.append(text)
    return "\n".join(lines) or "(none)"
