"""The suite's ``tune:`` block and its search spaces: what tuning may change, how to draw a value.

A space maps a *target* to a *domain*. Targets are ``trainer.<key>`` (dotted into the trainer
block, e.g. ``trainer.lr``, ``trainer.scheduler.name``) and ``params.<key>`` (an architecture
parameter, e.g. ``params.dropout``). Domains are written in a suite as one-key mappings::

    trainer.lr: {loguniform: [0.0001, 0.01]}
    trainer.weight_decay: {choice: [0.0, 0.00001, 0.0001]}
    params.dropout: {uniform: [0.0, 0.3]}
    params.num_layers: {int: [1, 3]}

An architecture plugin declares its defaults with :meth:`harness.Architecture.tune_space`; the
core adds the trainer's (:func:`default_trainer_space`); a suite's ``tune.space`` overrides both.
This module imports no Ray and nothing of harness but :mod:`harness.settings`: a domain becomes a
``ray.tune`` sampler only in :mod:`harness.tuning`, and draws its own values for the seeded random
search.
"""

from __future__ import annotations

import math
import random
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.settings import Int, Seconds, Strict, parse_seconds

Kind = Literal["loguniform", "uniform", "int", "logint", "choice"]
KINDS: tuple[str, ...] = ("loguniform", "uniform", "int", "logint", "choice")
#: the blocks a target may address
TARGETS = ("trainer", "params")


class Domain(BaseModel):
    """One dimension of a search space: ``kind`` and its ``values`` (bounds, or the choices)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    values: tuple[Any, ...]

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, data: Any) -> Any:
        """``{loguniform: [lo, hi]}`` (the suite's form) → ``{kind, values}``."""
        if isinstance(data, dict) and len(data) == 1 and next(iter(data)) in KINDS:
            kind, values = next(iter(data.items()))
            return {"kind": kind, "values": values}
        if isinstance(data, dict) and "kind" in data:
            return data
        raise ValueError(
            "a search domain is one of "
            + ", ".join(f"`{{{k}: [...]}}`" for k in KINDS)
            + ", e.g. `{loguniform: [0.0001, 0.01]}`"
        )

    @model_validator(mode="after")
    def _check(self) -> Domain:
        if self.kind == "choice":
            if not self.values:
                raise ValueError("`choice` needs at least one value")
            return self
        if len(self.values) != 2:
            raise ValueError(f"`{self.kind}` needs two bounds, [low, high]")
        low, high = self.values
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
        if not numbers or not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"`{self.kind}` bounds must be finite numbers")
        if self.kind in ("int", "logint") and not (float(low).is_integer() and float(high).is_integer()):
            raise ValueError(f"`{self.kind}` bounds must be whole numbers")
        if not low < high:
            raise ValueError(f"`{self.kind}` needs low < high (got [{low}, {high}])")
        if self.kind in ("loguniform", "logint") and low <= 0:
            raise ValueError(f"`{self.kind}` needs positive bounds (a log scale)")
        return self

    def sample(self, rng: random.Random) -> Any:
        """One value, drawn with ``rng`` (the seeded random search)."""
        if self.kind == "choice":
            return self.values[rng.randrange(len(self.values))]
        low, high = self.values
        if self.kind == "uniform":
            return rng.uniform(low, high)
        if self.kind == "loguniform":
            return math.exp(rng.uniform(math.log(low), math.log(high)))
        if self.kind == "int":
            return rng.randint(int(low), int(high))
        value = round(math.exp(rng.uniform(math.log(low), math.log(high))))
        return int(min(max(value, low), high))

    def to_ray(self) -> Any:
        """The ``ray.tune`` sampler of this domain (for searchers that sample themselves)."""
        from ray import tune

        low, high = (self.values + (None, None))[:2]
        return {
            "choice": lambda: tune.choice(list(self.values)),
            "uniform": lambda: tune.uniform(low, high),
            "loguniform": lambda: tune.loguniform(low, high),
            "int": lambda: tune.randint(int(low), int(high) + 1),
            "logint": lambda: tune.lograndint(int(low), int(high) + 1),
        }[self.kind]()

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(str(v) for v in self.values)
        return f"{self.kind} [{self.values[0]:g}, {self.values[1]:g}]"


Space = dict[str, Domain]


