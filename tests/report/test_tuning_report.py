"""A tuned suite's report: trials never enter the comparison; the tuning section accounts for them.

Synthetic records of a tuned suite: per (task, architecture) a few trials (validation only,
some early-stopped or failed), the ``tuned`` final runs over three seeds and the ``default``
ones. Every figure the section shows is checked against a hand computation.
"""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from harness.records import Direction, RunRecord, Status, Tuning, TuningRole
from harness.report.analysis import analyze
from harness.report.compare import check_comparable, compare
from harness.report.context import ReportContext
from harness.report.html import render_html
from harness.report.markdown import render_markdown
from harness.report.plots import all_figures
from harness.report.records import final_records
from harness.report.stats import mean_ci
from harness.report.summary import summarize
from harness.report.tables import tidy_csv
from harness.report.tuning import tuning_analysis
from harness.report.tuning_plots import chosen_lr_figure, search_curves_figure
from harness.settings import ResourcesSpec
from harness.tuning.trials import best_value as best_val
from tests.helpers import make_record

SEEDS = (0, 1, 2)
BEST = {"trainer.lr": 0.003, "params.dropout": 0.1}


def _tuned(record: RunRecord, tuning: Tuning, **update: Any) -> RunRecord:
    spec = record.spec.model_copy(update={"tuning": tuning, **update.pop("spec", {})})
    return record.model_copy(update={"spec": spec, **update})


def trial(
    task: str,
    arch: str,
    number: int,
    vals: list[float],
    *,
    status: Status = "finished",
    early: bool = False,
    wall: float = 10.0,
    cpus: float = 2.0,
    gpus: float = 0.0,
    config: dict[str, Any] | None = None,
    metric: str = "accuracy",
    direction: Direction = "max",
) -> RunRecord:
    """A trial: validation history only, no test metric."""
    base = make_record(
        task,
        arch,
        0,
        None,
        status,
        metric=metric,
        direction=direction,
        run_id=f"trial-{task}-{arch}-{number}",
        history=[
            {"epoch": e, "elapsed_s": e + 1.0, "train_loss": 1.0, "val_loss": 1.0, f"val_{metric}": v}
            for e, v in enumerate(vals)
        ],
    )
    return _tuned(
        base,
        Tuning(
            role="trial", contender=f"{task} × {arch}", trial=number, config=config or {"trainer.lr": 0.01}
        ),
        spec={"resources": ResourcesSpec(cpus=cpus, gpus=gpus)},
        early_stopped=early,
        wall_time_s=wall,
    )


def final(
    task: str,
    arch: str,
    role: TuningRole,
    seed: int,
    value: float,
    *,
    metric: str = "accuracy",
    direction: Direction = "max",
    config: dict[str, Any] | None = None,
) -> RunRecord:
    base = make_record(
        task,
        arch,
        seed,
        value,
        metric=metric,
        direction=direction,
        run_id=f"{role}-{task}-{arch}-{seed}",
        history=[{"epoch": 0, f"val_{metric}": value}],
    )
    cfg = dict(config if config is not None else BEST) if role == "tuned" else {}
    return _tuned(base, Tuning(role=role, contender=f"{task} × {arch}", config=cfg))


GRU_TUNED = (0.90, 0.92, 0.94)
GRU_DEFAULT = (0.85, 0.86, 0.90)
LSTM_TUNED = (0.80, 0.81, 0.85)
LSTM_DEFAULT = (0.82, 0.83, 0.84)


def tuned_suite() -> list[RunRecord]:
    """digits × {gru, lstm}: 4 and 3 trials (gru's out of order), tuned and default over 3 seeds."""
    gru = [
        trial("digits", "gru", 3, [0.65, 0.8], wall=12.0, config=BEST),
        trial("digits", "gru", 0, [0.5, 0.6, 0.55], wall=10.0, config={"trainer.lr": 0.03}),
        trial("digits", "gru", 1, [0.4], early=True, wall=3.0, config={"trainer.lr": 0.0003}),
        trial("digits", "gru", 2, [0.95], status="failed", wall=5.0, config={"trainer.lr": 0.1}),
    ]
    lstm_best = {"trainer.lr": 0.001, "params.dropout": 0.0}
    lstm = [
        trial("digits", "lstm", 0, [0.7], wall=4.0, cpus=1.0, config={"trainer.lr": 0.01}),
        trial("digits", "lstm", 1, [0.6, 0.75], wall=6.0, cpus=1.0, config=lstm_best),
        trial("digits", "lstm", 2, [0.3], early=True, wall=1.5, cpus=1.0, config={"trainer.lr": 0.1}),
    ]
    finals = [
        *[final("digits", "gru", "tuned", s, v) for s, v in zip(SEEDS, GRU_TUNED)],
        *[final("digits", "gru", "default", s, v) for s, v in zip(SEEDS, GRU_DEFAULT)],
        *[final("digits", "lstm", "tuned", s, v, config=lstm_best) for s, v in zip(SEEDS, LSTM_TUNED)],
        *[final("digits", "lstm", "default", s, v) for s, v in zip(SEEDS, LSTM_DEFAULT)],
    ]
    return [*gru, *lstm, *finals]


