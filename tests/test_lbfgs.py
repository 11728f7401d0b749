"""L-BFGS waveform optimisation on real recordings, with |STFT| and with a custom transform."""
import pytest
import torch

from conftest import EDGE_KINDS, edge_signal, load_clip, reference_magnitude
from specinv_cli import invert
from specinv_cli.algorithms.base import Monitor, random_phase
from specinv_cli.algorithms.lbfgs import lbfgs, lbfgs_waveform
from specinv_cli.config import STFTConfig
from specinv_cli.dsp.stft import STFT
from specinv_cli.dsp.metrics import sc


@pytest.fixture(scope="module")
def speech(corpus):
    return load_clip("speech_03_en_m_librivox_austen", seconds=2.0, offset=1.0)


@pytest.fixture(scope="module")
def op():
    return STFT(STFTConfig())


def _random_init(mag, seed=0):
    return mag * random_phase(mag.shape, torch.Generator().manual_seed(seed), dtype=torch.complex64)


def test_spectral_convergence_drops_from_random_phase(speech, op):
    mag = reference_magnitude(speech)
    init = _random_init(mag)
    start = float(sc(op.forward(op.inverse(init, len(speech))).abs(), mag))
    history = []
    mon = Monitor(mag, n_iter=60, eval_every=10, callback=lambda p: history.append(float(p.metrics["sc"])))
    y = lbfgs(mag, op, n_iter=60, init=init, length=len(speech), monitor=mon)
    end = float(sc(op.forward(y).abs(), mag))
    assert mon.iterations == 60 and len(history) == 6
    assert end < -18.0
    assert end < start - 12.0
    assert history[-1] < history[0]


def test_through_api_with_power_two(speech):
    mag = reference_magnitude(speech)
    r1 = invert(mag, method="lbfgs", n_iter=30, length=len(speech), device="cpu", init="random")
    r2 = invert(mag, method="lbfgs", n_iter=30, length=len(speech), device="cpu", power=2.0, init="random")
    assert r1.iterations == 30
    assert float(r1.metrics["sc"]) < -12.0
    assert float(r2.metrics["sc"]) < -8.0  # the paper's power spectrogram also converges


def _triangular_bank(n_bands, n_freqs):
    """A mel-like bank: triangles on a log-ish frequency axis (rows sum of overlapping bins)."""
    edges = torch.logspace(0, torch.log10(torch.tensor(float(n_freqs - 1))), n_bands + 2) - 1
    f = torch.arange(n_freqs, dtype=torch.float32)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (f - lo) / (mid - lo).clamp_min(1e-3)
    down = (hi - f) / (hi - mid).clamp_min(1e-3)
    return torch.clamp(torch.minimum(up, down), min=0.0)


def test_custom_transform_mel_like(speech, op):
    x = torch.from_numpy(speech)
    bank = _triangular_bank(64, op.n_freqs)

    def transform(sig):
        return bank @ op.forward(sig).abs()

    target = transform(x)
    x0 = op.inverse(_random_init(op.forward(x).abs()), len(x))

    def rel(sig):
        return float((transform(sig) - target).norm() / target.norm())

    seen = []
    mon = Monitor(target, n_iter=40, eval_every=20, callback=lambda p: seen.append(p.iteration))
    y = lbfgs_waveform(target, transform, x0, n_iter=40, monitor=mon)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert seen == [20, 40]
    assert rel(y) < 0.25 * rel(x0)


def test_batch_items_normalised(op):
    """A quiet and a loud item in one batch both converge (per-item loss normalisation)."""
    a = reference_magnitude(load_clip("speech_female_hts2a", seconds=1.0))
    b = reference_magnitude(load_clip("music_tabla_loop", seconds=1.0))
    batch = torch.stack([a * 1e-3, b * 10])
    y = lbfgs(batch, op, n_iter=40, init=_random_init(batch), length=22050)
    scs = sc(op.forward(y).abs(), batch)
    assert scs.shape == (2,)
    assert bool((scs < -12.0).all()), scs


@pytest.mark.parametrize("kind", EDGE_KINDS)
def test_edge_signals_are_finite(op, kind):
    n = 8192
    x = edge_signal(kind, n)
    mag = op.forward(x).abs()
    y = lbfgs(mag, op, n_iter=5, init=_random_init(mag), length=n)
    assert torch.isfinite(y).all()
    if kind == "silence":
        assert y.abs().max() == 0


def test_scale_invariance(speech, op):
    mag = reference_magnitude(speech[:22050])
    init = _random_init(mag)
    y1 = lbfgs(mag, op, n_iter=15, init=init, length=22050)
    y2 = lbfgs(mag * 1e-5, op, n_iter=15, init=init * 1e-5, length=22050)
    s1 = float(sc(op.forward(y1).abs(), mag))
    s2 = float(sc(op.forward(y2).abs(), mag * 1e-5))
    assert abs(s1 - s2) < 1.0


def test_float64(speech):
    op64 = STFT(STFTConfig(), dtype=torch.float64)
    mag = reference_magnitude(speech[:22050]).to(torch.float64)
    init = mag * random_phase(mag.shape, torch.Generator().manual_seed(0), dtype=torch.complex128)
    y = lbfgs(mag, op64, n_iter=10, init=init, length=22050)
    assert y.dtype == torch.float64
    assert float(sc(op64.forward(y).abs(), mag)) < -8.0


def test_zero_start_is_not_stuck(speech, op):
    """|STFT| has no gradient at x = 0; a zero start must still move."""
    x = torch.from_numpy(speech[:22050])
    mag = op.forward(x).abs()
    y = lbfgs_waveform(mag, lambda s: op.forward(s).abs(), torch.zeros(22050), n_iter=20)
    assert float(sc(op.forward(y).abs(), mag)) < -12.0
