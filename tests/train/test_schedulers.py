"""Learning-rate schedules and warm-up (``trainer.scheduler``): the lr follows the schedule, step by
step and in a real run's history; bad settings exit 2 naming the YAML place; grids and flat
overrides set the block's keys; the default (a constant lr) keeps every earlier run id."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import Result
from pydantic import ValidationError

from harness.errors import RunFailure
from harness.matrix import build_plan
from harness.plugins import get_registry
from harness.records import RunRecord, RunSpec
from harness.settings import SchedulerSpec, TrainerSpec
from harness.suite import load_suite
from harness.tracking.results import ResultsFile
from harness.train.schedules import build_schedulers, lr_factor
from harness.train.trial import run_trial
from tests.helpers import TINY_ADDING, make_spec, payloads, tiny_suite, write_suite

DATA = Path(__file__).resolve().parents[1] / "data"
LR = 0.01


def optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=LR)


def trainer(max_epochs: int = 10, **scheduler: Any) -> TrainerSpec:
    return TrainerSpec(lr=LR, max_epochs=max_epochs, scheduler=scheduler)


def lrs(
    spec: TrainerSpec, steps: int, *, per_epoch: int = 1, metrics: list[float] | None = None
) -> list[float]:
    """The lr of each of ``steps`` optimizer steps, the schedulers stepped as Lightning does
    (step-interval ones after every step, epoch-interval ones after every ``per_epoch`` steps)."""
    opt = optimizer()
    configs = build_schedulers(
        opt, spec, total_steps=steps, steps_per_epoch=per_epoch, monitor="val_loss", mode="min"
    )
    out = []
    for step in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        for config in configs:
            if config["interval"] == "step":
                config["scheduler"].step()
            elif (step + 1) % per_epoch == 0:
                epoch = (step + 1) // per_epoch - 1
                config["scheduler"].step((metrics or [])[epoch])
    return out


# --- the lr, step by step -----------------------------------------------------------------------


def test_warmup_rises_linearly_then_cosine_decays_to_the_floor() -> None:
    spec = trainer(name="cosine", warmup_steps=4, min_lr=0.001)
    seen = lrs(spec, 24)
    assert seen[:4] == pytest.approx([LR * 0.25, LR * 0.5, LR * 0.75, LR])  # linear, reaches lr at step 4
    decay = seen[4:]
    assert decay[0] == pytest.approx(LR) and all(a > b for a, b in zip(decay, decay[1:], strict=False))
    middle = 0.001 + (LR - 0.001) * 0.5  # halfway through the decay: halfway to the floor
    assert seen[4 + 10] == pytest.approx(middle)
    factor = lr_factor(spec.scheduler, 24, total_steps=24, steps_per_epoch=1, max_epochs=10, lr=LR)
    assert factor * LR == pytest.approx(0.001)  # after the last step: the floor


def test_warmup_fraction_is_a_share_of_the_runs_steps_and_min_lr_ratio_a_share_of_lr() -> None:
    spec = trainer(name="cosine", warmup_fraction=0.25, min_lr_ratio=0.5)
    assert spec.scheduler.warmup(40) == 10
    seen = lrs(spec, 40)
    assert seen[9] == pytest.approx(LR) and seen[4] == pytest.approx(LR * 0.5)
    assert min(seen[10:]) > LR * 0.5 and seen[-1] == pytest.approx(LR * 0.5, rel=0.01)


def test_warmup_alone_keeps_the_lr_constant_after_it() -> None:
    seen = lrs(trainer(warmup_steps=3), 8)
    assert seen == pytest.approx([LR / 3, LR * 2 / 3, LR, LR, LR, LR, LR, LR])


def test_step_multiplies_the_lr_by_gamma_every_step_size_epochs() -> None:
    seen = lrs(trainer(name="step", step_size=2, gamma=0.5), 30, per_epoch=5)
    assert seen == pytest.approx([LR] * 10 + [LR / 2] * 10 + [LR / 4] * 10)
    assert trainer(9, name="step").scheduler.epochs_per_step(9) == 3  # default: a third of the epochs
    assert trainer(2, name="step").scheduler.epochs_per_step(2) == 1
    assert trainer(name="step").scheduler.decay() == 0.1


def test_step_composes_with_a_warmup() -> None:
    seen = lrs(trainer(name="step", step_size=1, gamma=0.5, warmup_steps=2), 6, per_epoch=2)
    assert seen == pytest.approx([LR / 2, LR, LR / 2, LR / 2, LR / 4, LR / 4])


def test_plateau_reduces_the_lr_when_the_metric_stalls() -> None:
    spec = trainer(name="plateau", patience=1, factor=0.5)
    stalled = [1.0, 0.5, 0.5, 0.5, 0.5, 0.4]  # improves, then stalls for 4 epochs
    seen = lrs(spec, 6, metrics=stalled)
    # epoch 2 is the first without improvement (patience 1 waits), epoch 3 the second: reduce
    assert seen == pytest.approx([LR, LR, LR, LR, LR / 2, LR / 2])


def test_plateau_composes_with_a_warmup_and_keeps_its_floor() -> None:
    spec = trainer(name="plateau", patience=0, factor=0.1, min_lr=LR / 20, warmup_steps=4)
    seen = lrs(spec, 16, per_epoch=4, metrics=[1.0, 1.0, 1.0, 1.0])  # never improves after epoch 0
    assert seen[:4] == pytest.approx([LR / 4, LR / 2, LR * 3 / 4, LR])  # warm-up in epoch 0
    assert seen[4:8] == pytest.approx([LR] * 4)  # epoch 0 set the best
    assert seen[8:12] == pytest.approx([LR / 10] * 4)  # epoch 1 did not improve: reduced
    assert seen[12:] == pytest.approx([LR / 20] * 4)  # reduced again, to the floor


def test_plateau_mode_follows_the_monitored_metric() -> None:
    opt = optimizer()
    (config,) = build_schedulers(
        opt, trainer(name="plateau"), total_steps=10, steps_per_epoch=1, monitor="val_accuracy", mode="max"
    )
    assert config["monitor"] == "val_accuracy" and config["interval"] == "epoch"
    assert config["scheduler"].mode == "max"


def test_onecycle_rises_to_max_lr_then_anneals_below_the_start() -> None:
    seen = lrs(trainer(name="onecycle", max_lr=0.1, pct_start=0.25), 40)
    peak = seen.index(max(seen))
    assert max(seen) == pytest.approx(0.1) and peak in (9, 10)
    assert seen[0] == pytest.approx(0.1 / 25) and seen[-1] < seen[0]


def test_the_default_is_a_constant_lr_with_no_scheduler() -> None:
    assert TrainerSpec().scheduler.constant and lrs(TrainerSpec(lr=LR), 5) == [LR] * 5
    assert not build_schedulers(
        optimizer(), TrainerSpec(), total_steps=5, steps_per_epoch=1, monitor="", mode="min"
    )


def test_a_warmup_as_long_as_the_run_fails_it_with_the_fix() -> None:
    with pytest.raises(RunFailure, match=r"warmup_steps \(10\) must be below the run's 10 optimizer steps"):
        build_schedulers(
            optimizer(),
            trainer(name="cosine", warmup_steps=10),
            total_steps=10,
            steps_per_epoch=1,
            monitor="",
            mode="min",
        )


def test_configure_optimizers_returns_the_bare_optimizer_by_default() -> None:
    from harness.train.module import build_module

    registry = get_registry()
    task = registry.tasks.get("adding").obj(TINY_ADDING)
    arch = registry.architectures.get("gru").obj({"hidden_size": 4})
    module = build_module(task, arch, TrainerSpec())
    assert isinstance(module.configure_optimizers(), torch.optim.Adam)


# --- a real run records the lr of each epoch ------------------------------------------------------


def tiny_run(tmp_path: Path, name: str, **settings: Any) -> RunRecord:
    """A tiny gru on adding (2 optimizer steps an epoch) with these trainer settings."""
    suite = tiny_suite(name=name, archs=["gru"], tasks=["adding"], measure={"latency": False, "flops": False})
    suite["architectures"][0]["params"] = {"hidden_size": 8}
    suite["trainer"].update(settings)
    (spec,) = payloads(write_suite(tmp_path, suite, f"{name}.yaml"), tmp_path / "cache")
    record = run_trial(spec)
    assert record.status == "finished", record.failure.traceback if record.failure else record.error
    return record


def test_a_run_records_the_lr_of_each_epoch_in_its_history(tmp_path: Path) -> None:
    lr = 0.003
    cosine = tiny_run(
        tmp_path, "cosine", lr=lr, max_epochs=4, scheduler={"name": "cosine", "warmup_steps": 2}
    )
    # epochs start at steps 0, 2, 4, 6 of 8: half-way up the warm-up, the peak, then cosine over 6 steps
    expected = [
        lr / 2,
        lr,
        lr * 0.5 * (1 + math.cos(math.pi / 3)),
        lr * 0.5 * (1 + math.cos(math.pi * 2 / 3)),
    ]
    assert [row["train_lr"] for row in cosine.history] == pytest.approx(expected)
    step = tiny_run(
        tmp_path, "step", lr=lr, max_epochs=3, scheduler={"name": "step", "step_size": 1, "gamma": 0.5}
    )
    assert [row["train_lr"] for row in step.history] == pytest.approx([lr, lr / 2, lr / 4])
    constant = tiny_run(tmp_path, "constant", lr=lr)
    assert [row["train_lr"] for row in constant.history] == [lr, lr]


@pytest.mark.parametrize(
    "scheduler",
    [
        {"name": "plateau", "warmup_steps": 2, "monitor": "val_mse", "patience": 0},  # two schedulers
        {"name": "onecycle", "pct_start": 0.5},
    ],
)
def test_epoch_and_onecycle_schedules_train(tmp_path: Path, scheduler: dict[str, Any]) -> None:
    record = tiny_run(tmp_path, scheduler["name"], max_epochs=3, scheduler=scheduler)
    assert len(record.history) == 3 and all(row["train_lr"] > 0 for row in record.history)


def test_a_max_steps_run_schedules_over_its_own_steps(tmp_path: Path) -> None:
    record = tiny_run(tmp_path, "short", lr=0.004, max_epochs=10, max_steps=4, scheduler="cosine")
    # 4 steps, not 20: the second (last) epoch starts half-way down the cosine
    assert [row["train_lr"] for row in record.history] == pytest.approx([0.004, 0.002])


# --- validation: the YAML place and the fix, exit 2 -----------------------------------------------


def suite_with(settings: dict[str, Any], **arch: Any) -> dict[str, Any]:
    """The tiny adding suite with these trainer ``settings`` and keys of its gru entry."""
    suite = tiny_suite(archs=["gru"], tasks=["adding"])
    suite["trainer"].update(settings)
    suite["architectures"][0].update(arch)
    return suite


BAD = {
    "unknown name": (
        suite_with({"scheduler": {"name": "cosin"}}),
        ["trainer.scheduler.name", "Did you mean `cosine`?", "none (the default, a constant lr)"],
    ),
    "both warm-ups": (
        suite_with({"scheduler": {"name": "cosine", "warmup_steps": 10, "warmup_fraction": 0.1}}),
        ["trainer.scheduler.warmup_fraction", "warmup_steps or warmup_fraction, not both"],
    ),
    "zero warm-up steps": (
        suite_with({"scheduler": {"warmup_steps": 0}}),
        ["trainer.scheduler.warmup_steps", "greater than or equal to 1"],
    ),
    "negative gamma": (
        suite_with({"scheduler": {"name": "step", "gamma": -0.5}}),
        ["trainer.scheduler.gamma", "greater than 0"],
    ),
    "a whole warm-up": (
        suite_with({"scheduler": {"warmup_fraction": 1.0}}),
        ["trainer.scheduler.warmup_fraction", "less than 1"],
    ),
    "another schedule's option": (
        suite_with({"scheduler": {"name": "cosine", "gamma": 0.5}}),
        ["trainer.scheduler.gamma", "option of the step schedule, not of `cosine`", "set `name: step`"],
    ),
    "a plateau option on step": (
        suite_with({"scheduler": {"name": "step", "patience": 3}}),
        ["trainer.scheduler.patience", "option of the plateau schedule", "step takes step_size, gamma"],
    ),
    "onecycle with a warm-up": (
        suite_with({"scheduler": {"name": "onecycle", "warmup_steps": 5}}),
        ["trainer.scheduler.warmup_steps", "warms up by itself"],
    ),
    "a floor above lr": (
        suite_with({"scheduler": {"name": "cosine", "min_lr": 0.1}}),
        ["trainer.scheduler", "min_lr (0.1) must be below trainer.lr (0.003)", "min_lr_ratio"],
    ),
    "an unknown key": (
        suite_with({"scheduler": {"name": "step", "step": 3}}),
        ["trainer.scheduler.step", "Did you mean `step_size`?"],
    ),
    "a metric the task does not log": (
        suite_with({"scheduler": {"name": "plateau", "monitor": "val_acc"}}),
        ["trainer.scheduler.monitor", "cannot monitor `val_acc`", "val_loss, val_mse, val_mae"],
    ),
    "an architecture's override": (
        suite_with({}, trainer={"scheduler": {"name": "cosine", "step_size": 2}}),
        ["architectures[0].trainer.scheduler.step_size", "option of the step schedule"],
    ),
    "a grid value": (
        suite_with({}, grid={"trainer.scheduler.name": ["cosine", "plateu"]}),
        ["architectures[0].grid['trainer.scheduler.name'][1]", "Did you mean `plateau`?"],
    ),
    "a grid axis": (
        suite_with({}, grid={"trainer.scheduler.warmup": [10, 20]}),
        ["trainer.scheduler.warmup", "Did you mean `trainer.scheduler.warmup_steps`"],
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_schedules_exit_2_naming_the_place_and_the_fix(
    tmp_path: Path, cli: Callable[..., Result], case: str
) -> None:
    suite, fragments = BAD[case]
    result = cli("validate", str(write_suite(tmp_path, suite)))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, f"{fragment!r} missing from: {result.output}"


# --- run ids, grids and flat overrides ------------------------------------------------------------


def plan_ids(tmp_path: Path, suite: dict[str, Any], name: str) -> list[str]:
    return [
        c.run_id for c in build_plan(load_suite(write_suite(tmp_path, suite, name)), get_registry()).cells
    ]


def test_the_default_schedule_keeps_every_earlier_run_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ids a results file written before schedules existed holds are the ids planned now."""
    monkeypatch.setenv("HARNESS_SOURCE_DIGEST", "0")  # the file was written by a wheel install
    legacy = ResultsFile(DATA / "legacy-format.jsonl").read()
    plan = build_plan(load_suite(DATA / "legacy-format.yaml"), get_registry())
    assert {c.run_id for c in plan.cells} == {r.run_id for r in legacy}
    assert all(r.spec.trainer.scheduler == SchedulerSpec() for r in legacy)  # read back as the default


