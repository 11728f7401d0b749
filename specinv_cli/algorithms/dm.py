"""Difference map (optionally handing over to AGLA/FGLA) and RAAR.

- DM: V. Elser, "Phase retrieval by iterated projections", JOSA A 20(1), 2003; for STFT phase
  retrieval, with the hybrid "DM first, then (F)GLA": T. Peer, S. Welker, T. Gerkmann,
  "Beyond Griffin-Lim: improved iterative phase retrieval for speech", IWAENC 2022.
- RAAR: D. R. Luke, "Relaxed averaged alternating reflections for diffraction imaging",
  Inverse Problems 21(1), 2005 (compared in the same paper).

With ``P_A`` (impose the target magnitude), ``P_C = STFT o ISTFT`` (linear, idempotent) and
reflections ``R = 2P - I``::

    DM:   f_A = P_A x + (P_A x - x) / beta,   f_C = P_C x - (P_C x - x) / beta
          x  <- x + beta (P_C(f_A) - P_A(f_C))
    RAAR: x  <- beta/2 (x + R_C R_A x) + (1 - beta) P_A x

Tracking ``c = P_C x`` makes RAAR (any beta) and DM with ``beta = 1`` cost one ISTFT+STFT per
iteration: with ``a = P_A x`` and ``g = P_C a``, ``x <- beta (x + 2g - c - a) + (1 - beta) a``
and ``c <- g`` (DM at ``beta = 1`` is RAAR at ``beta = 1``, i.e. Douglas–Rachford). DM with
``beta != 1`` needs a second projection per iteration. The consistent estimate is
``g = P_C(P_A x)``; the output is ``ISTFT(P_A(g))`` (one more GLA step, which cannot increase
the spectral distance).

DM alone wanders (it searches rather than descends), so ``dm`` by default runs half of the
iterations as DM (``dm_iters``) and then hands ``g`` to a descent method (``finisher``) for the rest, which
beats FGLA at equal iterations from random and from PGHI phase (figures:
``benchmarks/results/methods_100.md``).

Shapes: ``mag [..., F, T]`` -> waveform ``[..., length]``; any leading batch dimensions.
"""
from __future__ import annotations

import torch

from ..dsp.stft import STFT, MagnitudeProjection, magnitude_projection
from .base import Monitor, Plain, prepare, real_view, wants_grad


def _plus_twice(x: torch.Tensor, g: torch.Tensor, owned: bool) -> torch.Tensor:
    """``x + 2 g``: in ``x``'s buffer when it is ours, else in a new one (the caller's ``init``
    is never written)."""
    if not owned:
        out = torch.empty_like(g)
        torch.add(real_view(x), real_view(g), alpha=2, out=real_view(out))
        return out
    real_view(x).add_(real_view(g), alpha=2)
    return x

__all__ = ["dm", "raar"]


def _dm_loop(proj, p_a, x, n_iter, monitor, beta):
    """``n_iter`` DM iterations on torch tensors; returns the last ``g`` and whether the
    monitor stopped the run."""
    mag, eps = p_a.mag, p_a.eps
    a = proj.new_spec()
    c = proj.project(x)
    g = c
    owned = False  # x is the caller's init until the first update
    for i in range(1, n_iter + 1):
        p_a(x, out=a)
        g = proj.project(a)  # a new tensor
        if beta == 1:
            # x + 2g - c - a on the real views, in x's buffer once it is ours
            x, owned = _plus_twice(x, g, owned), True
            real_view(x).sub_(real_view(c)).sub_(real_view(a))
            c = g
        else:
            f_c = (1 - 1 / beta) * c + x / beta
            p_c_f_a = (1 + 1 / beta) * g - c / beta
            x = x + beta * (p_c_f_a - magnitude_projection(mag, f_c, eps))
            c = proj.project(x)
        if monitor.step(i, g.abs):
            return g, True
    return g, False


def _raar_plain(ops: Plain, x: torch.Tensor, n_iter: int, monitor, beta):
    """RAAR out of place, for autograd (``beta`` may be a tensor): ``a = P_A x``, ``g = P_C a``,
    ``x <- beta (x + 2g - c - a) + (1 - beta) a``, ``c <- g``. Returns the last ``g`` and whether
    the monitor stopped the run."""
    c = ops.project(x)
    g = c
    for i in range(1, n_iter + 1):
        a = ops.p_a(x)
        g = ops.project(a)
        x = beta * (x + 2 * g - c - a) + (1 - beta) * a
        c = g
        if monitor.step(i, ops.measure(lambda: g)):
            return g, True
    return g, False


