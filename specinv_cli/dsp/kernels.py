"""Fused CPU kernels (numba) for the hot loop of the iterative methods.

An iteration of Griffin–Lim is two FFTs and a few elementwise passes over spectrogram-sized
arrays. In torch each elementwise step is its own pass through memory (the magnitude projection
alone is five), so on the CPU the passes cost more than the FFTs. These kernels do each group of
steps in one pass, parallel over frames:

- :func:`project` / :func:`project_into`: ``mag * c / max(|c|, eps)`` on interleaved complex data;
- :func:`window_conv` / :func:`window_conv_project`: the analysis window applied in the
  frequency domain. For a cosine-sum window (Hann, Hamming, Blackman, rectangular) with
  ``win_length == n_fft``, ``rfft(w * frame)`` is a 3- or 5-tap convolution of ``rfft(frame)``
  along frequency (``taps[k] = DFT(w)[k] / n_fft``), so the FFT can read the frames straight out
  of the signal (overlapping strides, no framed copy) and the window costs nothing extra once
  folded into the projection;
- :func:`agla_update`, :func:`raar_update`, :func:`admm_update`: the elementwise updates of
  AGLA, RAAR/DM and ADMM with the window and the projection, one pass each;
- :func:`window_magnitude`, :func:`residual_grad`, :func:`grad_window`: the closed-form
  gradient of the spectral loss of L-BFGS (:func:`specinv_cli.algorithms.lbfgs.spectral_loss`)
  between its two FFTs: window, magnitude, residual, ``c / |c|`` and the adjoint's window;
- :func:`band_project`, :func:`band_adjoint`: a filterbank whose rows are bands (mel) and its
  transpose applied row by row over each band's nonzero bins only;
- :func:`history_direction`, :func:`history_pair`: L-BFGS's passes over its history (the
  search direction from the history's rows; the new curvature pair, its inner products and the
  history's products with the new gradient), one pass each (twins in :mod:`.curvature`);
- :func:`overlap_add`: windowed overlap-add, inverse window-square envelope, the padding
  rewrite and (for FGLA) the momentum step on the signal, in one pass;
- :func:`block_enter`, :func:`block_frames`, :func:`block_impose`, :func:`block_commit`: a
  streaming step's block of a few frames (:mod:`specinv_cli.algorithms.online`): a frame enters;
  the block's inverse FFTs overlap-added onto the committed part and re-framed under the analysis
  windows; the magnitude imposed with the GLA or FGLA update; the oldest frame committed and the
  final samples out. Serial (a block is too small to share), twins in that module;
- :func:`mel_nnls`: mel -> linear magnitudes frame by frame (the non-negative least squares of
  :meth:`specinv_cli.dsp.mel.MelTransform.to_linear`, over each band's bins), serial, float64:
  a stream's mel frames, each on its own.

Everything here works on numpy views of torch CPU tensors (``float32`` or ``float64``; complex
data as ``[rows, 2 F]`` interleaved real/imaginary). :mod:`specinv_cli.dsp` decides when these
apply and keeps a plain torch path for everything else (CUDA, autograd, other framings).
Compiled code is cached on disk (numba ``cache=True``), so only the first run pays the compile
(about 8 s for all of them here). ``SPECINV_JIT=0`` turns the kernels off.
"""
from __future__ import annotations

from ..util.limits import numba_failed, numba_room

# dsp imports this module lazily and takes the torch path when the import fails
if not numba_room():
    raise ImportError("no room for numba here (see specinv_cli.util.limits)")
try:
    import numba
    from numba import prange
except (OSError, MemoryError, SystemError) as e:  # llvmlite's library does not map (ulimit -v)
    numba_failed(e)
    raise ImportError(f"numba does not load here ({type(e).__name__})") from None

import numpy as np

