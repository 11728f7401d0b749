"""The closed-form loss and gradient of L-BFGS (no autograd in the hot loop) against autograd, and
the hand-written L-BFGS against torch.optim.LBFGS."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import load_clip
from specinv_cli.algorithms.base import random_phase
from specinv_cli.algorithms.lbfgs import lbfgs, minimize_lbfgs, spectral_loss
from specinv_cli.config import STFTConfig, load_preset
from specinv_cli.dsp.mel import MelTransform
from specinv_cli.dsp.metrics import sc
from specinv_cli.dsp.stft import STFT, fit_frames

FRAMINGS = {
    "centred-reflect": dict(n_fft=64, hop_length=16),
    "centred-constant": dict(n_fft=64, hop_length=16, pad_mode="constant"),
    "hifigan-pad": dict(n_fft=64, hop_length=16, center=False, pad=24),
    "uncentred": dict(n_fft=64, hop_length=16, center=False),
    "normalized-odd": dict(n_fft=63, hop_length=15, normalized=True),
}


def _autograd_loss(x, stft, target, weight, n_frames, power, fb):
    m = fit_frames(stft.forward(x), n_frames).abs()
    a = m if power == 1 else (m.pow(power) if power > 1 else (m.square() + torch.finfo(m.dtype).tiny).pow(power / 2))
    est = torch.matmul(fb, a) if fb is not None else a
    return ((est - target).square().sum(dim=(-2, -1)) * weight).sum()


def _assert_is_autograds(loss, grad, x, stft, target, weight, n_frames, power, fb):
    """The closed-form ``(loss, grad)`` at ``x`` equal autograd's, to float64 rounding of one FFT
    pair and two small matrix products (the window's taps add a few terms per bin), relative to
    the gradient's scale."""
    xr = x.clone().requires_grad_(True)
    ref = _autograd_loss(xr, stft, target, weight, n_frames, power, fb)
    ref.backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-12, atol=0)
    err = float((grad - xr.grad).abs().max() / xr.grad.abs().max())
    assert err < 1e-11, err


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
@pytest.mark.parametrize("mel", [False, True])
def test_the_closed_form_gradient_is_autograds(framing, power, mel):
    torch.manual_seed(0)
    cfg = STFTConfig(**FRAMINGS[framing], n_mels=12 if mel else None, sample_rate=8000)
    stft = STFT(cfg, dtype=torch.float64)
    x = torch.randn(2, 400, dtype=torch.float64)
    n_frames = stft.n_frames(400) - 1  # a target one frame short: fit_frames crops
    fb = MelTransform(cfg, dtype=torch.float64).fb if mel else None
    bins = 12 if mel else stft.n_freqs
    target = torch.rand(2, bins, n_frames, dtype=torch.float64)
    weight = torch.tensor([1.0, 0.3], dtype=torch.float64)
    loss, grad = spectral_loss(x, stft, target, weight, n_frames=n_frames, power=power, fb=fb)
    _assert_is_autograds(loss, grad, x, stft, target, weight, n_frames, power, fb)
    # and a target with more frames than the signal gives: the missing frames are zero
    long_target = torch.rand(2, bins, stft.n_frames(400) + 2, dtype=torch.float64)
    n_long = long_target.shape[-1]
    loss, grad = spectral_loss(x, stft, long_target, weight, n_frames=n_long, power=power, fb=fb)
    _assert_is_autograds(loss, grad, x, stft, long_target, weight, n_long, power, fb)


def test_minimize_lbfgs_solves_a_quadratic_exactly():
    """On a strictly convex quadratic in n = 8 unknowns, L-BFGS with a full history reaches the
    minimiser within a few n iterations (a property of quasi-Newton methods), to what a line search
    on float64 values can resolve: f - f* = e'He/2 is lost below eps |f|, so |e| ~ sqrt(eps |f| /
    lambda_min) ~ 1e-8 here."""
    torch.manual_seed(1)
    a = torch.randn(8, 8, dtype=torch.float64)
    h = a @ a.T + 0.5 * torch.eye(8, dtype=torch.float64)
    b = torch.randn(8, dtype=torch.float64)

    def fun(z):
        return 0.5 * z @ h @ z - b @ z, h @ z - b

    z = minimize_lbfgs(fun, torch.zeros(8, dtype=torch.float64), n_iter=40, history_size=8)
    torch.testing.assert_close(z, torch.linalg.solve(h, b), rtol=0, atol=1e-7)
    z3 = minimize_lbfgs(fun, torch.zeros(8, dtype=torch.float64), n_iter=3, history_size=8)
    assert float((z3 - torch.linalg.solve(h, b)).norm()) > 1e-6  # and not in 3 steps: it iterates


