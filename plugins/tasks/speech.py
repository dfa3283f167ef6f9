"""Connected spoken-digit strings, synthesised with espeak-ng: CTC transcription.

Each utterance is a string of 1-7 digits (``min_digits``..``max_digits``) spoken without
pauses, e.g. "three oh four". The digit 0 is spoken as "oh" or "zero" at random
(``oh_probability``). Every utterance draws an English accent (``accents``: en-us, en-gb,
Scottish, RP, Lancaster, West Midlands, Caribbean, New York), a voice variant, a speed
(words per minute), a pitch, and white Gaussian noise at a random SNR.

Held-out voices: the **test split uses only the voice variants in ``test_variants``**
(default: m7, f3, f5, klatt3, Alex, Andrea, caleb, shelby: male, female and Klatt-synthesiser
voices), which never occur in training; train and validation use ``train_variants`` (32 other
variants). Validation therefore measures in-distribution voices and the test measures
generalisation to unseen voices. Accents are shared by all splits.

Labels: CTC blank = 0, then ``zero``..``nine`` = 1..10. "oh" and "zero" are the same digit and
map to the same token (``zero``): the task is to recognise digits, not to tell the two spoken
forms apart. References and hypotheses are the canonical digit words joined by spaces, so WER,
CER and SER count digit errors only.

Features: log-mel filterbank (``n_mels`` = 40, 25 ms Hann window, 10 ms hop, pre-emphasis 0.97)
computed with ``torch.stft`` at espeak-ng's native 22,050 Hz with filters from 20 Hz to
``f_max`` = 8 kHz (the band of 16 kHz audio, so no resampling is needed); per-utterance mean and
variance normalisation; ``frame_stack`` consecutive frames concatenated into one step (default
3: 30 ms steps, 120 features) to keep sequences short. The encoder keeps the time length; a
per-step linear head predicts labels + blank; the loss is CTC; evaluation is greedy (best-path)
CTC decoding.

Source: synthesised locally by Debian's ``espeak-ng`` (GPL-3.0-or-later program; the generated
audio is data made by this task, not a redistributed corpus). Install it with
``sudo apt-get install espeak-ng``. Anchors (context only, a different scale and real speech):
Graves et al. 2013, TIMIT phoneme error rate 17.7 % (deep bidirectional LSTM, CTC/transducer);
MLPerf Training RNN-T reference target WER <= 0.058 on LibriSpeech dev-clean.
Measured here (2-core CPU, one seed, 3,000/300/600 utterances, other params default, 15 epochs,
Adam 3e-3, batch 32): test WER on the held-out voices GRU-128 0.050, LSTM-128 0.119,
BiGRU 2x96 0.024 (validation, training voices: 0.041, 0.089, 0.019).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from harness import DataConfig, HarnessError, InputSpec, Params, Task, TaskInfo

if TYPE_CHECKING:
    import numpy as np
    import pytorch_lightning as pl
    import torch

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: label ids: CTC blank 0, then the canonical digit words
TOKENS = ("<blank>", *WORDS)
BLANK = 0
ACCENTS = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
TRAIN_VARIANTS = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "f1",
    "f2",
    "f4",
    "klatt",
    "klatt2",
    "klatt4",
    "Andy",
    "Annie",
    "Alicia",
    "Denis",
    "Gene",
    "Lee",
    "Mike",
    "Storm",
    "belinda",
    "david",
    "edward",
    "linda",
    "max",
    "paul",
    "rob",
    "steph",
    "travis",
    "victor",
    "john",
    "iven",
)
TEST_VARIANTS = ("m7", "f3", "f5", "klatt3", "Alex", "Andrea", "caleb", "shelby")
SPLITS = ("train", "val", "test")
MISSING = "espeak-ng not found on PATH; install it with `sudo apt-get install espeak-ng` (Debian/Ubuntu)"
SOURCE = (
    "Synthesised locally with Debian's espeak-ng (GPL-3.0+ program; the audio is generated, not a "
    "redistributed corpus): connected digit strings (1-7 digits, 0 spoken as 'oh' or 'zero') over "
    "8 English accents x 40 voice variants, random speed, pitch and SNR; the test split uses 8 voice "
    "variants never seen in training. 40 log-mel features (25 ms / 10 ms), CTC; WER on canonical digit "
    "words. Context only (real speech, other scale): Graves et al. 2013 TIMIT PER 17.7 %; MLPerf RNN-T "
    "target WER <= 0.058 on LibriSpeech dev-clean. Measured here (3,000 training utterances, 15 epochs, "
    "one seed): held-out-voice WER GRU-128 0.050, LSTM-128 0.119, BiGRU 2x96 0.024."
)
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class SpeechDigitsParams(Params):
    num_train: int = Field(4000, ge=1, description="training utterances (training voices)")
    num_val: int = Field(400, ge=1, description="validation utterances (training voices)")
    num_test: int = Field(800, ge=1, description="test utterances (held-out voices only)")
    min_digits: int = Field(1, ge=1, description="fewest digits in an utterance")
    max_digits: int = Field(7, ge=1, description="most digits in an utterance")
    oh_probability: float = Field(0.5, ge=0, le=1, description="chance that a 0 is spoken 'oh' (else 'zero')")
    speed_min: int = Field(130, ge=80, le=450, description="slowest speaking rate (espeak-ng -s, words/min)")
    speed_max: int = Field(190, ge=80, le=450, description="fastest speaking rate (words/min)")
    pitch_min: int = Field(25, ge=0, le=99, description="lowest pitch (espeak-ng -p, 0-99)")
    pitch_max: int = Field(75, ge=0, le=99, description="highest pitch (0-99)")
    snr_min_db: float = Field(10.0, description="lowest signal-to-noise ratio of the added white noise (dB)")
    snr_max_db: float = Field(30.0, description="highest signal-to-noise ratio (dB)")
    accents: tuple[str, ...] = Field(ACCENTS, min_length=1, description="espeak-ng English voices (accents)")
    train_variants: tuple[str, ...] = Field(
        TRAIN_VARIANTS, min_length=1, description="voice variants of the training and validation splits"
    )
    test_variants: tuple[str, ...] = Field(
        TEST_VARIANTS, min_length=1, description="held-out voice variants, used only by the test split"
    )
    n_mels: int = Field(40, ge=1, description="mel filterbank channels")
    win_ms: float = Field(25.0, gt=0, description="analysis window (ms)")
    hop_ms: float = Field(10.0, gt=0, description="frame hop (ms)")
    f_max: float = Field(8000.0, gt=100, description="upper edge of the mel filterbank (Hz)")
    frame_stack: int = Field(
        3, ge=1, description="consecutive frames concatenated into one step (subsampling)"
    )
    data_seed: int = Field(1234, description="seed of the generated utterances (fixed across run seeds)")
    synthesis_workers: int | None = Field(
        None,
        ge=1,
        description="espeak-ng processes at once (default: CPUs, at most 8); does not change the data",
    )
    target_wer: float = Field(0.10, gt=0, description="test WER that counts as reached (time-to-target)")

    @model_validator(mode="after")
    def _ranges(self) -> SpeechDigitsParams:
        for low, high in (
            ("min_digits", "max_digits"),
            ("speed_min", "speed_max"),
            ("pitch_min", "pitch_max"),
            ("snr_min_db", "snr_max_db"),
        ):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(
                    f"{low} ({getattr(self, low)}) must not exceed {high} ({getattr(self, high)})"
                )
        shared = sorted(set(self.train_variants) & set(self.test_variants))
        if shared:
            raise ValueError(
                f"test_variants must be held out from train_variants; both contain {', '.join(shared)}"
            )
        bad = [n for n in (*self.accents, *self.train_variants, *self.test_variants) if not _NAME.match(n)]
        if bad:
            raise ValueError(f"voice and variant names are single words (letters, digits, - or _): {bad}")
        return self


def installed_voices(executable: str) -> tuple[set[str], set[str]]:
    """(languages/voice names, variant names) that this espeak-ng knows."""
    import subprocess

    listing = subprocess.run([executable, "--voices"], capture_output=True, text=True, check=False).stdout
    languages: set[str] = set()
    for line in listing.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5:
            languages.update({fields[1], fields[3], fields[4].split("/")[-1]})
    variants = subprocess.run(
        [executable, "--voices=variant"], capture_output=True, text=True, check=False
    ).stdout
    return languages, set(re.findall(r"!v/(\S+)", variants))


def espeak_version(executable: str) -> str:
    import subprocess

    out = subprocess.run([executable, "--version"], capture_output=True, text=True, check=False).stdout
    return out.split("Data at")[0].strip()


class SpeechDigitsTask(Task[SpeechDigitsParams]):
    """Connected spoken digits (espeak-ng, held-out voices): CTC transcription, WER."""

    name = "speech_digits"
    description = (
        "Connected spoken digit strings synthesised by espeak-ng; log-mel -> CTC; WER on held-out voices."
    )
    data_version = "1"

    def info(self) -> TaskInfo:
        p = self.params
        return TaskInfo(
            input=InputSpec("continuous", p.n_mels * p.frame_stack, variable_length=True),
            output_kind="transcription",
            output_size=len(TOKENS),
            loss="CTC",
            metrics=("wer", "cer", "ser"),
            primary_metric="wer",
            direction="min",
            target=p.target_wer,
            divergence_bound=100.0,  # 100x the empty transcript (WER 1)
            source=SOURCE,
        )

    def unavailable(self) -> str | None:
        from ._audio import espeak_path

        return MISSING if espeak_path() is None else None

    # -- data -------------------------------------------------------------------------------
    def utterance_plan(self, split: str) -> list[dict[str, Any]]:
        """The recipe of every utterance of ``split`` (text, voice, speed, pitch, SNR, noise seed),
        drawn from ``data_seed`` and the split alone (so ``num_train`` does not change the test)."""
        import numpy as np

        p = self.params
        n = {"train": p.num_train, "val": p.num_val, "test": p.num_test}[split]
        variants = p.test_variants if split == "test" else p.train_variants
        rng = np.random.default_rng([p.data_seed, SPLITS.index(split)])
        plan = []
        for _ in range(n):
            digits = rng.integers(0, 10, size=int(rng.integers(p.min_digits, p.max_digits + 1)))
            spoken = [
                ("oh" if rng.random() < p.oh_probability else "zero") if d == 0 else WORDS[d] for d in digits
            ]
            voice = f"{p.accents[rng.integers(len(p.accents))]}+{variants[rng.integers(len(variants))]}"
            plan.append(
                {
                    "digits": digits.astype(np.int64),
                    "text": " ".join(spoken),
                    "voice": voice,
                    "speed": int(rng.integers(p.speed_min, p.speed_max + 1)),
                    "pitch": int(rng.integers(p.pitch_min, p.pitch_max + 1)),
                    "snr": float(rng.uniform(p.snr_min_db, p.snr_max_db)),
                    "noise_seed": int(rng.integers(2**62)),
                }
            )
        return plan

    def _features(self, item: dict[str, Any], executable: str) -> np.ndarray:
        import numpy as np

        from ._audio import add_noise, log_mel, normalise, parse_wav, stack_frames, synthesize

        p = self.params
        wave, rate = parse_wav(
            synthesize(item["text"], item["voice"], item["speed"], item["pitch"], executable)
        )
        wave = add_noise(wave, item["snr"], np.random.default_rng(item["noise_seed"]))
        feats = log_mel(wave, rate, n_mels=p.n_mels, win_ms=p.win_ms, hop_ms=p.hop_ms, f_max=p.f_max)
        return stack_frames(normalise(feats), p.frame_stack)

    def _check_voices(self, executable: str) -> None:
        p = self.params
        languages, variants = installed_voices(executable)
        unknown = [a for a in p.accents if a not in languages]
        unknown += [v for v in (*p.train_variants, *p.test_variants) if v not in variants]
        if unknown:
            raise HarnessError(
                f"task `speech_digits`: espeak-ng ({executable}) has no voice or variant named "
                f"{', '.join(unknown)} (it would silently fall back to its default voice); pick names from "
                "`espeak-ng --voices=en` (accents) and `espeak-ng --voices=variant` (File column after '!v/')"
            )

    def _build(self, executable: str) -> dict[str, Any]:
        import os
        from concurrent.futures import ThreadPoolExecutor

        import numpy as np

        p = self.params
        self._check_voices(executable)
        workers = p.synthesis_workers or min(8, os.cpu_count() or 1)
        out: dict[str, Any] = {}
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for split in SPLITS:
                plan = self.utterance_plan(split)
                out[f"{split}_x"] = list(pool.map(lambda item: self._features(item, executable), plan))
                out[f"{split}_y"] = [item["digits"] + 1 for item in plan]  # label = digit + 1 (0 = blank)
                out[f"{split}_voice"] = np.asarray([item["voice"] for item in plan], dtype=np.str_)
                out[f"{split}_text"] = np.asarray([item["text"] for item in plan], dtype=np.str_)
        return out

    def arrays(self, cache_dir: Any) -> dict[str, Any]:
        """The cached (or freshly synthesised) features, labels, voices and spoken texts."""
        from harness.data import cached_arrays

        from ._audio import espeak_path

        executable = espeak_path()
        if executable is None:
            raise HarnessError(f"task `speech_digits`: {MISSING}")
        p = self.params
        spec = {
            "task": self.name,
            "version": self.data_version,
            "espeak": espeak_version(executable),
            **p.model_dump(mode="json", exclude={"target_wer", "synthesis_workers"}),
        }
        return cached_arrays(cache_dir, self.name, spec, lambda: self._build(executable))

    def datamodule(self, config: DataConfig) -> pl.LightningDataModule:
        from harness.data import ArrayDataModule

        def load() -> dict[str, tuple[Any, Any]]:
            arrays = self.arrays(config.cache_dir)
            return {s: (arrays[f"{s}_x"], arrays[f"{s}_y"]) for s in SPLITS}

        return ArrayDataModule(load, config.batch_size, config.seed, num_workers=config.num_workers)

    # -- model --------------------------------------------------------------------------------
    def build_head(self, encoder_output_size: int) -> torch.nn.Module:
        """Per-step scores of the labels and the blank: a linear layer on ``EncoderOutput.sequence``."""
        import torch

        return torch.nn.Linear(encoder_output_size, len(TOKENS))

    def forward(self, network: Any, batch: Any) -> torch.Tensor:
        """``[batch, time, labels + blank]`` scores (the encoder keeps the time length)."""
        return network.head(network.encoder(batch["x"], batch["lengths"]).sequence)

    def batch_loss(self, prediction: torch.Tensor, batch: Any) -> torch.Tensor:
        import torch

        log_probs = prediction.float().log_softmax(-1).transpose(0, 1)  # [T, B, C]
        return torch.nn.functional.ctc_loss(
            log_probs, batch["y"], batch["lengths"], batch["y_lengths"], blank=BLANK, zero_infinity=True
        )

    def evaluate(self, network: Any, prediction: torch.Tensor, batch: Any) -> tuple[list[str], list[str]]:
        return self.transcripts(prediction, batch)

    def transcripts(self, prediction: torch.Tensor, batch: Any) -> tuple[list[str], list[str]]:
        """(greedy CTC hypotheses, references) as space-joined canonical digit words."""
        from ._audio import ctc_greedy

        hyps = ctc_greedy(prediction.argmax(-1).cpu().tolist(), batch["lengths"].cpu().tolist(), blank=BLANK)
        refs = [row[: int(n)] for row, n in zip(batch["y"].cpu().tolist(), batch["y_lengths"].cpu().tolist())]
        return [decode(h) for h in hyps], [decode(r) for r in refs]

    def artifacts(self, network: Any, data: pl.LightningDataModule) -> dict[str, str]:
        """The first 50 test utterances (held-out voices): reference and greedy hypothesis."""
        lines = ["reference\thypothesis"]
        for batch in data.test_dataloader():
            batch = {k: v.to(network.device) for k, v in batch.items()}
            hyps, refs = self.transcripts(self.forward(network, batch), batch)
            lines += [f"{r}\t{h}" for r, h in zip(refs, hyps)]
            if len(lines) > 50:
                break
        return {"test_transcripts.tsv": "\n".join(lines[:51]) + "\n"}


def decode(labels: list[int]) -> str:
    """Label ids (1..10) -> canonical digit words joined by spaces (blanks dropped)."""
    return " ".join(TOKENS[i] for i in labels if 0 < i < len(TOKENS))