__all__ = ["project", "project_into", "window_conv", "window_conv_project", "agla_update", "raar_update",
           "admm_update", "window_magnitude", "residual_grad", "grad_window", "band_project", "band_adjoint",
           "history_direction", "history_pair", "overlap_add", "block_enter", "block_frames", "block_impose",
           "block_commit", "mel_nnls", "set_threads"]

_OPTS = dict(parallel=True, fastmath=True, error_model="numpy", boundscheck=False, nogil=True)


def _njit(fn):
    try:
        return numba.njit(cache=True, **_OPTS)(fn)
    except RuntimeError:  # no writable cache directory: compile in every process
        return numba.njit(cache=False, **_OPTS)(fn)


def _njit_serial(fn):
    opts = dict(_OPTS, parallel=False)
    try:
        return numba.njit(cache=True, **opts)(fn)
    except RuntimeError:
        return numba.njit(cache=False, **opts)(fn)


def set_threads(n: int) -> None:
    """Run the kernels on ``n`` threads (capped at numba's pool size)."""
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))


@numba.njit(inline="always", fastmath=True, error_model="numpy", boundscheck=False)
def _project_row(xr, mr, o, F, eps2):
    """``o <- mr * xr / max(|xr|, sqrt(eps2))`` for one row of ``F`` interleaved complex bins."""
    for f in range(F):
        a = xr[2 * f]
        b = xr[2 * f + 1]
        s = mr[f] / np.sqrt(max(a * a + b * b, eps2))
        o[2 * f] = a * s
        o[2 * f + 1] = b * s


@_njit
def project(x, m, eps2):
    """In place: ``x[r] <- m[r] * x[r] / max(|x[r]|, sqrt(eps2))``; ``x [R, 2F]``, ``m [R, F]``."""
    R, F = m.shape
    for r in prange(R):
        _project_row(x[r], m[r], x[r], F, eps2)


@_njit
def project_into(x, m, out, eps2):
    """:func:`project` written into ``out`` (``x`` unchanged)."""
    R, F = m.shape
    for r in prange(R):
        _project_row(x[r], m[r], out[r], F, eps2)


@numba.njit(inline="always", fastmath=True, error_model="numpy", boundscheck=False)
def _extend(xr, t, K, F, n_fft):
    """Row ``xr`` (``F`` complex bins) into ``t`` with ``K`` bins of Hermitian extension per side
    (``X[-k] = conj X[k]``, ``X[n_fft - k] = conj X[k]``)."""
    t[2 * K:2 * K + 2 * F] = xr
    for k in range(1, K + 1):
        t[2 * (K - k)] = xr[2 * k]
        t[2 * (K - k) + 1] = -xr[2 * k + 1]
        i = n_fft - (F - 1 + k)
        t[2 * (K + F - 1 + k)] = xr[2 * i]
        t[2 * (K + F - 1 + k) + 1] = -xr[2 * i + 1]


@numba.njit(inline="always", fastmath=True, error_model="numpy", boundscheck=False)
def _conv_row(t, o, taps, K, F):
    """``o [2F] <- taps * t`` along frequency (``t`` from :func:`_extend`). One loop per tap
    count (Hann and Hamming have one, Blackman two): a loop over taps inside does not vectorise."""
    a0 = taps[0]
    if K == 0:
        for j in range(2 * F):
            o[j] = a0 * t[j]
    elif K == 1:
        a1 = taps[1]
        for j in range(2 * F):
            o[j] = a0 * t[j + 2] + a1 * (t[j] + t[j + 4])
    else:
        a1 = taps[1]
        a2 = taps[2]
        for j in range(2 * F):
            o[j] = a0 * t[j + 4] + a1 * (t[j + 2] + t[j + 6]) + a2 * (t[j] + t[j + 8])


@numba.njit(inline="always", fastmath=True, error_model="numpy", boundscheck=False)
def _window_row(src, buf, o, taps, n_fft):
    """``o <- taps * src`` along frequency for one row (``buf``: scratch of ``2 (F + 2 K)``)."""
    K = taps.shape[0] - 1
    F = src.shape[0] // 2
    _extend(src, buf, K, F, n_fft)
    _conv_row(buf, o, taps, K, F)


