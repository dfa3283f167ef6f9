"""Parameter budgets: ``budget: {params: N}`` sizes each architecture, per task, to N parameters.

An architecture declares its width (:attr:`harness.Architecture.budget_width`: a parameter name or a
:class:`harness.Width` with tied parameters and a divisibility rule). For each runnable cell of a
suite with a budget, the planner calls :func:`size`: the largest width whose network — built by
:func:`harness.network.build_network`, exactly as training builds it, on torch's ``meta`` device
so nothing is allocated or initialised — has at most N parameters. The search doubles the width
until it is over budget, then bisects: about 2·log2(width) builds, each cached by (task, params,
architecture, params). Widths are multiples of the declared step; the bounds are the width
field's own (``gt``/``ge``/``le``/``lt``). torch is imported only here, and only when a budget
is set, so planning a suite without one stays light.

Rules (the suite reference in README.md states them): a width the suite sets explicitly (in an
architecture's ``params`` or ``grid``) together with a budget is an error, unless that entry has
``budget: false``; a tied parameter the suite sets stays as set; the task's own ``budget``
overrides the suite's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from harness.errors import PluginError, SuiteError
from harness.interfaces import Params, Width
from harness.network import build_network, parameter_count
from harness.records import Sizing
from harness.yamlsrc import Loc, format_loc

if TYPE_CHECKING:  # pragma: no cover - typing only
    from harness.interfaces import Architecture, Task
    from harness.registry import Entry
    from harness.suite import ArchitectureEntry, Suite, TaskEntry

#: the widest width searched when the width field has no upper bound of its own
UNBOUNDED_WIDTH = 2**24
#: a count below this share of the budget is flagged (the width step is too coarse to get closer)
CLOSE_ENOUGH = 0.9

_counts: dict[tuple[Any, ...], int] = {}
_sizes: dict[tuple[Any, ...], tuple[Params, Sizing]] = {}
_CACHE_LIMIT = 50_000


class BudgetError(SuiteError):
    """No width meets the budget, or the architecture cannot be built to count it."""


def _field_default(model: type[Params], name: str) -> Any:
    field = model.model_fields.get(name)
    return None if field is None else field.get_default(call_default_factory=True)


def declaration_problems(cls: type[Architecture[Any]]) -> list[str]:
    """What is wrong with ``cls``'s width declaration (empty: nothing, or no declaration)."""
    try:
        decl = cls.budget_width_spec()
    except Exception as exc:  # a broken override of budget_width_spec
        return [f"budget_width_spec() raised {type(exc).__name__}: {exc}"]
    if decl is None:
        return []
    if not isinstance(decl, Width):
        return [f"`width` is {decl!r}; give a parameter name or a harness.Width"]
    fields = cls.Params.model_fields
    problems: list[str] = []
    names = [decl.param, *decl.tied] + ([decl.multiple_of] if isinstance(decl.multiple_of, str) else [])
    for name in names:
        if name not in fields:
            problems.append(
                f"`{name}` is not a parameter of {cls.Params.__name__} ({', '.join(fields) or 'none'})"
            )
        elif fields[name].annotation is not int:
            problems.append(
                f"`{name}` must be an int parameter (it is annotated {fields[name].annotation!r})"
            )
    for name, ratio in decl.tied.items():
        if not (isinstance(ratio, (int, float)) and math.isfinite(ratio) and ratio > 0):
            problems.append(f"tied ratio of `{name}` must be a positive number (got {ratio!r})")
    if isinstance(decl.multiple_of, int) and not decl.multiple_of >= 1:
        problems.append(f"multiple_of must be at least 1 (got {decl.multiple_of})")
    return problems


def width_bounds(model: type[Params], name: str) -> tuple[int, int]:
    """The smallest and largest width the field ``name`` allows (its ``gt``/``ge``/``lt``/``le``)."""
    low, high = 1, UNBOUNDED_WIDTH
    for rule in model.model_fields[name].metadata:
        if getattr(rule, "ge", None) is not None:
            low = max(low, math.ceil(rule.ge))
        if getattr(rule, "gt", None) is not None:
            low = max(low, math.floor(rule.gt) + 1)
        if getattr(rule, "le", None) is not None:
            high = min(high, math.floor(rule.le))
        if getattr(rule, "lt", None) is not None:
            high = min(high, math.ceil(rule.lt) - 1)
    return low, high


