"""Single pass spectrogram inversion (SPSI), a non-iterative phase reconstruction.

G. T. Beauregard, M. Harish, L. Wyse, "Single pass spectrogram inversion", Proc. IEEE
International Conference on Digital Signal Processing (DSP), Singapore, 2015 (sometimes cited
as "Beauregard, Harrison & Wyse, DAFx 2015").

Each frame is read as a sum of stationary sinusoids, one per spectral peak (a bin larger than
both neighbours). For a peak at bin ``k`` with magnitudes ``alpha, beta, gamma`` at ``k-1, k,
k+1``, quadratic interpolation gives the true frequency ``k + p`` bins::

    p = (alpha - gamma) / (2 (alpha - 2 beta + gamma)),    omega = 2 pi (k + p) / N

and the peak's phase advances by one hop: ``phi_t(k) = phi_{t-1}(k) + a omega``. The bins of
the peak's lobe (down to the trough on each side) are phase-locked to it with the paper's
+-pi rule (frame-start phase reference, as ``torch.stft``): if ``p > 0`` the first bin to the
right and all bins to the left get ``phi + pi``, the further bins to the right ``phi``; mirrored
if ``p < 0``. Bins reached by no peak keep their previous phase, and a trough claimed by two
peaks goes to the right one (the paper's left-to-right loop).

The per-bin recursion ``phi_t = phi_{t-1}[src_t] + inc_t`` (``src_t`` the bin whose phase a
bin inherits) is a composition of maps, so instead of a loop over frames it is evaluated as a
parallel prefix scan: ``log2(T)`` rounds of gathers over ``[..., F, T]``.

Shapes: ``mag [..., F, T]`` (``F = n_fft // 2 + 1``) -> phase ``[..., F, T]`` / waveform
``[..., length]``.
"""
from __future__ import annotations

import math

import torch

from ..dsp.stft import STFT
from .base import Monitor

__all__ = ["spsi", "spsi_phase"]


def _lobe_maps(mag: torch.Tensor, hop: int, n_fft: int):
    """Per frame, the bin each bin inherits its phase from and the phase it adds.

    ``mag`` is ``[B, T, F]`` (bins last, contiguous); returns ``src`` (int64) and ``inc``, same
    shape.
    """
    B, T, F = mag.shape
    dev, real = mag.device, mag.dtype
    if F < 3:
        return torch.arange(F, device=dev).expand(B, T, F).clone(), torch.zeros_like(mag)
    # (masks are combined arithmetically: torch.where is several times slower on the CPU)
    # rising / falling to the right; a strict peak is where a rise meets a fall
    up = torch.zeros(B, T, F, dtype=torch.bool, device=dev)
    up[..., :-1] = mag[..., :-1] < mag[..., 1:]
    down = torch.zeros(B, T, F, dtype=torch.bool, device=dev)
    down[..., 1:] = mag[..., 1:] < mag[..., :-1]
    peak = torch.zeros(B, T, F, dtype=torch.bool, device=dev)
    peak[..., 1:-1] = up[..., :-2] & down[..., 2:]
    a, b, c = mag[..., :-2], mag[..., 1:-1], mag[..., 2:]
    pk = peak[..., 1:-1].to(real)
    p = torch.zeros_like(mag)  # quadratic interpolation at peaks (there a - 2b + c < 0)
    p[..., 1:-1] = (a - c).mul_(0.5 * pk).div_((a - 2 * b + c).mul_(pk).sub_(1 - pk))
    k = torch.arange(F, device=dev, dtype=real)
    cycles = (k + p).mul_(hop / n_fft)  # phase advance over one hop, in turns
    advance = cycles.sub_(cycles.floor()).mul_(2 * math.pi)
    # what a flank needs from its peak, in one number: -1 no (usable) peak, else the peak's
    # phase advance over one hop, plus 8 when its frequency lies above the bin (p > 0)
    above = (p > 0).to(real)
    ok = (peak & (p != 0)).to(real)
    code = (advance + 8 * above + 1).mul_(ok).sub_(1)
    # the top of the rising run a bin is on (first bin >= k where the rise stops) and the start
    # of the falling run (last bin <= k where the fall starts)
    ki = torch.arange(F, device=dev)
    stop_i = ((F - 1) - ki).mul(~up).flip(-1).cummax(-1).values.flip(-1).neg_().add_(F - 1)
    start_i = ki.mul(~down).cummax(-1).values
    c_left, c_right = code.gather(-1, stop_i), code.gather(-1, start_i)
    left = up & (c_left >= 0)                       # on the left flank of peak `stop`
    right = down & (c_right >= 0) & ~left           # on the right flank of peak `start`; a
    # trough claimed by both goes to the right-hand peak, processed last in the paper's loop
    # the paper's rule: p > 0: first bin right and all bins left +pi; p < 0: mirrored
    above_l, above_r = c_left >= 8, c_right >= 8
    pi = math.pi
    off_l = (above_l | (stop_i - ki == 1)).to(real).mul_(pi).sub_(8 * above_l.to(real))
    off_r = (~above_r | (ki - start_i == 1)).to(real).mul_(pi).sub_(8 * above_r.to(real))
    inc = advance.mul_(peak)
    inc += (c_left + off_l).mul_(left)
    inc += (c_right + off_r).mul_(right)
    src = (stop_i - ki).mul_(left).add_((start_i - ki).mul_(right)).add_(ki)
    return src, inc.to(real)


