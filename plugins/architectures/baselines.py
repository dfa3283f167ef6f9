"""Classical forecasting baselines: ``naive``, ``seasonal_naive``, ``arima``.

They run as architectures so that they sit in the same tables as the networks, on forecasting
tasks only. ``trainable = False``: the harness calls the encoder's ``fit(datamodule)`` (closed form
or maximum likelihood on the training span, no gradient steps) and then tests it; the forecasting
task uses the encoder's forecast as its prediction (no head). What ``fit`` reads from the data
module is documented in ``_baselines``.

Declarations only: no torch here. The forecasters live in ``_baselines`` (loaded by
``build_encoder``); ``arima`` needs statsmodels (``pip install statsmodels``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal, TypeVar

from pydantic import Field

from harness import Architecture, InputSpec, Params, TaskInfo

if TYPE_CHECKING:  # pragma: no cover - typing only
    from torch import nn


_P = TypeVar("_P", bound=Params)

#: the longest season a baseline accepts (a typo beyond it would fail every run)
MAX_SEASON = 10_000


class _Baseline(Architecture[_P]):
    """Shared declaration: causal forecasters fitted without gradients, for forecasting tasks."""

    supports: ClassVar[frozenset[str]] = frozenset({"variable_length", "causal"})
    trainable: ClassVar[bool] = False

    def incompatibility(self, info: TaskInfo) -> str | None:
        if info.output_kind != "forecasting":
            return (
                f"`{self.name}` is a classical forecasting baseline: it runs on forecasting tasks only "
                f"(this task's output is {info.output_kind})"
            )
        return super().incompatibility(info)


class SeasonalNaiveParams(Params):
    season: int | None = Field(
        None,
        ge=1,
        le=MAX_SEASON,
        description="season length in steps (default: the series' season, e.g. 12 for monthly data)",
    )


class ArimaParams(Params):
    order: tuple[int, int, int] | None = Field(
        None,
        description="(p, d, q); default: the series' model (sunspots AR(9), co2 ARIMA(2,1,2) with drift, "
        "airline (0,1,1)(0,1,1)12)",
    )
    seasonal_order: tuple[int, int, int] | None = Field(
        None,
        description="(P, D, Q) at the series' season; default: the series' model's (none when order is set)",
    )
    season: int | None = Field(
        None, ge=2, le=MAX_SEASON, description="seasonal period (default: the series' season)"
    )
    trend: Literal["n", "c", "t", "ct"] | None = Field(
        None,
        description=(
            "deterministic trend: n none, c constant, t drift/linear; default: c without differencing, else n"
        ),
    )
    fit_on: Literal["train", "train_val"] = Field(
        "train_val",
        description=(
            "span the parameters are estimated on: the training split, or everything before the test split"
        ),
    )
    method: Literal[
        "statespace", "innovations_mle", "hannan_rissanen", "burg", "yule_walker", "innovations"
    ] = Field("statespace", description="statsmodels ARIMA.fit method (statespace: exact maximum likelihood)")


class Naive(_Baseline[Params]):
    name = "naive"
    description = (
        "Naive forecast: every future value equals the last observed value (forecasting tasks only)."
    )

    def build_encoder(self, input: InputSpec) -> nn.Module:
        from ._baselines import Naive as NaiveForecaster

        return NaiveForecaster()


class SeasonalNaive(_Baseline[SeasonalNaiveParams]):
    name = "seasonal_naive"
    description = "Seasonal naive forecast: each future value equals the value one season earlier."

    def build_encoder(self, input: InputSpec) -> nn.Module:
        from ._baselines import SeasonalNaive as SeasonalNaiveForecaster

        return SeasonalNaiveForecaster(self.params.season)


class Arima(_Baseline[ArimaParams]):
    name = "arima"
    description = (
        "statsmodels ARIMA(p,d,q)(P,D,Q,s) fitted on the training span, then forecasting every window."
    )

    def incompatibility(self, info: TaskInfo) -> str | None:
        import importlib.util

        reason = super().incompatibility(info)
        if reason is None and importlib.util.find_spec("statsmodels") is None:
            return "`arima` needs statsmodels, which is not installed; install it: `pip install statsmodels`"
        return reason

    def build_encoder(self, input: InputSpec) -> nn.Module:
        from ._baselines import Arima as ArimaForecaster

        return ArimaForecaster(**self.params.model_dump())
