"""`harness compare`: an injected regression is flagged, seed noise is not (synthetic records)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from harness.records import RunRecord
from harness.report.compare import compare, environment_warnings, verdict
from tests.helpers import make_record


def _records(
    invocation: str,
    shift: dict[str, float],
    noise_seed: int,
    seeds: int = 5,
    device: str = "cpu:x86_64 (2 cores)",
    **spec: str,
) -> list[RunRecord]:
    rng = random.Random(noise_seed)
    base = {("digits", "gru"): 0.95, ("digits", "lstm"): 0.93, ("adding", "gru"): 0.010}
    out = []
    for (task, arch), mean in base.items():
        metric, direction = ("accuracy", "max") if task == "digits" else ("mse", "min")
        for seed in range(seeds):
            noise = rng.gauss(0, 0.01 if task == "digits" else 0.001)
            out.append(
                make_record(
                    task,
                    arch,
                    seed,
                    mean + shift.get(f"{task}/{arch}", 0.0) + noise,
                    metric=metric,
                    direction=direction,
                    run_id=f"{invocation}-{task}-{arch}-{seed}",
                    suite="s",
                    parent_run_id=invocation,
                    cost={"train_samples_per_s": 1000 + rng.gauss(0, 20)},
                    versions={"torch": "2.13.0+cpu"},
                    device=device,
                    **spec,
                )
            )
    return out


def _primary(deltas: list) -> dict[tuple[str, str], str]:
    return {(d.task, d.arch): d.verdict for d in deltas if d.metric in ("accuracy", "mse")}


def test_noise_only_pair_is_unchanged_everywhere() -> None:
    deltas = compare(_records("a", {}, 1), _records("b", {}, 2))
    assert set(_primary(deltas).values()) == {"unchanged"}
    assert {d.verdict for d in deltas} == {"unchanged"}  # costs too


def test_injected_regression_is_flagged_in_its_cell_only() -> None:
    # gru loses 5 points of accuracy on digits; adding/gru gets a *higher* (worse) mse
    deltas = compare(_records("a", {}, 1), _records("b", {"digits/gru": -0.05, "adding/gru": 0.01}, 2))
    assert _primary(deltas) == {
        ("digits", "gru"): "regressed",
        ("digits", "lstm"): "unchanged",
        ("adding", "gru"): "regressed",
    }
    improved = compare(_records("a", {}, 1), _records("b", {"adding/gru": -0.008}, 2))
    assert _primary(improved)[("adding", "gru")] == "improved"  # lower mse is better


def test_one_seed_cannot_be_judged_without_a_stated_minimum_effect() -> None:
    assert verdict([0.9], [0.8], higher_is_better=True) == ("unknown (n=1)", None)
    assert verdict([0.9], [0.8], True, min_effect=0.05)[0] == "regressed"  # 11 % worse
    assert verdict([0.9], [0.89], True, min_effect=0.05)[0] == "unchanged"  # 1 % worse
    assert verdict([], [0.8], True)[0] == "missing"


def test_environment_differences_are_reported() -> None:
    gpu = _records("b", {}, 2, device="cuda:0 (NVIDIA H100)")
    warnings = environment_warnings(_records("a", {}, 1), gpu)
    assert warnings == ["device differs: A cpu:x86_64 (2 cores) vs B cuda:0 (NVIDIA H100)"]
    assert environment_warnings(_records("a", {}, 1), _records("b", {}, 2)) == []
    # plan provenance: another release of the task plugin, another data version
    newer = _records("b", {}, 2, task_plugin="harness==0.0.1", data_version="2")
    assert environment_warnings(_records("a", {}, 1), newer) == [
        "data version of `adding` differs: A 1 vs B 2",
        "data version of `digits` differs: A 1 vs B 2",
        "plugin of task `adding` differs: A harness==0.0.0 vs B harness==0.0.1",
        "plugin of task `digits` differs: A harness==0.0.0 vs B harness==0.0.1",
    ]


def test_cli_exit_code_is_1_on_a_regression_and_0_on_noise(cli, tmp_path: Path) -> None:
    files = {}
    for noise, (name, shift) in enumerate((("a", {}), ("noise", {}), ("worse", {"digits/lstm": -0.04}))):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("\n".join(json.dumps(r.to_json()) for r in _records(name, shift, noise + 1)) + "\n")
        files[name] = str(path)
    quiet = cli("compare", files["a"], files["noise"])
    assert quiet.exit_code == 0, quiet.output
    assert "0 regressed" in quiet.output
    flagged = cli("compare", files["a"], files["worse"])
    assert flagged.exit_code == 1, flagged.output
    assert "regressed" in flagged.output and "1 regressed" in flagged.output
    missing = cli("compare", files["a"], str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2 and "not found" in missing.output