def width_step(cls: type[Architecture[Any]], decl: Width, raw: Mapping[str, Any]) -> int:
    """The width's step: ``multiple_of``, or the value of the parameter it names (1 when that
    value is not a positive int: validation then reports it)."""
    if isinstance(decl.multiple_of, int):
        return max(1, decl.multiple_of)
    value = raw.get(decl.multiple_of, _field_default(cls.Params, decl.multiple_of))
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else 1


def width_values(decl: Width, width: int, raw: Mapping[str, Any]) -> dict[str, int]:
    """The parameters a width sets: the width, and each tied parameter the suite left unset."""
    tied = {name: max(1, round(ratio * width)) for name, ratio in decl.tied.items() if name not in raw}
    return {decl.param: width, **tied}


def provisional(cls: type[Architecture[Any]], raw: Mapping[str, Any]) -> dict[str, int]:
    """The width values a cell validates with before it is sized (and keeps when it is skipped):
    the multiple of the step nearest the width's default, so the built-ins' skipped cells keep
    their default parameters."""
    decl = cls.budget_width_spec()
    if decl is None:
        return {}
    step = width_step(cls, decl, raw)
    default = _field_default(cls.Params, decl.param)
    width = default if isinstance(default, int) and default >= 1 else step
    return width_values(decl, max(step, round(width / step) * step), raw)


def count_parameters(task: Task[Any], arch: Architecture[Any]) -> int:
    """The exact parameter count of the network a run of ``arch`` on ``task`` trains (encoder,
    seq2seq decoder, head), built on the ``meta`` device (on the CPU where an initialisation does
    not run on ``meta``), with the caller's random state left as it was. Cached."""
    key = (type(task), task.params.model_dump_json(), type(arch), arch.params.model_dump_json())
    if key not in _counts:
        import torch

        with torch.random.fork_rng(devices=[]):
            try:
                with torch.device("meta"):
                    count = parameter_count(build_network(task, arch))
            except Exception:
                count = parameter_count(build_network(task, arch))
        if len(_counts) > _CACHE_LIMIT:
            _counts.clear()
        _counts[key] = count
    return _counts[key]


def size(
    task: Task[Any], cls: type[Architecture[Any]], raw: Mapping[str, Any], budget: int, *, fix: str = ""
) -> tuple[Params, Sizing]:
    """The params of ``cls`` at the largest width (a multiple of its step, within its bounds) whose
    network on ``task`` has at most ``budget`` parameters, and the :class:`Sizing` that says so.
    ``raw``: the parameters the suite sets. ``fix``: how to turn the budget off for this entry
    (ends the error message). Raises :class:`BudgetError` when even the smallest width is over."""
    key = (
        type(task),
        task.params.model_dump_json(),
        cls,
        json.dumps(dict(raw), sort_keys=True, default=str),
        budget,
    )
    if key in _sizes:
        return _sizes[key]
    decl = cls.budget_width_spec()
    if decl is None:
        raise ValueError(f"{cls.__name__} declares no width")
    step = width_step(cls, decl, raw)
    low, high = width_bounds(cls.Params, decl.param)
    k_min, k_max = max(1, math.ceil(low / step)), high // step
    what = f"`{cls.name}` on task `{task.name}`"
    counts: dict[int, int | None] = {}
    errors: dict[int, str] = {}

    def params_at(k: int) -> Params | None:
        try:
            return cls.Params.model_validate({**raw, **width_values(decl, k * step, raw)})
        except ValidationError as exc:
            errors[k] = "; ".join(str(e["msg"]) for e in exc.errors())
            return None

    def count(k: int) -> int | None:
        if k not in counts:
            params = params_at(k)
            try:
                counts[k] = None if params is None else count_parameters(task, cls(params))
            except Exception as exc:
                raise BudgetError(
                    f"{what}: building the network at {decl.param}={k * step} to count its parameters "
                    f"failed ({type(exc).__name__}: {exc}). {fix}"
                ) from exc
        return counts[k]

    def fits(k: int) -> bool:
        c = count(k)
        return c is not None and c <= budget

    smallest = count(k_min) if k_min <= k_max else None
    if smallest is None:
        raise BudgetError(
            f"{what}: no {decl.param} in {low}..{high} that is a multiple of {step} gives valid parameters "
            f"({errors.get(k_min, 'no such width')}). {fix}"
        )
    if smallest > budget:
        raise BudgetError(
            f"no width of {what} fits a budget of {budget:,} parameters: its smallest network "
            f"({decl.param}={k_min * step}) has {smallest:,}. Raise the budget to at least {smallest:,}, "
            f"make the network smaller in other ways (e.g. fewer layers), or {fix}"
        )
    good, bad = k_min, None
    while bad is None and good < k_max:  # double until over budget (or at the widest allowed)
        probe = min(2 * good, k_max)
        good, bad = (probe, None) if fits(probe) else (good, probe)
    if bad is not None:
        while bad - good > 1:  # bisect: fits(good) and not fits(bad)
            middle = (good + bad) // 2
            good, bad = (middle, bad) if fits(middle) else (good, middle)
    chosen = params_at(good)
    params = count(good)
    if chosen is None or params is None:  # pragma: no cover - fits(good) held
        raise BudgetError(f"{what}: the chosen width did not validate")
    result = (chosen, Sizing(budget=budget, params=params, width=decl.param, step=step, next_params=None))
    if good < k_max:
        result = (chosen, result[1].model_copy(update={"next_params": count(good + 1)}))
    if len(_sizes) > _CACHE_LIMIT:
        _sizes.clear()
    _sizes[key] = result
    return result


