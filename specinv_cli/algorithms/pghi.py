"""Phase gradient heap integration (PGHI), a non-iterative phase reconstruction.

Z. Průša, P. Balazs, P. L. Søndergaard, "A noniterative method for reconstruction of phase
from STFT magnitude", IEEE/ACM Transactions on Audio, Speech, and Language Processing 25(5),
2017.

For a Gaussian window ``exp(-pi t^2 / gamma)`` the log-magnitude ``log s`` and the phase
``phi`` of the STFT with the phase referenced to the frame centre ``x`` (time ``x`` in samples,
frequency ``omega`` in cycles per sample) obey::

    d phi / d x     = 2 pi omega + (1 / gamma) d log s / d omega
    d phi / d omega = -gamma d log s / d x

and other windows are treated as the Gaussian of the same ``gamma`` (Hann: ``0.25645 L^2``).
On the grid ``x = n a`` (hop ``a``), ``omega = m / M`` (``M = n_fft``) the phase steps are::

    per frame:  phi_t(m, n) = a (2 pi m / M + (M / gamma) d_m log s)
    per bin:    phi_f(m, n) = -(gamma / (a M)) d_n log s

with centred differences ``d_m``, ``d_n``. The phase is integrated along the trapezoidal rule
from the largest coefficient outwards, always continuing from the largest coefficient already
reached (a max-heap; here a bucket queue on the log-magnitude in 0.012 dB steps, so
push and pop are O(1)), and reseeded with phase 0 at the largest coefficient not reached when
an island is exhausted. Coefficients below ``rel_tol * max(s)`` are never integrated through;
they get random phase. One refinement of the paper's rule (``average=True``, the default): a
coefficient's phase is not the prediction of the first neighbour that reached it but the
``s^2``-weighted circular mean of the predictions of all its neighbours integrated before it
(they are all larger than it: the heap pops in decreasing order), which spreads the
inconsistency of the estimated gradient field instead of leaving it on one path (lower spectral
convergence on the corpus: ``benchmarks/noniterative.py``; ``average=False`` is the paper's rule).

``torch.stft`` references the phase to the start of the ``n_fft``-long frame, i.e. ``n_fft / 2``
samples before the window's centre, which multiplies bin ``m`` by ``exp(-i pi m) = (-1)^m``; the
integrated frame-centred phase is converted with that factor at the end.

Everything after the magnitudes runs on the CPU in a numba kernel (compiled once, then cached
on disk): the heap walk is inherently sequential. The kernel computes the derivatives and the
half-step rotations ``exp(i phi_t / 2)``, ``exp(i phi_f / 2)`` (a short polynomial, vectorised)
and walks over one 32-byte record per coefficient, multiplying unit phasors. To use two cores,
the time axis of an item of ``2 SPLIT_FRAMES`` frames or more is cut in two halves integrated
concurrently (always, whatever the thread count, so the result does not depend on it); the
second half is rotated by the ``s^2``-weighted mean phase offset across the boundary, and a band
of ``BAND`` frames on each side of it is integrated again from the frames beside it, so that
the halves join without a seam (the corpus' SC does not change measurably; ``tests/test_pghi.py``). Coefficients not
integrated get a uniform random phase from a counter-based hash of their position and a
per-item seed.

Shapes: ``mag [..., F, T]`` (``F = n_fft // 2 + 1``) -> phase ``[..., F, T]`` / waveform
``[..., length]``.
"""
from __future__ import annotations

import math
import threading

import numpy as np
import torch

from ..dsp.stft import STFT, window_gamma
from ..util.limits import numba_failed, numba_room, numba_runtime
from .base import Monitor

__all__ = ["pghi", "pghi_phase", "phase_derivatives", "integrate_frames", "floor_and_threshold"]

