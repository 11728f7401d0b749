"""specinv_cli.functional: the per-method functions, torchaudio's griffinlim, librosa's mel_to_audio."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import SPEECH, load_clip, reference_magnitude
from specinv_cli import functional as F
from specinv_cli.algorithms import registry
from specinv_cli.dsp import stft as dsp

EPS32 = float(np.finfo(np.float32).eps)
METHODS = ["gla", "fgla", "agla", "admm", "dm", "raar", "rtisi_la", "lbfgs", "pghi", "spsi"]


@pytest.fixture(params=["fused", "torch"])
def path(request):
    """Runs a test on the numba kernels (loaded up front, so that short jobs use them too) and
    on plain torch."""
    if request.param == "fused":
        dsp.set_jit(True)
        if not dsp.jit_enabled() or not dsp.jit_ready(torch.float32):
            dsp.set_jit(None)
            pytest.skip("numba kernels unavailable here")
    else:
        dsp.set_jit(False)
    yield request.param
    dsp.set_jit(None)


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _small(dtype=torch.float32, n=4096):
    x = torch.randn(2, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(dtype)
    return x, torch.stft(x, 256, 64, window=torch.hann_window(256, dtype=dtype), return_complex=True).abs()


# --- griffinlim: torchaudio's iteration, checked against librosa's ----------------------------
@pytest.mark.parametrize("momentum", [0.99, 0.0])
def test_griffinlim_from_zero_phase_equals_librosa(corpus, path, momentum):
    """torchaudio's griffinlim and librosa's (init=None: zero phase) run the same iteration:
    from a zero phase start the two agree up to float32 rounding. Bound: each iteration is one
    STFT and one ISTFT on each side, each within ``eps log2 N`` (relative) of exact, so the two
    drift apart by at most ~``4 eps log2 N`` per iteration, times ``1 + momentum`` for the
    inertial step; 16 iterations (a moderate count: the estimate has moved far from its start,
    yet not so far that the bins where ``|c|`` nearly vanishes, whose phase amplifies any
    perturbation by ``1 / |c|``, have had time to dominate). A different iteration count (or
    momentum convention) misses by orders of magnitude."""
    import librosa

    n_iter, n_fft, hop = 16, 1024, 256
    S = reference_magnitude(load_clip(SPEECH[0], 1.5, SPEECH[2]))
    length = (S.shape[-1] - 1) * hop
    ours = F.griffinlim(S, torch.hann_window(n_fft), n_fft, hop, n_fft, 1.0, n_iter, momentum, length, False)

    def theirs(n):
        return librosa.griffinlim(S.numpy(), n_iter=n, hop_length=hop, win_length=n_fft, n_fft=n_fft,
                                  window="hann", center=True, pad_mode="reflect", momentum=momentum,
                                  init=None, length=length)

    tol = n_iter * (1 + momentum) * 4 * EPS32 * math.log2(n_fft)
    assert ours.dtype == torch.float32 and ours.shape == (length,)
    assert _rel(ours, theirs(n_iter)) < tol
    assert _rel(ours, theirs(n_iter - 1)) > 100 * tol  # the comparison can tell one iteration apart


def test_griffinlim_momentum_is_fglas_alpha(corpus):
    """torchaudio's ``momentum`` is FGLA's ``alpha`` (not ``alpha / (1 + alpha)``), and ``power``
    undoes the input's exponent."""
    S = reference_magnitude(load_clip(SPEECH[0], 0.5, SPEECH[2]))
    w = torch.hann_window(1024)
    g = F.griffinlim(S ** 2, w, 1024, 256, 1024, 2.0, 8, 0.9, None, False)
    same = F.fgla(S, 1024, 256, n_iter=8, init="zero", alpha=0.9)
    other = F.fgla(S, 1024, 256, n_iter=8, init="zero", alpha=0.9 / 1.9)
    assert _rel(g, same) < 8 * 4 * EPS32 * math.log2(1024)  # sqrt of the square: rounding only
    assert _rel(g, other) > 1e-2


