"""Online (frame-by-frame) projection-based phase retrieval with look-ahead.

T. Peer, S. Welker and T. Gerkmann, "A flexible online framework for projection-based STFT
phase retrieval", arXiv 2309.07043, 2023: RTISI-LA (Zhu, Beauregard & Wyse 2007, :mod:`.rtisi`)
generalised so that any method built from the two projections of Griffin-Lim runs on a stream.

Frames arrive one at a time. A block of ``K = LA + 1`` active frames (the newest and the ``LA``
before it) is refined with the frames before it frozen ("committed"); then the oldest is
committed and leaves the block, and the samples that no later frame overlaps are final. On the
block, the two projections of the offline methods::

    P_C(X) = rfft(a_k * (c + sum_k OLA(w irfft(X_k))) / E)    consistency (the committed c fixed)
    P_A(X) = |S| X / |X|                                       the target magnitudes

where ``E`` is the overlap-add of ``w^2`` from the first frame on as if the stream went on (so
``w / E`` is the canonical dual window) and ``a_k = w`` except on the newest frame, whose
analysis window may be RTISI-LA's asymmetric one (:func:`asymmetric_windows`). Rules,
the offline methods' updates on the block's frames::

    gla  (RTISI-LA):  X <- P_A(P_C(X))
    fgla:             T = P_A(P_C(X)),  X <- T + alpha (T - T_prev),  T_prev <- T
    raar:             a = P_A(X), g = P_C(a),  X <- beta (X + 2 g - C - a) + (1 - beta) a,  C <- g
    dm:               raar with beta = 1 (the difference map at beta = 1, Douglas-Rachford)

(``C`` tracks ``P_C(X)`` as the offline RAAR does.) The committed frame is ``X`` for gla and
fgla (the last ``T``) and ``P_A(g)`` for raar/dm. A frame enters with the phase of an
initialiser (e.g. RTPGHI, :mod:`.rtpghi`), or empty (``None``: RTISI-LA's partial
reconstruction gives it its first phase).

Stream: :meth:`OnlineStream.step` takes one frame and returns the ``hop`` samples that became
final. Every frame is one step of the same operations whatever how many frames the caller
holds, so the output does not depend on how the stream is cut into chunks (bit for bit). The
state is the block, ``(K - 1) hop + n_fft`` samples of overlap-add and a few window-sized
arrays: it does not grow with the stream. Algorithmic latency, for a spectrogram analysed from
a live signal: a sample is final ``n_fft + (LA - 1) hop`` samples after the last input sample
that the newest frame needs (:func:`latency_samples`).

Shapes: one step takes ``mag [B, F]`` (and a phase ``[B, F]``) and returns ``[B, hop]``
(less at the start of the output); :func:`online` runs ``mag [..., F, T]`` -> ``[..., length]``.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from ..dsp.stft import STFT, fit_frames, jit_kernels, jit_ready

__all__ = ["OnlineStream", "online", "iterations_per_step", "latency_samples", "asymmetric_windows", "RULES"]

RULES = ("gla", "fgla", "raar", "dm")
#: Steps between two copies of the sliding buffers back to their start.
SLACK = 64


def latency_samples(n_fft: int, hop: int, look_ahead: int) -> int:
    """Algorithmic latency in samples of a stream with ``look_ahead`` frames: when frame ``n``
    arrives (it needs the signal up to ``n hop + n_fft`` of the padded signal) frame
    ``n - look_ahead`` is committed and the samples before ``(n - look_ahead + 1) hop`` are final."""
    return int(n_fft + (look_ahead - 1) * hop)


def _causal_envelope(w: torch.Tensor, hop: int, n: int) -> torch.Tensor:
    """``E(p) = sum_{j >= 0} w^2(p - j hop)`` for ``p = 0 .. n - 1`` (float64): the window-square
    overlap-add of a stream that started at 0 and goes on."""
    N = w.shape[-1]
    w2 = w.to(torch.float64) ** 2
    e = torch.zeros(n + N, dtype=torch.float64, device=w.device)
    for j in range(0, n // hop + 1):
        e[j * hop:j * hop + N] += w2
    return e[:n]


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


class OnlineStream:
    """The online framework's state for ``B`` independent streams (see the module docstring).

    Parameters
    ----------
    stft : the STFT operator (settings, device, dtype).
    look_ahead : frames ``LA`` after the one being committed (the block holds ``LA + 1``).
    iterations : iterations on the block per step (each frame gets ``iterations * (LA + 1)``).
    rule : ``gla`` | ``fgla`` | ``raar`` | ``dm``.
    alpha : FGLA's momentum; beta : RAAR's relaxation (dm: 1); the offline methods' defaults.
    asymmetric_window : RTISI-LA's asymmetric analysis window on the newest frame.
    batch : number of streams ``B``.

    Example
    -------
    >>> import torch
    >>> from specinv_cli.config import STFTConfig
    >>> op = STFT(STFTConfig(n_fft=256, hop_length=64))
    >>> mag = op.forward(torch.randn(1, 4096)).abs()
    >>> s = OnlineStream(op, look_ahead=2, iterations=2)
    >>> y = torch.cat([s.step(mag[:, :, t]) for t in range(mag.shape[-1])] + [s.flush()], dim=-1)
    >>> y.shape
    torch.Size([1, 4096])
    """

    def __init__(self, stft: STFT, *, look_ahead: int = 3, iterations: int = 1, rule: str = "gla",
                 alpha: float = 0.99, beta: float = 0.95, asymmetric_window: bool = True, batch: int = 1):
        if rule not in RULES:
            raise ValueError(f"`rule` must be one of {', '.join(RULES)}, got {rule!r}")
        for name, v, lo in (("look_ahead", look_ahead, 0), ("iterations", iterations, 0), ("batch", batch, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"`{name}` must be an integer >= {lo}, got {v!r}")
        self.stft, self.rule, self.batch = stft, rule, batch
        self.alpha, self.beta = float(alpha), (1.0 if rule == "dm" else float(beta))
        N, S = stft.n_fft, stft.hop
        self.N, self.S, self.LA, self.K = N, S, look_ahead, look_ahead + 1
        self.R = -(-N // S)
        self.iterations = iterations
        self.span = (self.K - 1) * S + N
        dev, real = stft.device, stft.window.dtype
        self.real, self.cplx = real, real.to_complex()
        self.eps = torch.finfo(real).tiny ** 0.5
        F = stft.n_freqs
        w = stft.window
        self.wsyn = w / stft._scale if stft.normalized else w  # irfft undoes rfft; undo the scaling too
        # The causal envelope, long enough that from its offset `steady` on it repeats with the hop.
        self._steady = self.R * S
        n_env = self._steady + (self.R + self.K + 2) * S + N
        env = _causal_envelope(w, S, n_env)
        self._tiny = float(env.max()) * 1e-11
        self._inv_env = self._inverse(env)
        self._windows: dict = {}  # envelope offset -> the block's analysis windows over E, 1 / E
        ana = w.expand(self.K, N).clone()
        ana_empty = ana
        if asymmetric_window:
            a1, a2 = asymmetric_windows(w, S)
            ana[-1] = a2
            ana_empty = ana.clone()
            ana_empty[-1] = a1  # the newest frame still empty (no initial phase): its first iteration
        self._ana, self._ana_empty = ana, ana_empty
        B, K = batch, self.K
        # The block's frames (estimates, targets, the rule's second variable) and the committed
        # overlap-add live in longer buffers that a window slides along (copied back to the start
        # once per SLACK steps): a step moves an index instead of shifting arrays.
        cap = K + SLACK
        self._Xb = torch.zeros(B, cap, F, device=dev, dtype=self.cplx)  # current estimates, oldest first
        self._Mb = torch.zeros(B, cap, F, device=dev, dtype=real)
        self._Ab = torch.zeros(B, cap, F, device=dev, dtype=self.cplx) if rule != "gla" else None
        self._Cb = torch.zeros(B, self.span + S * (SLACK + 1), device=dev, dtype=real)  # committed OLA
        self._head = 0
        self._fused: bool | None = None  # the numba kernels for the block (decided at the first step)
        self._np: dict | None = None  # their numpy views of the buffers (made at the first fused step)
        # The torch path's overlap-add as one windowed write and one sum: frame k goes to row k
        # at offset k hop (a strided view; the rest of those rows stays zero), the committed part
        # to row K. (The kernels read the committed part where it is.)
        rows = self.span + S
        self._rows = torch.zeros(B, K + 1, rows, device=dev, dtype=real)
        self._placed = self._rows.as_strided((B, K, N), ((K + 1) * rows, rows + S, 1))
        self.steps = 0  # frames that entered, virtual ones included
        self.frames = 0  # real frames pushed
        # Output bookkeeping: the first LA hops are before frame 0, then `pad` samples of padding.
        self._skip = self.LA * S + stft.pad
        self._done = False

    # --- the stream ----------------------------------------------------------------------------
    def step(self, mag: torch.Tensor, phase: torch.Tensor | None = None) -> torch.Tensor:
        """One frame in (``mag [B, F]``, its initial unit ``phase [B, F]`` or ``None``), the
        samples that became final out (``[B, hop]``, fewer or none at the start)."""
        if self._done:
            raise RuntimeError("the stream was flushed; start a new one")
        self.frames += 1
        return self._step(mag, phase)

    def flush(self, length: int | None = None) -> torch.Tensor:
        """The rest of the stream: ``LA`` steps with empty frames, then the tail, so that the
        whole output has ``length`` samples (default ``stft.default_length(frames)``; at most
        what the frames reach). The stream ends here."""
        if self._done:
            raise RuntimeError("the stream was flushed already")
        B, F = self.batch, self.stft.n_freqs
        zero = torch.zeros(B, F, device=self._Xb.device, dtype=self.real)
        outs = [self._step(zero, None) for _ in range(self.LA)]
        self._done = True
        T = self.frames
        total = (max(self.stft.default_length(T), 0) if T else 0) if length is None else int(length)
        pos = self.steps * self.S  # buffer position of acc[0]
        start = self.LA * self.S + self.stft.pad  # buffer position of output sample 0
        q0 = max(pos, start)  # the first sample not handed out yet
        n = max(0, min(start + total, pos + self.acc.shape[-1]) - q0)
        # the tail's envelope lacks the frames after the last: exact, not causal
        outs.append(self.acc[:, q0 - pos:q0 - pos + n] * self._exact_inverse(q0 - self.LA * self.S, n, T))
        return torch.cat(outs, dim=-1)

    # --- internals -----------------------------------------------------------------------------
    def _offset(self, p: int) -> int:
        """Where real position ``p >= 0`` lies in the stored envelope (periodic from ``steady``)."""
        return p if p < self._steady else self._steady + (p - self._steady) % self.S

    def _inv_slice(self, p: int, n: int) -> torch.Tensor:
        """``1 / E`` of the causal envelope at real positions ``p .. p + n - 1`` (0 before the
        first frame)."""
        front = min(n, max(0, -p))
        lo = self._offset(max(p, 0))
        e = self._inv_env[lo:lo + n - front]
        return torch.nn.functional.pad(e, (front, 0)) if front else e

    def _block_windows(self, p: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For a block starting at real position ``p``: its analysis windows with the dual
        window's ``1 / E`` folded in (later iterations', and the first one's for an empty newest
        frame), and ``1 / E`` on the hop that the step makes final."""
        key = self._offset(p) if p >= 0 else p
        w = self._windows.get(key)
        if w is None:
            inv_e = self._inv_slice(p, self.span).unfold(-1, self.N, self.S)  # [K, N]
            w = self._windows[key] = (inv_e * self._ana, inv_e * self._ana_empty, self._inv_slice(p, self.S))
        return w

    def _inverse(self, e: torch.Tensor) -> torch.Tensor:
        tiny = self._tiny
        return torch.where(e > tiny, 1.0 / e.clamp_min(tiny), torch.zeros_like(e)).to(self.real)

    def _exact_inverse(self, p: int, n: int, T: int) -> torch.Tensor:
        """``1 / E`` at real positions ``p ..`` for a stream of exactly ``T`` frames (the tail:
        the frames after the last are missing)."""
        w2 = self.stft.window.to(torch.float64) ** 2
        e = torch.zeros(n, dtype=torch.float64, device=w2.device)
        for f in range(max(0, (p - self.N) // self.S), T):
            lo, hi = max(p, f * self.S), min(p + n, f * self.S + self.N)
            if lo < hi:
                e[lo - p:hi - p] += w2[lo - f * self.S:hi - f * self.S]
        return self._inverse(e)

    @property
    def X(self) -> torch.Tensor:
        """The block's current estimates ``[B, K, F]``, oldest first (a view)."""
        return self._Xb.narrow(1, self._head, self.K)

    @property
    def acc(self) -> torch.Tensor:
        """The committed overlap-add from the block's first sample on, ``[B, span + hop]`` (a view)."""
        return self._Cb.narrow(1, self._head * self.S, self.span + self.S)

    def _advance(self) -> None:
        """Slide the windows by one frame (and the overlap-add by one hop)."""
        h, K, S = self._head + 1, self.K, self.S
        if h + K > self._Xb.shape[1]:  # at the end of the buffers: back to their start
            for b in (self._Xb, self._Mb, self._Ab):
                if b is not None:
                    b.narrow(1, 0, K - 1).copy_(b.narrow(1, h, K - 1).clone())
            keep = self.span
            c = self._Cb
            c.narrow(1, 0, keep).copy_(c.narrow(1, h * S, keep).clone())
            c.narrow(1, keep, c.shape[1] - keep).zero_()
            h = 0
        self._head = h

    def _block_ola(self, frames: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """``base + OLA(frames [B, K, N])`` on the block's ``span`` samples (the plain way)."""
        out = base.clone()
        for k in range(frames.shape[1]):
            out[:, k * self.S:k * self.S + self.N] += frames[:, k]
        return out

    def _consistent(self, X: torch.Tensor, ana: torch.Tensor) -> torch.Tensor:
        """``P_C(X)``: the committed part is in the OLA rows already (set once per step)."""
        torch.mul(torch.fft.irfft(X, n=self.N, dim=-1), self.wsyn, out=self._placed)
        seg = self._rows[:, :, :self.span].sum(dim=1).unfold(-1, self.N, self.S)  # [B, K, N] views
        # + eps: zero phase where the analysis is exactly 0 (e.g. the very first frame)
        return torch.fft.rfft(seg * ana, dim=-1).add_(self.eps)

    def _impose(self, c: torch.Tensor, mags: torch.Tensor) -> torch.Tensor:
        # not torch.sgn: its vectorised loop rounds the tail differently, and a stream in a
        # batch would then not give what it gives alone
        return c * (mags / c.abs().clamp_min(self.eps))

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_np"] = None  # numpy views of the buffers: a copy makes its own
        return state

    def _views(self) -> dict:
        """Numpy views of the buffers and scratch for the numba kernels (made once)."""
        if self._np is None:
            B, K, N, F, dev = self.batch, self.K, self.N, self.stft.n_freqs, self._Xb.device
            y = torch.empty(B, K, N, dtype=self.real, device=dev)  # the block's inverse FFTs
            y1 = torch.empty(B, N, dtype=self.real, device=dev)  # the committed frame's
            fr = torch.empty(B, K, N, dtype=self.real, device=dev)  # the re-analysis frames
            c = torch.empty(B, K, F, dtype=self.cplx, device=dev)  # their FFTs
            x = torch.view_as_real(self._Xb).numpy()
            one = y.numpy().dtype.type
            self._np = dict(
                y=y, y1=y1, fr=fr, c=c, y_=y.numpy(), y1_=y1.numpy(), fr_=fr.numpy(),
                c_=torch.view_as_real(c).numpy(), x_=x, m_=self._Mb.numpy(), C_=self._Cb.numpy(),
                a_=x if self._Ab is None else torch.view_as_real(self._Ab).numpy(), wsyn_=self.wsyn.numpy(),
                zero_=np.zeros((B, F, 2), dtype=one), alpha=one(self.alpha), eps=one(self.eps))
        return self._np

    def _step_fused(self, mag: torch.Tensor, phase: torch.Tensor | None) -> torch.Tensor:
        """:meth:`_step` for gla/fgla on the numba kernels (the torch code there is its twin)."""
        J, _ = jit_kernels()
        v = self._views()
        S, N, K, h = self.S, self.N, self.K, self._head
        fgla = self.rule == "fgla"
        # C-contiguous, as the kernels were compiled for (a frame may be a column of a push)
        m = np.ascontiguousarray(mag.detach().to(self.real).numpy())
        ph = (v["zero_"] if phase is None
              else np.ascontiguousarray(torch.view_as_real(phase.detach().to(self.cplx)).numpy()))
        J.block_enter(m, ph, phase is not None, h + K - 1, v["m_"], v["x_"], v["a_"], fgla)
        p = (self.steps - self.LA) * S  # real position of the block's first sample
        ana_it, ana_empty, inv = self._block_windows(p)
        ana_later = ana_it.numpy()
        ana_first = ana_empty.numpy() if phase is None else ana_later
        X = self._Xb.narrow(1, h, K)
        y, fr, c, y_, fr_, c_ = v["y"], v["fr"], v["c"], v["y_"], v["fr_"], v["c_"]
        for it in range(self.iterations):
            ana = ana_first if it == 0 else ana_later
            torch.fft.irfft(X, n=N, dim=-1, out=y)
            J.block_frames(y_, v["wsyn_"], v["C_"], h * S, S, ana, fr_)
            torch.fft.rfft(fr, dim=-1, out=c)
            J.block_impose(c_, v["m_"], v["x_"], v["a_"], h, v["alpha"], v["eps"], fgla)
        # the committed frame: for fgla the last magnitude-consistent estimate
        oldest = (self._Ab if fgla and self.iterations else self._Xb).select(1, h)
        torch.fft.irfft(oldest, n=N, dim=-1, out=v["y1"])
        out = torch.empty(self.batch, S, dtype=self.real, device=self._Xb.device)
        J.block_commit(v["y1_"], v["wsyn_"], v["C_"], h * S, inv.numpy(), out.numpy())
        return self._finish(out)

    def _finish(self, out: torch.Tensor) -> torch.Tensor:
        """End of a step: the block slides on; the samples before the output's start dropped."""
        self.steps += 1
        self._advance()  # the oldest frame is committed; the next one enters at the end
        if self._skip:
            k = min(self._skip, self.S)
            self._skip -= k
            out = out[:, k:]
        return out

    def _step(self, mag: torch.Tensor, phase: torch.Tensor | None) -> torch.Tensor:
        if self._fused is None:
            self._fused = self.rule in ("gla", "fgla") and self._Xb.device.type == "cpu" and jit_ready(self.real)
        if self._fused:
            return self._step_fused(mag, phase)
        S, N, K = self.S, self.N, self.K
        h = self._head
        mags, X = self._Mb.narrow(1, h, K), self._Xb.narrow(1, h, K)
        mags.select(1, K - 1).copy_(mag)
        if phase is None:
            X.select(1, K - 1).zero_()
        else:
            torch.mul(phase, mag, out=X.select(1, K - 1))
        if self._Ab is not None:  # fgla: T_prev; raar: C = P_C(X), as if consistent
            self._Ab.select(1, h + K - 1).copy_(X.select(1, K - 1))
        acc = self.acc
        self._rows.select(1, K).narrow(1, 0, self.span).copy_(acc.narrow(1, 0, self.span))  # committed OLA
        ana_it, ana_empty, inv = self._block_windows((self.steps - self.LA) * S)
        ana_0 = ana_empty if phase is None else ana_it
        aux = None if self._Ab is None else self._Ab.narrow(1, h, K)
        g = None
        Y = X
        for it in range(self.iterations):
            ana = ana_0 if it == 0 else ana_it
            if self.rule == "gla":
                Y = self._impose(self._consistent(Y, ana), mags)
            elif self.rule == "fgla":
                t = self._impose(self._consistent(Y, ana), mags)
                Y = torch.lerp(aux, t, 1 + self.alpha)  # t + alpha (t - t_prev)
                aux = t
            else:
                a = self._impose(Y, mags)
                g = self._consistent(a, ana)
                Y = self.beta * (Y + 2 * g - aux - a) + (1 - self.beta) * a
                aux = g
        if Y is not X:
            X.copy_(Y)
        if aux is not None and self.iterations:
            self._Ab.narrow(1, h, K).copy_(aux)
        if self.rule == "fgla" and self.iterations:
            oldest = aux.select(1, 0)  # the last T (magnitude-consistent)
        elif self.rule in ("raar", "dm"):
            oldest = self._impose((X if g is None else g).select(1, 0), mags.select(1, 0))
        else:
            oldest = X.select(1, 0)
        acc.narrow(1, 0, N).add_(torch.fft.irfft(oldest, n=N, dim=-1).mul_(self.wsyn))
        # samples at buffer positions steps*hop .. + hop are final: no later frame reaches them
        out = acc.narrow(1, 0, S) * inv
        return self._finish(out)


def iterations_per_step(n_iter: int, look_ahead: int, at_least_one: bool) -> int:
    """Iterations on the block per step for ``n_iter`` updates per frame in all (a frame is in
    the block for ``look_ahead + 1`` steps): ``ceil(n_iter / (look_ahead + 1))``. With
    ``at_least_one`` never 0 (RTISI-LA's frames enter empty: without an iteration they stay so)."""
    k = -(-int(n_iter) // (look_ahead + 1)) if n_iter > 0 else 0
    return max(k, 1) if at_least_one else k


def online(mag: torch.Tensor, stft: STFT, *, n_iter: int = 8, init: torch.Tensor | None = None,
           length: int | None = None, look_ahead: int = 3, rule: str = "gla",
           on_step: Callable | None = None, **options) -> torch.Tensor:
    """A whole spectrogram through :class:`OnlineStream`, frame by frame: ``mag [..., F, T]`` ->
    waveform ``[..., length]``. ``n_iter``: updates per frame in all (at least one iteration per
    step, :func:`iterations_per_step`); ``init``: complex start whose phase each entering frame
    takes (else the frames enter empty). ``on_step(frames_committed, estimate)``, when given, is
    called after each step with a function giving the partial estimate's magnitude."""
    lead, (F_, T) = mag.shape[:-2], mag.shape[-2:]
    if length is None:
        length = stft.default_length(T)
    B = max(1, math.prod(lead))
    m = mag.reshape(B, F_, T).to(stft.window.dtype)
    phase = None
    if init is not None:
        c = init.reshape(B, F_, T).to(stft.window.dtype.to_complex())
        phase = c / c.abs().clamp_min(torch.finfo(stft.window.dtype).tiny ** 0.5)
    s = OnlineStream(stft, look_ahead=look_ahead, iterations=iterations_per_step(n_iter, look_ahead, True),
                     rule=rule, batch=B, **options)
    outs = []
    for t in range(T):
        outs.append(s.step(m[:, :, t], None if phase is None else phase[:, :, t]))
        if on_step is not None:
            on_step(t + 1, lambda: _partial(stft, outs, s, length, T, lead))
    outs.append(s.flush(length))
    y = torch.cat(outs, dim=-1)
    y = y[:, :length] if y.shape[-1] >= length else torch.nn.functional.pad(y, (0, length - y.shape[-1]))
    return y.reshape(*lead, length)


def _partial(stft: STFT, outs, s: OnlineStream, length: int, T: int, lead) -> torch.Tensor:
    """Magnitude of the estimate so far: the final samples, then the committed overlap-add and
    the block's frames after the committed one (causal envelope), zeros after."""
    N, S = s.N, s.S
    # after a step the windows moved on: the block's frames but the last slot (not entered yet)
    frames = torch.fft.irfft(s.X[:, :-1], n=N, dim=-1) * s.wsyn
    pending = s._block_ola(frames, s.acc[:, :s.span])
    pending = pending * s._inv_slice((s.steps - s.LA) * S, s.span)
    done = torch.cat(outs, dim=-1)
    if s._skip:
        pending = pending[:, s._skip:]
    sig = torch.cat([done, pending], dim=-1)[:, :length]
    if sig.shape[-1] < length:
        sig = torch.nn.functional.pad(sig, (0, length - sig.shape[-1]))
    return fit_frames(stft.forward(sig).abs(), T).reshape(*lead, -1, T)
