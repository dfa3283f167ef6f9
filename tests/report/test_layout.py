"""Report layout in headless Chromium: the verdict comes first, wide tables scroll inside their
own box and the page never scrolls sideways at 1,024 px; headers name metrics and targets."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import CHROMIUM, chromium, make_record

from harness.records import RunRecord
from harness.report.analysis import analyze
from harness.report.html import render_html
from harness.report.plots import all_figures
from harness.report.tables import ranking_table, task_table

#: appended to a copy of the page (the report itself has no script): writes the layout facts
#: into the DOM, which ``--dump-dom`` then prints
PROBE = """<script>
window.addEventListener("load", () => {
  const root = document.documentElement;
  const boxes = [...document.querySelectorAll("table")].map(t => {
    const box = t.parentElement;
    return {wrapped: box.className === "scroll", overflow: getComputedStyle(box).overflowX,
            right: box.getBoundingClientRect().right, width: t.scrollWidth};
  });
  const h2 = [...document.querySelectorAll("h2")].map(h => h.textContent);
  const out = document.createElement("pre");
  out.id = "layout";
  out.textContent = JSON.stringify({scroll: root.scrollWidth, inner: window.innerWidth, boxes, h2});
  document.body.appendChild(out);
});
</script>"""


def layout(page: Path, width: int) -> dict[str, object]:
    """Layout facts of ``page`` at a ``width`` px window: page and window widths, tables, headings."""
    probe = page.with_name(page.stem + "-probe.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = chromium("--dump-dom", f"--window-size={width},2000", probe.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="layout">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stdout[-2000:]
    facts: dict[str, object] = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    return facts


def assert_fits(facts: dict[str, object], width: int) -> None:
    """No horizontal page overflow; every table in its own scrolling box inside the window."""
    assert facts["inner"] == width
    assert isinstance(facts["scroll"], int) and facts["scroll"] <= width, facts
    boxes = facts["boxes"]
    assert isinstance(boxes, list) and boxes
    for box in boxes:
        assert box["wrapped"] and box["overflow"] == "auto" and box["right"] <= width, box


def _wide_records() -> list[RunRecord]:
    """Quickstart-like: six architectures, five metrics, every cost, time-to-target; three seeds."""
    cost = {
        "num_params": 68298.0,
        "flops_per_sample": 1090816.0,
        "train_samples_per_s": 29273.9,
        "infer_samples_per_s": 325059.5,
        "latency_p50_ms": 0.107,
        "peak_memory_mb": 73.2,
        "activation_memory_mb": 0.555,
        "train_time_s": 2.56,
        "ttt_reached": 1.0,
        "ttt_steps": 160.0,
    }
    out = []
    for i, arch in enumerate(("rnn", "lstm", "gru", "birnn", "cnn_rnn[conv_channels=32]", "transformer")):
        for seed in (0, 1, 2):
            record = make_record("digits", arch, seed, 0.9 + 0.01 * i + 0.003 * seed, cost=cost)
            metrics = {f"test_{m}": 0.95 for m in ("auroc", "f1", "precision", "recall")}
            out.append(
                record.model_copy(
                    update={
                        "metrics": {**record.metrics, **metrics},
                        "spec": record.spec.model_copy(update={"target": 0.9}),
                    }
                )
            )
    return out


def test_headers_name_the_metric_of_each_ranked_task_and_the_target() -> None:
    records = _wide_records() + [
        make_record("adding", a, s, v * (1 + s / 10), metric="mse", direction="min", run_id=f"a{a}{s}")
        for a, v in (("rnn", 0.17), ("lstm", 1e-3), ("gru", 4e-4), ("birnn", 3e-4), ("transformer", 1e-3))
        for s in (0, 1, 2)
    ]
    analysis = analyze(records)
    ranks = ranking_table(analysis)
    assert ranks is not None
    assert ranks[0][2:] == ["digits: test accuracy ↑", "adding: test mse ↓"]
    header, _ = task_table(analysis.tables[0])
    assert header[-1] == "steps to val accuracy ≥ 0.9"


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install chromium)")
def test_a_wide_report_fits_a_1024px_window_with_the_verdict_first(tmp_path: Path) -> None:
    analysis = analyze(_wide_records())
    page = tmp_path / "index.html"
    page.write_text(render_html(analysis, all_figures(analysis)), encoding="utf-8")
    for width in (1024, 1440):
        facts = layout(page, width)
        assert_fits(facts, width)
        assert facts["h2"] and facts["h2"][0] == "Verdict"  # type: ignore[index]
    # the digits table is wider than the window: it scrolls inside its box, not off the page
    narrow = layout(page, 1024)
    assert max(b["width"] for b in narrow["boxes"]) > 1000  # type: ignore[attr-defined]