def check_target(target: str) -> str | None:
    """Why ``target`` cannot be tuned, or None (``trainer.<key>`` or ``params.<key>``)."""
    block, _, key = target.partition(".")
    if block not in TARGETS or not key:
        return (
            f"`{target}` is not a tunable setting: write `trainer.<key>` (e.g. `trainer.lr`) or "
            "`params.<key>` (an architecture parameter, e.g. `params.dropout`)"
        )
    return None


def default_trainer_space(lr: float) -> Space:
    """The core's default: the learning rate over two decades around the suite's, log scale."""
    return {"trainer.lr": Domain(kind="loguniform", values=(lr / 10, lr * 10))}


def split(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A sampled configuration → (trainer overrides, architecture params), keys without block."""
    trainer = {k[len("trainer.") :]: v for k, v in config.items() if k.startswith("trainer.")}
    params = {k[len("params.") :]: v for k, v in config.items() if k.startswith("params.")}
    return trainer, params


def draw(space: Space, count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` configurations of ``space`` drawn at random, reproducibly from ``seed``."""
    rng = random.Random(seed)
    return [{target: space[target].sample(rng) for target in sorted(space)} for _ in range(count)]


class AshaSpec(Strict):
    """ASHA (asynchronous successive halving): trials are compared at rungs of ``grace_period``
    × ``reduction_factor``^k epochs, and all but the top 1/``reduction_factor`` stop there."""

    grace_period: Int = Field(1, ge=1)
    reduction_factor: float = Field(2.0, gt=1)


class TuneSpec(Strict):
    """``tune:``: tune every architecture with the same budget, then run its best configuration
    over the suite's seeds (see docs/fair-comparisons.md)."""

    #: trials per (task, architecture): the same for every contender
    trials_per_architecture: Int | None = Field(None, ge=1, le=1000)
    #: wall-clock budget per (task, architecture): seconds or "HH:MM:SS"
    time_per_architecture: Seconds = None
    #: random (seeded, reproducible) or optuna (TPE; `pip install optuna`)
    search: Literal["random", "optuna"] = "random"
    #: asha (stop bad trials early) or none (every trial trains all its epochs)
    scheduler: Literal["asha", "none"] = "asha"
    asha: AshaSpec = Field(default_factory=AshaSpec)
    #: the seed every tuning trial trains with, and the search's own seed
    seed: Int = Field(0, ge=0, le=2**32 - 1)
    #: also run the suite's untuned configuration over the seeds, to show tuned vs default
    compare_default: bool = True
    #: architecture name or label (or ``*`` for every one) → target → domain; overrides the
    #: architecture's own defaults (``Architecture.tune_space``) and the core's (the learning rate)
    space: dict[str, dict[str, Domain]] = Field(default_factory=dict)

    @field_validator("search")
    @classmethod
    def _installed(cls, value: str) -> str:
        import importlib.util

        if value == "optuna" and importlib.util.find_spec("optuna") is None:
            raise ValueError(
                "Optuna is not installed here: install it (`pip install optuna`) or use `search: random`"
            )
        return value

    @field_validator("time_per_architecture")
    @classmethod
    def _time(cls, value: float | str | None) -> float | None:
        return parse_seconds(value, "tune.time_per_architecture")

    @field_validator("space")
    @classmethod
    def _targets(cls, value: dict[str, dict[str, Domain]]) -> dict[str, dict[str, Domain]]:
        for targets in value.values():
            for target in targets:
                problem = check_target(target)
                if problem:
                    raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _budget(self) -> TuneSpec:
        if self.trials_per_architecture is None and self.time_per_architecture is None:
            raise ValueError(
                "give the tuning budget: `trials_per_architecture` (e.g. 8), `time_per_architecture` "
                '(e.g. "00:05:00"), or both'
            )
        return self

    def space_for(self, name: str, label: str) -> Space:
        """The suite's overrides for one architecture entry: ``*``, then its name, then its label."""
        out: Space = {}
        for key in ("*", name, label):
            out.update(self.space.get(key, {}))
        return out


__all__ = [
    "KINDS",
    "AshaSpec",
    "Domain",
    "Space",
    "TuneSpec",
    "check_target",
    "default_trainer_space",
    "draw",
    "split",
]
