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

from ..dsp.stft import STFT, MagnitudeProjection, magnitude_projection
from .base import Monitor, Plain, prepare, wants_grad

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
    alpha : momentum; the paper uses 0.99 and requires ``0 <= alpha < 1`` for its guarantees
        (a float, or a 0-dim tensor, e.g. a learnable one).

    Autograd is supported (see :func:`~specinv_cli.algorithms.base.wants_grad`): the
    differentiable path keeps for backward, per iteration, about four complex-spectrogram-sized
    tensors (the magnitude projection's input and three real intermediates, the STFT's windowed
    frames) and one signal-sized one, plus one more signal with a tensor ``alpha``: memory grows
    linearly with ``n_iter``.

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
    monitor, length, eps, x = prepare(mag, stft, init, length, monitor)
    if wants_grad(mag, init, alpha):
        return _fgla_plain(Plain(mag, stft, length, eps), x, n_iter, monitor, alpha)
    alpha = float(alpha)
    if n_iter <= 0:
        return stft.inverse(magnitude_projection(mag, x, eps), length)
    # P_C = STFT o ISTFT is linear, so the momentum is taken on the signals s_n = ISTFT(P_A(c_{n-1})):
    # t_n = c_n + alpha (c_n - c_{n-1}) = STFT(z_n), z_n = s_n + alpha (s_n - s_{n-1}), a quarter of
    # the work of the spectrogram update. Iteration n is then one step on signals,
    # s_n = ISTFT(P_A(STFT(z_{n-1}))) (Projector.gla_step, fused on the CPU), that also writes z_n
    # over s_{n-1}. Two buffers alternate: s_n goes into the one that does not hold s_{n-1}.
    proj = stft.projector(mag.shape, length)
    p_a = MagnitudeProjection(mag, eps)
    s, other = proj.new_signal(), proj.new_signal()
    proj.synth(p_a(x), out=s)  # s_1 (the init is the caller's: projected into a new tensor)
    z = s
    i = 1
    while not monitor.step(i, lambda: proj.analyze(s).abs()) and i < n_iter:  # c_i = STFT(s_i)
        i += 1
        momentum = alpha > 0
        proj.gla_step(z, p_a, out=other, prev=s if momentum else None, alpha=alpha)
        z = s if momentum else other  # z_i, written over s_{i-1}
        s, other = other, s
    out = proj.gla_step(z, p_a, out=other)  # ISTFT(P_A(STFT(z_n)))
    return proj.signal(out).contiguous()


def _fgla_plain(ops: Plain, x: torch.Tensor, n_iter: int, monitor, alpha) -> torch.Tensor:
    """FGLA out of place, for autograd: the iteration of :func:`fgla` on signals,
    ``s_n = ISTFT(P_A(STFT(z_{n-1})))``, ``z_n = s_n + alpha (s_n - s_{n-1})``, ``z_1 = s_1``,
    and the output ``ISTFT(P_A(STFT(z_n)))``."""
    if n_iter <= 0:
        return ops.synth(ops.p_a(x))
    momentum = isinstance(alpha, torch.Tensor) or alpha > 0  # a tensor keeps its gradient at 0 too
    s = ops.synth(ops.p_a(x))
    z = s
    i = 1
    while not monitor.step(i, ops.measure(ops.analyze, s)) and i < n_iter:
        i += 1
        s_new = ops.synth(ops.p_a(ops.analyze(z)))
        z = s_new + alpha * (s_new - s) if momentum else s_new
        s = s_new
    return ops.synth(ops.p_a(ops.analyze(z)))


def gla(mag: torch.Tensor, stft: STFT, *, n_iter: int = 100, init: torch.Tensor | None = None,
        length: int | None = None, monitor: Monitor | None = None) -> torch.Tensor:
    """Griffin–Lim (1984): alternating projections, no momentum. See :func:`fgla`.

    Autograd is supported: the differentiable path keeps for backward, per iteration, about four
    complex-spectrogram-sized tensors (the magnitude projection's input and three real
    intermediates, the STFT's windowed frames) and one signal-sized one (memory linear in
    ``n_iter``)."""
    return fgla(mag, stft, n_iter=n_iter, init=init, length=length, monitor=monitor, alpha=0.0)
