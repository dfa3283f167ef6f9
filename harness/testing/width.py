"""Conformance check of an architecture's width declaration (what a parameter budget sizes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from harness.budget import declaration_problems, width_bounds, width_step, width_values
from harness.interfaces import Architecture, InputSpec
from harness.testing._common import CheckFailed

#: the multiples of the width's step the check builds (within the width field's bounds)
_STEPS = (1, 2, 3, 4, 6, 8, 16)


def check_width(cls: type[Architecture[Any]], params: Mapping[str, Any] | None, spec: InputSpec) -> str:
    """``cls.budget_width`` names an int parameter of its ``Params`` (and so do its tied parameters and a
    named ``multiple_of``), and the encoder's parameter count grows strictly with the width."""
    decl = cls.budget_width_spec()
    if decl is None:
        return "skipped: declares no width (a parameter budget leaves it as set)"
    problems = declaration_problems(cls)
    if problems:
        raise CheckFailed(f"the `width` declaration: {'; '.join(problems)}")
    raw = dict(params or {})
    raw.pop(decl.param, None)
    step = width_step(cls, decl, raw)
    low, high = width_bounds(cls.Params, decl.param)
    first = max(1, -(-low // step))
    widths = [k * step for k in sorted({first * n for n in _STEPS}) if k * step <= high]
    counts: list[tuple[int, int]] = []
    for width in widths:
        try:
            validated = cls.Params.model_validate({**raw, **width_values(decl, width, raw)})
        except ValidationError as exc:
            raise CheckFailed(
                f"`{decl.param}={width}` (a multiple of its step {step}, within its bounds) does not "
                f"validate: {exc.errors()[0]['msg']}; the budget's search needs every such width to be valid"
            ) from exc
        encoder = cls(validated).build_encoder(spec)
        counts.append((width, sum(p.numel() for p in encoder.parameters())))
    for (w1, c1), (w2, c2) in zip(counts, counts[1:], strict=False):
        if c2 <= c1:
            raise CheckFailed(
                f"the parameter count does not grow with `{decl.param}`: {w1} gives {c1:,}, {w2} gives "
                f"{c2:,}; a budget searches the width assuming it does: declare the parameter that sets "
                "the network's width"
            )
    shown = ", ".join(f"{w}: {c:,}" for w, c in counts)
    return f"`{decl.param}` (step {step}) → parameters {shown}"
