"""PGHI (Průša, Balazs & Søndergaard 2017) on synthetic signals and real recordings."""
import math

import pytest
import torch

from conftest import EDGE_KINDS, edge_signal, reference_magnitude
from specinv_cli import invert
from specinv_cli.algorithms.pghi import pghi, pghi_phase
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


def test_gaussian_window_chirp_is_nearly_exact():
    """For a Gaussian window the phase-magnitude relations are exact: a (faded-in) linear chirp
    comes back almost perfectly, random phase does not."""
    sr, n = 22050, 2 * 22050
    t = torch.arange(n, dtype=torch.float64) / sr
    env = torch.clamp(torch.minimum(t, t[-1] - t) / 0.2, max=1.0)
    x = (env * torch.sin(2 * math.pi * (200 * t + 0.5 * 1900 * t ** 2))).float()
    op = STFT(STFTConfig(window="gaussian", n_fft=1024, hop_length=256))
    mag = op.forward(x).abs()
    got = _sc(pghi(mag, op, length=n), mag, op)
    assert got < -45.0  # about -51 dB
    assert _random_sc(mag, op, n) > -10.0


@pytest.mark.parametrize("name,bound", [("speech", -22.0), ("guitar", -24.0), ("tabla", -22.0)])
def test_corpus_clips_far_better_than_random_phase(clips, name, bound):
    audio = clips[name]
    mag = reference_magnitude(audio)
    r = invert(mag, method="pghi", length=len(audio), device="cpu")
    got = float(r.metrics["sc"])
    assert got < bound
    assert got < _random_sc(mag, STFT(STFTConfig()), len(audio)) - 15.0


def test_paper_rule_without_averaging_also_works(clips):
    audio = clips["guitar"]
    mag = reference_magnitude(audio)
    op = STFT(STFTConfig())
    plain = _sc(pghi(mag, op, length=len(audio), average=False), mag, op)
    averaged = _sc(pghi(mag, op, length=len(audio)), mag, op)
    assert plain < -23.0  # about -25 dB
    assert averaged < plain + 0.5  # the default refinement is not worse


def test_unit_modulus_dtype_and_scale_invariance(clips):
    mag = reference_magnitude(clips["speech"][:22050])
    op = STFT(STFTConfig())
    ph = pghi_phase(mag, op)
    assert ph.dtype == torch.complex64 and ph.shape == mag.shape
    assert torch.allclose(ph.abs(), torch.ones(()), atol=1e-5)
    # the phase derivatives use log-magnitude differences: a global gain changes nothing (a
    # power of two keeps even the heap's order of near-ties)
    quiet = pghi_phase(mag * 2.0 ** -20, op)
    assert float((quiet - ph).abs().max()) < 1e-3
    n = 22050
    assert abs(_sc(op.inverse(mag * 1e-6 * pghi_phase(mag * 1e-6, op), n), mag * 1e-6, op)
               - _sc(op.inverse(mag * ph, n), mag, op)) < 0.5
    op64 = STFT(STFTConfig(), dtype=torch.float64)
    ph64 = pghi_phase(mag.double(), op64)
    assert ph64.dtype == torch.complex128
    assert float((ph64 - ph.to(torch.complex128)).abs().median()) < 1e-3


@pytest.mark.parametrize("kind", EDGE_KINDS)
def test_degenerate_inputs_give_finite_output(kind):
    n = 8192
    x = edge_signal(kind, n)
    op = STFT(STFTConfig())
    mag = op.forward(x).abs()
    y = pghi(mag, op, length=n)
    assert y.shape == (n,) and torch.isfinite(y).all()
    if kind == "impulse":  # an impulse is a single ridge across frequency: nearly exact
        assert _sc(y, mag, op) < -40.0  # about -52 dB


def test_rel_tol_coefficients_are_not_integrated(clips):
    """Below rel_tol * max the phase is random: it changes with the generator, and nothing else
    does; above, it is the integrated phase, the same for every generator."""
    mag = reference_magnitude(clips["speech"][:22050])
    op = STFT(STFTConfig())
    tol = 1e-2
    a = pghi_phase(mag, op, rel_tol=tol, generator=torch.Generator().manual_seed(1))
    b = pghi_phase(mag, op, rel_tol=tol, generator=torch.Generator().manual_seed(2))
    below = mag < tol * mag.max()
    assert 0.1 < float(below.float().mean()) < 0.99
    assert torch.equal(a[~below], b[~below])
    assert bool(((a[below] - b[below]).abs() > 1e-6).float().mean() > 0.99)
    # a tolerance of 1 keeps only the largest coefficient
    c = pghi_phase(mag, op, rel_tol=1.0, generator=torch.Generator().manual_seed(1))
    d = pghi_phase(mag, op, rel_tol=1.0, generator=torch.Generator().manual_seed(2))
    assert int((c == d).sum()) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(clips):
    mag = reference_magnitude(clips["guitar"][:22050])
    a = invert(mag, method="pghi", device="cpu")
    b = invert(mag, method="pghi", device="cuda")
    assert abs(float(a.metrics["sc"]) - float(b.metrics["sc"])) < 0.5