@_njit
def window_conv(x, taps, n_fft, nchunk):
    """In place: each row of raw spectra ``x [R, 2F]`` convolved along frequency with the
    symmetric ``taps`` (``taps[0]`` centre, ``taps[k]`` at +-k; at most 3): the spectrum of the
    windowed frame."""
    R = x.shape[0]
    F = x.shape[1] // 2
    K = taps.shape[0] - 1
    step = (R + nchunk - 1) // nchunk
    for c in prange(nchunk):
        t = np.empty(2 * (F + 2 * K), dtype=x.dtype)
        for r in range(c * step, min(R, (c + 1) * step)):
            _window_row(x[r], t, x[r], taps, n_fft)


@_njit
def window_conv_project(x, m, taps, n_fft, eps2, nchunk):
    """In place: :func:`window_conv` then :func:`project` onto ``m``, row by row (in cache)."""
    R, F = m.shape
    K = taps.shape[0] - 1
    step = (R + nchunk - 1) // nchunk
    for c in prange(nchunk):
        t = np.empty(2 * (F + 2 * K), dtype=x.dtype)
        for r in range(c * step, min(R, (c + 1) * step)):
            xr = x[r]
            _window_row(xr, t, xr, taps, n_fft)
            _project_row(xr, m[r], xr, F, eps2)


@_njit
def agla_update(x, d, t, m, taps, n_fft, gamma, alpha, beta, eps2, nchunk):
    """One AGLA update (Nenov et al. 2023) after the STFT, in one pass, row by row:
    ``g = taps * x`` (the consistent estimate, from raw spectra ``x``), ``t <- (1 - gamma) d + gamma g``,
    ``c = t + alpha (t - t_prev)``, ``d <- t + beta (t - t_prev)``, and ``x <- P_A(c)`` onto ``m``;
    ``x``, ``d``, ``t`` are ``[R, 2F]``, ``m`` is ``[R, F]``."""
    R, F = m.shape
    K = taps.shape[0] - 1
    step = (R + nchunk - 1) // nchunk
    for c in prange(nchunk):
        buf = np.empty(2 * (F + 2 * K), dtype=x.dtype)
        g = np.empty(2 * F, dtype=x.dtype)
        for r in range(c * step, min(R, (c + 1) * step)):
            xr = x[r]
            dr = d[r]
            tr = t[r]
            _window_row(xr, buf, g, taps, n_fft)
            # one array written per loop, so that each vectorises (the rows are in cache)
            if gamma != 1.0:  # gamma = 1: t is g exactly, whatever d is (FGLA)
                for j in range(2 * F):
                    g[j] = (1.0 - gamma) * dr[j] + gamma * g[j]
            for j in range(2 * F):
                xr[j] = g[j] + alpha * (g[j] - tr[j])
            for j in range(2 * F):
                dr[j] = g[j] + beta * (g[j] - tr[j])
            tr[:] = g
            _project_row(xr, m[r], xr, F, eps2)