def untuned(records: list[RunRecord]) -> list[RunRecord]:
    """The tuned final runs as an untuned suite would have recorded them (no ``tuning``)."""
    return [
        r.model_copy(update={"spec": r.spec.model_copy(update={"tuning": None})})
        for r in records
        if r.spec.tuning is not None and r.spec.tuning.role == "tuned"
    ]


def _context() -> ReportContext:
    return ReportContext(suite="s", invocation="i", generated_at="now")


def _section(markdown: str, heading: str) -> str:
    """The text of a ``## heading`` section, up to the next ``## ``."""
    start = markdown.index(f"## {heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end >= 0 else None]


# -- trials never enter the comparison ------------------------------------------------------------
def test_only_the_tuned_runs_enter_the_main_table_statistics_and_csv() -> None:
    records = tuned_suite()
    analysis = analyze(records, _context())
    assert {r.run_id for r in analysis.records} == {r.run_id for r in final_records(records)}
    assert all(r.spec.tuning is not None and r.spec.tuning.role == "tuned" for r in analysis.records)
    (table,) = analysis.tables
    gru, lstm = table.row("gru"), table.row("lstm")
    assert gru is not None and lstm is not None
    assert sorted(gru.values["accuracy"].values()) == list(GRU_TUNED)  # no default, no trial value
    assert gru.intervals["accuracy"].mean == pytest.approx(statistics.fmean(GRU_TUNED))
    assert gru.failed == 0 and analysis.problems == []  # the failed trial is not a failed cell
    assert len(gru.history) == 3  # learning curves: the tuned runs only
    csv = tidy_csv(records).splitlines()
    assert len(csv) == 1 + 6 and not any(line.startswith(("trial-", "default-")) for line in csv[1:])
    summary = summarize(records)
    assert summary.cells[("digits", "gru")].values == list(GRU_TUNED)
    assert summary.counts == {"finished": 6, "failed": 0, "skipped": 0}


def test_the_main_report_equals_that_of_the_tuned_runs_alone() -> None:
    records = tuned_suite()
    tuned_md = render_markdown(analyze(records, _context()))
    plain_md = render_markdown(analyze(untuned(records), _context()))
    for heading in ("Verdict", "Results per task", "Across tasks", "Failed and skipped cells"):
        assert _section(tuned_md, heading) == _section(plain_md, heading)
    figures, plain = all_figures(analyze(records, _context())), all_figures(analyze(untuned(records)))
    assert [t for t, _ in figures["learning"]] == [t for t, _ in plain["learning"]]


def test_reporters_are_given_the_final_runs_and_the_trials_in_the_context(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.report.output import write_report_set

    seen: dict[str, Any] = {}

    class Spy:
        def write(self, results: Any, out_dir: Any, context: Any = None) -> Any:
            seen["results"], seen["context"] = list(results), context
            return out_dir / "spy"

    class Entry:
        obj = Spy

    class Registry:
        reporters = [Entry()]

    import harness.plugins

    records = tuned_suite()
    monkeypatch.setattr(harness.plugins, "get_registry", Registry)
    write_report_set(records, tmp_path, _context(), latest=False)
    assert [r.run_id for r in seen["results"]] == [r.run_id for r in final_records(records)]
    assert len(seen["context"].tuning_records) == len(records)  # every record of this suite is tuned
    analysis = analyze(seen["results"], seen["context"])  # what the built-in reporters do
    assert analysis.tuning is not None and analysis.tuning.trials == 7


def test_compare_leaves_trials_and_default_runs_out() -> None:
    before = tuned_suite()
    after = [
        *[r for r in tuned_suite() if r.spec.is_trial],
        *[
            final("digits", "gru", "tuned", s, v + 0.01).model_copy(update={"parent_run_id": "b"})
            for s, v in zip(SEEDS, GRU_TUNED)
        ],
    ]
    check_comparable(before, after)
    deltas = [d for d in compare(before, after, costs=False) if d.arch == "gru"]
    (delta,) = deltas
    assert sorted(delta.a) == list(GRU_TUNED) and len(delta.b) == 3
    from harness.errors import HarnessError

    only_trials = [r for r in tuned_suite() if r.spec.is_trial]
    with pytest.raises(HarnessError, match="7 tuning record"):
        check_comparable(before, only_trials)


# -- the tuning section -------------------------------------------------------------------------------
def test_accounting_is_exact() -> None:
    tuning = tuning_analysis(tuned_suite())
    assert tuning is not None
    gru, lstm = tuning.contenders
    assert (gru.name, gru.task, gru.arch) == ("digits × gru", "digits", "gru")
    assert [r.spec.tuning.trial for r in gru.trials if r.spec.tuning] == [0, 1, 2, 3]  # trial order
    assert (len(gru.trials), gru.finished, gru.early_stopped, gru.failed) == (4, 3, 1, 1)
    assert gru.cpu_seconds == pytest.approx((10 + 3 + 5 + 12) * 2.0) and gru.gpu_seconds == 0
    assert (len(lstm.trials), lstm.finished, lstm.early_stopped, lstm.failed) == (3, 3, 1, 0)
    assert lstm.cpu_seconds == pytest.approx(4 + 6 + 1.5)
    # the failed trial's 0.95 is not a result; the best is trial 3 (the tuned runs' configuration)
    assert gru.scores() == [0.6, 0.4, None, 0.8]
    best = gru.best_trial()
    assert best is not None and best.spec.tuning is not None and best.spec.tuning.trial == 3
    assert gru.best_score == 0.8 and gru.config == BEST
    assert lstm.best_score == 0.75 and lstm.config == {"trainer.lr": 0.001, "params.dropout": 0.0}
    assert tuning.trials == 7
    assert "7 trials of 2 task × architecture pairs, 2 early-stopped, 71.5 CPU-s" in tuning.totals()


def test_best_val_follows_the_direction() -> None:
    up = trial("digits", "gru", 0, [0.5, 0.7, 0.6])
    down = trial("adding", "gru", 0, [0.5, 0.3, 0.4, float("nan")], metric="mse", direction="min")
    assert best_val(up) == 0.7 and best_val(down) == 0.3
    assert best_val(trial("digits", "gru", 1, [])) is None


def test_best_so_far_curves_are_monotone_and_correct() -> None:
    tuning = tuning_analysis(tuned_suite())
    assert tuning is not None
    gru, lstm = tuning.contenders
    assert gru.best_so_far() == [0.6, 0.6, 0.6, 0.8]
    assert lstm.best_so_far() == [0.7, 0.75, 0.75]
    assert gru.compute_curve() == [(20.0, 0.6), (26.0, 0.6), (36.0, 0.6), (60.0, 0.8)]
    # a task whose primary metric falls: the curve falls, never rises
    mse = [
        trial("adding", "gru", i, [v], metric="mse", direction="min")
        for i, v in enumerate((0.5, 0.7, 0.2, 0.3))
    ]
    (adding,) = tuning_analysis(mse).contenders  # type: ignore[union-attr]
    curve = adding.best_so_far()
    assert curve == [0.5, 0.5, 0.2, 0.2]
    assert all(b is not None and a is not None and b <= a for a, b in zip(curve, curve[1:]))


def test_gpu_seconds_and_the_compute_axis() -> None:
    records = [trial("digits", "gru", i, [0.5 + i / 10], wall=100.0, cpus=4.0, gpus=0.5) for i in range(2)]
    (gru,) = tuning_analysis(records).contenders  # type: ignore[union-attr]
    assert gru.cpu_seconds == 800.0 and gru.gpu_seconds == 100.0 and gru.uses_gpus
    assert gru.compute_curve(gpu=True) == [(50.0, 0.5), (100.0, 0.6)]
    made = search_curves_figure(tuning_analysis(records), "compute")  # type: ignore[arg-type]
    assert made is not None and "GPU-s" in made[0]
    assert made[1].axes[0].get_xlabel() == "cumulative GPU-s of the trials"


def test_tuned_vs_default_matches_a_direct_computation() -> None:
    tuning = tuning_analysis(tuned_suite())
    assert tuning is not None and tuning.has_default
    gru, lstm = tuning.contenders
    for contender, tuned, default in ((gru, GRU_TUNED, GRU_DEFAULT), (lstm, LSTM_TUNED, LSTM_DEFAULT)):
        assert contender.tuned_interval == mean_ci(list(tuned))
        assert contender.default_interval == mean_ci(list(default))
        assert contender.difference == pytest.approx(statistics.fmean(tuned) - statistics.fmean(default))
        paired = contender.paired_difference
        assert paired is not None and paired == mean_ci([t - d for t, d in zip(tuned, default)])
    assert lstm.difference is not None and lstm.difference < 0  # tuning can lose on test


def test_no_default_runs_is_said() -> None:
    records = [r for r in tuned_suite() if not (r.spec.tuning and r.spec.tuning.role == "default")]
    tuning = tuning_analysis(records)
    assert tuning is not None and not tuning.has_default
    section = _section(render_markdown(analyze(records, _context())), "Tuning")
    assert "No default runs" in section and "default: test" not in section


def test_the_section_shows_the_accounting_and_tuned_vs_default() -> None:
    markdown = render_markdown(analyze(tuned_suite(), _context()))
    section = _section(markdown, "Tuning")
    gru_tuned, gru_default = mean_ci(list(GRU_TUNED)), mean_ci(list(GRU_DEFAULT))
    half = mean_ci([t - d for t, d in zip(GRU_TUNED, GRU_DEFAULT)]).half
    assert gru_tuned.half is not None and gru_default.half is not None and half is not None
    row = (
        f"| gru | 4 | 3 | 1 | 1 | 60 | 0.8 (#3) | 0.92 ± {gru_tuned.half:.2g} (n=3) "
        f"| 0.8700 ± {gru_default.half:.2g} (n=3) | +0.05 ± {half:.2g} (paired, n=3) |"
    ).replace("0.8700", f"{gru_default.mean:.4g}")
    assert row in section, section
    assert "| architecture | params.dropout | trainer.lr |" in section
    assert "| gru | 0.1 | 0.003 |" in section
    assert "; and 7 tuning trials (see Tuning)." in markdown


def test_html_has_the_section_and_its_figures() -> None:
    analysis = analyze(tuned_suite(), _context())
    figures = all_figures(analysis)
    assert len(figures["tuning"]) == 3  # best so far vs trials, vs compute; chosen learning rates
    html = render_html(analysis, figures)
    assert '<h2 id="tuning">Tuning</h2>' in html and "(and 7 tuning trials: see Tuning)" in html
    assert html.count("<svg") == len(figures["learning"]) + 3
    made = chosen_lr_figure(analysis.tuning)  # type: ignore[arg-type]
    assert made is not None and made[1].axes[0].get_yscale() == "log"


def test_an_untuned_suite_has_no_tuning_section() -> None:
    records = untuned(tuned_suite())
    analysis = analyze(records, _context())
    assert analysis.tuning is None and all_figures(analysis)["tuning"] == []
    markdown, html = render_markdown(analysis), render_html(analysis, all_figures(analysis))
    assert "Tuning" not in markdown and "tuning" not in html.lower()
    assert "gradient flow) are in `index.html`." in markdown


def test_the_console_table() -> None:
    from rich.console import Console

    from harness.console import tuning_table

    assert tuning_table(untuned(tuned_suite())) is None
    table = tuning_table(tuned_suite())
    assert table is not None
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    assert "digits" in text and "0.8 accuracy ↑" in text and "+0.05" in text and "4 (1 failed)" in text


def test_the_chosen_trial_is_the_one_whose_settings_the_tuned_runs_used() -> None:
    failed = {"trainer.lr": 0.1}
    records = [
        trial("digits", "gru", 0, [0.6], config={"trainer.lr": 0.01}),
        trial("digits", "gru", 1, [0.9], status="failed", config=failed),
        *[final("digits", "gru", "tuned", s, 0.5, config=failed) for s in SEEDS],
    ]
    (gru,) = tuning_analysis(records).contenders  # type: ignore[union-attr]
    best = gru.best_trial()
    assert best is not None and best.spec.tuning is not None and best.spec.tuning.trial == 1
    assert gru.config == failed and gru.best_so_far() == [0.6, 0.6]  # a failed trial is no result
    section = _section(render_markdown(analyze(records, _context())), "Tuning")
    assert "| 0.9 (#1, failed) |" in section