def test_griffinlim_rand_init_draws_from_torch_generator():
    x, mag = _small()
    w = torch.hann_window(256)
    torch.manual_seed(3)
    a = F.griffinlim(mag, w, 256, 64, 256, 1.0, 4, 0.99, 4096, True)
    torch.manual_seed(3)
    b = F.griffinlim(mag, w, 256, 64, 256, 1.0, 4, 0.99, 4096, True)
    zero = F.griffinlim(mag, w, 256, 64, 256, 1.0, 4, 0.99, 4096, False)
    assert torch.equal(a, b)
    assert _rel(a, zero) > 1e-2


@pytest.mark.parametrize("momentum, power, match", [(1.0, 1.0, "`momentum` must be in"),
                                                    (-0.1, 1.0, "`momentum` must be in"),
                                                    (0.5, 0.0, "`power` must be > 0")])
def test_griffinlim_refuses_bad_parameters(momentum, power, match):
    _, mag = _small()
    with pytest.raises(ValueError, match=match):
        F.griffinlim(mag, torch.hann_window(256), 256, 64, 256, power, 4, momentum, None, False)


# --- the method functions -------------------------------------------------------------------
def test_fgla_equals_the_cli_fused_path(corpus, path):
    """The functional form and ``invert`` (what ``specinv invert`` runs) are one computation:
    the same kernels on the same layout, so the same bits."""
    from specinv_cli.api import invert

    S = reference_magnitude(load_clip(SPEECH[0], 1.0, SPEECH[2]))
    ours = F.fgla(S, 1024, 256, n_iter=20, init="zero", alpha=0.99)
    cli = invert(S, method="fgla", init="zero", n_iter=20, device="cpu", alpha=0.99).audio
    assert ours.shape == cli.shape and ours.dtype == cli.dtype
    assert torch.equal(ours, cli.to(ours.device))


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_function_keeps_dtype_and_device(name, dtype):
    x, mag = _small(dtype)
    y = getattr(F, name)(mag, n_iter=3, length=4096)
    assert y.dtype == dtype and y.device == mag.device and y.shape == (2, 4096)
    assert bool(torch.isfinite(y).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_griffinlim_and_mel_to_audio_keep_dtype(dtype):
    _, mag = _small(dtype)
    y = F.griffinlim(mag, torch.hann_window(256), 256, 64, 256, 1.0, 3, 0.99, None, False)
    assert y.dtype == dtype
    M = torch.rand(40, 12, dtype=dtype, generator=torch.Generator().manual_seed(0))
    assert F.mel_to_audio(M, sr=16000, n_fft=512, n_iter=3).dtype == dtype
    out = F.mel_to_audio(M.numpy(), sr=16000, n_fft=512, n_iter=3)
    assert isinstance(out, np.ndarray) and out.dtype == (np.float64 if dtype == torch.float64 else np.float32)


def test_half_precision_is_computed_in_float32_and_returned_in_its_dtype():
    _, mag = _small()
    y = F.fgla(mag.half(), n_iter=3)
    assert y.dtype == torch.float16
    ref = F.fgla(mag.half().float(), n_iter=3)
    torch.testing.assert_close(y, ref.half(), rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", METHODS)
def test_every_function_stays_on_cuda(name):
    _, mag = _small()
    y = getattr(F, name)(mag.cuda(), n_iter=3, length=4096)
    assert y.device.type == "cuda" and y.dtype == torch.float32


@pytest.mark.parametrize("name", METHODS)
def test_docstrings_name_every_option(name):
    doc = getattr(F, name).__doc__
    method = registry.get_method(name.replace("_", "-"))
    assert all(f"{o.name} :" in doc for o in method.options)
    assert ">>>" in doc and "[..., F, T]" in doc


@pytest.mark.parametrize("call, match", [
    (lambda m: F.fgla(m, n_fft=512), r"`n_fft` 512 gives 257 frequency bins but `mag` has 129"),
    (lambda m: F.fgla(m[..., :1, :]), r"`mag` has 1 frequency bin"),
    (lambda m: F.fgla(m, win_length=300), r"`win_length` 300 is larger than `n_fft` 256"),
    (lambda m: F.fgla(m, hop_length=300), r"`hop_length` 300 is larger than the window"),
    (lambda m: F.fgla(m, hop_length=0), r"`hop_length` must be an integer >= 1"),
    (lambda m: F.fgla(m, window="kaiser"), r"unknown `window` 'kaiser'"),
    (lambda m: F.fgla(m, win_length=256, window=torch.ones(100)), r"`window` has 100 samples but `win_length` is 256"),
    (lambda m: F.fgla(m, pad_mode="edge"), r"`pad_mode` must be one of"),
    (lambda m: F.fgla(m, beta=1.0), r"option `beta` does not apply to method 'fgla' \(its options: `alpha`\)"),
    (lambda m: F.fgla(m, alpha=1.5), r"`alpha` for fgla must be < 1"),
    (lambda m: F.fgla(m, alpha=torch.ones(2)), r"`alpha` for fgla must be a number or a one-element"),
    (lambda m: F.fgla(m, n_iter=-1), r"`n_iter` must be an integer >= 0"),
    (lambda m: F.fgla(m, init="noise"), r"unknown `init` 'noise'"),
    (lambda m: F.fgla(m, init=m), r"`init` must be a complex spectrogram"),
    (lambda m: F.pghi(m, init="noise"), r"unknown `init` 'noise'"),
    (lambda m: F.fgla(m + 0j), r"`mag` must be real magnitudes"),
    (lambda m: F.fgla(m[0, 0]), r"`mag` must be \[..., F, T\]"),
    (lambda m: F.fgla(m, length=0), r"`length` must be an integer >= 1"),
])
def test_parameter_errors_name_the_parameter(call, match):
    _, mag = _small()
    with pytest.raises(ValueError, match=match):
        call(mag)


def test_a_complex_init_gives_its_phase(corpus):
    """``init`` as a spectrogram: with the true STFT and no iteration the output is the signal."""
    x = torch.from_numpy(load_clip(SPEECH[0], 0.5, SPEECH[2]))
    X = torch.stft(x, 1024, 256, window=torch.hann_window(1024), return_complex=True)
    y = F.fgla(X.abs(), n_iter=0, init=X, length=x.shape[-1])
    assert _rel(y, x) < 2 * EPS32 * math.log2(1024)  # one ISTFT of an exact STFT


def test_random_init_follows_the_seed():
    _, mag = _small()
    a, b = (F.fgla(mag, n_iter=2, init="random", seed=s) for s in (1, 1))
    c = F.fgla(mag, n_iter=2, init="random", seed=2)
    assert torch.equal(a, b) and _rel(a, c) > 1e-2


def test_a_tensor_option_runs_as_its_value():
    _, mag = _small()
    alpha = torch.tensor(0.9)  # float32: its value is float(alpha), not the double 0.9
    assert torch.equal(F.fgla(mag, n_iter=4, alpha=alpha), F.fgla(mag, n_iter=4, alpha=float(alpha)))


# --- windows --------------------------------------------------------------------------------
def test_a_named_window_tensor_runs_as_its_name():
    assert F.window_name(torch.hann_window(1024), 1024, 1024) == "hann"
    assert F.window_name(torch.hamming_window(400, dtype=torch.float64), 400, 512) == "hamming"
    assert F.window_name(torch.hann_window(1024, periodic=False), 1024, 1024) is None
    _, mag = _small()
    torch.testing.assert_close(F.fgla(mag, window=torch.hann_window(256), n_iter=4),
                               F.fgla(mag, window="hann", n_iter=4), rtol=0, atol=0)


def test_a_window_tensor_is_honoured_on_every_path(corpus, path):
    """With Hann squared (a cosine-sum window too, so the fused kernels' frequency taps would
    apply if they were taken from a name), the true STFT is a fixed point of FGLA: 10 iterations
    return the signal up to rounding (one STFT and ISTFT per iteration, ``2 eps log2 N`` each),
    while treating the magnitudes as Hann's misses by tens of percent."""
    x = torch.from_numpy(load_clip("music_01_classical_guitar", 1.0, 2.0))
    w = torch.hann_window(1024) ** 2
    X = torch.stft(x, 1024, 256, window=w, return_complex=True)
    y = F.fgla(X.abs(), window=w, init=X, n_iter=10, length=x.shape[-1])
    assert _rel(y, x) < 10 * 2 * EPS32 * math.log2(1024)
    wrong = F.fgla(X.abs(), window="hann", init=X, n_iter=10, length=x.shape[-1])
    assert _rel(wrong, x) > 0.05


def test_a_window_tensor_takes_the_fast_path_with_its_own_taps():
    """A window tensor runs on the projector's fast path like a named window, with frequency taps
    from the tensor itself (Hann squared: five taps, not Hann's three), or none for a window that
    is no cosine sum (then it is applied in time)."""
    from specinv_cli.config import STFTConfig

    cfg = STFTConfig(n_fft=256, hop_length=64)
    for w, n_taps in ((torch.hann_window(256) ** 2, 3), (torch.hann_window(256), 2), (torch.rand(256) + 0.5, None)):
        op = F._make_stft(cfg, w, "cpu", torch.float32)
        proj = op.projector((1, op.n_freqs, 20), op.default_length(20))
        assert proj.fast
        if proj._jit_ok:
            assert (None if proj._taps is None else len(proj._taps)) == n_taps


def test_a_shorter_window_tensor_is_centred_in_the_frame(corpus):
    x = torch.from_numpy(load_clip(SPEECH[0], 0.5, SPEECH[2]))
    w = torch.hann_window(800, periodic=False)
    X = torch.stft(x, 1024, 200, win_length=800, window=w, return_complex=True)
    y = F.gla(X.abs(), window=w, init=X, n_iter=4, length=x.shape[-1])
    assert _rel(y, x) < 4 * 2 * EPS32 * math.log2(1024)


# --- mel_to_audio ---------------------------------------------------------------------------
def test_mel_to_audio_inverts_librosas_mel(corpus):
    """A mel from ``librosa.feature.melspectrogram`` (HTK scale, 8 kHz top, power 2, zero padded
    centred frames) inverts to audio whose own mel, computed the same way, is close: the
    parameters mean what librosa's do. Inverting with the Slaney scale instead (a different
    filterbank) lands at no better than noise."""
    import librosa

    x = load_clip("music_01_classical_guitar", 1.0, 2.0)
    kw = dict(sr=22050, n_fft=1024, hop_length=256, n_mels=64, power=2.0, center=True, pad_mode="constant",
              htk=True, fmax=8000.0)
    M = librosa.feature.melspectrogram(y=x, **kw)

    def sc(y):
        M2 = librosa.feature.melspectrogram(y=np.asarray(y, np.float32), **kw)
        return 20 * np.log10(np.linalg.norm(M2 - M) / np.linalg.norm(M))

    y = F.mel_to_audio(M, sr=22050, n_fft=1024, hop_length=256, htk=True, fmax=8000.0, n_iter=32)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == ((M.shape[-1] - 1) * 256,)
    assert sc(y) < -20
    noise = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32) * x.std()
    assert sc(noise) > -3
    wrong = F.mel_to_audio(M, sr=22050, n_fft=1024, hop_length=256, htk=False, fmax=8000.0, n_iter=32)
    assert sc(wrong) > -3
    t = F.mel_to_audio(torch.from_numpy(M), sr=22050, n_fft=1024, hop_length=256, htk=True, fmax=8000.0,
                       n_iter=32)
    assert isinstance(t, torch.Tensor) and np.array_equal(t.numpy(), y)


@pytest.mark.parametrize("kw, match", [({"norm": 1}, r"`norm` must be 'slaney' or None"),
                                       ({"htk": "yes"}, r"`htk` must be True or False"),
                                       ({"window": torch.ones(512)}, r"`window` must be a window name"),
                                       ({"method": "fgla", "beta": 1.0}, r"option `beta` does not apply")])
def test_mel_to_audio_refuses_bad_parameters(kw, match):
    M = np.ones((40, 8), np.float32)
    with pytest.raises(ValueError, match=match):
        F.mel_to_audio(M, sr=16000, n_fft=512, n_iter=2, **kw)


def test_lbfgs_runs_under_inference_mode():
    """L-BFGS needs autograd, which inference mode forbids: it steps out for the call."""
    _, mag = _small()
    ref = F.lbfgs(mag, n_iter=3)
    with torch.inference_mode():
        y = F.lbfgs(mag, n_iter=3)
        M = F.mel_to_audio(torch.rand(40, 12), sr=16000, n_fft=512, n_iter=3)
    assert torch.equal(y, ref) and M.shape == (11 * 128,)


# --- autograd -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gla", "fgla", "agla", "admm", "dm", "raar"])
def test_gradients_reach_the_magnitudes(name):
    """The directional derivative of a loss on the waveform matches a central difference
    (float64: step 1e-6, truncation ~1e-12 of the curvature, rounding ~1e-10 / 1e-6)."""
    x = torch.randn(2048, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    w = torch.hann_window(128, dtype=torch.float64)
    mag = torch.stft(x, 128, 32, window=w, return_complex=True).abs()
    d = torch.randn(mag.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    target = torch.randn(2048, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def loss(m):
        return (getattr(F, name)(m, n_iter=3, init="zero", length=2048) * target).sum()

    m = mag.clone().requires_grad_(True)
    out = loss(m)
    assert out.grad_fn is not None
    (g,) = torch.autograd.grad(out, m)
    h = 1e-6
    with torch.no_grad():
        fd = (loss(mag + h * d) - loss(mag - h * d)) / (2 * h)
    assert abs(float((g * d).sum()) - float(fd)) < 1e-6 * max(1.0, abs(float(fd)))


@pytest.mark.parametrize("name", ["pghi", "spsi"])
def test_a_non_iterative_method_is_differentiable_through_its_istft(name):
    """Its phase is held constant: the gradient of ``<ISTFT(mag * phase), t>`` is linear in
    ``t`` and equals the adjoint applied to ``t`` (checked as the gradient of the same loss
    with the phase computed once, up front)."""
    _, mag = _small(torch.float64)
    t = torch.randn(2, 4096, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    m = mag.clone().requires_grad_(True)
    (g,) = torch.autograd.grad((getattr(F, name)(m, length=4096) * t).sum(), m)
    cfg, _ = F.stft_config(129, 256, 64)
    op = dsp.STFT(cfg, dtype=torch.float64)
    phase = registry.get_method(name).load_phase()(mag, op)
    m2 = mag.clone().requires_grad_(True)
    (g2,) = torch.autograd.grad((op.inverse(m2 * phase, 4096) * t).sum(), m2)
    torch.testing.assert_close(g, g2)
    assert float(g.abs().max()) > 0


@pytest.mark.parametrize("name", ["rtisi_la", "lbfgs"])
def test_a_method_without_autograd_refuses_a_gradient_clearly(name):
    _, mag = _small()
    with pytest.raises(ValueError, match=r"does not support autograd.*detach `mag`"):
        getattr(F, name)(mag.clone().requires_grad_(True), n_iter=2)
    with torch.no_grad():
        assert getattr(F, name)(mag.clone().requires_grad_(True), n_iter=2).shape == (2, 4096)


def test_run_takes_a_config_with_explicit_padding(corpus):
    """``run`` uses a config's framing as is: HiFi-GAN's (uncentred frames, 384 samples of reflect
    padding) keeps its true STFT a fixed point, as in the window test above."""
    from specinv_cli.config import STFTConfig
    from specinv_cli.transforms import PhaseRetrieval

    cfg = STFTConfig(n_fft=1024, hop_length=256, center=False, pad=384, pad_mode="reflect")
    x = torch.from_numpy(load_clip(SPEECH[0], 0.5, SPEECH[2]))
    x = x[: x.shape[-1] // 256 * 256]
    X = dsp.STFT(cfg).forward(x)
    assert X.shape[-1] == x.shape[-1] // 256
    y = F.run("fgla", X.abs(), cfg, init=X, n_iter=5)
    assert y.shape == x.shape and _rel(y, x) < 5 * 2 * EPS32 * math.log2(1024)
    torch.testing.assert_close(PhaseRetrieval("fgla", config=cfg, n_iter=5)(X.abs(), init=X), y, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"`window` must be a 1-D tensor of the settings' win_length \(1024\)"):
        F.run("fgla", X.abs(), cfg, window=torch.ones(512))
