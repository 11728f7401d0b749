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

One implementation, offline and streaming: RTISI-LA is the online framework of
:mod:`.online` with the GLA rule, the asymmetric window and (``frame_init="partial"``) empty
entering frames; :func:`rtisi_la` pushes the whole spectrogram through that stream
(:class:`~.online.OnlineStream`) frame by frame, and ``specinv stream -m rtisi-la``
(:class:`specinv_cli.streaming.StreamingInverter`) runs the same steps as the frames arrive,
so the two give the same samples. Output samples covered only by frames ``< k`` depend only on
the magnitudes of frames ``< k + LA``; algorithmic latency ``n_fft + (LA - 1) hop`` samples. ``monitor.step`` is called as committed frames reach
fractions ``i / n_iter`` of the signal, with the current (partial) estimate; its early stop is
ignored, since stopping would leave the rest of the stream unprocessed.

Shapes: ``mag [..., F, T]`` -> waveform ``[..., length]``; the batch is processed together.
"""
from __future__ import annotations

import torch

from ..dsp.stft import STFT, fit_frames
from .base import Monitor
from .online import asymmetric_windows, online

__all__ = ["rtisi_la", "asymmetric_windows"]


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
    T = mag.shape[-1]
    LA = (stft.win_length - 1) // stft.hop if look_ahead < 0 else int(look_ahead)
    reported = [0]

    def on_step(entered: int, estimate) -> None:  # `entered` frames in: entered - LA committed
        done = min(max(entered - LA, 0), T)
        while reported[0] < (done * n_iter) // T:
            reported[0] += 1
            monitor.step(reported[0], estimate)  # early stop ignored: streaming

    y = online(mag, stft, n_iter=n_iter, init=init if frame_init == "init" else None, length=length,
               look_ahead=LA, rule="gla", asymmetric_window=asymmetric_window,
               on_step=on_step if n_iter > 0 and monitor.active and T else None)
    if n_iter > 0 and monitor.active and T:
        while reported[0] < n_iter:  # the last frames are committed by the flush
            reported[0] += 1
            monitor.step(reported[0], lambda: fit_frames(stft.forward(y).abs(), T))
    if monitor.iterations < n_iter and n_iter > 0:
        monitor.iterations = n_iter
    return y