#: This module run again as plain Python (no numba), for when numba cannot compile here.
_PLAIN = __name__.endswith("._pghi_plain")
numba = None
if not _PLAIN and numba_room():
    try:  # numba ships with librosa; fall back to plain Python (slow) without it
        import numba
        from llvmlite import ir
        from numba import njit, prange, types
        from numba.core.extending import intrinsic
    except ImportError:  # pragma: no cover
        numba = None
    except (OSError, MemoryError, SystemError) as e:  # llvmlite's library does not map (ulimit -v)
        numba = None
        numba_failed(e)
if numba is not None:
    @intrinsic
    def _hibit(typingctx, x):
        """Index of the highest set bit of a nonzero uint64 (one ``lzcnt``)."""
        def codegen(context, builder, signature, args):
            z = builder.ctlz(args[0], ir.Constant(ir.IntType(1), 1))
            return builder.sub(ir.Constant(ir.IntType(64), 63), z)
        return types.int64(types.uint64), codegen
else:
    prange = range

    def njit(*args, **kwargs):
        return (lambda f: f) if not args or not callable(args[0]) else args[0]

    def _hibit(x):
        return int(x).bit_length() - 1


_TWO_PI = 2.0 * math.pi


@njit(cache=True, nogil=True, inline="always")
def _wrap(x):  # pragma: no cover
    """``x`` reduced to ``[-pi, pi]``."""
    return x - _TWO_PI * np.floor(x * (1.0 / _TWO_PI) + 0.5)


@njit(cache=True, nogil=True, inline="always")
def _cis(x):  # pragma: no cover
    """``(cos x, sin x)`` to ~1e-8 without libm: quadrant reduction and short Taylor series
    (the walk needs one per step between neighbours; libm's are several times slower)."""
    q = np.floor(x * (2.0 / math.pi) + 0.5)
    r = x - q * (0.5 * math.pi)
    r2 = r * r
    sn = r * (1.0 + r2 * (-1.0 / 6 + r2 * (1.0 / 120 + r2 * (-1.0 / 5040 + r2 * (1.0 / 362880)))))
    cs = 1.0 + r2 * (-0.5 + r2 * (1.0 / 24 + r2 * (-1.0 / 720 + r2 * (1.0 / 40320))))
    k = np.int64(q) & 3
    if k == 0:
        return cs, sn
    if k == 1:
        return -sn, cs
    if k == 2:
        return -cs, -sn
    return sn, -cs


@njit(cache=True, nogil=True)
def _hash_angle(seed, idx):  # pragma: no cover
    """A uniform angle in ``[-pi, pi)`` from ``(seed, idx)`` (splitmix64, counter based)."""
    z = (np.uint64(seed) << np.uint64(32)) ^ np.uint64(idx)
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (np.float64(z >> np.uint64(40)) * (2.0 / 16777216.0) - 1.0) * math.pi


@njit(cache=True, nogil=True, inline="always")
def _half_t(s, fl, m, t, ta, tb):  # pragma: no cover
    """Half the phase step per frame at ``(m, t)``, folded: ``(ta m + tb d_m log s) / 2``
    (``log s`` floored at ``log fl``)."""
    F = s.shape[0]
    if F > 1:  # mirror symmetry at DC and Nyquist (real signals): slope 0 there
        mu = m + 1 if m + 1 < F else F - 2
        md = m - 1 if m > 0 else 1
        dm = 0.5 * (np.float64(np.log(max(s[mu, t], fl))) - np.log(max(s[md, t], fl)))
    else:
        dm = 0.0
    return _wrap(0.5 * (ta * m + tb * dm))


@njit(cache=True, nogil=True)
def _join(s, fl, ta, tb, bounds, out, done):  # pragma: no cover
    """Rotate each chunk (after the first) onto the one before it, in place.

    The offset is the ``s^2``-weighted circular mean, over the bins integrated on both sides
    of the boundary, of (left phase + trapezoidal step) - right phase.
    """
    F = s.shape[0]
    for k in range(1, bounds.shape[0] - 1):
        c = bounds[k]
        acc = 0j
        for m in range(F):
            if done[m, c - 1] and done[m, c]:
                w = np.float64(s[m, c - 1]) * s[m, c]
                cs, sn = _cis(_half_t(s, fl, m, c - 1, ta, tb) + _half_t(s, fl, m, c, ta, tb))
                acc += w * out[m, c - 1] * complex(cs, sn) * np.conj(out[m, c])
        r = abs(acc)
        if not r > 0:
            continue
        rot = np.complex64(acc / r)
        for m in range(F):
            for t in range(c, bounds[k + 1]):
                if done[m, t]:
                    out[m, t] = out[m, t] * rot


