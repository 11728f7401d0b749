"""Real-time phase gradient heap integration (RTPGHI), a streaming non-iterative phase.

Z. Průša, P. L. Søndergaard, "Real-Time Spectrogram Inversion Using Phase Gradient Heap
Integration", Proc. 19th Int. Conf. on Digital Audio Effects (DAFx-16), 2016.

The phase-magnitude relations, the trapezoidal integration from the largest coefficient
outwards and the frame-start phase reference are those of :mod:`.pghi` (its module docstring);
RTPGHI applies them one frame at a time. When frame ``n`` is integrated, frame ``n - 1`` is
known (its phase is kept): its integrated coefficients above the tolerance start the heap, so the
phase of frame ``n`` continues from them along time and spreads along frequency from there;
coefficients of frame ``n`` not reached from frame ``n - 1`` (an onset) start islands of their
own, largest first. pghi's kernel does the walk, on a window of two or three frames.

Algorithmic delay (``look_ahead``, in frames): the time derivative of ``log s`` at frame ``n``
is the centred difference of frames ``n - 1`` and ``n + 1`` with ``look_ahead=1`` (the phase of
frame ``n`` is given when frame ``n + 1`` arrives), the backward difference of frames ``n - 1``
and ``n`` with ``look_ahead=0`` (no delay). In a stream whose samples are final once their
frames' phases are known, that is an algorithmic latency of ``n_fft + (look_ahead - 1) hop``
samples (34.8 and 46.4 ms at 22.05 kHz, n_fft 1024, hop 256). Causality: the phase of frames ``<= k`` depends
only on the magnitudes of frames ``<= k + look_ahead``. The state is two or three magnitude
frames and the phase of the last frame given, whatever the stream's length.

Differences from the paper: the tolerance is relative to the largest magnitude in the frames
the window holds (``n - 1 .. n + look_ahead``), the global maximum being unknown in a stream.
The known frame's coefficients are expanded before the heap's own order (each passes its
prediction to frame ``n``), and, as in :mod:`.pghi`'s default, a coefficient gets the
``s^2``-weighted circular mean of the predictions of all its neighbours integrated before it
rather than the first one's. Coefficients not integrated get a uniform random phase from a
counter-based hash of their bin and of the absolute frame index, so that they do not repeat
periodically. The first frame is integrated alone (with ``look_ahead=1`` the forward difference
to frame 1, as at the start of the offline version; with 0 no time difference), and
:meth:`RTPGHIStream.flush` gives the last one with the backward difference, as at the end of
the offline version.

Shapes: :class:`RTPGHIStream` ``push(mag [B, F])`` -> phase ``[B, F]`` (of frame
``n - look_ahead``); :func:`rtpghi_phase` ``mag [..., F, T]`` -> phase ``[..., F, T]``;
:func:`rtpghi` -> waveform ``[..., length]`` (``F = n_fft // 2 + 1``).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..dsp.stft import STFT, window_gamma
from .pghi import floor_and_threshold, integrate_frames
from .base import Monitor

__all__ = ["RTPGHIStream", "rtpghi", "rtpghi_phase", "DEFAULT_REL_TOL"]

#: Default tolerance, relative to the window's largest magnitude: on the corpus the spectral
#: convergence is flat from 1e-4 down to 0 and worsens from 1e-3 up; 1e-5 as :mod:`.pghi`.
DEFAULT_REL_TOL = 1e-5


class RTPGHIStream:
    """Streaming RTPGHI phase: one magnitude frame in, the phase of the frame ``look_ahead``
    frames earlier out.

    Parameters
    ----------
    stft : the STFT operator the magnitudes come from (window, hop, n_fft).
    look_ahead : 1 (centred time difference, one frame of delay) or 0 (backward difference, no
        delay).
    rel_tol : coefficients below ``rel_tol`` times the largest magnitude of the frames held
        (``n - 1 .. n + look_ahead``) are not integrated and get random phase.
    batch : number ``B`` of independent streams pushed together.

    Example
    -------
    >>> import torch
    >>> from specinv_cli.config import STFTConfig
    >>> op = STFT(STFTConfig(n_fft=256, hop_length=64))
    >>> mag = op.forward(torch.randn(2, 4096)).abs()  # [2, 129, 65]
    >>> stream = RTPGHIStream(op, look_ahead=1, batch=2)
    >>> stream.push(mag[..., 0]) is None, stream.push(mag[..., 1]).shape
    (True, torch.Size([2, 129]))
    >>> stream.flush().shape  # the last frame pushed
    torch.Size([2, 129, 1])
    """

    def __init__(self, stft: STFT, *, look_ahead: int = 1, rel_tol: float = DEFAULT_REL_TOL,
                 batch: int = 1):
        if isinstance(look_ahead, bool) or look_ahead not in (0, 1):
            raise ValueError(f"look_ahead must be 0 or 1 (frames of delay), got {look_ahead!r}")
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        rel_tol = float(rel_tol)
        if not 0.0 <= rel_tol <= 1.0:
            raise ValueError(f"rel_tol must be in [0, 1], got {rel_tol!r}")
        self.look_ahead = int(look_ahead)
        self.rel_tol = rel_tol
        self.batch = int(batch)
        self.n_freqs = stft.n_fft // 2 + 1
        gamma = window_gamma(stft.config.window, stft.win_length)
        a, M = float(stft.hop), float(stft.n_fft)
        self._steps = (a * 2 * math.pi / M, a * M / gamma, -gamma / (a * M))  # ta, tb, fc
        B, F, W = self.batch, self.n_freqs, self.look_ahead + 2
        # the window: frames n - 1 .. n + look_ahead, the newest in the last column
        self._s = np.zeros((B, F, W), dtype=np.float32)
        self._out = np.ones((B, F, W), dtype=np.complex64)  # the kernel's output, per window
        self._done = np.zeros((B, F, W), dtype=np.uint8)
        self._phase = np.ones((B, F), dtype=np.complex64)  # the last frame given, and whether
        self._known = np.zeros((B, F), dtype=np.uint8)  # integrated (not random) there
        self._n = 0  # frames pushed
        self._finished = False
        self._like = (torch.complex64, torch.device("cpu"))  # of the last push, for flush

    @property
    def frames_pushed(self) -> int:
        return self._n

    def push(self, mag: torch.Tensor) -> torch.Tensor | None:
        """``mag [B, F]`` (one frame per stream, ``B`` independent streams); returns the
        unit-modulus phase ``[B, F]`` (complex dtype of ``mag``, ``torch.stft``'s frame-start
        phase reference, same device as ``mag``) of frame ``n - look_ahead``, or ``None``
        while fewer than ``look_ahead + 1`` frames have arrived."""
        if not isinstance(mag, torch.Tensor):
            raise ValueError(f"mag must be a torch.Tensor, got {type(mag).__name__}")
        if not mag.dtype.is_floating_point:
            raise ValueError(f"mag must be a real floating-point tensor (magnitudes), got {mag.dtype}")
        if tuple(mag.shape) != (self.batch, self.n_freqs):
            raise ValueError(f"mag must be one frame per stream, of shape [batch, n_fft // 2 + 1] = "
                             f"[{self.batch}, {self.n_freqs}], got {list(mag.shape)}")
        self._like = (mag.dtype.to_complex(), mag.device)
        ph = self._advance(mag.detach().to(device="cpu", dtype=torch.float32).numpy())
        return None if ph is None else self._tensor(ph)

    def flush(self) -> torch.Tensor:
        """The phases of the frames still pending ``[B, F, k]`` (``k = min(look_ahead, frames
        pushed)``), the last ones with a one-sided difference as at the end of the offline
        version; afterwards the stream is finished."""
        ph = self._flush()
        return self._tensor(ph)

    def _tensor(self, ph: np.ndarray) -> torch.Tensor:
        cplx, device = self._like
        return torch.from_numpy(ph).to(device=device, dtype=cplx)

    def _check_open(self):
        if self._finished:
            raise RuntimeError("this RTPGHIStream is finished (flush was called); start a new one")

    def _advance(self, frame: np.ndarray) -> np.ndarray | None:
        """One frame ``[B, F]`` float32 in; the new phase ``[B, F]`` (a new array) or None."""
        self._check_open()
        s = self._s
        for j in range(s.shape[-1] - 1):  # column by column: an overlapping slice copies twice
            s[:, :, j] = s[:, :, j + 1]
        s[:, :, -1] = frame
        self._n += 1
        k = self._n - 1 - self.look_ahead  # the frame whose phase is due
        if k < 0:
            return None
        if k == 0:  # nothing known yet: frames 0 .. look_ahead
            return self._solve(np.ascontiguousarray(s[:, :, 1:]), k, known=False)
        return self._solve(s, k, known=True)

    def _flush(self) -> np.ndarray:
        self._check_open()
        self._finished = True
        B, F = self.batch, self.n_freqs
        if self.look_ahead == 0 or self._n == 0:
            return np.ones((B, F, 0), dtype=np.complex64)
        k = self._n - 1  # the newest frame: one-sided (backward) difference from frame k - 1
        if k == 0:
            ph = self._solve(np.ascontiguousarray(self._s[:, :, -1:]), k, known=False)
        else:
            ph = self._solve(np.ascontiguousarray(self._s[:, :, -2:]), k, known=True)
        return ph[:, :, None]

    def _solve(self, s: np.ndarray, k: int, known: bool) -> np.ndarray:
        """Integrate frame ``k`` (column ``known`` of ``s [B, F, T]``, frame ``k - 1`` before
        it when ``known``); updates the known phase and returns a copy of it."""
        B, F, T = s.shape
        kl = int(known)
        if s is self._s:
            out, done = self._out, self._done
        else:
            out = np.ones((B, F, T), dtype=np.complex64)
            done = np.zeros((B, F, T), dtype=np.uint8)
        if known:
            out[:, :, 0] = self._phase
            done[:, :, 0] = self._known
        ta, tb, fc = self._steps
        # the seed is the absolute frame index: (seed << 32) ^ (m T + t) never repeats
        seed = np.int64(k & 0xFFFFFFFF)
        peaks = s.reshape(B, -1).max(axis=1)
        for b in range(B):
            # pghi's floor and threshold, relative to the window's largest magnitude
            fl, thr = floor_and_threshold(float(peaks[b]), self.rel_tol)
            integrate_frames(s[b], fl, 0, kl + 1, kl, 0, thr, ta, tb, fc, True, seed, out[b], done[b])
        self._phase[...] = out[:, :, kl]
        self._known[...] = done[:, :, kl]
        return self._phase.copy()


def rtpghi_phase(mag: torch.Tensor, stft: STFT, *, look_ahead: int = 1,
                 rel_tol: float = DEFAULT_REL_TOL) -> torch.Tensor:
    """``mag [..., F, T]`` -> unit phase ``[..., F, T]``: an :class:`RTPGHIStream` run over all
    frames (batch dimensions flattened into its streams).

    Example
    -------
    >>> import torch
    >>> from specinv_cli.config import STFTConfig
    >>> op = STFT(STFTConfig(n_fft=256, hop_length=64))
    >>> mag = op.forward(torch.randn(2, 4096)).abs()
    >>> ph = rtpghi_phase(mag, op, look_ahead=0)
    >>> ph.shape, bool(torch.allclose(ph.abs(), torch.ones(())))
    (torch.Size([2, 129, 65]), True)
    """
    if mag.dim() < 2:
        raise ValueError(f"mag must be [..., F, T], got shape {list(mag.shape)}")
    lead, (F, T) = mag.shape[:-2], mag.shape[-2:]
    cplx = mag.dtype.to_complex()
    B = lead.numel()
    if B == 0 or T == 0:
        if F != stft.n_fft // 2 + 1:
            raise ValueError(f"mag must have n_fft // 2 + 1 = {stft.n_fft // 2 + 1} bins, got {F}")
        return torch.ones(mag.shape, dtype=cplx, device=mag.device)
    stream = RTPGHIStream(stft, look_ahead=look_ahead, rel_tol=rel_tol, batch=B)
    if F != stream.n_freqs:
        raise ValueError(f"mag must have n_fft // 2 + 1 = {stream.n_freqs} bins, got {F}")
    s = mag.detach().reshape(B, F, T).to(device="cpu", dtype=torch.float32).numpy()
    out = np.empty((B, F, T), dtype=np.complex64)
    for n in range(T):
        ph = stream._advance(s[:, :, n])
        if ph is not None:
            out[:, :, n - stream.look_ahead] = ph
    rest = stream._flush()
    out[:, :, T - rest.shape[-1]:] = rest
    return torch.from_numpy(out).to(device=mag.device, dtype=cplx).reshape(*lead, F, T)


def rtpghi(mag: torch.Tensor, stft: STFT, *, n_iter: int = 0, init: torch.Tensor | None = None,
           length: int | None = None, monitor: Monitor | None = None, look_ahead: int = 1,
           rel_tol: float = DEFAULT_REL_TOL) -> torch.Tensor:
    """Waveform ``[..., length]`` from ``mag [..., F, T]`` with the RTPGHI phase.

    ``n_iter`` and ``init`` are ignored (non-iterative), as in :func:`.pghi.pghi`. See
    :func:`rtpghi_phase`.

    Example
    -------
    >>> import torch
    >>> from specinv_cli.config import STFTConfig
    >>> op = STFT(STFTConfig(n_fft=256, hop_length=64))
    >>> rtpghi(op.forward(torch.randn(4096)).abs(), op, length=4096).shape
    torch.Size([4096])
    """
    if length is None:
        length = stft.default_length(mag.shape[-1])
    ph = rtpghi_phase(mag, stft, look_ahead=look_ahead, rel_tol=rel_tol)
    return stft.inverse(mag * ph, length)