@_njit
def raar_update(G, h, m, taps, n_fft, beta, eps2, nchunk):
    """RAAR (Luke 2005; DM with ``beta = 1``) after the STFT, row by row, on one state buffer.

    With ``g = taps * G`` (the consistent estimate, from raw spectra ``G``), the iteration
    ``x <- beta (x + 2 g - c) + (1 - 2 beta) a``, ``c <- g``, ``a <- P_A(x)`` needs ``x``, ``c`` and
    ``a`` only through ``h = beta (x - c) + (1 - 2 beta) a``: so ``x = h + 2 beta g``, then
    ``a = P_A(x)`` is written over ``G`` (the next ISTFT's input) and ``h <- beta (x - g) + (1 - 2 beta) a``.
    ``G``, ``h`` are ``[R, 2F]``, ``m`` is ``[R, F]``."""
    R, F = m.shape
    K = taps.shape[0] - 1
    step = (R + nchunk - 1) // nchunk
    for ch in prange(nchunk):
        buf = np.empty(2 * (F + 2 * K), dtype=G.dtype)
        g = np.empty(2 * F, dtype=G.dtype)
        for r in range(ch * step, min(R, (ch + 1) * step)):
            hr = h[r]
            ar = G[r]  # its spectrum is in buf from here on
            _window_row(ar, buf, g, taps, n_fft)
            for j in range(2 * F):
                ar[j] = hr[j] + 2.0 * beta * g[j]  # x
            for j in range(2 * F):
                hr[j] = beta * (ar[j] - g[j])
            _project_row(ar, m[r], ar, F, eps2)  # a = P_A(x)
            for j in range(2 * F):
                hr[j] += (1.0 - 2.0 * beta) * ar[j]


@_njit
def admm_update(G, u, x, m, taps, n_fft, w, eps2, nchunk):
    """ADMM (Masuyama et al. 2019) after the STFT of ``y`` (held in ``u``), row by row:
    ``z = (1 - w) g + w y`` with ``g = taps * G``, ``u' = y - z``, ``x <- P_A(z - u')`` onto ``m``,
    then ``u <- x + u'`` (the next ``y``); all ``[R, 2F]``."""
    R, F = m.shape
    K = taps.shape[0] - 1
    step = (R + nchunk - 1) // nchunk
    for ch in prange(nchunk):
        buf = np.empty(2 * (F + 2 * K), dtype=x.dtype)
        g = np.empty(2 * F, dtype=x.dtype)
        for r in range(ch * step, min(R, (ch + 1) * step)):
            xr = x[r]
            ur = u[r]
            _window_row(G[r], buf, g, taps, n_fft)
            for j in range(2 * F):
                y = ur[j]
                z = (1.0 - w) * g[j] + w * y
                un = y - z
                xr[j] = z - un
                g[j] = un
            _project_row(xr, m[r], xr, F, eps2)
            for j in range(2 * F):
                ur[j] = xr[j] + g[j]


@_njit
def window_magnitude(x, m, taps, n_fft, nchunk):
    """In place: :func:`window_conv` of the raw spectra ``x [R, 2F]``, and ``m [R, F] <- |x|``."""
    R, F = m.shape
    K = taps.shape[0] - 1
    step = (R + nchunk - 1) // nchunk
    for c in prange(nchunk):
        t = np.empty(2 * (F + 2 * K), dtype=x.dtype)
        for r in range(c * step, min(R, (c + 1) * step)):
            xr = x[r]
            _window_row(xr, t, xr, taps, n_fft)
            mr = m[r]
            for f in range(F):
                mr[f] = np.sqrt(xr[2 * f] * xr[2 * f] + xr[2 * f + 1] * xr[2 * f + 1])


@_njit
def residual_grad(x, tgt, rowscale, binw, taps, n_fft, floor, loss, nchunk):
    """The linear-magnitude loss and its gradient spectrum in one pass, row by row, in place on
    the raw spectra ``x [R, 2F]``: ``c = taps * x`` (the STFT), ``r = |c| - tgt [R, F]``,
    ``loss[row] <- sum r^2``, ``x <- taps * (c * rowscale[row] * binw * r / max(|c|, floor))``
    (the gradient with respect to ``c``, windowed for the adjoint's ``irfft``)."""
    R, F = tgt.shape
    K = taps.shape[0] - 1
    step = (R + nchunk - 1) // nchunk
    for c in prange(nchunk):
        t = np.empty(2 * (F + 2 * K), dtype=x.dtype)
        g = np.empty(2 * F, dtype=x.dtype)
        for r in range(c * step, min(R, (c + 1) * step)):
            xr = x[r]
            tr = tgt[r]
            _window_row(xr, t, g, taps, n_fft)
            s = rowscale[r]
            acc = 0.0
            for f in range(F):
                a = g[2 * f]
                b = g[2 * f + 1]
                mag = np.sqrt(a * a + b * b)
                d = mag - tr[f]
                acc += d * d
                k = s * binw[f] * d / max(mag, floor)
                g[2 * f] = a * k
                g[2 * f + 1] = b * k
            loss[r] = acc
            _window_row(g, t, xr, taps, n_fft)