@njit(cache=True, nogil=True, inline="always", fastmath=True)
def _wrap32(x):  # pragma: no cover
    """float32 ``x`` reduced to ``[-pi, pi]``."""
    return x - np.float32(_TWO_PI) * np.floor(x * np.float32(1.0 / _TWO_PI) + np.float32(0.5))


@njit(cache=True, nogil=True, inline="always", fastmath=True)
def _cis_half(h):  # pragma: no cover
    """float32 ``(cos h, sin h)`` for ``|h| <= pi`` to ~1e-5, branch-free (vectorisable): the
    Taylor series of ``h / 2`` (``|h / 2| <= pi / 2``), squared."""
    x = np.float32(0.5) * h
    x2 = x * x
    sn = x * (np.float32(1.0) + x2 * (np.float32(-1.0 / 6) + x2 * (np.float32(1.0 / 120) + x2 * (
        np.float32(-1.0 / 5040) + x2 * np.float32(1.0 / 362880)))))
    cs = np.float32(1.0) + x2 * (np.float32(-0.5) + x2 * (np.float32(1.0 / 24) + x2 * (
        np.float32(-1.0 / 720) + x2 * (np.float32(1.0 / 40320) + x2 * np.float32(-1.0 / 3628800)))))
    return cs * cs - sn * sn, np.float32(2.0) * cs * sn


