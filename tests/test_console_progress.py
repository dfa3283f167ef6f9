"""Per-cell progress (`Progress.update`): the live block on a terminal, milestone lines when piped."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from harness.console import Progress
from harness.records import RunSpec
from tests.helpers import make_record, make_spec


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _spec(run_id: str, max_epochs: int = 10, **kw: Any) -> RunSpec:
    spec = make_spec("adding", "gru", kw.pop("seed", 0), run_id=run_id, **kw)
    trainer = spec.trainer.model_copy(update={"max_epochs": max_epochs})
    return spec.model_copy(update={"trainer": trainer})


def _row(epoch: int, step: int, train: float | None = None, val: float | None = None) -> dict[str, float]:
    row = {"epoch": float(epoch), "step": float(step), "elapsed_s": 1.0}
    if train is not None:
        row["train_loss"] = train
    if val is not None:
        row["val_loss"] = val
    return row


def _terminal() -> Console:
    return Console(record=True, width=120, force_terminal=True)


def _live_text(console: Console, progress: Progress) -> str:
    console.print(progress.__rich__())
    return console.export_text()


def test_live_block_shows_epoch_step_losses_elapsed_and_eta_per_cell() -> None:
    console, clock = _terminal(), FakeClock()
    progress = Progress(console, total=3, capacity=3, clock=clock)
    long_label = "ucr[dataset=GunPoint,length=128,normalize=true]"
    progress.start(_spec("a", 10))
    progress.start(_spec("b", 20, task_label=long_label, seed=1))
    clock.now += 12.3
    row = _row(3, 420, train=0.41234567, val=0.52)
    row["val_accuracy"] = 0.83
    progress.update("a", row)
    assert console.export_text(clear=False) == ""  # a terminal gets no per-epoch lines printed
    lines = _live_text(console, progress).splitlines()
    assert lines[0].startswith("cells 0/3 done · 2 running · 0 failed")
    # 4 of 10 epochs done in 12.3 s: 6 more at that pace; the line is cut to the width, not wrapped
    assert lines[1] == (
        "  … adding × gru · seed 0  epoch 4/10  step 420  12.3 s · ETA 18.4 s  "
        "train_loss 0.4123  val_loss 0.52  val_accuracy 0.…"
    )
    # before its first row: no ETA, no losses; the long label is cut in the middle, the seed kept
    assert lines[2].startswith("  … ucr[dataset=GunPoint,length=128,norma…")
    assert lines[2].endswith("…ue] × gru · seed 1  epoch 0/20  starting  12.3 s")
    assert len(lines) == 3


def test_live_block_keeps_one_line_per_cell_on_a_narrow_terminal() -> None:
    console = Console(record=True, width=60, force_terminal=True)
    progress = Progress(console, total=2, capacity=2, clock=FakeClock())
    progress.start(_spec("a"))
    progress.start(_spec("b", seed=1))
    progress.update("a", _row(0, 10, train=0.5, val=0.6))
    lines = _live_text(console, progress).splitlines()
    assert lines[-2] == "  … adding × gru · seed 0  epoch 1/10  step 10  0.0 s · ETA…"
    assert lines[-1] == "  … adding × gru · seed 1  epoch 0/10  starting  0.0 s"


def test_condensed_view_above_quiet_above_cells() -> None:
    buffer = io.StringIO()
    clock = FakeClock()
    progress = Progress(Console(file=buffer, width=200), total=60, capacity=20, clock=clock)
    for i in range(20):
        progress.start(_spec(f"r{i}", 4))
    clock.now += 2.0
    for epoch in range(3):
        for i in range(20):
            progress.update(f"r{i}", _row(epoch, 10 * (epoch + 1), train=0.3))
    assert buffer.getvalue() == ""  # piped, but above quiet_above: no milestone lines
    console = _terminal()
    text = _live_text(console, progress)
    assert text.count("epoch 3/4  step 30") == Progress.max_running
    assert "and 12 more running" in text
    assert len(text.splitlines()) == 1 + Progress.max_running + 1


def test_piped_output_prints_one_plain_line_per_milestone() -> None:
    buffer = io.StringIO()
    clock = FakeClock()
    console = Console(file=buffer, force_terminal=False, width=120)
    with Progress(console, total=3, capacity=3, clock=clock) as progress:
        for run_id, max_epochs in (("long", 20), ("two", 2), ("one", 1)):
            progress.start(_spec(run_id, max_epochs, seed={"long": 0, "two": 1, "one": 2}[run_id]))
        for epoch in range(20):
            clock.now += 1.5
            for _ in range(2):  # a row streamed twice never prints twice
                progress.update("long", _row(epoch, 125 * (epoch + 1), train=1 / (epoch + 1), val=0.13))
            if epoch < 2:
                progress.update("two", _row(epoch, 5 * (epoch + 1), train=0.5))
            if epoch < 1:
                progress.update("one", _row(epoch, 5, train=0.5))
    out = buffer.getvalue()
    assert "\x1b" not in out and "\r" not in out
    lines = out.splitlines()
    long_lines = [line for line in lines if "seed 0" in line]
    # 25 %, 50 %, 75 % of 20 epochs; the 100 % row is left to the finish line
    assert [line.split("  ")[2] for line in long_lines] == ["epoch 5/20", "epoch 10/20", "epoch 15/20"]
    assert (
        long_lines[1]
        == "  · adding × gru · seed 0  epoch 10/20  step 1250  train_loss 0.1  val_loss 0.13  (15.0 s)"
    )
    assert [line for line in lines if "seed 1" in line] == [
        "  · adding × gru · seed 1  epoch 1/2  step 5  train_loss 0.5  (1.5 s)"
    ]
    assert not [line for line in lines if "seed 2" in line]
    assert len(lines) == 4


def test_piped_output_of_a_short_cell_prints_at_most_one_line_per_epoch() -> None:
    buffer = io.StringIO()
    progress = Progress(
        Console(file=buffer, force_terminal=False, width=120), total=1, capacity=1, clock=FakeClock()
    )
    progress.start(_spec("a", 4))
    for epoch in range(4):
        progress.update("a", _row(epoch, epoch + 1))
    lines = buffer.getvalue().splitlines()
    assert [line.split("  ")[2] for line in lines] == ["epoch 1/4", "epoch 2/4", "epoch 3/4"]


def test_terminal_mode_prints_no_milestone_lines_only_the_finish_line() -> None:
    console, clock = _terminal(), FakeClock()
    progress = Progress(console, total=1, capacity=1, clock=clock)
    spec = _spec("a", 4)
    progress.start(spec)
    for epoch in range(4):
        progress.update("a", _row(epoch, epoch + 1, train=0.2))
    record = make_record("adding", "gru", 0, 0.9, run_id="a").model_copy(update={"wall_time_s": 2.0})
    progress.finish(record)
    text = console.export_text()
    assert "epoch" not in text and "✓ adding × gru · seed 0  accuracy 0.9  (2.0 s)" in text


def test_a_retry_starts_the_cells_progress_over() -> None:
    buffer = io.StringIO()
    clock = FakeClock()
    progress = Progress(
        Console(file=buffer, force_terminal=False, width=120), total=1, capacity=1, clock=clock
    )
    spec = _spec("a", 4)
    progress.start(spec)
    clock.now += 5.0
    progress.update("a", _row(1, 20, train=0.7, val=0.8))
    assert buffer.getvalue().splitlines()[-1].split("  ")[2] == "epoch 2/4"
    clock.now += 5.0
    progress.start(spec.model_copy(update={"attempt": 2}))
    clock.now += 1.0
    text = _live_text(_terminal(), progress)
    assert "epoch 0/4  starting  1.0 s" in text and "train_loss" not in text and "step" not in text
    assert "1 running" in text
    progress.update("a", _row(0, 10, train=0.9))
    # the retry's milestones are printed again, its elapsed time counts from the retry
    assert (
        buffer.getvalue().splitlines()[-1]
        == "  · adding × gru · seed 0  epoch 1/4  step 10  train_loss 0.9  (1.0 s)"
    )


def test_rows_of_unknown_or_finished_cells_are_ignored() -> None:
    buffer = io.StringIO()
    progress = Progress(
        Console(file=buffer, force_terminal=False, width=120), total=2, capacity=2, clock=FakeClock()
    )
    progress.update("never-started", _row(0, 1, train=0.1))
    assert buffer.getvalue() == "" and progress.cells == {}
    progress.start(_spec("a", 4))
    record = make_record("adding", "gru", 0, 0.9, run_id="a").model_copy(update={"wall_time_s": 1.0})
    progress.finish(record)
    assert progress.cells == {}
    finished = buffer.getvalue()
    progress.update("a", _row(1, 2, train=0.1))  # a late row after the finish
    assert buffer.getvalue() == finished and progress.cells == {}
    text = _live_text(_terminal(), progress)
    assert "0 running" in text and "…" not in text


def test_a_piped_harness_run_prints_epoch_milestones_without_control_codes(tmp_path: Any) -> None:
    """End to end: `harness run` with its output piped (the local executor streams epoch rows)."""
    from tests.helpers import harness_local, tiny_suite, write_suite

    trainer = {"max_epochs": 4, "batch_size": 64, "lr": 0.003}
    suite = write_suite(tmp_path, tiny_suite(name="piped", tasks=["digits"], trainer=trainer))
    out = harness_local(tmp_path, suite)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "\x1b" not in out.stdout and "\r" not in out.stdout
    milestones = [line for line in out.stdout.splitlines() if line.startswith("  · digits × gru")]
    assert [line.split("  ")[2] for line in milestones] == ["epoch 1/4", "epoch 2/4", "epoch 3/4"]
    assert all("train_loss" in line and "val_loss" in line for line in milestones)
