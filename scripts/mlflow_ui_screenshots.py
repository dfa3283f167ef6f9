"""Screenshots of a suite's runs in the MLflow UI (headless Chromium), to look at the layout.

Needs Playwright's Python package and a Chromium (neither is a harness dependency), e.g.
``python -m venv /tmp/pw && /tmp/pw/bin/pip install playwright`` and Debian's ``chromium``; run
it with that interpreter while ``harness ui SUITE --port 5000`` serves the store:

    /tmp/pw/bin/python scripts/mlflow_ui_screenshots.py --url http://127.0.0.1:5000 \
        --experiment quickstart --task adding --out /tmp/shots [--chromium /usr/bin/chromium]

Writes ``1_runs_table.png`` (the invocation expanded: Dataset, Source, Models columns),
``2_runs_charts.png`` (the chart view filtered to a few metrics: one section per prefix),
``3_run_page.png`` (a child run: params, tags, dataset, source), ``4_run_metrics.png`` (its
charts, sectioned) and ``5_compare.png`` (the compare page of the task's runs).
"""

from __future__ import annotations

import argparse
import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright  # type: ignore[import-not-found,unused-ignore]


def _api(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/api/2.0/mlflow/{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.load(response))


def _children(url: str, experiment: str, task: str) -> tuple[str, list[str]]:
    found = _api(url, "experiments/search", {"filter": f"name = '{experiment}'", "max_results": 1})
    experiment_id = str(found["experiments"][0]["experiment_id"])
    runs = _api(
        url,
        "runs/search",
        {
            "experiment_ids": [experiment_id],
            "filter": f"params.task = '{task}' and attributes.status = 'FINISHED'",
            "max_results": 50,
        },
    ).get("runs", [])
    return experiment_id, [str(run["info"]["run_id"]) for run in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000")
    parser.add_argument("--experiment", default="quickstart")
    parser.add_argument("--task", default="adding")
    parser.add_argument("--out", type=Path, default=Path("shots"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    experiment_id, runs = _children(args.url, args.experiment, args.task)
    if not runs:
        raise SystemExit(f"no finished child run of task {args.task} in experiment {args.experiment}")
    base = f"{args.url}/#/experiments/{experiment_id}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1800, "height": 1100})
        page.goto(f"{base}/runs")
        page.wait_for_timeout(6000)
        page.locator('button[data-component-id*="runnamecellrenderer"]').first.click(timeout=10000)
        page.wait_for_timeout(2500)
        page.screenshot(path=str(args.out / "1_runs_table.png"))
        page.locator('label:has(input[value="CHART"])').first.click(timeout=10000)
        page.wait_for_timeout(5000)
        page.get_by_placeholder("Search metric charts").fill("val/accuracy|test/accuracy|train/loss")
        page.wait_for_timeout(4000)
        page.screenshot(path=str(args.out / "2_runs_charts.png"))
        page.goto(f"{base}/runs/{runs[0]}")
        page.wait_for_timeout(6000)
        page.screenshot(path=str(args.out / "3_run_page.png"))
        page.goto(f"{base}/runs/{runs[0]}/model-metrics")
        page.wait_for_timeout(6000)
        page.get_by_placeholder("Search metric charts").fill("loss")
        page.wait_for_timeout(4000)
        page.screenshot(path=str(args.out / "4_run_metrics.png"))
        ids = urllib.parse.quote(json.dumps(runs))
        experiments = urllib.parse.quote(json.dumps([experiment_id]))
        page.goto(f"{args.url}/#/compare-runs?runs={ids}&experiments={experiments}")
        page.wait_for_timeout(8000)
        page.screenshot(path=str(args.out / "5_compare.png"))
        browser.close()
    print(f"screenshots in {args.out}")


if __name__ == "__main__":
    main()
