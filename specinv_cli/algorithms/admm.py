"""Griffin–Lim-like phase recovery by ADMM.

Y. Masuyama, K. Yatabe, Y. Oikawa, "Griffin-Lim like phase recovery via alternating direction
method of multipliers", IEEE Signal Processing Letters 26(1), 2019 (Algorithm 2).

ADMM on ``min ι_A(x) + ι_C(z)`` s.t. ``x = z`` with a relaxed consistency step
(``P_A``: impose the target magnitude, ``P_C = STFT o ISTFT``)::

    x_n = P_A(z_{n-1} - u_{n-1})
    z_n = (rho (x_n + u_{n-1}) + P_C(x_n + u_{n-1})) / (1 + rho)
    u_n = u_{n-1} + x_n - z_n

``u_0 = 0``. ``rho = 0`` is the paper's Algorithm 1 (``z = P_C(x + u)``); ``rho = 1`` gives
exactly the GLA sequence ``x_{n+1} = P_A(P_C(x_n))`` (``u`` stays in the kernel of ``P_C``).
One ISTFT+STFT per iteration, like GLA. The output is ``ISTFT(x_n)``.

Shapes: ``mag [..., F, T]`` -> waveform ``[..., length]``; any leading batch dimensions.
"""
from __future__ import annotations

import torch

from ..dsp.stft import STFT, MagnitudeProjection
from .base import Monitor, Plain, lerp_into, prepare, real_view, sub_into, wants_grad

__all__ = ["admm"]


def admm(mag: torch.Tensor, stft: STFT, *, n_iter: int = 100, init: torch.Tensor | None = None,
         length: int | None = None, monitor: Monitor | None = None, rho: float = 0.1) -> torch.Tensor:
    """ADMM phase recovery (Masuyama et al. 2019).

    Parameters
    ----------
    mag : target magnitudes ``[..., F, T]``.
    stft : the STFT operator (settings, device, dtype).
    n_iter : iterations; each costs one ISTFT and one STFT.
    init : complex initial estimate ``[..., F, T]`` (default: ``mag`` with zero phase).
    length : output samples (default ``stft.default_length(T)``).
    monitor : receives the magnitude of ``STFT(ISTFT(x_n))`` (computed only when an
        evaluation is due); may stop early.
    rho : penalty ``>= 0``; 0 is Algorithm 1, 1 reproduces GLA, the paper favours small values
        (a float or a 0-dim tensor).

    Autograd is supported (see :func:`~specinv_cli.algorithms.base.wants_grad`): the
    differentiable path keeps for backward, per iteration, about four complex-spectrogram-sized
    tensors (the magnitude projection's input and three real intermediates, the STFT's windowed
    frames) and one signal-sized one, plus two complex spectrograms for a tensor ``rho``: memory
    grows linearly with ``n_iter``.

    Example
    -------
    >>> import torch
    >>> from specinv_cli.config import STFTConfig
    >>> op = STFT(STFTConfig(n_fft=256, hop_length=64))
    >>> x = torch.randn(1, 4096)
    >>> y = admm(op.forward(x).abs(), op, n_iter=5, length=4096)
    >>> y.shape
    torch.Size([1, 4096])
    """
    if rho < 0:
        raise ValueError(f"rho must be >= 0, got {rho}")
    monitor, length, eps, z = prepare(mag, stft, init, length, monitor)
    if wants_grad(mag, init, rho):
        return _admm_plain(Plain(mag, stft, length, eps), z, n_iter, monitor, rho)
    rho = float(rho)
    proj = stft.projector(mag.shape, length)
    p_a = MagnitudeProjection(mag, eps)
    if proj.fused(p_a, z):
        return _admm_fused(proj, p_a, z, n_iter, monitor, rho, length)
    u = proj.new_spec().zero_()
    x = p_a(z)  # a new tensor: the caller's init is never written
    w = rho / (1 + rho)
    for i in range(1, n_iter + 1):
        x = p_a(sub_into(z, u, x), out=x)  # x_n = P_A(z - u), in x_{n-1}'s buffer
        y = u
        real_view(y).add_(real_view(x))  # y = x + u; u is rebuilt from y below
        z = proj.project(y)  # a new tensor
        lerp_into(z, y, w, z)  # z = (P_C(y) + rho y) / (1 + rho)
        u = sub_into(y, z, y)  # u_n = u_{n-1} + x_n - z_n = y - z
        if monitor.step(i, lambda: proj.project(x).abs()):
            break
    return stft.inverse(x, length)


def _admm_plain(ops: Plain, z: torch.Tensor, n_iter: int, monitor, rho) -> torch.Tensor:
    """The same iteration out of place, for autograd, in the order of :func:`_admm_fused`:
    ``x_1 = P_A(z_0)`` (``u_0 = 0``), ``y = x + u``; the last ``z``, ``u``, which the output does
    not use, are not formed."""
    w = rho / (1 + rho)
    x = ops.p_a(z)
    y = x
    for i in range(1, n_iter + 1):
        if monitor.step(i, ops.measure(ops.project, x)) or i == n_iter:
            break
        z = (1 - w) * ops.project(y) + w * y  # (P_C(y) + rho y) / (1 + rho)
        u = y - z  # u_i = u_{i-1} + x_i - z_i
        x = ops.p_a(z - u)  # x_{i+1}
        y = x + u
    return ops.synth(x)


def _admm_fused(proj, p_a, z, n_iter, monitor, rho, length) -> torch.Tensor:
    """The same iteration on the CPU's numba path: ``y = x + u`` is kept in ``u``'s buffer and
    one kernel after the FFT of ``ISTFT(y)`` gives ``z``, ``u``, the next ``x`` and the next ``y``
    (:meth:`~specinv_cli.dsp.stft.Projector.admm_step`). The projection of the last ``y``, which the
    output does not use, is skipped."""
    x = p_a(z, out=proj.new_spec())  # x_1 = P_A(z_0 - u_0), u_0 = 0
    y = proj.new_spec().copy_(x)  # y_1 = x_1 + u_0
    s = proj.new_signal()
    w = rho / (1 + rho)
    for i in range(1, n_iter + 1):
        if monitor.step(i, lambda: proj.project(x).abs()) or i == n_iter:
            break
        proj.synth(y, out=s)
        proj.admm_step(s, p_a, y, x, w)  # x_{i+1}, y_{i+1}
    return proj.stft.inverse(x, length)
