"""Helpers for the companion-command tests (stft, eval, plot, report): short corpus excerpts
written to a temporary folder (never into the repository)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from conftest import load_clip

SR = 22050
#: short excerpts (name, seconds, offset): the tests run on two shared CPU cores
SPEECH = ("speech_female_hts2a", 1.0, 0.3)
GUITAR = ("music_guitar_em9", 1.0, 0.5)   # CC0


def write_clip(path, clip=SPEECH, subtype="PCM_16") -> np.ndarray:
    """Write an excerpt as a WAV (22.05 kHz mono) and return the samples as written (float32)."""
    name, seconds, offset = clip
    audio = load_clip(name, seconds, offset)
    sf.write(str(path), audio, SR, subtype=subtype)
    return sf.read(str(path), dtype="float32")[0]


def json_lines(out: str) -> list[dict]:
    """Every stdout line parsed as JSON (fails on any other output)."""
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def no_temporaries(folder) -> bool:
    return not any(p.name.startswith(".specinv-tmp-") for p in Path(folder).rglob("*"))


def write_stereo(path, clip=SPEECH, gains=(1.0, 0.5)) -> np.ndarray:
    """Write an excerpt as a two-channel float WAV, channel k = ``gains[k]`` x the clip; returns
    the samples as written, ``[L, 2]``."""
    name, seconds, offset = clip
    audio = load_clip(name, seconds, offset)
    sf.write(str(path), np.stack([g * audio for g in gains], axis=1), SR, subtype="FLOAT")
    return sf.read(str(path), dtype="float32", always_2d=True)[0]


def write_resampled(path, audio, rate: int) -> np.ndarray:
    """Write ``audio`` (at 22.05 kHz) resampled to ``rate`` Hz as a float WAV; returns it as written."""
    import librosa

    y = librosa.resample(np.asarray(audio, dtype=np.float32), orig_sr=SR, target_sr=rate, res_type="soxr_hq")
    sf.write(str(path), y, rate, subtype="FLOAT")
    return sf.read(str(path), dtype="float32")[0]
