"""Accelerated Griffin–Lim (AGLA).

R. Nenov, D.-K. Nguyen, P. Balazs, "Faster than fast: accelerating the Griffin-Lim algorithm",
ICASSP 2023 (long version: "Accelerated Griffin-Lim algorithm: a fast and provably converging
numerical method for phase retrieval", arXiv 2306.12504, with R. I. Boţ).

Two inertial sequences on top of the GLA map ``P_C o P_A``::

    t_n = (1 - gamma) d_{n-1} + gamma P_C(P_A(c_{n-1}))
    c_n = t_n + alpha (t_n - t_{n-1})
    d_n = t_n + beta  (t_n - t_{n-1})

``gamma = 1`` is FGLA with momentum ``alpha`` (``beta`` is then unused). Linearising around a
fixed point, the directions where ``P_C o P_A`` acts as the identity grow like
``((1 - gamma) beta + gamma alpha)^n``, so that quantity must stay below 1: alpha 0.99, beta 1.1,
gamma 0.2 gives 1.078 and stalls. The paper's sufficient conditions for its convergence proof
are much stricter (e.g. ``alpha < 0.1`` for ``beta = 1.1, gamma = 0.2``) and converge slowly.
With over-relaxation ``gamma > 1`` a large ``alpha`` is stable: the default ``alpha=0.99,
beta=1.1, gamma=1.25`` (factor 0.9625) beats FGLA at equal iterations on the corpus (figures:
``benchmarks/results/methods_100.md``, from ``benchmarks/methods.py``).

One ISTFT+STFT per iteration. The output is ``ISTFT(P_A(c_n))``.

Shapes: ``mag [..., F, T]`` -> waveform ``[..., length]``; any leading batch dimensions.
"""
from __future__ import annotations

import torch

from ..dsp.stft import STFT, MagnitudeProjection, magnitude_projection
from .base import Monitor, Plain, axpy_into, lerp_into, prepare, sub_into, wants_grad

__all__ = ["agla"]


def agla(mag: torch.Tensor, stft: STFT, *, n_iter: int = 100, init: torch.Tensor | None = None,
         length: int | None = None, monitor: Monitor | None = None, alpha: float = 0.99,
         beta: float = 1.1, gamma: float = 1.25) -> torch.Tensor:
    """Accelerated Griffin–Lim (Nenov, Nguyen & Balazs 2023).

    Parameters
    ----------
    mag : target magnitudes ``[..., F, T]``.
    stft : the STFT operator (settings, device, dtype).
    n_iter : iterations; each costs one ISTFT and one STFT.
    init : complex initial estimate ``[..., F, T]`` (default: ``mag`` with zero phase).
    length : output samples (default ``stft.default_length(T)``).
    monitor : receives the magnitude of the consistent estimate ``P_C(P_A(c_{n-1}))``.
    alpha, beta, gamma : inertial parameters (see the module docstring for stability); floats
        or 0-dim tensors.

    Autograd is supported (see :func:`~specinv_cli.algorithms.base.wants_grad`): the
    differentiable path keeps for backward, per iteration, about four complex-spectrogram-sized
    tensors (the magnitude projection's input and three real intermediates, the STFT's windowed
    frames) and one signal-sized one, plus one complex spectrogram for a tensor ``alpha`` or
    ``beta`` and two for a tensor ``gamma``: memory grows linearly with ``n_iter``.

    Example
    -------
    >>> import torch
    >>> from specinv_cli.config import STFTConfig
    >>> op = STFT(STFTConfig(n_fft=256, hop_length=64))
    >>> x = torch.randn(1, 4096)
    >>> y = agla(op.forward(x).abs(), op, n_iter=5, length=4096)
    >>> y.shape
    torch.Size([1, 4096])
    """
    for name, v in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if v < 0:
            raise ValueError(f"{name} must be >= 0, got {v}")
    monitor, length, eps, c = prepare(mag, stft, init, length, monitor)
    if wants_grad(mag, init, alpha, beta, gamma):
        return _agla_plain(Plain(mag, stft, length, eps), c, n_iter, monitor, alpha, beta, gamma)
    alpha, beta, gamma = float(alpha), float(beta), float(gamma)
    t = c
    d = c
    proj = stft.projector(mag.shape, length)
    p_a = MagnitudeProjection(mag, eps)
    if proj.fused(p_a, c):
        return _agla_fused(proj, p_a, c, n_iter, monitor, alpha, beta, gamma)
    a = proj.new_spec()
    owned = False  # c, t, d are the caller's init until the first iteration has replaced them
    for i in range(1, n_iter + 1):
        g = proj.project(p_a(c, out=a))  # a new tensor: P_C(P_A(c_{n-1}))
        # t_n = (1 - gamma) d + gamma g in place in g; then the step (in t_{n-1}'s buffer), c_n and
        # d_n (each in its predecessor's buffer): one real pass each
        t_new = g if gamma == 1 else lerp_into(d, g, gamma, g)
        step = sub_into(t_new, t, t if owned else None)
        c = axpy_into(t_new, step, alpha, c if owned else None)
        d = axpy_into(t_new, step, beta, d if owned else None)
        t = t_new
        owned = True
        if monitor.step(i, lambda: proj.project(p_a(c)).abs()):
            break
    return stft.inverse(magnitude_projection(mag, c, eps), length)


def _agla_plain(ops: Plain, c: torch.Tensor, n_iter: int, monitor, alpha, beta, gamma) -> torch.Tensor:
    """The same iteration out of place, for autograd (options may be tensors)."""
    t = d = c
    plain_gla = not isinstance(gamma, torch.Tensor) and gamma == 1  # t_n = g, as the fused paths
    for i in range(1, n_iter + 1):
        g = ops.project(ops.p_a(c))
        t_new = g if plain_gla else (1 - gamma) * d + gamma * g
        step = t_new - t
        c = t_new + alpha * step
        d = t_new + beta * step
        t = t_new
        if monitor.step(i, ops.measure(lambda: ops.project(ops.p_a(c)))):
            break
    return ops.synth(ops.p_a(c))


def _agla_fused(proj, p_a, init, n_iter, monitor, alpha, beta, gamma) -> torch.Tensor:
    """The same iteration on the CPU's numba path: per iteration, ``s = ISTFT(a)``, then one
    kernel after the FFT of ``s`` forms ``g``, ``t``, ``c``, ``d`` and ``a = P_A(c)``
    (:meth:`~specinv_cli.dsp.stft.Projector.agla_step`)."""
    t = proj.new_spec().copy_(init)  # t_0 = d_0 = init (copies: the caller's is never written)
    d = proj.new_spec().copy_(t)
    s = proj.new_signal()
    a = p_a(init)
    for i in range(1, n_iter + 1):
        proj.synth(a, out=s)
        a = proj.agla_step(s, p_a, t, d, gamma, alpha, beta)
        if monitor.step(i, lambda: proj.project(a).abs()):
            break
    return proj.signal(proj.synth(a, out=s)).contiguous()
