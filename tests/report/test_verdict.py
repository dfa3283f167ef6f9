"""The report answers "who won" first: best, within noise, cheaper with the ratio, failures named."""

from __future__ import annotations

from harness.records import FAILURE_KINDS, RunRecord
from harness.report.analysis import analyze
from harness.report.html import render_html
from harness.report.markdown import render_markdown
from harness.report.plots import pareto_figures
from tests.helpers import make_record

#: diverged runs are failed with kind "diverged" once the records know that kind
DIVERGED = "diverged" if "diverged" in FAILURE_KINDS else "nan"


def _rec(arch: str, seed: int, value: float, throughput: float, **cost: float) -> RunRecord:
    return make_record(
        "adding",
        arch,
        seed,
        value,
        metric="mse",
        direction="min",
        cost={"train_samples_per_s": throughput, "num_params": 1000.0, **cost},
    )


def _three_seeds() -> list[RunRecord]:
    """transformer best; gru within noise at 3.1× its throughput; lstm clearly worse; rnn diverged."""
    out = []
    for seed, noise in enumerate((0.0, 0.004, -0.003)):
        out.append(_rec("transformer", seed, 0.010 + noise, 1000.0))
        out.append(_rec("gru", seed, 0.011 + noise * -1.0, 3100.0))
        out.append(_rec("lstm", seed, 0.100 + noise / 10, 2000.0))
        out.append(
            make_record(
                "adding",
                "rnn",
                seed,
                2.4e26,
                "failed",
                metric="mse",
                direction="min",
                kind=DIVERGED,
                error="test mse 2.4e+26 is beyond the task's bound",
                cost={"train_samples_per_s": 9e9, "num_params": 1.0},
            )
        )
    return out


def test_the_verdict_names_the_best_those_within_noise_and_the_cheaper_one_with_its_ratio() -> None:
    analysis = analyze(_three_seeds())
    verdict = analysis.verdicts[0]
    assert verdict.best == "transformer"
    assert list(verdict.tied) == ["gru"] and verdict.worse == ["lstm"] and verdict.untested == []
    text = " ".join(verdict.lines)
    assert "gru is within noise of the best at 3.1× the training throughput of transformer" in text
    assert "paired t-test over seeds, Holm-corrected" in text  # says which test decided
    assert "mean ± 95 % CI" in text and "(n=3)" in text
    # the verdict is the first section of both reports
    html = render_html(analysis)
    assert html.index('<h2 id="verdict">Verdict</h2>') < html.index("<h2>Results per task</h2>")
    assert html.index("<h2") == html.index('<h2 id="verdict">')
    markdown = render_markdown(analysis)
    assert markdown.index("## ") == markdown.index("## Verdict") < markdown.index("## Results per task")
    assert "gru is within noise of the best at 3.1×" in markdown


def test_diverged_runs_are_named_with_their_cause_and_enter_no_mean_rank_or_front() -> None:
    analysis = analyze(_three_seeds())
    table = analysis.tables[0]
    rnn = table.row("rnn")
    assert rnn is not None and rnn.intervals == {} and rnn.failed == 3
    assert "rnn" not in analysis.ranking.archs
    figures = pareto_figures(table)
    assert figures
    for _, fig in figures:
        labels = [t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts()]
        assert "transformer *" in labels and not any(label.startswith("rnn") for label in labels)
    assert f"rnn (all 3 runs failed: {DIVERGED})" in " ".join(analysis.verdicts[0].lines)
    problem = next(p for p in analysis.problems if p["architecture"] == "rnn")
    assert problem["kind"] == DIVERGED and "beyond the task's bound" in problem["cause"]
    assert "2.4e+26 is beyond" in render_markdown(analysis)


def test_one_seed_says_the_spread_is_unknown_instead_of_claiming_significance() -> None:
    records = [_rec("transformer", 0, 0.010, 1000.0), _rec("gru", 0, 0.012, 3100.0)]
    verdict = analyze(records).verdicts[0]
    text = " ".join(verdict.lines)
    assert verdict.best == "transformer" and verdict.untested == ["gru"] and not verdict.tied
    assert "Spread unknown for gru (one seed)" in text
    assert "within noise of the best at" not in text and "significantly" not in text.replace(
        "claimed significant", ""
    )


def test_a_noisy_cost_figure_is_flagged_not_printed_as_plain_data() -> None:
    # gru's throughput has an IQR of 60 % of its median: the table shows "~3,100", greyed
    records = [
        r.model_copy(update={"cost": {**r.cost, "train_samples_per_s_iqr": 1860.0}})
        if r.spec.arch_label == "gru"
        else r
        for r in _three_seeds()
    ]
    analysis = analyze(records)
    assert analysis.tables[0].row("gru").noisy == {"train_samples_per_s"}  # type: ignore[union-attr]
    html = render_html(analysis)
    assert '<td class="noisy">~3,100</td>' in html and ">3,100<" not in html
    assert "~3.1× the training throughput of transformer (noisy timing)" in " ".join(
        analysis.verdicts[0].lines
    )
    assert "_~3,100_" in render_markdown(analysis)
