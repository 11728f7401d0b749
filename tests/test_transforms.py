"""specinv_cli.transforms: GriffinLim (torchaudio's drop-in), PhaseRetrieval, MelToAudio."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from conftest import SPEECH, load_clip
from specinv_cli import functional as F
from specinv_cli.transforms import GriffinLim, MelToAudio, PhaseRetrieval


def _sc_db(y: torch.Tensor, mag: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> float:
    """Spectral convergence (dB) of ``y``'s STFT magnitude against ``mag``."""
    est = torch.stft(y, n_fft, hop, window=window, return_complex=True).abs()[..., : mag.shape[-1]]
    return 20 * math.log10(float((est - mag).norm() / mag.norm()))


@pytest.fixture(scope="module")
def clip(corpus):
    return torch.from_numpy(load_clip(SPEECH[0], 1.0, SPEECH[2]))


# --- GriffinLim -----------------------------------------------------------------------------
def test_griffinlim_defaults_are_torchaudios():
    gl = GriffinLim()
    assert (gl.n_fft, gl.n_iter, gl.win_length, gl.hop_length) == (400, 32, 400, 200)
    assert (gl.power, gl.momentum, gl.length, gl.rand_init) == (2.0, 0.99, None, True)
    torch.testing.assert_close(gl.window, torch.hann_window(400), rtol=0, atol=0)
    assert [n for n, _ in gl.named_buffers()] == ["window"]


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_griffinlim_inverts_a_clip_built_positionally_and_by_keyword(clip, power):
    """torchaudio's constructor, positionally and by keyword, with a window_fn and its wkwargs:
    a symmetric Hann (``periodic=False``, not one of the named windows) is honoured. 32
    iterations from zero phase bring the spectral convergence far below noise's (~0 dB)."""
    window_fn, wkwargs = torch.hann_window, {"periodic": False}
    pos = GriffinLim(1024, 32, 1024, 256, window_fn, power, wkwargs, 0.99, None, False)
    kw = GriffinLim(n_fft=1024, n_iter=32, win_length=1024, hop_length=256, window_fn=window_fn, power=power,
                    wkwargs=wkwargs, momentum=0.99, length=None, rand_init=False)
    w = torch.hann_window(1024, periodic=False)
    torch.testing.assert_close(pos.window, w, rtol=0, atol=0)
    mag = torch.stft(clip, 1024, 256, window=w, return_complex=True).abs()
    spec = mag ** power
    y = pos(spec)
    assert y.shape == ((mag.shape[-1] - 1) * 256,) and y.dtype == torch.float32
    assert torch.equal(y, kw(spec))
    assert _sc_db(y, mag, 1024, 256, w) < -15
    noise = torch.randn(clip.shape, generator=torch.Generator().manual_seed(0)) * clip.std()
    assert _sc_db(noise, mag, 1024, 256, w) > -3


def test_griffinlim_forward_is_the_functional(clip):
    gl = GriffinLim(n_fft=512, n_iter=8, hop_length=128, window_fn=torch.hamming_window, power=1.0,
                    momentum=0.5, length=8000, rand_init=False)
    mag = torch.stft(clip, 512, 128, window=torch.hamming_window(512), return_complex=True).abs()
    ref = F.griffinlim(mag, torch.hamming_window(512), 512, 128, 512, 1.0, 8, 0.5, 8000, False)
    assert torch.equal(gl(mag), ref) and ref.shape == (8000,)


def test_griffinlim_window_follows_to(clip):
    gl = GriffinLim(n_fft=512, n_iter=4, rand_init=False)
    gl.to(torch.float64)
    assert gl.window.dtype == torch.float64
    mag = torch.stft(clip.double(), 512, 256, window=torch.hann_window(512, dtype=torch.float64),
                     return_complex=True).abs() ** 2
    assert gl(mag).dtype == torch.float64
    assert gl(mag.float()).dtype == torch.float32  # the input's dtype, whatever the window's


def test_griffinlim_refuses_momentum_of_one():
    with pytest.raises(ValueError, match=r"`momentum` must be in \[0, 1\)"):
        GriffinLim(momentum=1.0)


# --- PhaseRetrieval -------------------------------------------------------------------------
def _mag(clip, n_fft=512, hop=128):
    return torch.stft(clip, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True).abs()


def test_phase_retrieval_is_the_functional(clip):
    mag = _mag(clip)
    pr = PhaseRetrieval("fgla", n_fft=512, hop_length=128, n_iter=6, init="zero", alpha=0.9)
    assert [n for n, _ in pr.named_buffers()] == ["window"]
    ref = F.fgla(mag, 512, 128, n_iter=6, init="zero", alpha=0.9)
    assert torch.equal(pr(mag), ref)
    # the function spelling of a name, a preset instead of parameters, n_fft inferred per input
    assert PhaseRetrieval("rtisi_la", n_fft=512, hop_length=128, n_iter=2).method == "rtisi-la"
    S = _mag(clip, 1024, 256)
    torch.testing.assert_close(PhaseRetrieval("gla", config="default", n_iter=3)(S),
                               F.gla(S, 1024, 256, n_iter=3), rtol=0, atol=0)
    torch.testing.assert_close(PhaseRetrieval("gla", hop_length=256, n_iter=3)(S),
                               F.gla(S, 1024, 256, n_iter=3), rtol=0, atol=0)


def test_phase_retrieval_under_inference_mode_and_in_sequential(clip):
    mag = _mag(clip)
    for method in ("dm", "lbfgs", "pghi"):
        model = nn.Sequential(nn.ReLU(), PhaseRetrieval(method, n_fft=512, hop_length=128, n_iter=4))
        ref = model(mag)
        with torch.inference_mode():
            y = model(mag)
        assert torch.equal(y, ref), method
        assert y.shape == ((mag.shape[-1] - 1) * 128,)


