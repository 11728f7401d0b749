"""Shared fixtures: the real-recording corpus in ../shared/corpus and the reference STFT."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("SPECINV_CORPUS", ROOT.parent / "shared" / "corpus"))


def corpus_files(kind: str | None = None) -> list[Path]:
    """Sorted corpus WAVs (``kind``: ``speech`` or ``music`` to filter)."""
    if not CORPUS.is_dir():
        return []
    files = sorted(CORPUS.glob("*.wav"))
    return [f for f in files if kind is None or f.name.startswith(kind)]


def load_clip(name_or_path, seconds: float | None = None, offset: float = 0.0) -> np.ndarray:
    """A corpus clip as float32 mono at its 22.05 kHz rate, optionally cut."""
    import soundfile as sf

    path = Path(name_or_path)
    if not path.is_absolute() and not path.exists():
        path = CORPUS / (str(name_or_path) if str(name_or_path).endswith(".wav") else f"{name_or_path}.wav")
        if not path.is_file():  # a checkout without ../shared/corpus (set SPECINV_CORPUS)
            pytest.skip(f"corpus clip not found: {path}")
    audio, sr = sf.read(str(path), dtype="float32", always_2d=False)
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    start = int(offset * sr)
    stop = None if seconds is None else start + int(seconds * sr)
    return np.ascontiguousarray(audio[start:stop])


def reference_magnitude(audio: np.ndarray, n_fft: int = 1024, hop: int = 256):
    """|STFT| with the corpus's reference settings (periodic Hann, centred, reflect)."""
    import torch

    x = torch.from_numpy(np.asarray(audio, dtype=np.float32))
    return torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), center=True,
                      pad_mode="reflect", return_complex=True).abs()


def stft_atol(audio: np.ndarray, n_fft: int = 1024, hop: int = 256) -> float:
    """Absolute tolerance between two float32 computations of ``reference_magnitude(audio)``:
    the FFT's rounding bound ``||X_hat - X||_2 <= eps log2(N) ||X||_2`` with Parseval
    ``||X||_2 = sqrt(N) ||w x||_2``, for the frame of largest ``||w x||_2``. It scales with the
    signal, whatever CPU or FFT code path computed either side (about 2e-6 of the peak bin for
    speech; a wrong window or framing errs by O(1) of it)."""
    import torch

    x = torch.from_numpy(np.asarray(audio, dtype=np.float32))
    x = torch.nn.functional.pad(x[None, None], (n_fft // 2, n_fft // 2), mode="reflect")[0, 0]
    frames = x.unfold(0, n_fft, hop) * torch.hann_window(n_fft)
    eps = float(np.finfo(np.float32).eps)
    return eps * float(np.log2(n_fft)) * float(np.sqrt(n_fft)) * float(frames.norm(dim=-1).max())


@pytest.fixture(scope="module")
def clips(corpus):
    """Three 3 s excerpts (speech, guitar, tabla) shared by the initialiser tests."""
    return {"speech": load_clip("speech_02_en_f_codec2_harvard", seconds=3.0, offset=1.0),
            "guitar": load_clip("music_guitar_em9", seconds=3.0, offset=1.0),
            "tabla": load_clip("music_tabla_loop", seconds=3.0)}


@pytest.fixture(scope="session")
def corpus():
    files = corpus_files()
    if not files:
        pytest.skip(f"corpus not found at {CORPUS}")
    return files


#: Excerpts (name, seconds, offset) shared by the per-method tests.
SPEECH = ("speech_04_en_m_cmu_arctic_awb_a0007", 2.5, 0.5)
GUITAR = ("music_01_classical_guitar", 2.5, 2.0)


def excerpt_magnitude(clip):
    """Reference magnitude of an excerpt ``(name, seconds, offset)``."""
    name, seconds, offset = clip
    return reference_magnitude(load_clip(name, seconds, offset))


def method_sc(method, mag, **kw):
    """SC (dB) of ``invert`` with ``method`` from random phase on the CPU."""
    from specinv_cli.api import invert

    return float(invert(mag, method=method, init="random", device="cpu", **kw).metrics["sc"])


@pytest.fixture
def one_thread(corpus):
    """One torch thread (the per-method tests' bounds were measured so), restored after."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(params=["jit", "torch"])
def kernels(request):
    """Runs a test on both CPU paths: the fused numba kernels and plain torch."""
    from specinv_cli.dsp import stft as dsp

    if request.param == "jit":
        dsp.set_jit(True)
        if not dsp.jit_enabled():
            dsp.set_jit(None)
            pytest.skip("numba does not import here")
    else:
        dsp.set_jit(False)
    yield request.param
    dsp.set_jit(None)


EDGE_KINDS = ("silence", "impulse", "dc", "noise", "quiet")


def edge_signal(kind: str, n: int = 8192):
    """A degenerate test signal of ``n`` samples: ``silence``, a lone ``impulse`` in the middle,
    ``dc``, uniform white ``noise`` (seeded), or a ``quiet`` speech excerpt (x 1e-6)."""
    import torch

    if kind == "silence":
        return torch.zeros(n)
    if kind == "impulse":
        x = torch.zeros(n)
        x[n // 2] = 1.0
        return x
    if kind == "dc":
        return torch.ones(n)
    if kind == "noise":
        return torch.rand(n, generator=torch.Generator().manual_seed(0)) * 2 - 1
    if kind == "quiet":
        return torch.from_numpy(load_clip(SPEECH[0], n / 22050, 1.0)) * 1e-6
    raise ValueError(kind)
