"""harness-example-plugin: registers the ``mean_pool`` architecture.

Written only against the public ``harness`` API. Importing this module must stay cheap (it runs
in the driver and in every worker): torch is imported inside ``build_encoder``, from the private
``_encoder`` module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from pydantic import Field

from harness import Architecture, InputSpec, Params, hookimpl

if TYPE_CHECKING:  # pragma: no cover - typing only
    from torch import nn

__version__ = "0.1.0"
__all__ = ["MeanPool", "MeanPoolParams", "register_architectures"]


class MeanPoolParams(Params):
    hidden_size: int = Field(32, gt=0, description="features per step after the projection")


class MeanPool(Architecture):
    """A Linear projection (tanh) per step; summary = mean over the valid steps."""

    name = "mean_pool"
    description = "Linear projection + tanh per step; summary = masked mean over valid steps."
    supports: ClassVar[frozenset[str]] = frozenset({"variable_length"})
    Params = MeanPoolParams

    def build_encoder(self, input: InputSpec) -> nn.Module:
        from harness_example_plugin._encoder import MeanPoolEncoder

        return MeanPoolEncoder(input, cast(MeanPoolParams, self.params).hidden_size)


@hookimpl
def register_architectures(register: Callable[[Any], None]) -> None:
    register(MeanPool)