@pytest.fixture(scope="module")
def speech(corpus):
    return torch.from_numpy(load_clip(corpus[6], 2.0)).float()


@pytest.mark.parametrize("mel", [False, True])
def test_analytic_lbfgs_matches_the_autograd_reference(speech, mel):
    """Same starts, same iterations: the closed-form path is at least as good as the autograd
    reference, within 1 dB (not the same iterates: torch.optim.LBFGS run one iteration per step
    keeps less of its line search's state; on this clip's mel it ends several dB worse)."""
    cfg = load_preset("hifigan-22k") if mel else STFTConfig()
    stft = STFT(cfg)
    c = stft.forward(speech[None])
    mag = c.abs()
    gen = torch.Generator().manual_seed(0)
    init = mag * random_phase(mag.shape, gen)
    kw = dict(n_iter=40, init=init, length=speech.shape[-1])
    if mel:
        op = MelTransform(cfg)
        kw.update(domain=op, domain_target=op(mag))
    got = {g: lbfgs(mag, stft, gradient=g, **kw) for g in ("analytic", "autograd")}
    score = {}
    for g, y in got.items():
        est = fit_frames(stft.forward(y).abs(), mag.shape[-1])
        score[g] = float(sc(op(est), op(mag)) if mel else sc(est, mag))
    start = fit_frames(stft.forward(stft.inverse(init, speech.shape[-1])).abs(), mag.shape[-1])
    start_sc = float(sc(op(start), op(mag)) if mel else sc(start, mag))
    assert score["analytic"] < start_sc - 10  # it really optimises
    assert score["analytic"] < score["autograd"] + 1.0, score


def test_other_padding_and_user_domains_use_autograd(speech, monkeypatch):
    """Replicate padding has no hand-written adjoint and a user transform no closed form: both
    fall back to the autograd reference (whose result is then what runs)."""
    import specinv_cli.algorithms.lbfgs as L

    calls = []
    monkeypatch.setattr(L, "spectral_loss", lambda *a, **k: calls.append(1) or (_ for _ in ()).throw(AssertionError))
    cfg = STFTConfig(pad_mode="replicate")
    stft = STFT(cfg)
    mag = stft.forward(speech[None]).abs()
    y = lbfgs(mag, stft, n_iter=3, length=speech.shape[-1])
    assert calls == [] and bool(torch.isfinite(y).all())
    stft = STFT(STFTConfig())
    mag = stft.forward(speech[None]).abs()
    y = lbfgs(mag, stft, n_iter=3, length=speech.shape[-1], domain=lambda s: s.sqrt(), domain_target=mag.sqrt())
    assert calls == [] and bool(torch.isfinite(y).all())
    np.testing.assert_array_equal(y.shape, (1, speech.shape[-1]))


FUSED_FRAMINGS = {  # the fast path's framings (hop divides n_fft), cosine-sum windows
    "centred-reflect": dict(n_fft=64, hop_length=16),
    "centred-constant": dict(n_fft=64, hop_length=16, pad_mode="constant"),
    "hifigan-pad": dict(n_fft=64, hop_length=16, center=False, pad=24),
    "uncentred": dict(n_fft=64, hop_length=16, center=False),
    "blackman-normalized": dict(n_fft=64, hop_length=8, window="blackman", normalized=True),
}


@pytest.mark.parametrize("framing", FUSED_FRAMINGS)
@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
@pytest.mark.parametrize("mel", [False, True])
def test_the_fused_loss_is_its_torch_twin(framing, power, mel, kernels, monkeypatch):
    """The numba kernels of the closed-form loss (the window as taps along frequency on both
    sides, the linear p = 1 residual and gradient in one kernel) against autograd in float64, on
    both CPU paths; the jit run must really take the fused path and the torch run must not."""
    import specinv_cli.algorithms.lbfgs as L

    taken = []
    fused = L._spectral_loss_fused
    monkeypatch.setattr(L, "_spectral_loss_fused", lambda *a: taken.append(1) or fused(*a))
    torch.manual_seed(2)
    cfg = STFTConfig(**FUSED_FRAMINGS[framing], n_mels=12 if mel else None, sample_rate=8000)
    stft = STFT(cfg, dtype=torch.float64)
    x = torch.randn(2, 400, dtype=torch.float64)
    n_frames = stft.n_frames(400)
    fb = MelTransform(cfg, dtype=torch.float64).fb if mel else None
    target = torch.rand(2, 12 if mel else stft.n_freqs, n_frames, dtype=torch.float64)
    weight = torch.tensor([1.0, 0.3], dtype=torch.float64)
    with torch.no_grad():
        loss, grad = spectral_loss(x, stft, L._frame_major(target), weight, n_frames=n_frames, power=power, fb=fb)
    assert taken == ([1] if kernels == "jit" else [])
    _assert_is_autograds(loss, grad, x, stft, target, weight, n_frames, power, fb)