def test_phase_retrieval_buffers_and_tensor_options_follow_to(clip):
    alpha = nn.Parameter(torch.tensor(0.9))
    pr = PhaseRetrieval("fgla", n_fft=512, hop_length=128, n_iter=4, alpha=alpha)
    assert dict(pr.named_parameters()) == {"alpha": alpha}
    assert set(pr.state_dict()) == {"alpha", "window"}
    pr.to(torch.float64)
    assert pr.window.dtype == torch.float64 and pr.alpha.dtype == torch.float64
    y = pr(_mag(clip).double())
    assert y.dtype == torch.float64
    buf = PhaseRetrieval("agla", n_fft=512, n_iter=2, gamma=torch.tensor(1.1))
    assert [n for n, _ in buf.named_buffers()] == ["gamma", "window"] and not list(buf.parameters())


@pytest.mark.parametrize("kw, match", [
    (dict(method="fgla", beta=1.0), r"option `beta` does not apply to method 'fgla'"),
    (dict(method="nope"), r"unknown method 'nope'"),
    (dict(method="fgla", n_fft=512, config="default"), r"give either `config` or the STFT parameters"),
    (dict(method="fgla", config="hifigan-22k"), r"use MelToAudio"),
    (dict(method="fgla", n_fft=512, win_length=600), r"`win_length` 600 is larger than `n_fft` 512"),
    (dict(method="fgla", init="noise"), r"unknown `init` 'noise'"),
])
def test_phase_retrieval_refuses_bad_settings_at_construction(kw, match):
    with pytest.raises(ValueError, match=match):
        PhaseRetrieval(**kw)


def test_gradients_flow_through_phase_retrieval(clip):
    """To the magnitudes and to a learnable momentum; the directional derivative in ``alpha``
    matches a central difference (float64; step 1e-6)."""
    mag = _mag(clip[:4096].double(), 256, 64)
    alpha = nn.Parameter(torch.tensor(0.8, dtype=torch.float64))
    pr = PhaseRetrieval("fgla", n_fft=256, hop_length=64, n_iter=4, init="zero", alpha=alpha)
    target = torch.randn(4096, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    m = mag.clone().requires_grad_(True)
    y = pr(m)
    assert y.grad_fn is not None, "the autograd path of fgla is not in place"
    (y * target).sum().backward()
    assert m.grad is not None and float(m.grad.abs().max()) > 0 and bool(torch.isfinite(m.grad).all())
    h = 1e-6
    with torch.no_grad():
        up = (F.fgla(mag, 256, 64, n_iter=4, init="zero", alpha=0.8 + h) * target).sum()
        down = (F.fgla(mag, 256, 64, n_iter=4, init="zero", alpha=0.8 - h) * target).sum()
    fd = float(up - down) / (2 * h)
    assert abs(float(alpha.grad) - fd) < 1e-6 * max(1.0, abs(fd))


# --- MelToAudio -----------------------------------------------------------------------------
def _mel_sc_db(m2a: MelToAudio, audio: torch.Tensor, feats: torch.Tensor) -> float:
    """Spectral convergence (dB) of ``audio``'s linear mel against that of ``feats``."""
    from specinv_cli.dsp.mel import decode

    est = decode(m2a.features(audio)[..., : feats.shape[-1]], m2a.config)
    ref = decode(feats, m2a.config)
    return 20 * math.log10(float((est - ref).norm() / ref.norm()))


def test_mel_to_audio_from_the_hifigan_preset(clip):
    """HiFi-GAN features (ln mel, 80 bands to 8 kHz, its framing) of a clip invert to audio whose
    mel is close (noise of the same level sits near 0 dB)."""
    m2a = MelToAudio("hifigan-22k", n_iter=30)
    feats = m2a.features(clip)
    assert feats.shape == (80, clip.shape[-1] // 256)
    y = m2a(feats)
    assert y.shape == (feats.shape[-1] * 256,) and y.dtype == torch.float32
    assert _mel_sc_db(m2a, y, feats) < -20
    noise = torch.randn(clip.shape, generator=torch.Generator().manual_seed(0)) * clip.std()
    assert _mel_sc_db(m2a, noise, feats) > -3


def test_mel_to_audio_under_inference_mode_in_sequential_and_after_to(clip):
    m2a = MelToAudio(sample_rate=22050, n_fft=1024, hop_length=256, n_mels=64, fmax=8000.0, n_iter=6)
    feats = m2a.features(clip[:11025])
    model = nn.Sequential(nn.Identity(), m2a)
    ref = model(feats)
    with torch.inference_mode():
        y = model(feats)
    assert torch.equal(y, ref)
    assert [n for n, _ in m2a.named_buffers()] == ["fb"] and tuple(m2a.fb.shape) == (64, 513)
    m2a.to(torch.float64)
    assert m2a.fb.dtype == torch.float64 and m2a(feats.double()).dtype == torch.float64


def test_mel_to_audio_settings():
    m = MelToAudio("hifigan-22k", fmax=7000.0, method="fgla", n_iter=4, alpha=0.5)
    assert (m.config.fmax, m.config.n_mels, m.config.pad, m.method, m.options) == (7000.0, 80, 384, "fgla",
                                                                                    {"alpha": 0.5})
    with pytest.raises(ValueError, match=r"needs mel settings"):
        MelToAudio("default")
    with pytest.raises(ValueError, match=r"option `beta` does not apply to method 'fgla'"):
        MelToAudio(n_mels=40, method="fgla", beta=1.0)