@_njit
def band_project(a, lo, hi, fb, out, nchunk):
    """``out [R, M] <- a [R, F] @ fb^T`` for ``fb [M, F]`` whose row ``m`` is zero outside the
    bins ``[lo[m], hi[m])`` (a mel filterbank: a few bins per band, not all ``F``)."""
    R = a.shape[0]
    M = fb.shape[0]
    step = (R + nchunk - 1) // nchunk
    for c in prange(nchunk):
        for r in range(c * step, min(R, (c + 1) * step)):
            for m in range(M):
                acc = a[r, 0] * 0.0
                for k in range(lo[m], hi[m]):
                    acc += fb[m, k] * a[r, k]
                out[r, m] = acc


@_njit
def band_adjoint(v, lo, hi, fb, out, nchunk):
    """``out [R, F] <- v [R, M] @ fb`` for the banded ``fb [M, F]`` of :func:`band_project`."""
    R = v.shape[0]
    M = fb.shape[0]
    step = (R + nchunk - 1) // nchunk
    for c in prange(nchunk):
        for r in range(c * step, min(R, (c + 1) * step)):
            o = out[r]
            o[:] = 0.0
            for m in range(M):
                x = v[r, m]
                for k in range(lo[m], hi[m]):
                    o[k] += x * fb[m, k]


@_njit
def grad_window(x, ga, m, power, floor, tiny, taps, n_fft, nchunk):
    """In place on the spectra ``x [R, 2F]`` (after :func:`window_magnitude`, ``m = |x|``):
    ``x <- taps * (x * k)`` with ``k = ga p m^(p-2)`` (``ga [R, F]``: the gradient with respect
    to ``m^p``; ``(m^2 + tiny)^(p/2)`` for ``p < 1``), the gradient with respect to the STFT,
    windowed for the adjoint's ``irfft``."""
    R, F = m.shape
    K = taps.shape[0] - 1
    step = (R + nchunk - 1) // nchunk
    for c in prange(nchunk):
        t = np.empty(2 * (F + 2 * K), dtype=x.dtype)
        g = np.empty(2 * F, dtype=x.dtype)
        for r in range(c * step, min(R, (c + 1) * step)):
            xr = x[r]
            mr = m[r]
            gr = ga[r]
            for f in range(F):
                if power == 1.0:
                    k = gr[f] / max(mr[f], floor)
                elif power > 1.0:
                    k = gr[f] * power * max(mr[f], floor) ** (power - 2.0)
                else:
                    k = gr[f] * power * (mr[f] * mr[f] + tiny) ** (power / 2.0 - 1.0)
                g[2 * f] = xr[2 * f] * k
                g[2 * f + 1] = xr[2 * f + 1] * k
            _window_row(g, t, xr, taps, n_fft)


@numba.njit(fastmath=True, error_model="numpy", boundscheck=False)
def _repad(y, p, L, mode):
    """Padding of ``y [W]`` rewritten from its samples ``[p, p + L)`` (as ``Projector._repad``)."""
    W = y.shape[0]
    K = W - p - L
    if p == 0 or mode == 0:
        return
    for i in range(p):
        if mode == 1:
            y[i] = 0.0
        elif mode == 2:
            y[i] = y[2 * p - i]
        elif mode == 3:
            y[i] = y[p]
        else:
            y[i] = y[L + i]
    for i in range(max(K, 0)):
        j = p + L + i
        if mode == 1:
            y[j] = 0.0
        elif mode == 2:
            y[j] = y[p + L - 2 - i]
        elif mode == 3:
            y[j] = y[p + L - 1]
        else:
            y[j] = y[p + i]