@njit(cache=True, nogil=True, fastmath={"nsz", "arcp", "contract", "afn", "reassoc"})
def _heap_integrate(s, fl, t0, t1, kl, kr, thr, ta, tb, fc, average, seed, out, done, rec,
                    state):  # pragma: no cover
    """Integrate the phase of one item over frames ``t0 .. t1 - 1``; returns the island count.

    ``s``: ``[F, T]`` float32 magnitudes of the whole item (the derivatives at the chunk's
    edges use the frames beyond it), ``fl``: the floor of ``s`` in ``log s``. The phase steps are
    ``tgrad = ta m + tb d_m log s`` and ``fgrad = fc d_n log s``. Coefficients below ``thr``
    (and zeros) are never integrated through. ``out`` (``[F, T]`` complex64) receives the unit
    phasors on the chunk's frames (frame-start phase reference, as ``torch.stft``), ``done``
    1 where integrated, 0 where the phase is the random ``_hash_angle(seed, m T + n)``.
    With ``kl`` (``kr``) the first (last) frame is known: its phase is read from ``out`` and
    ``done``, kept, and the walk starts from it (used to re-integrate a band between chunks).
    ``rec`` (float32, ``>= 8 (F + 2) (t1 - t0 + 2)``) and ``state`` (int8, a quarter of that)
    are scratch.

    The chunk is copied into one 32-byte record per coefficient (magnitude, heap link, the
    half-step rotations ``exp(i tgrad / 2)``, ``exp(i fgrad / 2)``, the sum of predictions) on
    a grid with a border of excluded cells, so that the walk, which visits the coefficients
    in magnitude order, i.e. all over the grid, touches one cache line per coefficient and
    needs no bounds checks; the trapezoidal step between neighbours ``c, j`` is the product
    of their rotations. With ``average`` a coefficient gets the ``s^2``-weighted circular mean
    of the predictions of all neighbours integrated before it, else (the paper) the first
    one's.
    """
    F, T = s.shape
    W = t1 - t0
    row = W + 2
    n = (F + 2) * row
    rec = rec[:8 * n].reshape(n, 8)
    link = rec.view(np.int32)  # column 1: next coefficient in the same bucket
    state = state[:n]
    state[:] = 3  # 0 untouched, 1 queued, 2 integrated, 3 excluded (the border too)
    thr_bits = np.int32(np.float32(thr).view(np.int32)) if thr > 0 else np.int32(0)
    best = -1
    best_s = np.float32(0.0)
    ht = np.empty(W, dtype=np.float32)  # one row's folded half steps
    hf = np.empty(W, dtype=np.float32)
    tbh, fch = np.float32(0.25 * tb), np.float32(0.5 * fc)
    lo, hi = max(t0, 1), min(t1, T - 1)
    # log s on the chunk's frames and one beyond each side (column j: frame t0 - 1 + j)
    L = np.empty((F, W + 2), dtype=np.float32)
    for m in range(F):
        for j in range(W + 2):
            L[m, j] = np.log(max(s[m, min(max(t0 - 1 + j, 0), T - 1)], fl))
    for m in range(F):
        base = (m + 1) * row + 1 - t0
        # d/dm log s with the spectrum's mirror symmetry at DC and Nyquist (real signals)
        mu = m + 1 if m + 1 < F else max(F - 2, 0)
        md = m - 1 if m > 0 else min(1, F - 1)
        lm, lu, ld = L[m], L[mu], L[md]
        tm = np.float32(0.5 * _wrap(ta * m))
        for k in range(W):
            ht[k] = _wrap32(tm + tbh * (lu[k + 1] - ld[k + 1]))
        # d/dn log s: centred, one-sided at the ends (torch.gradient)
        for t in range(lo, hi):
            hf[t - t0] = _wrap32(np.float32(0.5) * fch * (lm[t - t0 + 2] - lm[t - t0]))
        if t0 == 0:
            hf[0] = _wrap32(fch * (lm[2] - lm[1])) if T > 1 else np.float32(0.0)
        if t1 == T and T > 1:
            hf[W - 1] = _wrap32(fch * (lm[W] - lm[W - 1]))
        r = rec[base + t0:base + t1]
        for k in range(W):  # separate, branch-free loops vectorise
            c, sn = _cis_half(ht[k])
            r[k, 2] = c
            r[k, 3] = sn
            c, sn = _cis_half(hf[k])
            r[k, 4] = c
            r[k, 5] = sn
        for t in range(t0, t1):
            i = base + t
            v = s[m, t]
            rec[i, 0] = v
            if v > 0 and v >= thr:
                state[i] = 0
                if v > best_s:
                    best_s = v
                    best = i
    # known edge columns (a band between chunks): integrated from the start, expanded first
    pre = np.empty(2 * F, dtype=np.int64)
    npre = 0
    for t, known in ((t0, kl), (t1 - 1, kr)):
        if not known:
            continue
        for m in range(F):
            i = (m + 1) * row + 1 + t - t0
            if done[m, t] and state[i] == 0:
                sign = np.float32(1.0 - 2.0 * (m & 1))
                rec[i, 6] = sign * out[m, t].real
                rec[i, 7] = sign * out[m, t].imag
                state[i] = 2
                pre[npre] = i
                npre += 1
            else:
                state[i] = 3
    seeds = 0
    nb = max(((np.float32(best_s).view(np.int32) - thr_bits) >> 14) + 1, 1)
    head = np.full(nb, -1, dtype=np.int32)
    occ = np.zeros((nb + 63) // 64, dtype=np.uint64)
    inv_peak = 1.0 / np.float64(best_s) if best_s > 0 else 1.0
    offsets = (1, -1, row, -row)
    order = np.empty(1 if best >= 0 else 0, dtype=np.int64)
    if best >= 0:
        order[0] = best
    o = 0
    sorted_rest = False
    top = -1
    q = 0
    while True:
        if q < npre:
            cur = pre[q]
            q += 1
            zr = rec[cur, 6]
            zi = rec[cur, 7]
        else:
            if top >= 0 and head[top] < 0:
                # the highest non-empty bucket below: one bit per bucket, 64 to a word
                wi = top >> 6
                x = occ[wi] & ((np.uint64(2) << np.uint64(top & 63)) - np.uint64(1))
                while x == 0 and wi > 0:
                    wi -= 1
                    x = occ[wi]
                top = wi * 64 + _hibit(x) if x != 0 else -1
            if top >= 0:
                cur = head[top]
                head[top] = link[cur, 1]
                if head[top] < 0:
                    occ[top >> 6] &= ~(np.uint64(1) << np.uint64(top & 63))
                # the sum of predictions -> unit phasor (their weighted circular mean)
                zr = rec[cur, 6]
                zi = rec[cur, 7]
                r2 = zr * zr + zi * zi
                if r2 > 0:
                    inv = np.float32(1.0) / np.sqrt(r2)
                    zr *= inv
                    zi *= inv
                else:
                    zr, zi = np.float32(1.0), np.float32(0.0)
            else:
                # island exhausted: reseed at the largest coefficient not reached (the
                # first time the largest of all; the rest are sorted once, largest first)
                cur = -1
                while cur < 0:
                    if o >= order.shape[0]:
                        if sorted_rest:
                            break
                        rest = np.nonzero(state == 0)[0]
                        if rest.shape[0] == 0:
                            break
                        # by bucket, largest first (a counting sort: the rest may be most of
                        # the grid when the first island is small)
                        start = np.zeros(nb + 1, dtype=np.int64)
                        for i in rest:
                            start[nb - ((link[i, 0] - thr_bits) >> 14)] += 1
                        for k in range(1, nb + 1):
                            start[k] += start[k - 1]
                        order = np.empty_like(rest)
                        for i in rest:
                            k = nb - 1 - ((link[i, 0] - thr_bits) >> 14)
                            order[start[k]] = i
                            start[k] += 1
                        o = 0
                        sorted_rest = True
                        continue
                    if state[order[o]] == 0:
                        cur = order[o]
                    o += 1
                if cur < 0:
                    break
                seeds += 1
                zr, zi = np.float32(1.0), np.float32(0.0)  # new island: phase 0
            state[cur] = 2
            rec[cur, 6] = zr
            rec[cur, 7] = zi
        w = np.float32(rec[cur, 0] * inv_peak)
        w = w * w
        for d in range(4):
            j = cur + offsets[d]
            sj = state[j]
            if sj >= 2 or (sj == 1 and not average):
                continue
            # trapezoidal step: the product of the two half-step rotations, conjugated
            # going backwards
            c = 2 if d < 2 else 4
            ar, ai = rec[cur, c], rec[cur, c + 1]
            br, bi = rec[j, c], rec[j, c + 1]
            cs = ar * br - ai * bi
            sn = ar * bi + ai * br
            if d & 1:
                sn = -sn
            pr = w * (zr * cs - zi * sn)
            pi_ = w * (zr * sn + zi * cs)
            if sj == 0:
                rec[j, 6] = pr
                rec[j, 7] = pi_
                state[j] = 1
                k = (link[j, 0] - thr_bits) >> 14
                link[j, 1] = head[k]
                head[k] = j
                occ[k >> 6] |= np.uint64(1) << np.uint64(k & 63)
                if k > top:
                    top = k
            else:
                rec[j, 6] += pr
                rec[j, 7] += pi_
    for m in range(F):
        base = (m + 1) * row + 1 - t0
        sign = np.float32(1.0 - 2.0 * (m & 1))  # frame-centred -> frame-start phase: (-1)^m
        for t in range(t0 + kl, t1 - kr):
            i = base + t
            if state[i] == 2:
                out[m, t] = complex(sign * rec[i, 6], sign * rec[i, 7])
                done[m, t] = 1
            else:
                cs, sn = _cis_half(np.float32(_hash_angle(seed, m * T + t)))
                out[m, t] = complex(cs, sn)
                done[m, t] = 0
    return seeds


def phase_derivatives(mag: torch.Tensor, stft: STFT, rel_tol: float = 1e-5):
    """PGHI's phase steps ``(per frame, per bin)``, each ``[..., F, T]``, frame-centred phase.

    ``tgrad[m, n]`` approximates ``phi(m, n + 1) - phi(m, n)`` and ``fgrad[m, n]``
    approximates ``phi(m + 1, n) - phi(m, n)`` (see the module docstring).
    """
    gamma = window_gamma(stft.config.window, stft.win_length)
    a, M = float(stft.hop), float(stft.n_fft)
    peak = mag.amax(dim=(-2, -1), keepdim=True)
    # floor the log so that near-zeros (never integrated through) do not give huge slopes
    floor = peak * max(float(rel_tol), 1e-10) * 1e-2
    logs = torch.log(torch.maximum(mag, floor).clamp_min(torch.finfo(mag.dtype).tiny))
    F = logs.shape[-2]
    # d/dm with the spectrum's mirror symmetry at DC and Nyquist (real signals): slope 0 there
    if F > 1:
        up = torch.cat([logs[..., 1:, :], logs[..., -2:-1, :]], dim=-2)
        down = torch.cat([logs[..., 1:2, :], logs[..., :-1, :]], dim=-2)
        dm = 0.5 * (up - down)
    else:
        dm = torch.zeros_like(logs)
    if logs.shape[-1] > 1:
        dn = torch.gradient(logs, dim=-1)[0]
    else:
        dn = torch.zeros_like(logs)
    m = torch.arange(F, device=mag.device, dtype=mag.dtype).unsqueeze(-1)
    tgrad = a * (2 * math.pi * m / M + (M / gamma) * dm)
    fgrad = -(gamma / (a * M)) * dn
    return tgrad, fgrad


def pghi_phase(mag: torch.Tensor, stft: STFT, *, rel_tol: float = 1e-5,
               generator: torch.Generator | None = None, average: bool = True) -> torch.Tensor:
    """Unit-modulus PGHI phase ``[..., F, T]`` for magnitudes ``mag [..., F, T]``.

    Parameters
    ----------
    mag : target magnitudes (float32 or float64, any device).
    stft : the STFT operator the magnitudes come from (window, hop, n_fft).
    rel_tol : coefficients below ``rel_tol * max`` (per item) are not integrated and get
        random phase.
    generator : CPU generator that draws each item's seed for those random phases (default:
        seed 0 for every item, so the result is reproducible and a batch gives what each item
        gives alone).
    average : give each coefficient the ``s^2``-weighted circular mean of the phases predicted
        by all its neighbours integrated before it (lower spectral convergence on the corpus);
        ``False`` is the paper's rule (the first neighbour's prediction).

    Example
    -------
    >>> import torch
    >>> from specinv_cli.config import STFTConfig
    >>> op = STFT(STFTConfig(n_fft=256, hop_length=64))
    >>> mag = op.forward(torch.randn(2, 4096)).abs()
    >>> ph = pghi_phase(mag, op)
    >>> ph.shape, bool(torch.allclose(ph.abs(), torch.ones(())))
    (torch.Size([2, 129, 65]), True)
    """
    kw = dict(rel_tol=rel_tol, generator=generator, average=average)
    return _guarded(lambda: _phase(mag, stft, **kw), lambda: _plain().pghi_phase(mag, stft, **kw))


def integrate_frames(s: np.ndarray, fl, t0: int, t1: int, kl: int, kr: int, thr, ta: float, tb: float,
                     fc: float, average: bool, seed, out: np.ndarray, done: np.ndarray) -> int:
    """The heap kernel (``_heap_integrate``) on frames ``t0 .. t1 - 1`` of one item (its arguments, without the
    scratch, which is this thread's), guarded as :func:`pghi_phase` is: plain Python where numba
    cannot run. For callers that integrate a few frames at a time (:mod:`.rtpghi`)."""
    rec, state = _scratch(1, (s.shape[0] + 2) * (t1 - t0 + 2))
    args = (s, fl, t0, t1, kl, kr, thr, ta, tb, fc, average, seed, out, done)
    return _guarded(lambda: _heap_integrate(*args, rec[0], state[0]),
                    lambda: _plain().integrate_frames(*args))


def floor_and_threshold(peak: float, rel_tol: float) -> tuple[np.float32, np.float32]:
    """``(fl, thr)`` of the heap kernel for magnitudes whose largest is ``peak``: the
    floor of ``s`` in ``log s`` (no huge slopes at near-zeros) and the threshold below which
    coefficients get random phase (all of them for silence, or no finite peak)."""
    tiny = float(np.finfo(np.float32).tiny)
    fl = max(peak * max(float(rel_tol), 1e-10) * 1e-2, tiny) if math.isfinite(peak) else tiny
    thr = peak * float(rel_tol) if math.isfinite(peak) and peak > 0 else math.inf
    return np.float32(fl), np.float32(thr)


def _guarded(run, plain):
    """``run()`` on the numba kernel, or ``plain()`` (this module as plain Python) where numba
    cannot run."""
    if numba is None:
        with np.errstate(over="ignore"):  # the hash's uint64 arithmetic wraps on purpose
            return run()
    if not _COMPILED:
        # the first call compiles (or loads from the cache) and brings numba's runtime up:
        # under a tight ulimit -v that fails, or hangs in OpenBLAS, so check the room first
        if not numba_room():
            return plain()
        try:
            numba_runtime()
            out = run()
        except (OSError, MemoryError, SystemError) as e:
            numba_failed(e)
            return plain()
        _COMPILED.append(True)
        return out
    return run()


_COMPILED: list = []


def _plain():
    """This module loaded again without numba (see :data:`_PLAIN`)."""
    import importlib.util
    import sys

    name = __name__.rpartition(".")[0] + "._pghi_plain"
    mod = sys.modules.get(name)
    if mod is None:
        spec = importlib.util.spec_from_file_location(name, __file__)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return mod


def _phase(mag, stft, *, rel_tol, generator, average):
    cplx = mag.dtype.to_complex()
    lead, (F, T) = mag.shape[:-2], mag.shape[-2:]
    if mag.numel() == 0:
        return torch.ones(mag.shape, dtype=cplx, device=mag.device)
    B = lead.numel()
    gamma = window_gamma(stft.config.window, stft.win_length)
    a, M = float(stft.hop), float(stft.n_fft)
    ta, tb, fc = a * 2 * math.pi / M, a * M / gamma, -gamma / (a * M)
    # all on the CPU in the kernel, derivatives included: the walk is sequential, and a torch
    # operation just before it would leave torch's worker threads spinning on the cores the
    # chunks run on
    s_np = mag.detach().reshape(B, F, T).to(device="cpu", dtype=torch.float32).numpy()
    peaks = [float(x.max()) for x in s_np]
    if generator is None:  # a fixed seed per item: a batch gives what its items give alone
        seeds = [0] * B
    else:
        seeds = torch.randint(0, 2 ** 31 - 1, (B,), generator=generator).tolist()
    out = np.empty((B, F, T), dtype=np.complex64)
    done = np.empty((B, F, T), dtype=np.uint8)
    bounds = _chunks(T)
    jobs = [(b, int(t0), int(t1), 0, 0) for b in range(B) for t0, t1 in zip(bounds[:-1], bounds[1:])]

    fls, thrs = (np.array(v, dtype=np.float32) for v in zip(*(floor_and_threshold(p, rel_tol) for p in peaks)))
    seeds = np.array(seeds, dtype=np.int64)
    threads = torch.get_num_threads()

    def run(jobs):
        jobs = np.array(jobs, dtype=np.int64).reshape(-1, 5)
        n = int(((F + 2) * (jobs[:, 2] - jobs[:, 1] + 2)).max())
        rec, state = _scratch(len(jobs), n)
        workers = min(threads, len(jobs), numba.config.NUMBA_NUM_THREADS if numba else 1)
        if workers <= 1:
            for q, (b, t0, t1, kl, kr) in enumerate(jobs.tolist()):
                _heap_integrate(s_np[b], fls[b], t0, t1, kl, kr, thrs[b], ta, tb, fc,
                                bool(average), seeds[b], out[b], done[b], rec[q], state[q])
            return
        # numba's OpenMP layer shares torch's OpenMP runtime: its threads run the chunks (a
        # pool of our own would compete with torch's workers, which spin a while after each
        # operation)
        before = numba.get_num_threads()
        numba.set_num_threads(workers)
        try:
            _integrate_jobs(s_np, fls, thrs, jobs, ta, tb, fc, bool(average), seeds, out, done,
                            rec, state)
        finally:
            numba.set_num_threads(before)

    run(jobs)
    if len(bounds) > 2:
        # rotate each chunk onto the one before, then integrate a band across each boundary
        # again, from the frames beside it, so that the chunks join without a seam
        jobs = []
        for b in range(B):
            _join(s_np[b], fls[b], ta, tb, bounds, out[b], done[b])
            for c in bounds[1:-1]:
                lo, hi = max(int(c) - BAND - 1, 0), min(int(c) + BAND + 1, T)
                jobs.append((b, lo, hi, int(lo > 0), int(hi < T)))
        run(jobs)
    return torch.from_numpy(out).to(device=mag.device, dtype=cplx).reshape(*lead, F, T)


#: frames per chunk above which the time axis is split in two (integrated concurrently)
SPLIT_FRAMES = 32
#: frames on each side of a chunk boundary integrated again after the join
BAND = 8


def _chunks(T: int) -> np.ndarray:
    """Chunk boundaries along time; the same for any thread count, so results do not depend
    on it."""
    k = 2 if T >= 2 * SPLIT_FRAMES else 1
    return np.array([round(i * T / k) for i in range(k + 1)], dtype=np.int64)


_SCRATCH = threading.local()


def _scratch(jobs: int, n: int):
    """Scratch for ``jobs`` kernels of up to ``n`` coefficients (records, states), kept between
    calls (per calling thread): allocating and first touching 32 bytes per coefficient costs
    as much as a good part of the walk."""
    buf = getattr(_SCRATCH, "buf", None)
    if buf is None or buf[1].shape[0] < jobs or buf[1].shape[1] < n:
        jobs = max(jobs, 0 if buf is None else buf[1].shape[0])
        n = max(n, 0 if buf is None else buf[1].shape[1])
        buf = (np.empty((jobs, 8 * n), dtype=np.float32), np.empty((jobs, n), dtype=np.int8))
        _SCRATCH.buf = buf
    return buf


@njit(cache=True, nogil=True, parallel=True)
def _integrate_jobs(s, fls, thrs, jobs, ta, tb, fc, average, seeds, out, done, rec, state):  # pragma: no cover
    """:func:`_heap_integrate` for each job ``(item, t0, t1, kl, kr)``, concurrently."""
    for q in prange(jobs.shape[0]):
        b = jobs[q, 0]
        _heap_integrate(s[b], fls[b], jobs[q, 1], jobs[q, 2], jobs[q, 3], jobs[q, 4], thrs[b],
                        ta, tb, fc, average, seeds[b], out[b], done[b], rec[q], state[q])


def pghi(mag: torch.Tensor, stft: STFT, *, n_iter: int = 0, init: torch.Tensor | None = None,
         length: int | None = None, monitor: Monitor | None = None,
         rel_tol: float = 1e-5, average: bool = True) -> torch.Tensor:
    """Waveform ``[..., length]`` from ``mag [..., F, T]`` with the PGHI phase.

    ``n_iter`` and ``init`` are ignored (non-iterative). See :func:`pghi_phase`.

    Example
    -------
    >>> import torch
    >>> from specinv_cli.config import STFTConfig
    >>> op = STFT(STFTConfig(n_fft=256, hop_length=64))
    >>> pghi(op.forward(torch.randn(4096)).abs(), op, length=4096).shape
    torch.Size([4096])
    """
    if length is None:
        length = stft.default_length(mag.shape[-1])
    return stft.inverse(mag * pghi_phase(mag, stft, rel_tol=rel_tol, average=average), length)