def _dm_plain(ops: Plain, x: torch.Tensor, n_iter: int, monitor, beta):
    """:func:`_dm_loop` out of place, for autograd (``beta`` may be a tensor)."""
    if not isinstance(beta, torch.Tensor) and beta == 1:
        return _raar_plain(ops, x, n_iter, monitor, 1.0)  # DM at beta = 1 is RAAR at beta = 1
    c = ops.project(x)
    g = c
    for i in range(1, n_iter + 1):
        g = ops.project(ops.p_a(x))
        f_c = (1 - 1 / beta) * c + x / beta
        p_c_f_a = (1 + 1 / beta) * g - c / beta
        x = x + beta * (p_c_f_a - ops.p_a(f_c))
        c = ops.project(x)
        if monitor.step(i, ops.measure(lambda: g)):
            return g, True
    return g, False


def _raar_fused(proj, p_a, init, n_iter, monitor, beta):
    """RAAR (DM at ``beta = 1``) on the CPU's numba path, on one state buffer
    ``h = beta (x - c) + (1 - 2 beta) a`` (see :func:`specinv_cli.dsp.kernels.raar_update`): per iteration
    ``s = ISTFT(a)``, then one kernel after the FFT of ``s`` gives the next ``a`` and ``h``. The
    consistent estimate ``g = STFT(s)`` is formed only for the monitor and at the end. Returns
    the last ``g`` and whether the monitor stopped the run."""
    a = p_a(init)  # a_1 = P_A(x_0); the caller's init is never written
    h = proj.new_spec()
    h_r = real_view(h).copy_(real_view(init) - real_view(proj.project(init)))
    h_r.mul_(beta).add_(real_view(a), alpha=1 - 2 * beta)
    s = proj.new_signal()
    for i in range(1, n_iter + 1):
        proj.synth(a, out=s)  # s_i = ISTFT(a_i), g_i = STFT(s_i)
        a = proj.raar_step(s, p_a, h, beta)
        if monitor.step(i, lambda: proj.analyze(s).abs()):
            return proj.analyze(s), True
    return proj.analyze(s), False


def dm(mag: torch.Tensor, stft: STFT, *, n_iter: int = 100, init: torch.Tensor | None = None,
       length: int | None = None, monitor: Monitor | None = None, beta: float = 1.0,
       dm_iters: int = -1, finisher: str = "agla") -> torch.Tensor:
    """Difference map for ``dm_iters`` iterations, then ``finisher`` for the rest.

    Parameters
    ----------
    mag : target magnitudes ``[..., F, T]``.
    stft : the STFT operator (settings, device, dtype).
    n_iter : total iterations (DM and finisher together).
    init : complex initial estimate ``[..., F, T]`` (default: ``mag`` with zero phase).
    length : output samples (default ``stft.default_length(T)``).
    monitor : receives the consistent estimate's magnitude each iteration; may stop early.
    beta : DM relaxation (non-zero); 1 costs one STFT pair per iteration, other values two.
    dm_iters : DM iterations before the finisher takes over; ``-1`` (default): half of
        ``n_iter``; ``>= n_iter``: all DM.
    finisher : ``"agla"`` (default parameters) or ``"fgla"`` (alpha 0.99).

    Autograd is supported (see :func:`~specinv_cli.algorithms.base.wants_grad`; ``beta`` may be
    a tensor): a DM iteration of the differentiable path keeps for backward about four
    complex-spectrogram-sized tensors (the magnitude projection's input and three real
    intermediates, the STFT's windowed frames) and one signal-sized one at ``beta = 1``, twice
    that otherwise (two projections), plus about three complex spectrograms for a tensor
    ``beta``; the finisher's iterations keep what its docstring says. Memory grows linearly with
    ``n_iter``.

    Example
    -------
    >>> import torch
    >>> from specinv_cli.config import STFTConfig
    >>> op = STFT(STFTConfig(n_fft=256, hop_length=64))
    >>> x = torch.randn(1, 4096)
    >>> y = dm(op.forward(x).abs(), op, n_iter=10, dm_iters=5, length=4096)
    >>> y.shape
    torch.Size([1, 4096])
    """
    if beta == 0:
        raise ValueError("beta must be non-zero")
    if finisher not in ("agla", "fgla"):
        raise ValueError(f"finisher must be 'agla' or 'fgla', got {finisher!r}")
    monitor, length, eps, x = prepare(mag, stft, init, length, monitor)
    n_dm = n_iter // 2 if dm_iters < 0 else min(dm_iters, n_iter)
    g = x
    grad = wants_grad(mag, init, beta)
    if not grad:
        beta = float(beta)
    if n_dm > 0:
        if grad:  # the finisher then takes its own differentiable path: its init g needs grad
            g, stopped = _dm_plain(Plain(mag, stft, length, eps), x, n_dm, monitor, beta)
        else:
            proj = stft.projector(mag.shape, length)
            p_a = MagnitudeProjection(mag, eps)
            if beta == 1 and proj.fused(p_a, x):  # DM at beta = 1 is RAAR at beta = 1
                g, stopped = _raar_fused(proj, p_a, x, n_dm, monitor, 1.0)
            else:
                g, stopped = _dm_loop(proj, p_a, x, n_dm, monitor, beta)
        if stopped or n_dm == n_iter:
            return stft.inverse(magnitude_projection(mag, g, eps), length)
    rest = n_iter - n_dm
    if finisher == "agla":
        from .agla import agla as fin
    else:
        from .gla import fgla as fin
    return fin(mag, stft, n_iter=rest, init=g, length=length, monitor=monitor.view(offset=n_dm))


