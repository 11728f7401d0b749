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

from typing import Callable

import torch

from ..dsp.stft import STFT, fit_frames
from .base import Monitor

__all__ = ["lbfgs", "lbfgs_waveform", "stft_with_adjoint"]


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
        stft, L = ctx.stft, ctx.length
        N = stft.n_fft
        lead = grad.shape[:-2]
        g = grad.reshape(-1, *grad.shape[-2:]).transpose(1, 2)  # [B, T, F]
        # Re(sum over the one-sided bins of g_k e^{2 pi i k n / N}) = N/2 irfft(g') with the
        # bins that irfft counts once (DC, and Nyquist for even N) doubled.
        g = torch.cat([g[..., :1] * 2, g[..., 1:-1], g[..., -1:] * (2 if N % 2 == 0 else 1)], dim=-1)
        frames = torch.fft.irfft(g, n=N, dim=-1) * (stft.window * (N / 2 * stft._scale))
        y = stft._overlap_add(frames)
        if stft.pad:  # centred frames, or explicit padding (HiFi-GAN framing)
            p = stft.pad
            full = L + 2 * p
            y = y[:, :full] if y.shape[-1] >= full else torch.nn.functional.pad(y, (0, full - y.shape[-1]))
            gx = y[:, p:p + L].clone()
            if stft.pad_mode == "reflect" and L > p:  # padded[i] = x[p - i], padded[p + L + i] = x[L - 2 - i]
                gx[:, 1:p + 1] += y[:, :p].flip(-1)
                gx[:, L - 1 - p:L - 1] += y[:, p + L:].flip(-1)
        else:
            gx = y[:, :L] if y.shape[-1] >= L else torch.nn.functional.pad(y, (0, L - y.shape[-1]))
        return gx.reshape(*lead, L), None


def stft_with_adjoint(stft: STFT, x: torch.Tensor) -> torch.Tensor:
    """``stft.forward(x)``, differentiable with a fast hand-written backward (reflect or zero
    padding); other padding modes go through plain autograd."""
    if stft.pad and stft.pad_mode not in ("reflect", "constant"):
        return stft.forward(x)
    return _STFTFunction.apply(x, stft)


def lbfgs_waveform(target: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor],
                   x0: torch.Tensor, *, n_iter: int = 100, monitor: Monitor | None = None,
                   monitor_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   lr: float = 1.0, history_size: int = 10,
                   line_search: str | None = "strong_wolfe") -> torch.Tensor:
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
            fn = monitor_fn or transform
            if monitor.step(i, lambda: fn((z * scale).detach())):
                break
    return torch.nan_to_num((z * scale).detach(), nan=0.0, posinf=0.0, neginf=0.0)


def lbfgs(mag: torch.Tensor, stft: STFT, *, n_iter: int = 100, init: torch.Tensor | None = None,
          length: int | None = None, monitor: Monitor | None = None, lr: float = 1.0,
          history_size: int = 10, power: float = 1.0,
          domain: Callable[[torch.Tensor], torch.Tensor] | None = None,
          domain_target: torch.Tensor | None = None) -> torch.Tensor:
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

    if domain is not None:
        if domain_target is None:
            raise ValueError("domain given without domain_target")
        return lbfgs_waveform(domain_target, lambda x: domain(magnitude(x)), x0, n_iter=n_iter,
                              monitor=monitor, monitor_fn=lambda x: domain(fit(stft.forward(x).abs())),
                              lr=lr, history_size=history_size)
    target = mag if power == 1 else mag.pow(power)
    return lbfgs_waveform(target, magnitude, x0, n_iter=n_iter, monitor=monitor,
                          monitor_fn=lambda x: fit(stft.forward(x).abs()),
                          lr=lr, history_size=history_size)