@_njit
def overlap_add(frames, w, env, out, prev, hop, alpha, lerp, pad, lengths, widths, mode, nchunk):
    """``out [B, W] <- env * sum_t w * frames[:, t]`` at ``hop`` spacing (``W = n_fft + hop (T - 1)``,
    ``hop`` divides ``n_fft``; ``env [1 or B, W]``, one envelope or one per item), the padding of
    each item ``b``'s span ``out[b, :widths[b]]`` rewritten (``pad`` samples each side of
    ``lengths[b]``; ``mode`` 0 none, 1 constant, 2 reflect, 3 replicate, 4 circular); with
    ``lerp``, then ``prev <- out + alpha (out - prev)`` (FGLA's momentum point), whose padding is
    rewritten too. Parallel over blocks of ``hop`` output samples, each summing its ``n_fft / hop``
    frames. Items shorter than ``W`` (a ragged batch) have zero envelope past their span."""
    B, T, N = frames.shape
    r = N // hop
    nblk = T + r - 1
    total = B * nblk
    step = (total + nchunk - 1) // nchunk
    for c in prange(nchunk):
        acc = np.empty(hop, dtype=frames.dtype)
        for idx in range(c * step, min(total, (c + 1) * step)):
            b = idx // nblk
            blk = idx - b * nblk
            base = blk * hop
            acc[:] = 0.0
            for k in range(r):
                t = blk - k
                if t >= 0 and t < T:
                    row = frames[b, t, k * hop:(k + 1) * hop]
                    wk = w[k * hop:(k + 1) * hop]
                    for j in range(hop):
                        acc[j] += wk[j] * row[j]
            e = env[b if env.shape[0] > 1 else 0, base:base + hop]
            o = out[b, base:base + hop]
            if lerp:
                q = prev[b, base:base + hop]
                for j in range(hop):
                    y = acc[j] * e[j]
                    o[j] = y
                    q[j] = y + alpha * (y - q[j])
            else:
                for j in range(hop):
                    o[j] = acc[j] * e[j]
    for b in range(B):
        _repad(out[b, :widths[b]], pad, lengths[b], mode)
        if lerp:
            _repad(prev[b, :widths[b]], pad, lengths[b], mode)


@_njit
def history_direction(W, k, coef, g, d, acc, nchunk):
    """``d <- -(W[:k]^T coef[:k] + coef[k] g)`` for the history ``W [2 m, n]`` and ``g, d [n]``
    (``coef [k + 1]`` in their dtype), and ``acc[c, 0] <- g . d`` over chunk ``c`` of the elements
    (``acc [nchunk, 1]``). Each chunk works on slices (it vectorises; indexing the whole arrays
    did not, 6x slower)."""
    n = g.shape[0]
    step = (n + nchunk - 1) // nchunk
    for c in prange(nchunk):
        lo = min(n, c * step)
        hi = min(n, lo + step)
        dc = d[lo:hi]
        gc = g[lo:hi]
        cg = -coef[k]
        for j in range(hi - lo):
            dc[j] = cg * gc[j]
        for r in range(k):
            a = coef[r]
            wc = W[r, lo:hi]
            for j in range(hi - lo):
                dc[j] -= a * wc[j]
        gd = cg * 0
        for j in range(hi - lo):
            gd += gc[j] * dc[j]
        acc[c, 0] = gd


