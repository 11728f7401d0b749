"""Griffin–Lim and fast Griffin–Lim.

- GLA: D. Griffin and J. Lim, "Signal estimation from modified short-time Fourier transform",
  IEEE Trans. ASSP 32(2), 1984. Alternating projections between spectrograms with the target
  magnitude (``P_A``) and consistent spectrograms (``P_C = STFT o ISTFT``); the spectral
  distance of the estimate never increases.
- FGLA: N. Perraudin, P. Balazs, P. L. Søndergaard, "A fast Griffin-Lim algorithm", WASPAA 2013.
  Adds an inertial step: ``c_n = P_C(P_A(t_{n-1}))``, ``t_n = c_n + alpha (c_n - c_{n-1})``.

Shapes: ``mag [..., F, T]`` -> waveform ``[..., length]``; any leading batch dimensions.
"""
from __future__ import annotations

import torch

from ..dsp import STFT, MagnitudeProjection, magnitude_projection
from .base import Monitor

__all__ = ["gla", "fgla"]


def fgla(mag: torch.Tensor, stft: STFT, *, n_iter: int = 100, init: torch.Tensor | None = None,
         length: int | None = None, monitor: Monitor | None = None, alpha: float = 0.99) -> torch.Tensor:
    """Fast Griffin–Lim (Perraudin et al. 2013); ``alpha = 0`` is plain GLA.

    Parameters
    ----------
    mag : target magnitudes ``[..., F, T]``.
    stft : the STFT operator (settings, device, dtype).
    n_iter : iterations; each costs one ISTFT and one STFT.
    init : complex initial estimate ``[..., F, T]`` (default: ``mag`` with zero phase).
    length : output samples (default ``stft.default_length(T)``).
    monitor : receives the consistent estimate's magnitude each iteration; may stop early.
    alpha : momentum; the paper uses 0.99 and requires ``0 <= alpha < 1`` for its guarantees.

    Example
    -------
    >>> import torch
    >>> from specinv_cli.config import STFTConfig
    >>> op = STFT(STFTConfig(n_fft=256, hop_length=64))
    >>> x = torch.randn(1, 4096)
    >>> y = fgla(op.forward(x).abs(), op, n_iter=5, length=4096)
    >>> y.shape
    torch.Size([1, 4096])
    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    monitor = monitor or Monitor()
    n_frames = mag.shape[-1]
    if length is None:
        length = stft.default_length(n_frames)
    eps = torch.finfo(mag.dtype).tiny ** 0.5
    x = mag.to(stft.window.dtype.to_complex()) if init is None else init
    # P_C = STFT o ISTFT is linear, so the momentum is taken on the signals s_n = ISTFT(P_A(x_{n-1})):
    # x_n = c_n + alpha (c_n - c_{n-1}) = STFT(s_n + alpha (s_n - s_{n-1})), a quarter of the
    # work of the spectrogram update. Two signal buffers alternate (s_{n-1} becomes the momentum
    # point, then receives s_{n+1}); x_n is a new tensor from the FFT, projected in place.
    proj = stft.projector(mag.shape, length)
    p_a = MagnitudeProjection(mag, eps)
    s_new, s_prev = proj.new_signal(), proj.new_signal()
    owned = False  # x is the caller's init until the first analysis
    for i in range(1, n_iter + 1):
        s_new = proj.synth(p_a(x, out=x if owned else None), out=s_new)
        if alpha > 0 and i > 1:
            x = proj.analyze(s_prev.lerp_(s_new, 1 + alpha))  # s_new + alpha (s_new - s_prev)
        else:
            x = proj.analyze(s_new)
        owned = True
        s_prev, s_new = s_new, s_prev
        if monitor.step(i, lambda: proj.analyze(s_prev).abs()):  # c_i = STFT(s_i)
            break
    return stft.inverse(magnitude_projection(mag, x, eps), length)


def gla(mag: torch.Tensor, stft: STFT, *, n_iter: int = 100, init: torch.Tensor | None = None,
        length: int | None = None, monitor: Monitor | None = None) -> torch.Tensor:
    """Griffin–Lim (1984): alternating projections, no momentum. See :func:`fgla`."""
    return fgla(mag, stft, n_iter=n_iter, init=init, length=length, monitor=monitor, alpha=0.0)
