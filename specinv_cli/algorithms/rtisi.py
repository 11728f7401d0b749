"""Real-time iterative spectrogram inversion with look-ahead (RTISI-LA).

X. Zhu, G. T. Beauregard and L. L. Wyse, "Real-time signal estimation from modified short-time
Fourier transform magnitude spectra", IEEE Trans. Audio, Speech, Lang. Process. 15(5), 2007.

Frames are processed in time order, as on a stream. At step ``m`` the block of ``K = LA + 1``
active frames ``m .. m + LA`` (``LA`` look-ahead frames; frame ``m + LA`` has just entered)
is refined ``ceil(n_iter / K)`` times with the frames before ``m`` frozen ("committed")::

    y      = (c + sum_k OLA(w * irfft(X_k))) / E        partial reconstruction on the block
    X_k    <- |S_k| * U(rfft(a_k * y[k-th frame]))       re-analysis, target magnitude imposed

where ``c`` is the overlap-add of the committed frames, ``E`` the overlap-add of ``w^2`` over the
frames from the first one on, as if the signal went on (so ``w / E`` is the canonical dual
window inside the signal, the paper's synthesis window), ``U(z) = z/|z|``
and ``a_k = w`` except for the newest frame, whose analysis window is the paper's asymmetric
window: the mirror image of the partial-reconstruction envelope over that frame
(``P(t) = sum_{j>=0} w^2(t + j hop) / E(t)``, frames after the newest one missing), so that
``a * P`` is symmetric and the badly known tail of the newest frame weighs little. In the first
iteration after a frame enters it is still empty, and the envelope excludes it (``j >= 1``).
Then frame ``m`` is committed (added to ``c``) and the block moves on by one frame.

Initial phase of a new frame (``frame_init``): ``partial`` (the paper's): the new frame starts
empty, so the first iteration takes its phase from the analysis of the committed frames and
the other look-ahead frames; ``init``: the frame starts from the phase of ``init`` (e.g. from
``--init pghi``), and the partial reconstruction includes it from the first iteration.

Differences from the paper: the ``K`` frames of the block are updated together from the same
partial reconstruction (Jacobi, one batched FFT of ``[B, K, n_fft]``) instead of one after the
other, which is what keeps the per-frame overhead low. ``n_iter`` counts the updates each frame
gets in all, over its ``K`` steps (as GLA's iterations update every frame once), so that
methods compare at equal ``n_iter``; the paper's (and ltfat's) per-step count is
``n_iter / K``. Frames outside the signal are virtual
frames with zero magnitude, so every step has the same shapes.

Edges: ``torch.stft``'s centred frames hang over a reflected copy of the signal's ends. The
stream treats the padded signal as free, so the first and last two or three frames keep a
larger error than the interior (GLA re-imposes the reflection at every projection).

Streaming property: output samples covered only by frames ``< k`` depend only on the
magnitudes of frames ``< k + LA``. ``monitor.step`` is called as committed frames reach
fractions ``i / n_iter`` of the signal, with the current (partial) estimate; its early stop is
ignored, since stopping would leave the rest of the stream unprocessed.

Shapes: ``mag [..., F, T]`` -> waveform ``[..., length]``; the batch is processed together.
"""
from __future__ import annotations

import torch

from ..dsp.stft import STFT, fit_frames
from .base import Monitor

__all__ = ["rtisi_la", "asymmetric_windows"]


