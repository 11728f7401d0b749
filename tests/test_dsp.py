"""The STFT operator against torch.stft/torch.istft, and its reconstruction property."""
import pytest
import torch

from specinv_cli.config import STFTConfig
from specinv_cli.dsp.stft import STFT, get_window

CASES = [
    dict(n_fft=1024, hop_length=256),
    dict(n_fft=512, hop_length=128, win_length=400),
    dict(n_fft=256, hop_length=100),  # hop does not divide n_fft: fold path
    dict(n_fft=1024, hop_length=256, center=False),
    dict(n_fft=512, hop_length=128, normalized=True),
    dict(n_fft=512, hop_length=128, window="hamming", pad_mode="constant"),
]


@pytest.mark.parametrize("kw", CASES)
def test_forward_matches_torch_stft(kw):
    cfg = STFTConfig(**kw)
    op = STFT(cfg, dtype=torch.float64)
    x = torch.randn(2, 3, 5000, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    win = get_window(cfg.window, cfg.effective_win_length, cfg.n_fft, dtype=torch.float64)
    ref = torch.stft(x.reshape(-1, 5000), cfg.n_fft, cfg.hop_length, window=win, center=cfg.center,
                     pad_mode=cfg.pad_mode, normalized=cfg.normalized, return_complex=True)
    got = op.forward(x)
    assert got.shape == (2, 3) + ref.shape[-2:]
    torch.testing.assert_close(got.reshape(ref.shape), ref, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("kw", CASES)
def test_inverse_matches_torch_istft_and_reconstructs(kw):
    cfg = STFTConfig(**kw)
    op = STFT(cfg, dtype=torch.float64)
    x = torch.randn(2, 5000, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    X = op.forward(x)
    win = get_window(cfg.window, cfg.effective_win_length, cfg.n_fft, dtype=torch.float64)
    if not cfg.center:
        # torch.istft refuses (the Hann envelope is 0 at the edges); check the interior instead
        y = op.inverse(X)
        n = cfg.n_fft
        torch.testing.assert_close(y[:, n:-n], x[:, n:y.shape[-1] - n], rtol=1e-9, atol=1e-9)
        return
    y = op.inverse(X, 5000)
    ref = torch.istft(X, cfg.n_fft, cfg.hop_length, window=win, center=cfg.center,
                      normalized=cfg.normalized, length=5000)
    torch.testing.assert_close(y, ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(y, x, rtol=1e-9, atol=1e-9)


def test_default_length_and_frames():
    op = STFT(STFTConfig())
    assert op.n_frames(22050) == 1 + 22050 // 256
    assert op.default_length(87) == 86 * 256
    X = op.forward(torch.randn(22050))
    assert X.shape == (513, 87)
    assert op.inverse(X).shape == (86 * 256,)


def test_projection_is_idempotent_on_consistent_spectrograms():
    op = STFT(STFTConfig(n_fft=512, hop_length=128), dtype=torch.float64)
    X = op.forward(torch.randn(8192, dtype=torch.float64))
    torch.testing.assert_close(op.project(X, 8192), X, rtol=1e-9, atol=1e-9)
    # and it changes an inconsistent one
    Y = X * torch.exp(1j * torch.rand(X.shape, dtype=torch.float64))
    assert (op.project(Y, 8192) - Y).abs().max() > 1e-3


def test_unknown_window_is_an_error():
    from specinv_cli.config import ConfigError

    with pytest.raises(ConfigError, match="unknown window 'kaiserx'"):
        STFTConfig(window="kaiserx")


def test_hifigan_framing_pad_without_center():
    """center=False with (n_fft - hop) / 2 reflect padding, as HiFi-GAN's mel_spectrogram()."""
    cfg = STFTConfig(n_fft=1024, hop_length=256, center=False, pad=384)
    op = STFT(cfg, dtype=torch.float64)
    x = torch.randn(2, 8192, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    xp = torch.nn.functional.pad(x.unsqueeze(1), (384, 384), mode="reflect").squeeze(1)
    ref = torch.stft(xp, 1024, 256, window=torch.hann_window(1024, dtype=torch.float64), center=False,
                     return_complex=True)
    X = op.forward(x)
    torch.testing.assert_close(X, ref, rtol=1e-10, atol=1e-9)
    assert X.shape[-1] == 8192 // 256 == op.n_frames(8192)
    assert op.default_length(X.shape[-1]) == 8192
    torch.testing.assert_close(op.inverse(X), x, rtol=1e-9, atol=1e-9)


# --- the fast path: Projector (synth / analyze / project) and MagnitudeProjection -------------
FAST_CASES = CASES + [
    dict(n_fft=512, hop_length=128, pad_mode="replicate"),
    dict(n_fft=512, hop_length=128, pad_mode="circular"),
    dict(n_fft=1024, hop_length=256, center=False, pad=384),
    # the numba path applies cosine-sum windows as taps along frequency (1 tap: Hann, Hamming;
    # 2: Blackman; 0: rectangular) and the others in time
    dict(n_fft=512, hop_length=128, window="blackman"),
    dict(n_fft=256, hop_length=64, window="rectangular", pad_mode="constant"),
    dict(n_fft=512, hop_length=128, window="gaussian"),
    dict(n_fft=512, hop_length=128, window="bartlett", normalized=True),
]


@pytest.mark.parametrize("kw", FAST_CASES)
@pytest.mark.parametrize("length", [5000, 5120, 4999])
def test_projector_equals_forward_of_inverse(kw, length, kernels):
    from specinv_cli.dsp.stft import fit_frames

    op = STFT(STFTConfig(**kw), dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    for dt in (0, 1):  # a frame count that matches the length (fast path), and one that does not
        T = op.n_frames(length) + dt
        spec = torch.randn(2, 3, op.n_freqs, T, dtype=torch.complex128, generator=g)
        ref = fit_frames(op.forward(op.inverse(spec, length)), T)
        proj = op.projector(spec.shape, length)
        if dt == 0 and op.n_fft % op.hop == 0:
            assert proj.fast
        torch.testing.assert_close(proj.project(spec), ref, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(op.project(spec, length), ref, rtol=1e-9, atol=1e-9)
        # the halves: synth's waveform is the ISTFT, analyze(synth) the projection
        sig = proj.synth(spec)
        torch.testing.assert_close(proj.signal(sig), op.inverse(spec, length), rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(proj.analyze(sig), ref, rtol=1e-9, atol=1e-9)


def test_overlap_add_fast_path_matches_torch_istft():
    op = STFT(STFTConfig(n_fft=1024, hop_length=256), dtype=torch.float64)
    X = torch.randn(2, 513, 40, dtype=torch.complex128, generator=torch.Generator().manual_seed(6))
    proj = op.projector(X.shape, 9984)
    assert proj.fast
    ref = torch.istft(X, 1024, 256, window=torch.hann_window(1024, dtype=torch.float64), length=9984)
    torch.testing.assert_close(proj.signal(proj.synth(X)), ref, rtol=1e-9, atol=1e-9)


def test_projector_results_do_not_alias_its_buffers(kernels):
    """Outputs are new tensors (or the caller's out): a later call never overwrites an earlier result."""
    op = STFT(STFTConfig(n_fft=512, hop_length=128))
    g = torch.Generator().manual_seed(7)
    a = torch.randn(257, 30, dtype=torch.complex64, generator=g)
    b = torch.randn(257, 30, dtype=torch.complex64, generator=g)
    pa = op.project(a)
    keep = pa.clone()
    pb = op.project(b)
    assert pa.data_ptr() != pb.data_ptr()
    torch.testing.assert_close(pa, keep, rtol=0, atol=0)
    proj = op.projector(a.shape)
    s1 = proj.synth(a)
    s1_keep = s1.clone()
    proj.synth(b)
    proj.project(b)
    torch.testing.assert_close(s1, s1_keep, rtol=0, atol=0)
    # out= writes where the caller says, and nowhere else
    buf = proj.new_signal()
    assert proj.synth(b, out=buf) is buf
    torch.testing.assert_close(s1, s1_keep, rtol=0, atol=0)
    a_keep = a.clone()
    proj.project(a)
    torch.testing.assert_close(a, a_keep, rtol=0, atol=0)  # inputs are never written


def test_magnitude_projection_buffered_matches_reference(kernels):
    from specinv_cli.dsp.stft import MagnitudeProjection, magnitude_projection

    g = torch.Generator().manual_seed(8)
    mag = torch.rand(2, 65, 20, generator=g)
    op = STFT(STFTConfig(n_fft=128, hop_length=32))
    proj = op.projector(mag.shape)
    x = proj.analyze(proj.synth(torch.randn(2, 65, 20, dtype=torch.complex64, generator=g)))
    x[0, 3, 4] = 0  # a zero bin stays finite
    eps = torch.finfo(torch.float32).tiny ** 0.5
    ref = magnitude_projection(mag, x, eps)
    P = MagnitudeProjection(mag, eps)
    new = P(x)
    assert new.data_ptr() != x.data_ptr()
    torch.testing.assert_close(new, ref, rtol=1e-5, atol=1e-6)
    assert P(x, out=x) is x  # in place
    torch.testing.assert_close(x, ref, rtol=1e-5, atol=1e-6)
    # another layout (the caller's [F, T] tensor) falls back, and is not written
    y = torch.randn(2, 65, 20, dtype=torch.complex64, generator=g)
    y_keep = y.clone()
    torch.testing.assert_close(P(y), magnitude_projection(mag, y, eps), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(y, y_keep, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fgla_signal_momentum_equals_spectral_momentum(dtype, kernels):
    """FGLA's momentum taken on the signals gives the spectral-domain sequence of the paper."""
    from specinv_cli.algorithms.gla import fgla
    from specinv_cli.dsp.stft import magnitude_projection

    op = STFT(STFTConfig(n_fft=256, hop_length=64), dtype=dtype)
    x = torch.randn(2, 4096, dtype=dtype, generator=torch.Generator().manual_seed(9))
    mag = op.forward(x).abs()
    init = mag * torch.exp(1j * torch.rand(mag.shape, dtype=dtype, generator=torch.Generator().manual_seed(10)))
    init_keep = init.clone()
    eps = torch.finfo(dtype).tiny ** 0.5
    c_prev, z = None, init
    for _ in range(8):
        c = op.project(magnitude_projection(mag, z, eps), 4096)
        z = c if c_prev is None else c + 0.99 * (c - c_prev)
        c_prev = c
    ref = op.inverse(magnitude_projection(mag, z, eps), 4096)
    got = fgla(mag, op, n_iter=8, init=init, length=4096, alpha=0.99)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(got, ref, rtol=tol, atol=tol * ref.abs().max().item())
    torch.testing.assert_close(init, init_keep, rtol=0, atol=0)  # the caller's init is not written


def test_projector_cache_is_not_a_reference_cycle():
    """An STFT and its cached projectors are freed by reference counting: a cycle kept each
    block's buffers of a long input alive until the garbage collector ran (RSS grew by GBs)."""
    import gc
    import weakref

    from specinv_cli.config import STFTConfig
    from specinv_cli.dsp.stft import STFT

    gc.disable()
    try:
        op = STFT(STFTConfig(n_fft=256, hop_length=64))
        proj = op.projector((129, 40))
        proj.project(torch.zeros(129, 40, dtype=torch.complex64))
        ref = weakref.ref(proj)
        del proj, op
        assert ref() is None
    finally:
        gc.enable()