def _plain_lbfgs(fun, z0, n_iter, history_size):
    """The reference: the textbook two-loop recursion over lists of vectors (Nocedal & Wright,
    Algorithm 7.4), with the same line search, first step and curvature test as minimize_lbfgs."""
    import specinv_cli.algorithms.lbfgs as L

    z = z0.clone()
    f, g = fun(z)
    S, Y, path = [], [], []
    for i in range(1, n_iter + 1):
        q = g.clone()
        alphas = []
        for s_, y_ in zip(reversed(S), reversed(Y)):
            alphas.append(float(s_ @ q) / float(s_ @ y_))
            q -= alphas[-1] * y_
        if S:
            q *= float(S[-1] @ Y[-1]) / float(Y[-1] @ Y[-1])
        for s_, y_, a in zip(S, Y, reversed(alphas)):
            q += (a - float(y_ @ q) / float(s_ @ y_)) * s_
        d = -q
        t = min(1.0, 1.0 / float(g.abs().sum())) if i == 1 else 1.0
        f_new, g_new, t, _, z_new = L._strong_wolfe(fun, z, t, d, float(f), g, float(g @ d))
        s_, y_ = t * d, g_new - g
        if float(s_ @ y_) > 1e-10 * float(s_.norm() * y_.norm()):
            S, Y = (S + [s_])[-history_size:], (Y + [y_])[-history_size:]
        z, f, g = z_new, f_new, g_new
        path.append(z)
    return path


def test_vector_free_lbfgs_is_the_two_loop_recursion():
    """minimize_lbfgs keeps its history as one matrix and runs the recursion on its Gram matrix;
    on a non-quadratic problem (a spectrogram's closed-form loss, float64) every iterate equals the
    textbook recursion's, through more iterations than the history holds (slots reused)."""
    torch.manual_seed(3)
    stft = STFT(STFTConfig(n_fft=64, hop_length=16), dtype=torch.float64)
    x = torch.randn(600, dtype=torch.float64)
    target = stft.forward(torch.randn(600, dtype=torch.float64)).abs()
    weight = torch.ones((), dtype=torch.float64) / target.square().sum()

    def fun(z):
        return spectral_loss(z, stft, target, weight, n_frames=target.shape[-1])

    ref = _plain_lbfgs(fun, x, 12, 3)
    got = []
    minimize_lbfgs(fun, x, n_iter=12, history_size=3, step=lambda i, z: got.append(z.clone()) and False)
    assert len(got) == len(ref) == 12
    for i, (a, b) in enumerate(zip(got, ref)):  # float64 rounding, growing along the path (1e-14 seen)
        err = float((a - b).norm() / (ref[i] - (ref[i - 1] if i else x)).norm())
        assert err < 1e-10, (i, err)
    assert float((got[-1] - x).norm()) > 1e-3 * float(x.norm())  # and it moved


def test_banded_filterbank_kernels_are_the_dense_product(kernels):
    """The mel filterbank and its transpose over each band's nonzero bins (numba) against the
    dense matrix products (their torch twin) in float64, with an empty band and a full one."""
    if kernels != "jit":
        pytest.skip("the banded kernels are the numba path; the torch path is the dense product")
    from specinv_cli.config import STFTConfig

    torch.manual_seed(4)
    cfg = STFTConfig(n_fft=64, hop_length=16, n_mels=10, sample_rate=8000)
    stft = STFT(cfg, dtype=torch.float64)
    fb = MelTransform(cfg, dtype=torch.float64).fb.clone()
    fb[3] = 0  # an empty band
    fb[7] = torch.rand(fb.shape[1], dtype=torch.float64)  # a band over every bin
    proj = stft.projector((2, stft.n_freqs, 20), stft.default_length(20))
    a = torch.rand(2, 20, stft.n_freqs, dtype=torch.float64)
    v = torch.randn(2, 20, fb.shape[0], dtype=torch.float64)
    torch.testing.assert_close(proj.filterbank(a, fb), a @ fb.T, rtol=1e-13, atol=0)
    torch.testing.assert_close(proj.filterbank(v, fb, adjoint=True), v @ fb, rtol=1e-13, atol=1e-15)