def raar(mag: torch.Tensor, stft: STFT, *, n_iter: int = 100, init: torch.Tensor | None = None,
         length: int | None = None, monitor: Monitor | None = None, beta: float = 0.95) -> torch.Tensor:
    """Relaxed averaged alternating reflections (Luke 2005); ``beta = 1`` is Douglas–Rachford.

    Parameters
    ----------
    mag, stft, n_iter, init, length, monitor : as for :func:`dm`.
    beta : relaxation in ``(0, 1]``; smaller values behave more like GLA (a float or a 0-dim
        tensor).

    Autograd is supported (see :func:`~specinv_cli.algorithms.base.wants_grad`): the
    differentiable path keeps for backward, per iteration, about four complex-spectrogram-sized
    tensors (the magnitude projection's input and three real intermediates, the STFT's windowed
    frames) and one signal-sized one, plus two complex spectrograms for a tensor ``beta``:
    memory grows linearly with ``n_iter``.

    Example
    -------
    >>> import torch
    >>> from specinv_cli.config import STFTConfig
    >>> op = STFT(STFTConfig(n_fft=256, hop_length=64))
    >>> x = torch.randn(1, 4096)
    >>> y = raar(op.forward(x).abs(), op, n_iter=5, length=4096)
    >>> y.shape
    torch.Size([1, 4096])
    """
    if not 0 <= beta <= 1:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    monitor, length, eps, x = prepare(mag, stft, init, length, monitor)
    if n_iter == 0:
        return stft.inverse(magnitude_projection(mag, x, eps), length)
    if wants_grad(mag, init, beta):
        g, _ = _raar_plain(Plain(mag, stft, length, eps), x, n_iter, monitor, beta)
        return stft.inverse(magnitude_projection(mag, g, eps), length)
    beta = float(beta)
    proj = stft.projector(mag.shape, length)
    p_a = MagnitudeProjection(mag, eps)
    if proj.fused(p_a, x):
        g, _ = _raar_fused(proj, p_a, x, n_iter, monitor, beta)
        return stft.inverse(magnitude_projection(mag, g, eps), length)
    c = proj.project(x)
    g = c
    owned = False
    for i in range(1, n_iter + 1):
        a = p_a(x)
        g = proj.project(a)
        # beta (x + 2g - c - a) + (1 - beta) a, on the real views, in x's buffer once it is ours
        x, owned = _plus_twice(x, g, owned), True
        real_view(x).sub_(real_view(c)).mul_(beta).add_(real_view(a), alpha=1 - 2 * beta)
        c = g
        if monitor.step(i, g.abs):
            break
    return stft.inverse(magnitude_projection(mag, g, eps), length)