def _steady_envelope(w: torch.Tensor, hop: int) -> torch.Tensor:
    """``E(t) = sum_j w^2(t + j hop)`` over the frame support (all overlapping frames)."""
    n = w.shape[-1]
    w2 = w.to(torch.float64) ** 2
    e = torch.zeros(n, dtype=torch.float64, device=w.device)
    for j in range(-((n - 1) // hop), (n - 1) // hop + 1):  # shifts of the window that overlap
        lo, hi = max(0, -j * hop), min(n, n - j * hop)
        if lo < hi:
            e[lo:hi] += w2[lo + j * hop:hi + j * hop]
    return e


def asymmetric_windows(w: torch.Tensor, hop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The newest frame's analysis windows ``(a_first, a_later)`` (see the module docstring).

    ``a_later`` mirrors ``P(t) = sum_{j>=0} w^2(t + j hop) / E(t)`` (the frame and the earlier
    ones); ``a_first`` mirrors the same sum over ``j >= 1`` (the new frame still empty).
    """
    n = w.shape[-1]
    w2 = torch.cat([w.to(torch.float64) ** 2, w.new_zeros(n + 1, dtype=torch.float64)])
    e = _steady_envelope(w, hop)
    tiny = e.max() * 1e-11
    e_ext = torch.cat([e, e[:1]])  # P on t = 0 .. n; the envelope is hop-periodic
    partial = [torch.zeros(n + 1, dtype=torch.float64, device=w.device) for _ in range(2)]
    for j in range(0, n // hop + 1):
        contrib = w2[j * hop:j * hop + n + 1]
        partial[1] += contrib
        if j >= 1:
            partial[0] += contrib
    out = []
    for p in partial:
        p = torch.where(e_ext > tiny, p / e_ext.clamp_min(tiny), torch.zeros_like(p))
        a = p.flip(0)[:n]  # a(t) = P(n - t): mirror about the frame centre
        out.append(a.to(w.dtype))
    return out[0], out[1]


def rtisi_la(mag: torch.Tensor, stft: STFT, *, n_iter: int = 100, init: torch.Tensor | None = None,
             length: int | None = None, monitor: Monitor | None = None, look_ahead: int = -1,
             asymmetric_window: bool = True, frame_init: str = "partial") -> torch.Tensor:
    """RTISI-LA (Zhu, Beauregard & Wyse 2007): frame-by-frame inversion with look-ahead.

    Parameters
    ----------
    mag : target magnitudes ``[..., F, T]``.
    stft : the STFT operator (settings, device, dtype).
    n_iter : updates of each frame in all; every step (committed frame) runs
        ``ceil(n_iter / (look_ahead + 1))`` iterations on the block (at least one).
        Cost grows as ``n_iter`` times the frame count, in small sequential FFTs.
    init : complex initial estimate ``[..., F, T]``; only its phase is used, and only with
        ``frame_init="init"``.
    length : output samples (default ``stft.default_length(T)``).
    monitor : receives the partial estimate's magnitude as the stream progresses.
    look_ahead : frames of look-ahead ``LA``; ``-1`` is ``(win_length - 1) // hop``.
    asymmetric_window : the paper's asymmetric analysis window on the newest frame.
    frame_init : ``partial`` (paper: phase from the partial reconstruction) or ``init``.

    Example
    -------
    >>> import torch
    >>> from specinv_cli.config import STFTConfig
    >>> op = STFT(STFTConfig(n_fft=256, hop_length=64))
    >>> x = torch.randn(1, 4096)
    >>> y = rtisi_la(op.forward(x).abs(), op, n_iter=8, length=4096)
    >>> y.shape
    torch.Size([1, 4096])
    """
    if frame_init not in ("partial", "init"):
        raise ValueError(f"frame_init must be 'partial' or 'init', got {frame_init!r}")
    monitor = monitor or Monitor()
    lead = mag.shape[:-2]
    F_, T = mag.shape[-2], mag.shape[-1]
    if length is None:
        length = stft.default_length(T)
    N, S = stft.n_fft, stft.hop
    LA = (stft.win_length - 1) // S if look_ahead < 0 else int(look_ahead)
    K = LA + 1
    R = -(-N // S)  # hops spanned by one frame
    dev, real = mag.device, stft.window.dtype
    cplx = real.to_complex()
    eps = torch.finfo(real).tiny ** 0.5
    n_steps = max(-(-int(n_iter) // K), 1)  # iterations per step

    B = 1
    for d in lead:
        B *= d
    # Frames as rows [B, T, F]; LA virtual zero frames on each side keep every block full.
    target = mag.reshape(B, F_, T).transpose(1, 2).to(real)
    target = torch.nn.functional.pad(target, (0, 0, LA, LA))
    phase0 = None
    if frame_init == "init" and init is not None:
        phase0 = init.reshape(B, F_, T).transpose(1, 2).to(cplx)
        phase0 = phase0 / phase0.abs().clamp_min(eps)
        phase0 = torch.nn.functional.pad(phase0, (0, 0, LA, LA))

    w = stft.window
    wsyn = w / stft._scale if stft.normalized else w  # irfft undoes rfft; undo the scaling too
    # Buffer in padded-signal coordinates shifted by LA hops; frame f (real index f - LA) starts
    # at f * S. R extra hops at the end so that every frame fits whole.
    buf_hops = T + 2 * LA + R
    acc = torch.zeros(B, buf_hops * S, device=dev, dtype=real)
    w2 = w.to(torch.float64) ** 2

    def envelope(n_frames: int) -> torch.Tensor:
        # Overlap-add of w^2 over n_frames frames from the first real one (buffer frame LA).
        e = torch.zeros(buf_hops * S, device=dev, dtype=torch.float64)
        ola_w2 = stft._overlap_add(w2.expand(1, n_frames, N).contiguous())[0]
        e[LA * S:LA * S + ola_w2.shape[-1]] = ola_w2
        return e

    env = envelope(T)
    tiny = env.max() * 1e-11
    inv_env = torch.where(env > tiny, 1.0 / env.clamp_min(tiny), torch.zeros_like(env)).to(real)
    # Inside the block the paper's dual window w / E uses the envelope of all frames from the
    # first one on, as if the signal went on: at the end the exact envelope falls to w^2, and
    # dividing by it would blow up the badly known tail of the last frames (the final output
    # uses the exact one). Future frames are missing on the newest frames' tails, as in the paper.
    env_c = envelope(T + LA + 1)
    inv_causal = torch.where(env_c > tiny, 1.0 / env_c.clamp_min(tiny), torch.zeros_like(env_c)).to(real)
    span = (K - 1) * S + N  # block region length

    ana = w.expand(K, N).clone()  # analysis windows of the block's rows
    ana_first = ana
    if asymmetric_window:
        a1, a2 = asymmetric_windows(w, S)
        ana[-1] = a2
        ana_first = ana.clone()
        ana_first[-1] = a1 if phase0 is None else a2

    X = torch.zeros(B, K, F_, device=dev, dtype=cplx)  # current estimates of the active frames
    ola = torch.zeros(B, K + R - 1, S, device=dev, dtype=real)

    ola_flat = ola.view(B, -1)

    def block_ola(frames: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        # base + overlap-add of frames [B, K, N] -> [B, span], by R shifted adds (no loop
        # over frames), into the preallocated buffer.
        if base is not None and span == ola_flat.shape[-1]:
            ola_flat.copy_(base)
        else:
            ola.zero_()
            if base is not None:
                ola_flat[:, :span] = base
        if N % S:
            frames = torch.nn.functional.pad(frames, (0, R * S - N))
        blocks = frames.reshape(B, K, R, S)
        for r in range(R):
            ola[:, r:r + K] += blocks[:, :, r]
        return ola_flat[:, :span]

    def estimate_mag() -> torch.Tensor:
        # Committed frames plus the rest of the block (its first frame was just committed).
        full = acc.clone()
        lo = step * S
        frames = torch.fft.irfft(X, n=N, dim=-1) * wsyn
        frames[:, 0] = 0
        full[:, lo:lo + span] += block_ola(frames)
        sig = (full * inv_env)[:, LA * S:]
        start = stft.pad  # centred frames or explicit padding (HiFi-GAN framing)
        sig = sig[:, start:start + length]
        if sig.shape[-1] < length:
            sig = torch.nn.functional.pad(sig, (0, length - sig.shape[-1]))
        out = fit_frames(stft.forward(sig).abs(), T)
        return out.reshape(*lead, F_, T)

    reported = 0
    total = T + LA  # steps; step s has active (buffer) frames s .. s + LA
    step = 0
    for step in range(total):
        # Shift the block: the oldest frame was committed, a new frame enters at the end.
        if step > 0:
            X[:, :-1] = X[:, 1:].clone()
        new = step + LA
        if phase0 is not None:
            X[:, -1] = target[:, new] * phase0[:, new]
        else:
            X[:, -1] = 0
        mags = target[:, step:step + K]
        lo = step * S
        committed = acc[:, lo:lo + span]
        # Fold the dual-window normalisation into the analysis windows of this step.
        inv_e = inv_causal[lo:lo + span].unfold(-1, N, S)  # [K, N]
        ana_it, ana_0 = inv_e * ana, inv_e * ana_first
        for it in range(n_steps):
            frames = torch.fft.irfft(X, n=N, dim=-1).mul_(wsyn)
            seg = block_ola(frames, committed).unfold(-1, N, S)  # [B, K, N] views of the frames
            # + eps: zero phase where the analysis is exactly 0 (e.g. the very first frame).
            spec = torch.fft.rfft(seg * (ana_0 if it == 0 else ana_it), dim=-1).add_(eps)
            X = spec.mul_(mags / spec.abs().clamp_min_(eps))
        # Commit the oldest frame of the block.
        acc[:, lo:lo + N] += torch.fft.irfft(X[:, 0], n=N, dim=-1) * wsyn
        if n_iter > 0 and monitor.active:
            done = min(max(step - LA + 1, 0), T)  # real frames committed so far
            i = (done * n_iter) // T
            while reported < i:
                reported += 1
                monitor.step(reported, estimate_mag)  # early stop ignored: streaming
    sig = (acc * inv_env)[:, LA * S:]
    start = stft.pad
    sig = sig[:, start:start + length]
    if sig.shape[-1] < length:
        sig = torch.nn.functional.pad(sig, (0, length - sig.shape[-1]))
    if monitor.iterations < n_iter and n_iter > 0:
        monitor.iterations = n_iter
    return sig.reshape(*lead, length)
