"""The STFT operator against torch.stft/torch.istft, and its reconstruction property."""
import pytest
import torch

from specinv_cli.config import STFTConfig
from specinv_cli.dsp import STFT, get_window

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
