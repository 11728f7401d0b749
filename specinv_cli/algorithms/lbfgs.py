"""Spectrogram inversion by L-BFGS on the waveform.

R. Decorsière, P. L. Søndergaard, E. N. MacDonald and T. Dau, "Inversion of auditory
spectrograms, traditional spectrograms, and other envelope representations", IEEE/ACM Trans.
Audio, Speech, Lang. Process. 23(1), 2015. The signal itself is the unknown and a quasi-Newton
method minimises the distance between its representation and the target::

    x* = argmin_x  sum_items ||A(x) - S||^2 / ||S||^2,     A(x) = |STFT(x)|^p  (S = |target|^p)

with the gradient from autograd and ``torch.optim.LBFGS`` (strong Wolfe line search). The paper
works with the squared magnitude (``p = 2``); ``p = 1`` (the default here) converges to a lower
spectral convergence on real audio. :func:`lbfgs_waveform` takes any differentiable
``transform`` (e.g. a mel filterbank after the STFT), so other representations reuse it.

Batches: the items share one optimiser, so one line search and one curvature history for the
concatenated signals; dividing each item's loss by ``||S||^2`` keeps loud items from dominating
quiet ones, but the items are still coupled (a batch does not give bit-identical results to one
item at a time). The waveform is optimised scaled to unit RMS so that the step length ``lr = 1``
means the same at any signal level.

Shapes: ``mag [..., F, T]`` -> waveform ``[..., length]``.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from ..dsp import curvature
from ..dsp.stft import STFT, fit_frames
from .base import Monitor

__all__ = ["lbfgs", "lbfgs_waveform", "stft_with_adjoint", "stft_adjoint", "has_adjoint", "spectral_loss", "minimize_lbfgs"]


class _STFTFunction(torch.autograd.Function):
    """``stft.forward`` with a hand-written adjoint: faster than autograd through unfold, reflect
    padding and the real FFT (whose backward runs a full complex FFT)."""

    @staticmethod
    def forward(ctx, x, stft):
        ctx.stft = stft
        ctx.length = x.shape[-1]
        return stft.forward(x)

    @staticmethod
    def backward(ctx, grad):
        return stft_adjoint(ctx.stft, grad, ctx.length), None


def stft_adjoint(stft: STFT, grad: torch.Tensor, length: int) -> torch.Tensor:
    """The adjoint of ``x -> stft.forward(x)`` for real ``x [..., length]`` applied to ``grad
    [..., F, T]`` (torch's convention for a real loss of a complex output: ``dL/dRe + i dL/dIm``),
    i.e. the gradient of the loss with respect to ``x``; reflect or zero padding."""
    lead = grad.shape[:-2]
    g = grad.reshape(-1, *grad.shape[-2:]).transpose(1, 2)  # [B, T, F]
    return _adjoint_frames(stft, g * _bin_weight(stft, g.real.dtype, g.device), length).reshape(*lead, length)


def _adjoint_frames(stft: STFT, g: torch.Tensor, length: int) -> torch.Tensor:
    """The STFT's adjoint on frame-major ``g [B, T, F]`` whose bins already carry
    :func:`_bin_weight`: Re(sum over the one-sided bins of g_k e^{2 pi i k n / N}) is N/2
    irfft(g) once the bins irfft counts once are doubled; then windowed, overlap-added and
    unpadded. Returns ``[B, length]``."""
    N = stft.n_fft
    frames = torch.fft.irfft(g, n=N, dim=-1)
    frames.mul_(stft.window * (N / 2 * stft._scale))
    return _unpad_adjoint(stft, stft._overlap_add(frames), length)


def has_adjoint(stft: STFT) -> bool:
    """Whether :func:`stft_adjoint` covers ``stft``'s padding (none, reflect or zero)."""
    return not stft.pad or stft.pad_mode in ("reflect", "constant")


def stft_with_adjoint(stft: STFT, x: torch.Tensor) -> torch.Tensor:
    """``stft.forward(x)``, differentiable with a fast hand-written backward (reflect or zero
    padding); other padding modes go through plain autograd."""
    if not has_adjoint(stft):
        return stft.forward(x)
    return _STFTFunction.apply(x, stft)


def lbfgs_waveform(target: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor],
                   x0: torch.Tensor, *, n_iter: int = 100, monitor: Monitor | None = None,
                   monitor_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   lr: float = 1.0, history_size: int = 5,
                   line_search: str | None = "strong_wolfe",
                   loss_grad: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
                   degree: float | None = None) -> torch.Tensor:
    """Minimise ``sum_items ||transform(x) - target||^2 / ||target||^2`` over waveforms ``x``.

    Parameters
    ----------
    target : ``[..., F', T]``, what ``transform`` should produce.
    transform : differentiable map from waveforms ``[..., L]`` to ``[..., F', T]``.
    x0 : starting waveform ``[..., L]`` (same batch dims as ``target``); all-zero items with a
        non-zero target start from weak noise instead (``|STFT|`` has no gradient at 0).
    n_iter : L-BFGS iterations (each may evaluate ``transform`` more than once in the line search).
    monitor : gets ``monitor_fn(x)`` (default ``transform(x)``) after each iteration; may stop.
    lr, history_size, line_search : passed to :class:`torch.optim.LBFGS`.
    loss_grad : ``loss_grad(x, target, weight) -> (loss, dloss/dx)`` of
        ``sum_items weight ||transform(x) - target||^2`` in closed form (e.g. :func:`spectral_loss`):
        the iterations then run :func:`minimize_lbfgs` on it, with no autograd; ``transform`` only
        levels a silent start.
    degree : with ``loss_grad``, ``q`` when ``transform(s x) = s^q transform(x)`` for ``s > 0``
        (``|STFT|^p``: ``p``): the per-item scale below then goes into the target and the weight
        once, not into every evaluation.

    Returns the waveform ``[..., L]`` (detached).
    """
    monitor = monitor or Monitor()
    x0 = x0.detach()
    live = target.abs().amax(dim=(-2, -1)) > 0
    dead = (x0.abs().amax(dim=-1) == 0) & live
    if bool(dead.any()):  # |STFT| has zero gradient at x = 0: start such items from weak noise
        gen = torch.Generator().manual_seed(0)
        noise = torch.randn(x0.shape, generator=gen, dtype=x0.dtype).to(x0.device)
        # Level it so that its transform has the target's norm (exact for |STFT|, mel, ...).
        with torch.no_grad():
            got = transform(noise).pow(2).sum(dim=(-2, -1)).sqrt()
        ratio = target.pow(2).sum(dim=(-2, -1)).sqrt() / got.clamp_min(torch.finfo(got.dtype).tiny)
        x0 = torch.where(dead[..., None], noise * ratio[..., None], x0)
    # Per-item RMS scale: optimise z = x / scale, which is O(1) whatever the signal level.
    scale = x0.pow(2).mean(dim=-1, keepdim=True).sqrt()
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    weight = 1.0 / target.pow(2).sum(dim=(-2, -1)).clamp_min(torch.finfo(target.dtype).tiny)
    weight = torch.where(live, weight, torch.zeros_like(weight))
    fn = monitor_fn or transform
    if loss_grad is not None:
        if degree is not None:  # w ||T(s z) - t||^2 = w s^2q ||T(z) - t / s^q||^2: the same function of z
            sq = scale.pow(degree)
            target_z = _frame_major(target / sq[..., None])
            weight_z = weight * sq[..., 0].square()

            def fun(z):
                return loss_grad(z, target_z, weight_z)
        else:
            def fun(z):
                loss, gx = loss_grad(z * scale, target, weight)
                return loss, gx * scale

        def step(i, z):
            if not math.isfinite(float(z.sum())):  # NaN and inf propagate through a sum: one cheap pass
                return True
            return monitor.step(i, lambda: fn(z * scale))

        with torch.no_grad():
            z = minimize_lbfgs(fun, x0 / scale, n_iter=n_iter, history_size=history_size, lr=lr, step=step)
        return torch.nan_to_num(z * scale, nan=0.0, posinf=0.0, neginf=0.0)
    z = (x0 / scale).clone().requires_grad_(True)
    with torch.enable_grad():
        # One iteration per step() so the monitor sees each; max_eval bounds the line search
        # (its default, 5/4 max_iter, would leave it no evaluations).
        opt = torch.optim.LBFGS([z], lr=lr, max_iter=1, max_eval=26, history_size=history_size,
                                tolerance_grad=1e-12, tolerance_change=0.0,
                                line_search_fn=line_search)

        def closure():
            opt.zero_grad()
            err = (transform(z * scale) - target).pow(2).sum(dim=(-2, -1))
            loss = (err * weight).sum()
            loss.backward()
            return loss

        for i in range(1, n_iter + 1):
            prev = z.detach().clone()
            opt.step(closure)
            if not bool(torch.isfinite(z).all()):  # never hand back a broken estimate
                with torch.no_grad():
                    z.copy_(prev)
                break
            if monitor.step(i, lambda: fn((z * scale).detach())):
                break
    return torch.nan_to_num((z * scale).detach(), nan=0.0, posinf=0.0, neginf=0.0)


