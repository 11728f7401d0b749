"""Mel-cepstral distortion (MCD) of a waveform against its reference. No click here.

MCD (Kubichek, "Mel-cepstral distance measure for objective speech quality assessment", IEEE
PACRIM 1993), in dB, the mean over frames of::

    (10 / ln 10) * sqrt(2 * sum_{d=1..D} (c_d - c'_d)^2)

between the mel-cepstra ``c`` (estimate) and ``c'`` (reference) of order ``D``; ``c_0`` (the
frame's level) is left out, so a gain does not count. With the cepstra in SPTK's convention
(``ln |H(w~)| = c_0 + sum_m c_m cos(m w~)``) this is the RMS difference, in dB, of the two
cepstrally smoothed log spectra on the warped frequency axis, less their mean.

- :func:`mel_cepstrum`: short-time spectra (a periodic Hann window of ``frame_seconds`` = 25 ms,
  hop ``hop_seconds`` = 5 ms, the speech-synthesis standard that SPTK's examples use; frame ``t``
  centred at ``t * hop``, zero-padded ends; FFT of the next power of two), log magnitudes
  (floored ``floor_db`` = 100 dB below ``max|x| * sum(window)``, the largest magnitude any frame
  can have, so that a gain changes ``c_0`` only and an empty band of the reference, e.g. above a
  recording's original Nyquist, counts as 100 dB down rather than at its rounding noise), their cepstrum, and its frequency warping by the first-order
  all-pass ``z~^-1 = (z^-1 - alpha) / (1 - alpha z^-1)``: SPTK's ``freqt`` (Oppenheim and Johnson,
  "Discrete representation of signals", Proc. IEEE 1972), here a matrix (:func:`warp_matrix`),
  the coefficients of ``z^-n`` as a power series in ``z~^-1``, so that the whole analysis is an
  FFT and one matrix product per frame. ``alpha`` defaults to :func:`default_alpha`.
- :func:`mcd`: the frames are paired as they are (time-aligned outputs: ``dtw=False``), or by
  dynamic time warping of the cepstra (``dtw=True``: steps (1,0), (0,1), (1,1), Euclidean cost,
  within ``dtw_radius`` seconds of the diagonal); pairs whose *reference* frame is more than
  ``silence_db`` = 40 dB below the reference's loudest frame (windowed energy) are left out,
  since their log spectra are the recording's noise floor, which any estimate misses "by tens of
  dB" without being worse for it.

Arrays: waveforms ``[L]``, float; mel-cepstra ``[T, order + 1]``, float64, ``T = 1 + L // hop``.

Example
-------
>>> import numpy as np
>>> x = np.random.default_rng(0).standard_normal(16000) * np.hanning(16000) * 0.1
>>> mel_cepstrum(x, 16000).shape                 # 1 s at 5 ms: 201 frames, c_0..c_24
(201, 25)
>>> default_alpha(16000), default_alpha(22050)
(0.42, 0.455)
>>> mcd(x, x, 16000), round(mcd(0.5 * x, x, 16000), 9)   # itself, and at half the level
(0.0, 0.0)
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .waveform import mono_waveform

__all__ = ["mel_cepstrum", "mcd", "default_alpha", "warp_matrix", "framing", "ALPHAS",
           "FRAME_SECONDS", "HOP_SECONDS", "FLOOR_DB", "SILENCE_DB", "DTW_RADIUS"]

#: SPTK's usual all-pass constants at the common rates (the values its documentation and
#: examples give, and what a least-squares fit to the mel scale yields, except 0.42 at 16 kHz).
ALPHAS = {8000: 0.31, 16000: 0.42, 22050: 0.455, 24000: 0.466, 44100: 0.544, 48000: 0.554}
FRAME_SECONDS = 0.025
HOP_SECONDS = 0.005
#: Log magnitudes are floored this far below the largest magnitude a frame can have.
FLOOR_DB = 100.0
#: Reference frames this far below its loudest frame are silence, left out of the mean.
SILENCE_DB = 40.0
#: How far (seconds) a DTW path may stray from the diagonal.
DTW_RADIUS = 1.0
# the MCD's constant: dB per neper times sqrt(2)
K_DB = 10.0 / math.log(10.0) * math.sqrt(2.0)
# frames per FFT block: bounds the memory whatever the length (about 25 MB at n_fft 1024)
BLOCK = 2048


def _number(v, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
        raise ValueError(f"`{name}` must be a finite number, got {v!r}")
    return float(v)


def _rate(sample_rate) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"`sample_rate` must be a positive integer, got {sample_rate!r}")
    return int(sample_rate)


@lru_cache(maxsize=64)
def _fit_alpha(sample_rate: int) -> float:
    # the all-pass phase closest (least squares, 1000 points to Nyquist) to Fant's mel scale
    # 1000/ln 2 ln(1 + f/1000), both normalised at Nyquist; the grid of 0.001 that SPTK's tables use
    f = np.linspace(0.0, sample_rate / 2.0, 1000)
    mel = np.log1p(f / 1000.0)
    mel /= mel[-1]
    w = np.pi * f / (sample_rate / 2.0)
    a = np.arange(0.0, 1.0, 0.001)[:, None]
    warped = (w + 2.0 * np.arctan(a * np.sin(w) / (1.0 - a * np.cos(w)))) / np.pi
    return round(float(a[np.argmin(((warped - mel) ** 2).mean(axis=1)), 0]), 3)


def default_alpha(sample_rate: int) -> float:
    """The all-pass constant whose warping approximates the mel scale at ``sample_rate``: SPTK's
    usual values (:data:`ALPHAS`: 0.42 at 16 kHz, 0.455 at 22.05 kHz, 0.466 at 24 kHz, 0.544 at
    44.1 kHz, 0.554 at 48 kHz), otherwise the least-squares fit of the all-pass phase to the mel
    scale (Fant's, ``ln(1 + f/1000)``) over 0 to Nyquist, to 0.001: the fit those values come from
    (it gives 0.455, 0.466, 0.544, 0.554 at those rates, and 0.41 at 16 kHz)."""
    sr = _rate(sample_rate)
    return ALPHAS.get(sr, _fit_alpha(sr))


def framing(sample_rate: int, *, frame_seconds: float = FRAME_SECONDS, hop_seconds: float = HOP_SECONDS,
            n_fft: int | None = None) -> tuple[int, int, int]:
    """``(win_length, hop_length, n_fft)`` in samples: ``round(frame_seconds * sr)``,
    ``round(hop_seconds * sr)`` and the next power of two from ``win_length`` (or ``n_fft``)."""
    sr = _rate(sample_rate)
    win = int(round(_number(frame_seconds, "frame_seconds") * sr))
    hop = int(round(_number(hop_seconds, "hop_seconds") * sr))
    if win < 4:
        raise ValueError(f"`frame_seconds` {frame_seconds} is under 4 samples at {sr} Hz")
    if hop < 1:
        raise ValueError(f"`hop_seconds` {hop_seconds} is under one sample at {sr} Hz")
    if n_fft is None:
        n_fft = 1 << (win - 1).bit_length()
    elif isinstance(n_fft, bool) or not isinstance(n_fft, (int, np.integer)) or n_fft < win or n_fft % 2:
        raise ValueError(f"`n_fft` must be an even integer >= the window ({win} samples), got {n_fft!r}")
    return win, hop, int(n_fft)


@lru_cache(maxsize=16)
def warp_matrix(n_in: int, order: int, alpha: float) -> np.ndarray:
    """``A [order + 1, n_in]`` with ``c~ = A @ c``: the warped cepstrum of a cepstrum ``c_0..c_{n_in-1}``
    (SPTK's ``freqt``). Column ``n`` is ``z^-n`` expanded in ``z~^-1``, where
    ``z^-1 = (z~^-1 + alpha) / (1 + alpha z~^-1) = alpha + (1 - alpha^2) sum_{k>=1} (-alpha)^(k-1) z~^-k``;
    the series are causal, so cutting each product at ``order`` is exact. Read-only (cached)."""
    m = order + 1
    s = np.zeros(m)
    s[0] = alpha
    if m > 1:
        s[1:] = (1.0 - alpha * alpha) * (-alpha) ** np.arange(m - 1)
    A = np.zeros((m, n_in))
    col = np.zeros(m)
    col[0] = 1.0
    for n in range(n_in):
        A[:, n] = col
        col = np.convolve(col, s)[:m]
    A.setflags(write=False)
    return A


@lru_cache(maxsize=16)
def _analysis_matrix(n_fft: int, order: int, alpha: float) -> np.ndarray:
    # log magnitudes [K] -> one-sided cepstrum (r_0, 2 r_1, ..., 2 r_{N/2-1}, r_{N/2}) -> warped
    K = n_fft // 2 + 1
    r = np.fft.irfft(np.eye(K), n=n_fft, axis=1)[:, :K]
    r[:, 1:K - 1] *= 2.0
    B = r @ warp_matrix(K, order, alpha).T
    B.setflags(write=False)
    return B


def _check_order(order, alpha, n_fft: int, sample_rate: int) -> tuple[int, float]:
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or not 1 <= order < n_fft // 2:
        raise ValueError(f"`order` must be an integer from 1 to {n_fft // 2 - 1}, got {order!r}")
    a = default_alpha(sample_rate) if alpha is None else _number(alpha, "alpha")
    if not abs(a) < 1:
        raise ValueError(f"`alpha` must be in (-1, 1) for a stable all-pass, got {a!r}")
    return int(order), a


def _analyse(x: np.ndarray, win: int, hop: int, n_fft: int, B: np.ndarray, floor_db: float):
    """Mel-cepstra ``[T, order + 1]`` and frame energies in dB ``[T]``, block by block."""
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win) / win)      # periodic Hann
    padded = np.pad(x, (win // 2, win - win // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, win)[::hop]  # a view: no copy
    T = 1 + len(x) // hop
    frames = frames[:T]
    # no frame's magnitude exceeds max|x| * sum(w): floor relative to that, so a gain is c_0 only
    peak = float(np.max(np.abs(x))) * float(window.sum())
    floor = peak * 10.0 ** (-floor_db / 20.0) if peak > 0 else np.finfo(np.float64).tiny
    mc = np.empty((T, B.shape[1]))
    energy = np.empty(T)
    for i in range(0, T, BLOCK):
        fr = frames[i:i + BLOCK] * window
        energy[i:i + len(fr)] = np.einsum("ij,ij->i", fr, fr)
        mag = np.abs(np.fft.rfft(fr, n=n_fft, axis=1))
        mc[i:i + len(fr)] = np.log(np.maximum(mag, floor)) @ B
    with np.errstate(divide="ignore"):
        return mc, 10.0 * np.log10(energy)


def mel_cepstrum(audio: np.ndarray, sample_rate: int, *, order: int = 24, alpha: float | None = None,
                 frame_seconds: float = FRAME_SECONDS, hop_seconds: float = HOP_SECONDS,
                 n_fft: int | None = None, floor_db: float = FLOOR_DB) -> np.ndarray:
    """Mel-cepstra ``[T, order + 1]`` (``c_0..c_order``, SPTK's convention, natural log of the
    magnitude) of a mono waveform ``[L]``.

    Parameters
    ----------
    audio : the waveform ``[L]`` at ``sample_rate``.
    order : the cepstral order ``D`` (24: the usual for 16-24 kHz speech).
    alpha : the all-pass constant (``None``: :func:`default_alpha` of ``sample_rate``; 0: no warping).
    frame_seconds, hop_seconds, n_fft : the framing (:func:`framing`): frame ``t`` covers
        ``x[t hop - win // 2 : t hop - win // 2 + win]`` (zeros beyond the ends) under a periodic
        Hann window, FFT size ``n_fft``; ``T = 1 + L // hop``.
    floor_db : magnitudes are floored at ``max|x| * sum(window)`` less this many dB.
    """
    x = mono_waveform(audio, "audio")
    win, hop, nfft = framing(sample_rate, frame_seconds=frame_seconds, hop_seconds=hop_seconds, n_fft=n_fft)
    order, a = _check_order(order, alpha, nfft, sample_rate)
    floor_db = _number(floor_db, "floor_db")
    return _analyse(x, win, hop, nfft, _analysis_matrix(nfft, order, a), floor_db)[0]


def _dtw_pairs(X: np.ndarray, Y: np.ndarray, radius: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The DTW path ``(i [P], j [P])`` between ``X [T1, D]`` and ``Y [T2, D]`` (Euclidean cost,
    steps (1,0), (0,1), (1,1), from (0,0) to the ends), within ``radius`` frames of the
    diagonal (``None``: anywhere). Row by row; within a row the horizontal steps are a running
    minimum (``D_j = S_j + min_{k<=j} (a_k - S_k + d_k)``, ``S`` the row's cumulative cost), so
    each row is a few vector operations and only the moves (int8) are kept, ``T1 x band``."""
    T1, T2 = len(X), len(Y)
    slope = (T2 - 1) / (T1 - 1) if T1 > 1 else 0.0
    if radius is None:
        los, his = np.zeros(T1, dtype=np.int64), np.full(T1, T2, dtype=np.int64)
    else:
        r = max(int(radius), int(math.ceil(slope)) + 1)     # wide enough for consecutive rows to meet
        centre = np.arange(T1) * slope
        los = np.clip(np.ceil(centre - r), 0, T2 - 1).astype(np.int64)
        his = np.clip(np.floor(centre + r) + 1, 1, T2).astype(np.int64)
        los[0], his[-1] = 0, T2
    width = int((his - los).max())
    moves = np.zeros((T1, width), dtype=np.int8)              # 0 diagonal, 1 from above, 2 from the left
    yy = np.einsum("ij,ij->i", Y, Y)
    prev = None
    for i in range(T1):
        lo, hi = los[i], his[i]
        cols = np.arange(lo, hi)
        d2 = np.einsum("j,j->", X[i], X[i]) + yy[lo:hi] - 2.0 * (Y[lo:hi] @ X[i])
        d = np.sqrt(np.maximum(d2, 0.0))
        if prev is None:
            a = np.full(hi - lo, np.inf)
            a[0] = 0.0                                        # the path starts at (0, 0)
            came = np.zeros(hi - lo, dtype=np.int8)
        else:
            plo, pD = prev
            up = np.full(hi - lo, np.inf)
            dg = np.full(hi - lo, np.inf)
            k = cols - plo
            ok = (k >= 0) & (k < len(pD))
            up[ok] = pD[k[ok]]
            ok = (k >= 1) & (k - 1 < len(pD))
            dg[ok] = pD[k[ok] - 1]
            came = np.where(dg <= up, 0, 1).astype(np.int8)
            a = np.minimum(dg, up)
        S = np.cumsum(d)
        D = S + np.minimum.accumulate(a - S + d)
        # a step from the left where it beats the best from the row above (ties: from above)
        left = np.zeros(hi - lo, dtype=bool)
        left[1:] = D[:-1] < a[1:]
        moves[i, :hi - lo] = np.where(left, 2, came)
        prev = (lo, D)
    i, j = T1 - 1, T2 - 1
    pi, pj = [i], [j]
    while i > 0 or j > 0:
        m = moves[i, j - los[i]]
        if m == 0:
            i, j = i - 1, j - 1
        elif m == 1:
            i -= 1
        else:
            j -= 1
        pi.append(i)
        pj.append(j)
    return np.array(pi[::-1]), np.array(pj[::-1])


def mcd(est: np.ndarray, ref: np.ndarray, sample_rate: int, *, order: int = 24, alpha=None, dtw: bool = False,
        dtw_radius: float | None = DTW_RADIUS, silence_db: float | None = SILENCE_DB,
        frame_seconds: float = FRAME_SECONDS, hop_seconds: float = HOP_SECONDS, n_fft: int | None = None,
        floor_db: float = FLOOR_DB) -> float:
    """Mel-cepstral distortion in dB of ``est`` against ``ref``; ``nan`` when every reference
    frame is silence (a silent reference).

    Parameters
    ----------
    est, ref : mono waveforms ``[L]`` at ``sample_rate``; without ``dtw`` time-aligned (cut to
        the shorter), with it of any lengths.
    order, alpha, frame_seconds, hop_seconds, n_fft, floor_db : the analysis, as for
        :func:`mel_cepstrum`; ``c_1..c_order`` are compared.
    dtw : pair the frames along a dynamic-time-warping path of the cepstra (for outputs that are
        not time-aligned); off: frame ``t`` with frame ``t``.
    dtw_radius : with ``dtw``, the band (seconds) around the diagonal from the first frames to
        the last that the path stays in (``None``: no band; memory ``T1 x T2`` bytes).
    silence_db : pairs whose reference frame's energy is more than this below the reference's
        loudest frame are left out (``None``: only frames of digital silence are).
    """
    e, r = mono_waveform(est, "est"), mono_waveform(ref, "ref")
    sr = _rate(sample_rate)
    win, hop, nfft = framing(sr, frame_seconds=frame_seconds, hop_seconds=hop_seconds, n_fft=n_fft)
    order, a = _check_order(order, alpha, nfft, sr)
    floor_db = _number(floor_db, "floor_db")
    if silence_db is not None:
        silence_db = _number(silence_db, "silence_db")
    if dtw and dtw_radius is not None and _number(dtw_radius, "dtw_radius") < 0:
        raise ValueError(f"`dtw_radius` must be >= 0 seconds or None, got {dtw_radius!r}")
    if not dtw:
        n = min(len(e), len(r))
        e, r = e[:n], r[:n]
    B = _analysis_matrix(nfft, order, a)
    ce, _ = _analyse(e, win, hop, nfft, B, floor_db)
    cr, energy = _analyse(r, win, hop, nfft, B, floor_db)
    ce, cr = ce[:, 1:], cr[:, 1:]
    if dtw:
        radius = None if dtw_radius is None else int(round(float(dtw_radius) * sr / hop))
        i, j = _dtw_pairs(ce, cr, radius)
    else:
        i = j = np.arange(len(cr))
    keep = np.isfinite(energy[j])
    if silence_db is not None and keep.any():
        keep &= energy[j] >= energy[np.isfinite(energy)].max() - silence_db
    if not keep.any():
        return float("nan")
    dist = np.sqrt(np.sum((ce[i[keep]] - cr[j[keep]]) ** 2, axis=1))
    return float(K_DB * dist.mean())