def spsi_phase(mag: torch.Tensor, stft: STFT) -> torch.Tensor:
    """Unit-modulus SPSI phase ``[..., F, T]`` (frame-start phase reference, as ``torch.stft``).

    Example
    -------
    >>> import torch
    >>> from specinv_cli.config import STFTConfig
    >>> op = STFT(STFTConfig(n_fft=256, hop_length=64))
    >>> ph = spsi_phase(op.forward(torch.randn(2, 4096)).abs(), op)
    >>> ph.shape, bool(torch.allclose(ph.abs(), torch.ones(())))
    (torch.Size([2, 129, 65]), True)
    """
    lead, (F, T) = mag.shape[:-2], mag.shape[-2:]
    cplx = mag.dtype.to_complex()
    if mag.numel() == 0:
        return torch.ones(mag.shape, dtype=cplx, device=mag.device)
    B, k = lead.numel(), _BLOCK
    nb = -(-T // k)
    # frames in blocks of k, laid out [B, k, nb, F] (frame j k + r at [:, r, j]): the scan
    # composes within blocks along dim 1, then across blocks; zero frames pad the last block
    # (no peak: the identity map)
    m = torch.nan_to_num(mag.reshape(B, F, T), nan=0.0)
    if nb * k != T:
        m = torch.nn.functional.pad(m, (0, nb * k - T))
    m = m.reshape(B, F, nb, k).permute(0, 3, 2, 1).contiguous()
    src, inc = _lobe_maps(m.view(B, k * nb, F), stft.hop, stft.n_fft)
    phase = _scan(src.view(B, k, nb, F), inc.view(B, k, nb, F))
    # (torch.polar is several times slower than the two vectorised functions)
    phase = torch.complex(torch.cos(phase), torch.sin(phase)).to(cplx)
    return phase.permute(0, 3, 2, 1).reshape(B, F, nb * k)[..., :T].reshape(*lead, F, T)


#: frames per block of the two-level scan
_BLOCK = 8


def _scan(src: torch.Tensor, inc: torch.Tensor) -> torch.Tensor:
    """Phases ``[B, k, nb, F]`` of the recursion ``phi_t = phi_{t-1}[src_t] + inc_t`` (``phi`` 0
    before the first frame), frames laid out as in :func:`spsi_phase`.

    Within each block of ``k`` frames the maps are composed by a prefix scan (``log2 k``
    rounds of gathers: after the round with step ``d``, ``(src, inc)`` at position ``r`` is
    the composition of positions ``r - 2d + 1 .. r``); the blocks' totals are a sequence of
    ``nb`` maps, scanned the same way (recursively); then each frame is its block's prefix
    applied to the phase at the end of the previous block. That is ``log2 k + 1`` passes over
    all frames instead of ``log2 T``.
    """
    B, k, nb, F = src.shape
    d = 1
    while d < k:
        s2, i2 = torch.empty_like(src), torch.empty_like(inc)
        s2[:, :d] = src[:, :d]
        i2[:, :d] = inc[:, :d]
        late = src[:, d:]
        torch.gather(src[:, :-d], -1, late, out=s2[:, d:])
        torch.gather(inc[:, :-d], -1, late, out=i2[:, d:])
        i2[:, d:] += inc[:, d:]
        src, inc = s2, i2
        d *= 2
    if nb == 1:
        return inc
    # the totals of blocks 0 .. nb - 2, as frames of the next level
    n2 = nb - 1
    nb2 = -(-n2 // k)
    ts, ti = src[:, -1, :-1], inc[:, -1, :-1]
    if nb2 * k != n2:  # identity maps pad the last block
        ident = torch.arange(F, device=src.device).expand(B, nb2 * k - n2, F)
        ts = torch.cat([ts, ident], dim=1)
        ti = torch.cat([ti, ti.new_zeros(B, nb2 * k - n2, F)], dim=1)
    ts = ts.reshape(B, nb2, k, F).transpose(1, 2).contiguous()
    ti = ti.reshape(B, nb2, k, F).transpose(1, 2).contiguous()
    ends = _scan(ts, ti).transpose(1, 2).reshape(B, nb2 * k, F)[:, :n2]
    ends = torch.remainder(ends, 2 * math.pi)  # keep the sums small (float32 precision)
    # block j >= 1 starts from the phase at the end of block j - 1
    out = inc.clone()
    prev = ends.unsqueeze(1).expand(B, k, n2, F)
    out[:, :, 1:] += torch.gather(prev, -1, src[:, :, 1:])
    return out


def spsi(mag: torch.Tensor, stft: STFT, *, n_iter: int = 0, init: torch.Tensor | None = None,
         length: int | None = None, monitor: Monitor | None = None) -> torch.Tensor:
    """Waveform ``[..., length]`` from ``mag [..., F, T]`` with the SPSI phase.

    ``n_iter`` and ``init`` are ignored (non-iterative). See :func:`spsi_phase`.

    Example
    -------
    >>> import torch
    >>> from specinv_cli.config import STFTConfig
    >>> op = STFT(STFTConfig(n_fft=256, hop_length=64))
    >>> spsi(op.forward(torch.randn(4096)).abs(), op, length=4096).shape
    torch.Size([4096])
    """
    if length is None:
        length = stft.default_length(mag.shape[-1])
    return stft.inverse(mag * spsi_phase(mag, stft), length)