@pytest.mark.parametrize("written", [None, "none", {"name": "none"}, {}])
def test_every_way_of_writing_the_default_gives_the_same_ids(tmp_path: Path, written: Any) -> None:
    plain = plan_ids(tmp_path, suite_with({}), "plain.yaml")
    assert plan_ids(tmp_path, suite_with({"scheduler": written}), "written.yaml") == plain


@pytest.mark.parametrize("scheduler", ["cosine", {"warmup_steps": 10}, {"name": "step", "gamma": 0.5}])
def test_a_schedule_or_warmup_changes_the_id(tmp_path: Path, scheduler: Any) -> None:
    plain = plan_ids(tmp_path, suite_with({}), "plain.yaml")
    assert set(plan_ids(tmp_path, suite_with({"scheduler": scheduler}), "other.yaml")).isdisjoint(plain)


def test_a_grid_sets_keys_of_the_scheduler_block(tmp_path: Path) -> None:
    suite = suite_with(
        {"scheduler": {"warmup_steps": 10}}, grid={"trainer.scheduler.name": ["none", "cosine", "step"]}
    )
    cells = build_plan(load_suite(write_suite(tmp_path, suite)), get_registry()).cells
    assert [c.trainer.scheduler.name for c in cells] == ["none", "cosine", "step"]
    assert all(c.trainer.scheduler.warmup_steps == 10 for c in cells)  # the suite's warm-up is kept
    assert cells[1].arch_label == "gru[trainer.scheduler.name=cosine]"
    assert cells[0].run_id == plan_ids(tmp_path, suite_with({"scheduler": {"warmup_steps": 10}}), "b.yaml")[0]