def sizing_note(sizing: Sizing, value: Any) -> str:
    """Why a count is further than 10 % below its budget, or ``""`` (the `harness validate` table)."""
    if sizing.fraction >= CLOSE_ENOUGH:
        return ""
    if sizing.next_params is None:
        return f"{sizing.width}={value} is the largest allowed"
    return (
        f"width step {sizing.step} too coarse: {sizing.width}={value + sizing.step} has "
        f"{sizing.next_params:,} ({sizing.next_params / sizing.budget:.0%})"
    )


# -- the planner's side (harness.matrix) ----------------------------------------------------------
def cell_budget(suite: Suite, t_entry: TaskEntry, t_base: Loc) -> tuple[int, Loc] | None:
    """The parameter budget of a task's cells and where it was set: the task's own, else the suite's."""
    if t_entry.budget is not None:
        return t_entry.budget.params, (*t_base, "budget", "params")
    if suite.spec.budget is not None:
        return suite.spec.budget.params, ("budget", "params")
    return None


def sizes_entry(
    a_entry: ArchitectureEntry,
    a_reg: Entry[type[Architecture[Any]]],
    a_base: Loc,
    budget_loc: Loc,
    suite: Suite,
) -> bool:
    """Whether the budget sizes this architecture entry: it declares a width and does not turn the
    budget off (``budget: false``). A width the entry sets itself is an error naming both."""
    cls = a_reg.obj
    decl = cls.budget_width_spec()
    if not a_entry.budget or decl is None:
        return False
    problems = declaration_problems(cls)
    if problems:
        raise PluginError(
            f"{suite.source.where(budget_loc)}: architecture `{a_entry.name}` "
            f"({a_reg.provenance.distribution}) declares a width the budget cannot size: "
            f"{'; '.join(problems)}. Fix its `width` declaration, or set `budget: false` on "
            f"`{format_loc(a_base)}`."
        )
    for key in ("params", "grid"):
        if decl.param in getattr(a_entry, key):
            raise SuiteError(
                f"{suite.source.where((*a_base, key, decl.param))}: `{decl.param}` is set here, but the "
                f"parameter budget (`{format_loc(budget_loc)}`, line {suite.source.line(budget_loc)}) "
                f"chooses `{decl.param}` for "
                f"`{a_entry.name}`. Remove `{decl.param}` to let the budget size it, or set "
                "`budget: false` on this architecture entry to keep your value."
            )
    return True


def size_cell(
    task: Task[Any],
    cls: type[Architecture[Any]],
    explicit: Mapping[str, Any],
    budget: tuple[int, Loc],
    a_base: Loc,
    suite: Suite,
) -> tuple[Params, Sizing]:
    """:func:`size`, with errors that name the budget's place in the suite."""
    fix = f"set `budget: false` on `{format_loc(a_base)}` to size it by hand."
    try:
        return size(task, cls, explicit, budget[0], fix=fix)
    except BudgetError as exc:
        raise BudgetError(f"{suite.source.where(budget[1])}: {exc}") from exc