@_njit
def history_pair(W, k, d, t, g, gn, P, acc, nchunk):
    """The candidate pair ``P[0] <- t d`` (the step), ``P[1] <- gn - g`` (the gradient's change),
    and per chunk ``c`` of the elements into ``acc [nchunk, 7 + k]``: ``s.s, s.y, y.y, s.gn,
    y.gn, gn.gn, max |gn|`` and ``W[r] . gn`` for ``r < k`` (``t [1]`` in the arrays' dtype;
    sums in it too, as torch's)."""
    n = g.shape[0]
    step = (n + nchunk - 1) // nchunk
    for c in prange(nchunk):
        lo = min(n, c * step)
        hi = min(n, lo + step)
        m = hi - lo
        ps = P[0, lo:hi]
        py = P[1, lo:hi]
        dc = d[lo:hi]
        gc = g[lo:hi]
        nc = gn[lo:hi]
        tt = t[0]
        for j in range(m):
            ps[j] = tt * dc[j]
        for j in range(m):
            py[j] = nc[j] - gc[j]
        ss = tt * 0
        sy = ss
        yy = ss
        sg = ss
        yg = ss
        gg = ss
        gmax = ss
        for j in range(m):
            sj = ps[j]
            yj = py[j]
            gj = nc[j]
            ss += sj * sj
            sy += sj * yj
            yy += yj * yj
            sg += sj * gj
            yg += yj * gj
            gg += gj * gj
        for j in range(m):  # a loop of its own: with the sums above it does not vectorise
            gmax = max(gmax, abs(nc[j]))
        acc[c, 0] = ss
        acc[c, 1] = sy
        acc[c, 2] = yy
        acc[c, 3] = sg
        acc[c, 4] = yg
        acc[c, 5] = gg
        acc[c, 6] = gmax
        for r in range(k):
            wc = W[r, lo:hi]
            a = ss * 0
            for j in range(m):
                a += wc[j] * nc[j]
            acc[c, 7 + r] = a


@_njit_serial
def block_enter(mag, phase, with_phase, i, mags, x, aux, with_aux):
    """A frame enters a streaming block at slot ``i``: ``mags[b, i] <- mag[b]``, ``x[b, i] <-
    phase[b] * mag[b]`` (``0`` without ``with_phase``), and ``aux[b, i] <- x[b, i]`` with
    ``with_aux``. ``mag [B, F]``, ``phase [B, F, 2]`` (real/imaginary), ``mags [B, S, F]``,
    ``x``, ``aux [B, S, F, 2]`` (the stream's buffers)."""
    B, F = mag.shape
    for b in range(B):
        for f in range(F):
            m = mag[b, f]
            mags[b, i, f] = m
            re = phase[b, f, 0] * m if with_phase else m * 0
            im = phase[b, f, 1] * m if with_phase else m * 0
            x[b, i, f, 0] = re
            x[b, i, f, 1] = im
            if with_aux:
                aux[b, i, f, 0] = re
                aux[b, i, f, 1] = im


@_njit_serial
def block_frames(y, wsyn, acc, off, hop, ana, out):
    """The re-analysis frames of a streaming block's consistent signal: ``out[b, k, n] <- ana[k,
    n] seg[b, k hop + n]``, ``seg[b] = sum_k OLA(wsyn y[b, k]) + acc[b, off : off + span]``, for
    the block's inverse FFTs ``y [B, K, N]``, the synthesis window ``wsyn [N]``, the committed
    overlap-add ``acc [B, >= off + span]`` and the analysis windows ``ana [K, N]`` (``span = (K -
    1) hop + N``); ``out [B, K, N]``."""
    B, K, N = y.shape
    span = (K - 1) * hop + N
    seg = np.empty(span, dtype=y.dtype)
    for b in range(B):
        for j in range(span):
            seg[j] = 0
        for k in range(K):
            base = k * hop
            yk = y[b, k]
            for n in range(N):
                seg[base + n] += wsyn[n] * yk[n]
        a = acc[b]
        for j in range(span):
            seg[j] += a[off + j]
        for k in range(K):
            o = out[b, k]
            w = ana[k]
            base = k * hop
            for n in range(N):
                o[n] = w[n] * seg[base + n]


