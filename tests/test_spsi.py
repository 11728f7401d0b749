"""SPSI (Beauregard, Harish & Wyse 2015) on synthetic signals and real recordings."""
import math

import numpy as np
import pytest
import torch

from conftest import EDGE_KINDS, edge_signal, reference_magnitude
from specinv_cli import invert
from specinv_cli.algorithms.spsi import spsi, spsi_phase
from specinv_cli.api import spectrogram_of
from specinv_cli.config import STFTConfig
from specinv_cli.dsp.stft import STFT
from specinv_cli.dsp.metrics import sc


def _sc(audio, mag, op):
    return float(sc(spectrogram_of(audio, op, mag.shape[-1]), mag))


def _random_sc(mag, op, length):
    g = torch.Generator().manual_seed(0)
    ph = torch.polar(torch.ones_like(mag), (torch.rand(mag.shape, generator=g) * 2 - 1) * math.pi)
    return _sc(op.inverse(mag * ph, length), mag, op)


def _sequential_spsi(mag: np.ndarray, hop: int, n_fft: int) -> np.ndarray:
    """The paper's frame-by-frame, peak-by-peak loop (walks may reach DC and Nyquist)."""
    F, T = mag.shape
    acc = np.zeros(F)
    out = np.zeros((F, T))
    for n in range(T):
        s = mag[:, n]
        for j in range(1, F - 1):
            if not (s[j] > s[j - 1] and s[j] > s[j + 1]):
                continue
            den = s[j - 1] - 2 * s[j] + s[j + 1]
            p = 0.5 * (s[j - 1] - s[j + 1]) / den if den != 0 else 0.0
            acc[j] += hop * 2 * np.pi * (j + p) / n_fft
            pk = acc[j]
            if p > 0:
                acc[j + 1] = pk + np.pi
                b = j - 1
                while b >= 0 and s[b] < s[b + 1]:
                    acc[b] = pk + np.pi
                    b -= 1
                b = j + 2
                while b < F and s[b] < s[b - 1]:
                    acc[b] = pk
                    b += 1
            elif p < 0:
                acc[j - 1] = pk + np.pi
                b = j + 1
                while b < F and s[b] < s[b - 1]:
                    acc[b] = pk + np.pi
                    b += 1
                b = j - 2
                while b >= 0 and s[b] < s[b + 1]:
                    acc[b] = pk
                    b -= 1
        out[:, n] = acc
    return out


def test_matches_the_sequential_algorithm(clips):
    """The vectorised version (lobe maps + prefix scan over frames) is the paper's loop."""
    op = STFT(STFTConfig(n_fft=64, hop_length=16), dtype=torch.float64)
    x = torch.from_numpy(clips["speech"][:8000]).double()
    mag = op.forward(x).abs()
    ref = _sequential_spsi(mag.numpy(), 16, 64)
    got = torch.angle(spsi_phase(mag, op)).numpy()
    err = np.abs(np.angle(np.exp(1j * (ref - got))))
    assert err.max() < 1e-6


def test_stationary_sinusoids_are_nearly_exact():
    sr, n = 22050, 2 * 22050
    t = torch.arange(n, dtype=torch.float64) / sr
    env = torch.clamp(torch.minimum(t, t[-1] - t) / 0.2, max=1.0)
    x = (env * (torch.sin(2 * math.pi * 440.3 * t) + 0.5 * torch.sin(2 * math.pi * 1234.5 * t + 1))).float()
    op = STFT(STFTConfig())
    mag = op.forward(x).abs()
    assert _sc(spsi(mag, op, length=n), mag, op) < -28.0  # about -30 dB
    assert _random_sc(mag, op, n) > -10.0


@pytest.mark.parametrize("name,bound", [("speech", -12.5), ("guitar", -18.0), ("tabla", -11.0)])
def test_corpus_clips_better_than_random_phase(clips, name, bound):
    audio = clips[name]
    mag = reference_magnitude(audio)
    r = invert(mag, method="spsi", length=len(audio), device="cpu")
    got = float(r.metrics["sc"])
    assert got < bound
    assert got < _random_sc(mag, STFT(STFTConfig()), len(audio)) - 7.0


def test_unit_modulus_dtype_and_scale_invariance(clips):
    mag = reference_magnitude(clips["guitar"][:22050])
    op = STFT(STFTConfig())
    ph = spsi_phase(mag, op)
    assert ph.dtype == torch.complex64 and ph.shape == mag.shape
    assert torch.allclose(ph.abs(), torch.ones(()), atol=1e-5)
    # only comparisons and ratios of magnitudes are used: a global gain changes nothing
    torch.testing.assert_close(spsi_phase(mag * 2.0 ** -20, op), ph)
    ph64 = spsi_phase(mag.double(), STFT(STFTConfig(), dtype=torch.float64))
    assert ph64.dtype == torch.complex128
    assert float((ph64 - ph.to(torch.complex128)).abs().max()) < 1e-2


@pytest.mark.parametrize("kind", EDGE_KINDS)
def test_degenerate_inputs_give_finite_output(kind):
    n = 8192
    x = edge_signal(kind, n)
    op = STFT(STFTConfig())
    mag = op.forward(x).abs()
    y = spsi(mag, op, length=n)
    assert y.shape == (n,) and torch.isfinite(y).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(clips):
    mag = reference_magnitude(clips["guitar"][:22050])
    op = STFT(STFTConfig())
    a = spsi_phase(mag, op)
    b = spsi_phase(mag.cuda(), STFT(STFTConfig(), device="cuda")).cpu()
    assert float((a - b).abs().max()) < 1e-2