def test_flat_dotted_overrides_set_keys_of_the_block() -> None:
    base = TrainerSpec(lr=0.01, scheduler={"name": "step", "step_size": 3})
    tuned = base.override({"lr": 0.02, "scheduler.name": "cosine", "scheduler.step_size": None})
    assert tuned.lr == 0.02 and tuned.scheduler == SchedulerSpec(name="cosine")
    warm = TrainerSpec().override({"scheduler.name": "cosine", "scheduler.warmup_fraction": 0.1})
    assert warm.scheduler == SchedulerSpec(name="cosine", warmup_fraction=0.1)
    shorthand = TrainerSpec(scheduler="cosine").override({"scheduler.min_lr_ratio": 0.1})
    assert shorthand.scheduler.name == "cosine" and shorthand.scheduler.min_lr_ratio == 0.1
    with pytest.raises(ValidationError, match="option of the step schedule"):
        TrainerSpec(scheduler="cosine").override({"scheduler.gamma": 0.5})


def test_the_block_travels_compactly_and_comes_back_whole() -> None:
    trainer = TrainerSpec(scheduler={"name": "plateau", "patience": 1, "warmup_fraction": 0.1})
    dumped = trainer.model_dump(mode="json")["scheduler"]
    assert dumped == {"name": "plateau", "warmup_fraction": 0.1, "patience": 1}  # unset options left out
    spec = make_spec(task="adding").model_copy(update={"trainer": trainer})
    again = RunSpec.model_validate_json(spec.model_dump_json())
    assert again.trainer == trainer and again.run_id == spec.run_id