@_njit_serial
def block_impose(c, mags, x, aux, h, alpha, eps, momentum):
    """The block's update after its re-analysis ``c [B, K, F, 2]`` (real/imaginary): ``t =
    (c + eps) * mags / max(|c + eps|, eps)``; without ``momentum`` ``x <- t``, with it
    ``x <- t + alpha (t - aux)`` and ``aux <- t`` (FGLA), on the block's slots ``h .. h + K - 1``
    of the stream's buffers ``mags [B, S, F]``, ``x``, ``aux [B, S, F, 2]``."""
    B, K, F = c.shape[0], c.shape[1], c.shape[2]
    for b in range(B):
        for k in range(K):
            i = h + k
            for f in range(F):
                re = c[b, k, f, 0] + eps
                im = c[b, k, f, 1]
                s = mags[b, i, f] / max(np.sqrt(re * re + im * im), eps)
                tr, ti = re * s, im * s
                if momentum:
                    x[b, i, f, 0] = tr + alpha * (tr - aux[b, i, f, 0])
                    x[b, i, f, 1] = ti + alpha * (ti - aux[b, i, f, 1])
                    aux[b, i, f, 0] = tr
                    aux[b, i, f, 1] = ti
                else:
                    x[b, i, f, 0] = tr
                    x[b, i, f, 1] = ti


@_njit_serial
def block_commit(y, wsyn, acc, off, inv, out):
    """A streaming block's oldest frame committed: ``acc[b, off + n] += wsyn[n] y[b, n]`` for its
    inverse FFT ``y [B, N]``, then the final samples ``out[b, j] <- acc[b, off + j] inv[j]``
    (``inv [H]``, the inverse envelope there; ``out [B, H]``)."""
    B, N = y.shape
    H = out.shape[1]
    for b in range(B):
        a = acc[b]
        yb = y[b]
        for n in range(N):
            a[off + n] += wsyn[n] * yb[n]
        for j in range(H):
            out[b, j] = a[off + j] * inv[j]


@_njit_serial
def mel_nnls(mel, lo, hi, fb, step, n_iter, power, out):
    """:meth:`~specinv_cli.dsp.mel.MelTransform.to_linear` (its torch twin) row by row:
    ``out [R, F] <- P ** (1 / power)`` for ``P = argmin_{P >= 0} ||fb P - mel||^2`` by ``n_iter``
    FISTA steps of size ``step`` from the scaled transpose, for ``mel [R, M]`` and a banded
    ``fb [M, F]`` (row ``m`` nonzero on ``[lo[m], hi[m])``), float64."""
    R, M = mel.shape
    F = fb.shape[1]
    p = np.empty(F)
    y = np.empty(F)
    pn = np.empty(F)
    g = np.empty(F)
    r = np.empty(M)
    tiny = np.finfo(np.float64).tiny
    for row in range(R):
        v = mel[row]
        g[:] = 0.0
        for m in range(M):
            for k in range(lo[m], hi[m]):
                g[k] += fb[m, k] * v[m]
        for k in range(F):
            p[k] = max(g[k], 0.0)
        num = 0.0
        den = 0.0
        for m in range(M):
            e = 0.0
            for k in range(lo[m], hi[m]):
                e += fb[m, k] * p[k]
            num += e * v[m]
            den += e * e
        scale = max(num / max(den, tiny), 0.0)
        for k in range(F):
            p[k] *= scale
            y[k] = p[k]
        t = 1.0
        for _ in range(n_iter):
            for m in range(M):
                e = 0.0
                for k in range(lo[m], hi[m]):
                    e += fb[m, k] * y[k]
                r[m] = e - v[m]
            g[:] = 0.0
            for m in range(M):
                for k in range(lo[m], hi[m]):
                    g[k] += fb[m, k] * r[m]
            t_next = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
            c = (t - 1.0) / t_next
            for k in range(F):
                pn[k] = max(y[k] - step * g[k], 0.0)
                y[k] = pn[k] + c * (pn[k] - p[k])
                p[k] = pn[k]
            t = t_next
        o = out[row]
        for k in range(F):
            o[k] = p[k] if power == 1.0 else p[k] ** (1.0 / power)
