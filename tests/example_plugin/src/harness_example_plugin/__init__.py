"""harness-example-plugin: registers the ``mean_pool`` architecture.

Written only against the public ``harness`` API. Importing this module must stay cheap (it runs
in the driver and in every worker): torch is imported inside ``build_encoder``, from the private
``_encoder`` module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from harness import Architecture, InputSpec, Params, hookimpl

if TYPE_CHECKING:  # pragma: no cover - typing only
    from torch import nn

__version__ = "0.1.0"
__all__ = ["MeanPool", "MeanPoolParams", "register_architectures"]


class MeanPoolParams(Params):
    hidden_size: int = Field(32, gt=0, description="features per step after the projection")


class MeanPool(Architecture[MeanPoolParams]):
    """A Linear projection (tanh) per step; summary = mean over the valid steps.

    The type argument is the params model: it sets ``MeanPool.Params`` (what validates a suite's
    ``params``) and types ``self.params`` as ``MeanPoolParams``.
    """

    name = "mean_pool"
    description = "Linear projection + tanh per step; summary = masked mean over valid steps."
    supports: ClassVar[frozenset[str]] = frozenset({"variable_length"})

    def build_encoder(self, input: InputSpec) -> nn.Module:
        from harness_example_plugin._encoder import MeanPoolEncoder

        return MeanPoolEncoder(input, self.params.hidden_size)


@hookimpl
def register_architectures(register: Callable[[type[Architecture[Any]]], None]) -> None:
    register(MeanPool)