def lbfgs(mag: torch.Tensor, stft: STFT, *, n_iter: int = 100, init: torch.Tensor | None = None,
          length: int | None = None, monitor: Monitor | None = None, lr: float = 1.0,
          history_size: int = 5, power: float = 1.0,
          domain: Callable[[torch.Tensor], torch.Tensor] | None = None,
          domain_target: torch.Tensor | None = None, gradient: str = "analytic") -> torch.Tensor:
    """L-BFGS on the waveform against ``|STFT(x)|^power`` (Decorsière et al. 2015).

    Parameters
    ----------
    mag : target magnitudes ``[..., F, T]``.
    stft : the STFT operator (settings, device, dtype).
    n_iter : L-BFGS iterations.
    init : complex initial estimate ``[..., F, T]``; the start is its ISTFT (default: ``mag``
        with zero phase).
    length : output samples (default ``stft.default_length(T)``).
    monitor : receives ``|STFT(x)|`` after each iteration; may stop early.
    lr : L-BFGS step length (1 with the line search).
    history_size : L-BFGS memory.
    power : exponent ``p`` of the magnitude compared (``2``: the paper's power spectrogram).
    domain, domain_target : optional differentiable map of ``|STFT(x)|^power`` (e.g. a mel
        filterbank, :class:`specinv_cli.dsp.mel.MelTransform`) and the target in that domain; the
        monitor then receives ``domain(|STFT(x)|)``. ``mag`` only supplies the start.
    gradient : ``analytic`` (default): the loss and its gradient in closed form
        (:func:`spectral_loss`) with a hand-written L-BFGS (:func:`minimize_lbfgs`), for the
        magnitude and for a mel ``domain`` (a :class:`~specinv_cli.dsp.mel.MelTransform`) with
        reflect or zero padding; ``autograd``: ``torch.optim.LBFGS`` on autograd, the reference,
        and what any other ``domain`` or padding uses.

    Example
    -------
    >>> import torch
    >>> from specinv_cli.config import STFTConfig
    >>> op = STFT(STFTConfig(n_fft=256, hop_length=64))
    >>> x = torch.randn(1, 4096)
    >>> y = lbfgs(op.forward(x).abs(), op, n_iter=3, length=4096)
    >>> y.shape
    torch.Size([1, 4096])
    """
    if power <= 0:
        raise ValueError(f"power must be > 0, got {power}")
    n_frames = mag.shape[-1]
    if length is None:
        length = stft.default_length(n_frames)
    x0 = stft.inverse(mag.to(stft.window.dtype.to_complex()) if init is None else init, length)
    tiny = torch.finfo(mag.dtype).tiny

    def fit(s: torch.Tensor) -> torch.Tensor:  # same frame count as the target whatever the length
        return fit_frames(s, n_frames)

    def magnitude(x: torch.Tensor) -> torch.Tensor:
        c = stft_with_adjoint(stft, x)
        if power >= 1:  # |c|^p has a finite gradient at c = 0 (torch's sgn(0) = 0)
            m = c.abs()
            return fit(m if power == 1 else m.pow(power))
        # p < 1: (|c|^2 + tiny)^(p/2) keeps the gradient finite at c = 0.
        return fit((c.real.square() + c.imag.square() + tiny).pow(power / 2))

    if gradient not in ("analytic", "autograd"):
        raise ValueError(f"`gradient` must be analytic or autograd, got {gradient!r}")
    closed = gradient == "analytic" and has_adjoint(stft)
    if domain is not None:
        if domain_target is None:
            raise ValueError("domain given without domain_target")
        fb = getattr(domain, "fb", None)
        known = closed and fb is not None and hasattr(domain, "power")  # a filterbank: closed form

        q = power * float(domain.power) if known else None
        fb_x = fb.to(x0.dtype) if known else None  # once, not per evaluation (the iterates keep x0's dtype)

        def mel_loss_grad(x, target, weight):
            return spectral_loss(x, stft, target, weight, n_frames=n_frames, power=q, fb=fb_x)
        return lbfgs_waveform(domain_target, lambda x: domain(magnitude(x)), x0, n_iter=n_iter,
                              monitor=monitor, monitor_fn=lambda x: domain(fit(stft.forward(x).abs())),
                              lr=lr, history_size=history_size, loss_grad=mel_loss_grad if known else None,
                              degree=q)
    target = mag if power == 1 else mag.pow(power)

    def loss_grad(x, target, weight):
        return spectral_loss(x, stft, target, weight, n_frames=n_frames, power=power)
    return lbfgs_waveform(target, magnitude, x0, n_iter=n_iter, monitor=monitor,
                          monitor_fn=lambda x: fit(stft.forward(x).abs()),
                          lr=lr, history_size=history_size, loss_grad=loss_grad if closed else None, degree=power)


