"""The ``transformer`` architecture (declaration only: the network lives in ``_transformer``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from harness import InputSpec, Params, Width

from .decoders import TransformerDecoderArchitecture

if TYPE_CHECKING:  # pragma: no cover - typing only
    from torch import nn


#: upper bounds that catch typos at validation (``d_model: 1.0e+11`` would otherwise fail every run
#: out of memory): far above any network this architecture is benchmarked with
MAX_WIDTH = 16_384
MAX_FEEDFORWARD = 65_536
MAX_HEADS = 1_024
MAX_LAYERS = 1_000


def _divisors_near(number: int, target: int) -> list[int]:
    """The divisors of ``number`` closest to ``target`` from below and from above."""
    below = [d for d in range(1, target) if number % d == 0]
    above = [d for d in range(target + 1, number + 1) if number % d == 0]
    return below[-1:] + above[:1]


class TransformerParams(Params):
    d_model: int = Field(64, gt=0, le=MAX_WIDTH, description="width of the residual stream")
    num_heads: int = Field(4, gt=0, le=MAX_HEADS, description="attention heads (must divide d_model)")
    num_layers: int = Field(2, gt=0, le=MAX_LAYERS, description="encoder layers")
    dim_feedforward: int = Field(
        128, gt=0, le=MAX_FEEDFORWARD, description="hidden units of each feed-forward block"
    )
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout (inputs, attention, feed-forward)")
    causal: bool = Field(False, description="causal attention mask: step t attends to steps <= t")
    pooling: Literal["auto", "mean", "last"] = Field(
        "auto",
        description="summary: mean over valid steps, or the last valid step; "
        "auto = last when causal, else mean",
    )
    norm_first: bool = Field(True, description="pre-LayerNorm layers (more stable to train)")

    @model_validator(mode="after")
    def _heads_divide_model(self) -> TransformerParams:
        if self.d_model % self.num_heads:
            options = " or ".join(f"num_heads={d}" for d in _divisors_near(self.d_model, self.num_heads))
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads}): "
                f"each head gets d_model / num_heads features; try {options}"
            )
        return self

    @property
    def summary_pooling(self) -> str:
        """The pooling actually used: ``auto`` resolved."""
        if self.pooling == "auto":
            return "last" if self.causal else "mean"
        return self.pooling


class Transformer(TransformerDecoderArchitecture[TransformerParams]):
    name = "transformer"
    description = "Transformer encoder with sinusoidal positions; summary = masked mean or last step."
    supports = frozenset({"variable_length", "seq2seq"})
    # a parameter budget sizes d_model in steps of num_heads; the feed-forward keeps its 2x ratio
    budget_width = Width("d_model", tied={"dim_feedforward": 2.0}, multiple_of="num_heads")

    @classmethod
    def tune_space(cls) -> dict[str, Any]:
        # transformers want a warm-up (Liu et al. 2020, "On the Variance of the Adaptive Learning
        # Rate"); dropout regularizes small data sets
        return {
            "params.dropout": {"uniform": [0.0, 0.3]},
            "trainer.scheduler.warmup_fraction": {"uniform": [0.0, 0.2]},
        }

    def capabilities(self) -> frozenset[str]:
        return (self.supports | {"causal"}) if self.params.causal else self.supports

    def build_encoder(self, input: InputSpec) -> nn.Module:
        from ._transformer import TransformerSequenceEncoder

        p = self.params
        return TransformerSequenceEncoder(
            input,
            d_model=p.d_model,
            num_heads=p.num_heads,
            num_layers=p.num_layers,
            dim_feedforward=p.dim_feedforward,
            dropout=p.dropout,
            causal=p.causal,
            pooling=p.summary_pooling,
            norm_first=p.norm_first,
        )
