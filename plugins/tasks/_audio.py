"""Audio helpers of the speech tasks: espeak-ng synthesis, WAV parsing, noise, log-mel
features (``torch.stft`` + a triangular mel filterbank) and greedy CTC decoding.

numpy at module level only; torch is imported inside the functions that need it (they run
in the worker). There is no CPU build of torchaudio and librosa is not installed, so the
filterbank is built here (HTK mel scale, Slaney-style area normalisation off: every filter
peaks at 1).
"""

from __future__ import annotations

import math
import shutil
import struct
import subprocess
from collections.abc import Sequence

import numpy as np

ESPEAK = "espeak-ng"


def espeak_path() -> str | None:
    """The espeak-ng executable found on ``PATH``, or ``None``."""
    return shutil.which(ESPEAK)


def synthesize(
    text: str, voice: str, speed: int, pitch: int, executable: str = ESPEAK, timeout: float = 60.0
) -> bytes:
    """WAV bytes of ``text`` spoken by espeak-ng (``-v voice -s speed -p pitch --stdout``)."""
    done = subprocess.run(
        [executable, "-v", voice, "-s", str(int(speed)), "-p", str(int(pitch)), "--stdout", text],
        capture_output=True,
        check=False,
        timeout=timeout,
    )
    if done.returncode != 0 or len(done.stdout) <= 44:
        message = done.stderr.decode(errors="replace").strip()
        raise RuntimeError(
            f"espeak-ng failed for voice {voice!r} (exit code {done.returncode}): {message or 'no audio'}"
        )
    return done.stdout


def parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Mono 16-bit PCM WAV bytes -> (samples in [-1, 1] as float32, sample rate).

    espeak-ng writes to a pipe, so the RIFF and data sizes in its header are placeholders
    (0x7FFFF000): the samples are simply everything after the ``data`` chunk header.
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE stream")
    pos, rate, channels, bits = 12, 0, 1, 16
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if chunk == b"fmt ":
            _fmt, channels, rate, _byte_rate, _align, bits = struct.unpack("<HHIIHH", data[body : body + 16])
        elif chunk == b"data":
            if bits != 16:
                raise ValueError(f"expected 16-bit PCM, got {bits}-bit")
            raw = data[body : body + min(size, len(data) - body)]
            raw = raw[: len(raw) - len(raw) % (2 * channels)]
            samples = np.frombuffer(raw, dtype="<i2").reshape(-1, channels).mean(axis=1)
            return (samples / 32768.0).astype(np.float32), int(rate)
        pos = body + size + (size % 2)
    raise ValueError("WAV stream has no data chunk")


def add_noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``wave`` plus white Gaussian noise at ``snr_db`` relative to the signal's mean power."""
    power = float(np.mean(wave.astype(np.float64) ** 2)) or 1e-10
    noise_power = power / (10.0 ** (snr_db / 10.0))
    noise = rng.standard_normal(len(wave)) * math.sqrt(noise_power)
    return (wave + noise).astype(np.float32)


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, f_min: float, f_max: float) -> np.ndarray:
    """``[n_mels, n_fft // 2 + 1]`` triangular filters equally spaced on the HTK mel scale."""
    f_max = min(f_max, sample_rate / 2.0)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    bins = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    return np.clip(np.minimum(rising, falling), 0.0, None).astype(np.float32)


def log_mel(
    wave: np.ndarray,
    sample_rate: int,
    n_mels: int = 40,
    win_ms: float = 25.0,
    hop_ms: float = 10.0,
    f_min: float = 20.0,
    f_max: float = 8000.0,
    preemphasis: float = 0.97,
) -> np.ndarray:
    """Log-mel filterbank energies ``[frames, n_mels]`` (Hann window, power spectrum)."""
    import torch

    win = round(sample_rate * win_ms / 1000.0)
    hop = round(sample_rate * hop_ms / 1000.0)
    n_fft = 1 << (win - 1).bit_length()
    signal = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    if preemphasis:
        signal = torch.cat([signal[:1], signal[1:] - preemphasis * signal[:-1]])
    if len(signal) < win:
        signal = torch.nn.functional.pad(signal, (0, win - len(signal)))
    # torch.stft centres the window inside each n_fft-sample frame: pad so that frame i covers
    # samples [i * hop, i * hop + win), giving 1 + (len - win) // hop frames
    left = (n_fft - win) // 2
    signal = torch.nn.functional.pad(signal, (left, n_fft - win - left))
    spec = torch.stft(
        signal,
        n_fft=n_fft,
        hop_length=hop,
        win_length=win,
        window=torch.hann_window(win),
        center=False,
        return_complex=True,
    )
    power = spec.abs().pow(2)  # [freq, frames]
    bank = torch.from_numpy(mel_filterbank(n_mels, n_fft, sample_rate, f_min, f_max))
    return torch.log(bank @ power + 1e-6).T.contiguous().numpy()


def normalise(features: np.ndarray) -> np.ndarray:
    """Per-utterance mean and variance normalisation of each channel."""
    mean = features.mean(axis=0, keepdims=True)
    std = features.std(axis=0, keepdims=True)
    return ((features - mean) / np.maximum(std, 1e-5)).astype(np.float32)


def stack_frames(features: np.ndarray, k: int) -> np.ndarray:
    """Concatenate each ``k`` consecutive frames into one step (``[ceil(T / k), k * D]``);
    the last group is padded by repeating the last frame."""
    if k <= 1:
        return features
    frames, dim = features.shape
    pad = (-frames) % k
    if pad:
        features = np.concatenate([features, np.repeat(features[-1:], pad, axis=0)])
    return features.reshape(-1, k * dim)


def ctc_greedy(
    best: Sequence[Sequence[int]] | np.ndarray, lengths: Sequence[int], blank: int = 0
) -> list[list[int]]:
    """Best-path CTC decoding: per sequence, keep the first ``length`` steps, collapse
    repeated labels, then drop blanks."""
    out: list[list[int]] = []
    for row, length in zip(best, lengths):
        labels: list[int] = []
        previous = None
        for label in list(row)[: int(length)]:
            label = int(label)
            if label != previous and label != blank:
                labels.append(label)
            previous = label
        out.append(labels)
    return out