def spectral_loss(x: torch.Tensor, stft: STFT, target: torch.Tensor, weight: torch.Tensor, *, n_frames: int,
                  power: float = 1.0, fb: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, grad)`` of ``sum_items weight * ||D(|STFT(x)|^power) - target||^2`` in closed form.

    ``x [..., L]``; ``target [..., F', n_frames]``; ``weight`` of the batch shape; ``D`` is the
    identity, or ``fb @`` (a mel filterbank ``[F', F]``). With ``c = STFT(x)``, ``m = |c|``,
    ``r = D(m^p) - target``: ``dL/dm = 2 w p m^(p-1) D^T r`` and ``dL/dc = dL/dm * c / m``
    (the phase of the current STFT), and ``dL/dx`` is the STFT's adjoint of that: windowed
    inverse FFTs overlap-added (:func:`stft_adjoint`). One FFT pair and two small matrix products
    per call, in the frames' own ``[T, F]`` layout: no autograd graph, no transposes. For ``p < 1``,
    ``m^p`` is ``(m^2 + tiny)^(p/2)`` as in :func:`lbfgs`. Reflect or zero padding.
    """
    lead, L = x.shape[:-1], x.shape[-1]
    N = stft.n_fft
    xs = stft._pad(x.reshape(-1, L))
    if x.device.type == "cpu" and x.dtype == stft.dtype and not (torch.is_grad_enabled() and x.requires_grad):
        proj = stft.projector((xs.shape[0], stft.n_freqs, n_frames), L)
        if proj.fast and proj.spectral_fused():
            loss, g = _spectral_loss_fused(proj, xs, target, weight, power, fb)
            return loss, _unpad_adjoint(stft, g, L).reshape(*lead, L)
    c = torch.fft.rfft(xs.unfold(-1, N, stft.hop) * stft.window, dim=-1)  # [B, T', F]
    if stft.normalized:
        c.mul_(stft._scale)
    t_all = c.shape[1]
    if t_all != n_frames:
        c = c[:, :n_frames] if t_all > n_frames else torch.nn.functional.pad(c, (0, 0, 0, n_frames - t_all))
    m = torch.linalg.vector_norm(torch.view_as_real(c), dim=-1)  # |c|: faster than complex abs on the CPU
    tiny = torch.finfo(m.dtype).tiny
    a = _power(m, power, tiny)
    tgt = target.reshape(-1, *target.shape[-2:]).transpose(1, 2)  # [B, T, F'] (a view)
    est = torch.matmul(a, fb.transpose(0, 1)) if fb is not None else a
    r = est - tgt
    w2 = 2 * weight.reshape(-1, 1, 1)
    loss = (r.square().sum(dim=(1, 2)) * weight.reshape(-1)).sum()
    # dL/dc = 2 w (D^T r) p m^(p-1) c / m. The adjoint's bin weight (irfft counts DC and Nyquist
    # once) goes into D^T's columns, 2 w into r (the smaller side); c / m needs no case for
    # m = 0, where c = 0 too: m is only floored so that the quotient stays finite.
    binw = _bin_weight(stft, m.dtype, m.device)
    ga = torch.matmul(r * w2, fb * binw) if fb is not None else r * (w2 * binw)
    floor = tiny ** 0.5
    if power == 1:
        k = ga / m.clamp_min(floor)
    elif power > 1:
        k = ga * (power * m.clamp_min(floor).pow(power - 2))
    else:
        k = ga * (power * (m.square() + tiny).pow(power / 2 - 1))
    gc = c * k
    if t_all != n_frames:
        gc = gc[:, :t_all] if n_frames > t_all else torch.nn.functional.pad(gc, (0, 0, 0, t_all - n_frames))
    return loss, _adjoint_frames(stft, gc, L).reshape(*lead, L)


def _power(m: torch.Tensor, power: float, tiny: float) -> torch.Tensor:
    """``m^p``; for ``p < 1`` ``(m^2 + tiny)^(p/2)``, whose gradient stays finite at 0."""
    if power == 1:
        return m
    return m.pow(power) if power > 1 else (m.square() + tiny).pow(power / 2)


def _frame_major(z: torch.Tensor) -> torch.Tensor:
    """``z [..., F, T]`` with its memory laid out ``[..., T, F]`` (what the loss reads)."""
    return z.transpose(-1, -2).contiguous().transpose(-1, -2)


def _spectral_loss_fused(proj, xs: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, power: float,
                         fb: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`spectral_loss` on the numba kernels (the torch code there is its twin): the FFT reads
    the frames of the padded ``xs [B, >= width]`` in place, the window is applied as taps along
    frequency on both sides, and for ``p = 1`` without ``fb`` everything between the two FFTs is
    one kernel. Returns the loss and the overlap-added gradient ``[B, width]`` (still padded).
    ``target`` is cheapest laid out frame-major (``[..., T, F']`` memory, as :func:`lbfgs` keeps it)."""
    stft = proj.stft
    B, T = xs.shape[0], proj.n_frames
    dt = stft.dtype
    tiny = torch.finfo(dt).tiny
    floor = tiny ** 0.5
    half_n = stft.n_fft / 2  # irfft's 1/N against the adjoint's sum over N / 2 one-sided bins
    binw = _bin_weight(stft, dt, xs.device)
    w = weight.reshape(-1).to(dt)
    tgt = target.reshape(B, *target.shape[-2:]).transpose(1, 2)  # [B, T, F'] (a view)
    if fb is None and power == 1:
        rowscale = (w * (2 * half_n)).repeat_interleave(T)
        rows, g = proj.residual_gradient(xs, tgt.contiguous(), rowscale, binw, floor)
        loss = (rows.view(B, T).sum(dim=1) * w).sum()
        return loss, proj.adjoint_overlap_add(g)
    c, m = proj.spectrum_magnitude(xs)
    a = _power(m, power, tiny)
    r = (proj.filterbank(a.contiguous(), fb) if fb is not None else a) - tgt
    loss = (r.square().sum(dim=(1, 2)) * w).sum()
    r.mul_((2 * half_n) * w.reshape(-1, 1, 1))
    ga = proj.filterbank(r, fb, adjoint=True).mul_(binw) if fb is not None else r.mul_(binw)
    proj.gradient_spectrum(c, ga.contiguous(), m, power, floor, tiny)
    return loss, proj.adjoint_overlap_add(c)


def _bin_weight(stft: STFT, dtype, device) -> torch.Tensor:
    """``[F]``: 2 for the bins ``irfft`` counts once (DC, and Nyquist for even ``n_fft``), else 1."""
    key = (dtype, str(device))
    cache = stft.__dict__.setdefault("_bin_weight_cache", {})
    w = cache.get(key)
    if w is None:
        w = torch.ones(stft.n_freqs, dtype=dtype, device=device)
        w[0] = 2
        if stft.n_fft % 2 == 0:
            w[-1] = 2
        cache[key] = w
    return w


def _unpad_adjoint(stft: STFT, y: torch.Tensor, L: int) -> torch.Tensor:
    """The adjoint of ``stft._pad`` (reflect or zero) on the overlap-added ``y [B, >= L + 2 pad]``,
    a temporary of the caller's: the reflected edges are added into it in place and the result is
    its middle (one item: a view, no copy)."""
    if not stft.pad:
        return y[:, :L] if y.shape[-1] >= L else torch.nn.functional.pad(y, (0, L - y.shape[-1]))
    p = stft.pad
    y = y[:, :L + 2 * p]
    n = min(L, max(y.shape[-1] - p, 0))  # samples of x inside y (beyond the frames: no gradient)
    if n < L:
        y = torch.nn.functional.pad(y, (0, p + L - y.shape[-1]))
    if stft.pad_mode == "reflect" and L > p:  # padded[i] = x[p - i], padded[p + L + i] = x[L - 2 - i]
        y[:, p + 1:2 * p + 1] += y[:, :p].flip(-1)
        tail = y[:, p + L:]
        y[:, p + L - 1 - tail.shape[-1]:p + L - 1] += tail.flip(-1)
    return y[:, p:p + L].contiguous()


def _cubic_min(t1, f1, g1, t2, f2, g2, lo, hi):
    """Minimiser of the cubic through ``(t1, f1, g1)`` and ``(t2, f2, g2)``, clipped to ``[lo, hi]``
    (the bisection when the cubic has none)."""
    d1 = g1 + g2 - 3 * (f1 - f2) / (t1 - t2)
    disc = d1 * d1 - g1 * g2
    if disc >= 0:
        d2 = disc ** 0.5 * (1 if t2 > t1 else -1)
        t = t2 - (t2 - t1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        if t == t and lo <= t <= hi:  # not NaN, inside
            return t
        return min(max(t, lo), hi) if t == t else (lo + hi) / 2
    return (lo + hi) / 2


def _strong_wolfe(fun, x, t, d, f0, g0, gtd0, c1=1e-4, c2=0.9, max_evals=25):
    """A step ``t`` along ``d`` meeting the strong Wolfe conditions (Nocedal & Wright, Algorithms
    3.5 and 3.6, cubic interpolation). Returns ``(f, g, t, evaluations, x + t d)``: the point
    the accepted step was evaluated at is handed back, not rebuilt."""
    def at(t):  # a trial: (t, f, g, g . d, the point)
        xt = torch.add(x, d, alpha=t)
        f, g = fun(xt)
        return t, float(f), g, float(torch.dot(g.reshape(-1), d.reshape(-1))), xt

    def done(p, evals):
        return p[1], p[2], p[0], evals, p[4]

    prev = (0.0, f0, g0, gtd0, x)
    evals = 0
    bracket = None
    while evals < max_evals:
        cur = at(t)
        evals += 1
        f, gtd = cur[1], cur[3]
        if f != f:  # NaN: step back
            t = (prev[0] + t) / 2
            continue
        if f > f0 + c1 * t * gtd0 or (evals > 1 and f >= prev[1]):
            bracket = [prev, cur]
            break
        if abs(gtd) <= -c2 * gtd0:
            return done(cur, evals)
        if gtd >= 0:
            bracket = [cur, prev]
            break
        t_next = _cubic_min(prev[0], prev[1], prev[3], t, f, gtd, t + 0.01 * (t - prev[0]), t * 10)
        prev = cur
        t = t_next
    else:
        return done(cur, evals)
    lo, hi = bracket  # lo: the lower value; the minimiser lies between them
    while evals < max_evals:
        a, b = sorted((lo[0], hi[0]))
        width = b - a
        if width <= 1e-9 * max(b, 1e-30):
            break
        t = _cubic_min(lo[0], lo[1], lo[3], hi[0], hi[1], hi[3], a + 0.1 * width, b - 0.1 * width)
        cur = at(t)
        evals += 1
        f, gtd = cur[1], cur[3]
        if f > f0 + c1 * t * gtd0 or f >= lo[1]:
            hi = cur
        else:
            if abs(gtd) <= -c2 * gtd0:
                return done(cur, evals)
            if gtd * (hi[0] - lo[0]) >= 0:
                hi = lo
            lo = cur
    return done(lo, evals)


def minimize_lbfgs(fun: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]], z0: torch.Tensor, *,
                   n_iter: int, history_size: int = 5, lr: float = 1.0,
                   step: Callable[[int, torch.Tensor], bool] | None = None) -> torch.Tensor:
    """L-BFGS (Nocedal & Wright, Algorithm 7.5: two-loop recursion, strong Wolfe line search) on a
    function ``fun(z) -> (value, gradient)`` of one tensor, without autograd. ``step(i, z)`` is
    called after iteration ``i`` and stops the run when it returns True. As ``torch.optim.LBFGS``
    with ``max_iter=1`` per step: the first step is ``lr * min(1, 1 / ||g||_1)``, later ones ``lr``
    scaled by the history; curvature pairs with ``s . y <= 1e-10 |s| |y|`` are not kept.

    The two-loop recursion runs on coefficients ("vector-free" L-BFGS: W. Chen, Z. Wang and J.
    Zhou, "Large-scale L-BFGS using MapReduce", NeurIPS 2014): the history ``s_j, y_j`` lives in
    one matrix ``W [2 m, n]`` whose Gram matrix ``W W^T`` is kept up to date in float64, so that
    an iteration reads the history twice (``W g`` and the direction as a combination of its rows)
    instead of making about ``4 m`` vector passes; the direction is the two-loop's in exact
    arithmetic (``tests/test_lbfgs_analytic.py`` holds it to a plain two-loop in float64). Those
    two reads, with the new pair's inner products, are one pass each on the CPU
    (:mod:`specinv_cli.dsp.curvature`)."""
    z = z0.clone()
    f, g = fun(z)
    f = float(f)
    gv = g.reshape(-1)
    n = gv.numel()
    gg, gmax = float(torch.dot(gv, gv)), float(gv.abs().max())
    m = max(int(history_size), 1)
    W = torch.zeros(2 * m, n, dtype=g.dtype, device=g.device)  # rows 2j, 2j + 1: s_j, y_j
    P = torch.empty(2, n, dtype=g.dtype, device=g.device)  # the candidate pair (s, y)
    D = torch.empty(n, dtype=g.dtype, device=g.device)  # the search direction
    G = np.zeros((2 * m, 2 * m))  # W W^T, and below W g: small, so numpy (no per-op dispatch)
    b = np.zeros(2 * m)
    order: list[int] = []  # slots in use, oldest first; they fill 0, 1, ... before any is reused
    for i in range(1, n_iter + 1):
        if not gmax > 1e-12 or gg != gg:  # stationary (torch's tolerance_grad), or NaN
            break
        k = 2 * len(order)
        if order:
            coef, cg = _two_loop(G, b, order)
            d, gtd = curvature.direction(W, k, coef, cg, gv, D)  # -(W^T coef + cg g), one pass
            wd = -(G @ coef + b * cg)  # W d, from the Gram matrix
        else:
            d, wd, gtd = torch.neg(gv, out=D), -b, -gg
        if gtd > -1e-30:  # not a descent direction (rounding): restart from the gradient
            order.clear()
            W.zero_(), G.fill(0.0), b.fill(0.0)
            d, gtd, wd, k = torch.neg(gv, out=D), -gg, np.zeros_like(b), 0
        t = lr * min(1.0, 1.0 / float(gv.abs().sum())) if i == 1 else lr
        f_new, g_new, t, _, z_new = _strong_wolfe(fun, z, t, d.view(z.shape), f, g, gtd)
        if not (f_new == f_new and f_new < float("inf")):
            break  # never hand back a broken estimate
        gn = g_new.reshape(-1)
        dots, wg = curvature.pair(W, k, d, t, gv, gn, P)  # P = (t d, gn - g), its products, W gn
        ss, sy, yy, sg, yg = (float(v) for v in dots[:5])
        b_new = np.zeros_like(b)
        b_new[:k] = wg
        if sy > 1e-10 * (ss * yy) ** 0.5:  # curvature, relative to the step's scale
            ws, wy = t * wd, b_new - b  # W s and W y, without reading W again
            j = order.pop(0) if len(order) == m else len(order)
            order.append(j)
            W[2 * j:2 * j + 2] = P
            ws[2 * j:2 * j + 2] = ss, sy
            wy[2 * j:2 * j + 2] = sy, yy
            G[2 * j], G[2 * j + 1] = ws, wy
            G[:, 2 * j], G[:, 2 * j + 1] = ws, wy
            b_new[2 * j:2 * j + 2] = sg, yg
        b = b_new
        z, f, g, gv = z_new, f_new, g_new, gn
        gg, gmax = float(dots[5]), float(dots[6])
        if step is not None and step(i, z):
            break
    return z


def _two_loop(G: np.ndarray, b: np.ndarray, order: list[int]) -> tuple[np.ndarray, float]:
    """The L-BFGS two-loop recursion on coefficients: ``H g = W^T coef + cg g`` from the Gram
    matrix ``G = W W^T`` and ``b = W g`` (float64; ``order`` the slots, oldest first). Returns
    ``(coef [2 m], cg)``."""
    coef = np.zeros(G.shape[0])
    cg = 1.0

    def dot_with(row: int) -> float:  # (W^T coef + cg g) . w_row
        return float(coef @ G[row]) + cg * float(b[row])

    alphas = []
    for j in reversed(order):
        rho = 1.0 / G[2 * j, 2 * j + 1]
        a = rho * dot_with(2 * j)
        alphas.append(a)
        coef[2 * j + 1] -= a
    last = order[-1]
    gamma = G[2 * last, 2 * last + 1] / G[2 * last + 1, 2 * last + 1]
    coef *= gamma
    cg *= gamma
    for j, a in zip(order, reversed(alphas)):
        rho = 1.0 / G[2 * j, 2 * j + 1]
        beta = rho * dot_with(2 * j + 1)
        coef[2 * j] += a - beta
    return coef, cg
