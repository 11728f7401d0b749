"""Short-time Fourier transform operators used by every algorithm.

:class:`STFT` is a pair of linear maps between waveforms ``[..., L]`` and complex
spectrograms ``[..., F, T]`` (``F = n_fft // 2 + 1``) with exactly the conventions of
``torch.stft`` / ``torch.istft`` (frame ``t`` centred on sample ``t * hop`` when
``center=True``, phase referenced to the start of the ``n_fft``-long frame, window
zero-padded to ``n_fft`` in the middle). The inverse is the least-squares ISTFT
(Griffin & Lim 1984, eq. 6): windowed overlap-add divided by the window-square envelope.

What is precomputed once per (frame count, device, dtype) and reused on every call is what
makes an iteration cost about two real FFTs: the window, the inverse envelope and the
overlap-add layout. On the CPU, :class:`Projector` hands the elementwise passes to the fused
numba kernels of :mod:`specinv_cli.dsp.kernels` (see :func:`set_jit` and :func:`jit_scope` for when).

Example
-------
>>> import torch
>>> from specinv_cli.config import STFTConfig
>>> op = STFT(STFTConfig(n_fft=512, hop_length=128))
>>> x = torch.randn(2, 4096)
>>> X = op.forward(x)                      # [2, 257, 33]
>>> y = op.inverse(X, length=4096)
>>> bool(torch.allclose(x, y, atol=1e-5))
True
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import weakref
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ..config import GAUSSIAN_STD_FRACTION, WINDOWS, canonical_window
from ..util.limits import numba_runtime

if TYPE_CHECKING:  # pragma: no cover
    from ..config import STFTConfig

__all__ = ["STFT", "Projector", "MagnitudeProjection", "get_window", "WINDOWS", "magnitude_projection",
           "fit_frames", "set_jit", "jit_enabled", "jit_ready", "jit_scope", "JIT_MIN_WORK", "cosine_taps",
           "filterbank_bands"]

_JIT: list = []  # [module or None] once resolved


def set_jit(enabled: bool | None) -> None:
    """Turn the numba kernels of :mod:`specinv_cli.dsp.kernels` on (``True``: when numba imports), off
    (``False``), or back to the default (``None``: on unless ``SPECINV_JIT=0``)."""
    _JIT.clear()
    _READY.clear()
    if enabled is not None:
        _JIT.append(_load_jit() if enabled else None)


def _load_jit():
    try:
        from ..dsp import kernels as jit
    except Exception:  # numba missing or broken: the torch path does everything
        return None
    return jit


def _jit():
    """The kernels module, or ``None`` when they are off (see :func:`set_jit`)."""
    if not _JIT:
        off = os.environ.get("SPECINV_JIT", "1").strip().lower() in ("0", "false", "no", "off")
        _JIT.append(None if off else _load_jit())
    return _JIT[0]


def jit_enabled() -> bool:
    """Whether the CPU fast path runs the fused numba kernels."""
    return _jit() is not None


_READY: dict = {}
_SKIP: list = []
_WORK = [0.0]

#: Work (``iterations x items x frames x n_fft``, summed over the calls in a process) before the
#: kernels are first loaded. Loading numba's runtime the first time (its target context imports
#: scipy.linalg among others) is a fixed cost that short jobs never win back, while the kernels
#: save a roughly constant time per unit of work; the threshold is that break-even, measured by
#: ``benchmarks/speed.py`` (``benchmarks/results/speed.md``). When PGHI's numba code has already
#: brought the runtime up, the kernels load much faster and a short job roughly breaks even, so
#: one threshold serves both.
JIT_MIN_WORK = 4e7


@contextlib.contextmanager
def jit_scope(work: float, dtype: torch.dtype | None = None):
    """Runs a job of ``work`` units (see :data:`JIT_MIN_WORK`) with the kernels unless they are
    not loaded yet and this process's jobs so far add up to less than ``JIT_MIN_WORK``: a lone
    short inversion stays on torch, a batch or a long input loads them once. With ``dtype``, the
    kernels for it are loaded on entry (so that a caller timing the job does not time that)."""
    _WORK[0] += float(work)
    skip = not any(_READY.values()) and _WORK[0] < JIT_MIN_WORK
    if skip:
        _SKIP.append(True)
    elif dtype in (torch.float32, torch.float64):
        jit_ready(dtype)
    try:
        yield
    finally:
        if skip:
            _SKIP.pop()


def jit_ready(dtype: torch.dtype) -> bool:
    """Whether the kernels are on and run for ``dtype`` (unless a short job's :func:`jit_scope`
    keeps them off): the first call per dtype runs each kernel on a few samples (compiling it, or
    loading it from numba's cache); if that fails, the kernels are turned off with a warning and
    the torch path takes over."""
    if _jit() is None:
        return False
    ok = _READY.get(dtype)
    if ok is None and _SKIP:
        return False
    if ok is None:
        try:
            numba_runtime()
            _smoke_test(_JIT[0], np.float32 if dtype == torch.float32 else np.float64)
            ok = True
        except Exception as e:  # a numba that imports but cannot compile here
            import warnings

            first = (str(e).splitlines() or [""])[0][:200]
            warnings.warn_explicit(f"specinv: the numba kernels failed ({type(e).__name__}: {first}); "
                                   "using the torch path (set SPECINV_JIT=0 to skip them)", RuntimeWarning,
                                   "specinv", 0)  # one line, no source line under it
            set_jit(False)
            ok = False
        _READY[dtype] = ok
    return ok


def _smoke_test(J, dt) -> None:
    x = np.ones((3, 10), dt)
    m = np.ones((3, 5), dt)
    eps2 = dt(1e-30)
    J.project(x, m, eps2)
    J.project_into(x, m, x.copy(), eps2)
    J.window_conv(x, np.array([0.5, -0.25], dt), 8, 2)
    J.window_conv_project(x, m, np.array([0.5, -0.25], dt), 8, eps2, 2)
    J.window_magnitude(x, m, np.array([0.5, -0.25], dt), 8, 2)
    J.residual_grad(x, m, np.ones(3, dt), np.ones(5, dt), np.array([0.5, -0.25], dt), 8, dt(1e-15), np.ones(3, dt), 2)
    J.grad_window(x, m, m, 1.0, dt(1e-15), eps2, np.array([0.5, -0.25], dt), 8, 2)
    lo, hi = np.zeros(2, np.int64), np.full(2, 5, np.int64)
    J.band_project(m, lo, hi, m[:2].copy(), np.empty((3, 2), dt), 2)
    J.band_adjoint(m[:, :2].copy(), lo, hi, m[:2].copy(), np.empty((3, 5), dt), 2)
    fr = np.ones((1, 3, 8), dt)
    y = np.ones((1, 16), dt)
    one = np.ones(1, np.int64)
    J.overlap_add(fr, np.ones(8, dt), np.ones((1, 16), dt), y, y.copy(), 4, 0.5, True, 4, one * 8, one * 16, 2, 2)
    # the streaming block's kernels, with the argument types (C-contiguous) the stream passes
    blk = np.empty((1, 2, 8), dt)
    J.block_frames(np.ones((1, 2, 8), dt), np.ones(8, dt), np.ones((1, 16), dt), 2, 4, np.ones((2, 8), dt), blk)
    c4 = np.ones((1, 2, 5, 2), dt)
    m3 = np.ones((1, 3, 5), dt)
    x4 = np.ones((1, 3, 5, 2), dt)
    J.block_enter(np.ones((1, 5), dt), np.ones((1, 5, 2), dt), True, 2, m3, x4, x4.copy(), True)
    J.block_impose(c4, m3, x4, x4.copy(), 1, dt(0.5), dt(1e-15), True)
    J.block_commit(np.ones((1, 8), dt), np.ones(8, dt), y, 2, np.ones(4, dt), np.empty((1, 4), dt))
    nn = np.empty((1, 5), dt)
    J.mel_nnls(m[:1, :2].astype(np.float64), lo, hi, m[:2].astype(np.float64), 0.1, 3, 1.0, nn.astype(np.float64))
    if not (np.isfinite(y).all() and np.isfinite(blk).all()):
        raise FloatingPointError("non-finite result")


_THREADS: dict[int, int] = {}  # thread id -> numba thread count set for it


def _after_fork_in_child() -> None:
    """numba's threading layers do not survive ``fork()`` once started (GNU OpenMP hangs or
    terminates the child; workqueue is not fork-safe either): a forked child of a process that
    ran parallel numba code uses the torch path (``multiprocessing`` with fork, DataLoader
    workers). Children started by spawn, or forked before any kernel ran, are unaffected."""
    started = any(_READY.values())
    mod = sys.modules.get("numba.np.ufunc.parallel")
    started = started or bool(getattr(mod, "_is_initialized", False))
    if started:
        set_jit(False)
        _THREADS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def jit_kernels():
    """The kernels with numba's thread count set to torch's (per calling thread)."""
    J = _jit()
    n = torch.get_num_threads()
    tid = threading.get_ident()
    if _THREADS.get(tid) != n:
        J.set_threads(n)
        _THREADS[tid] = n
    return J, 4 * n


def cosine_taps(window: torch.Tensor, max_taps: int = 3, rtol: float = 1e-9):
    """Frequency-domain taps of a cosine-sum window, or ``None``.

    For ``w[n] = sum_k a_k cos(2 pi k n / N)`` (Hann, Hamming, Blackman, rectangular; periodic,
    the full ``n_fft``), ``rfft(w * x)[j] = sum_k taps[|k|] rfft(x)[j - k]`` with
    ``taps = DFT(w)[:K + 1] / N``; returned as float64 numpy when ``DFT(w)`` is real and vanishes
    past ``max_taps - 1`` bins, to ``rtol`` of its largest (for a window rounded to float32,
    a few of its eps).
    """
    w = window.detach().to("cpu", torch.float64)
    n = w.shape[-1]
    d = torch.fft.rfft(w) / n
    scale = float(d.abs().max())
    if scale == 0 or float(d.imag.abs().max()) > rtol * scale:
        return None
    big = (d.real.abs() > rtol * scale).nonzero().flatten()
    K = int(big.max())
    if K >= max_taps or 2 * K >= n:
        return None
    return d.real[:K + 1].numpy().copy()


_PAD_CODES = {"constant": 1, "reflect": 2, "replicate": 3, "circular": 4}  # jit.overlap_add's mode


_BANDS: dict = {}


def filterbank_bands(fb: torch.Tensor):
    """``(lo [M], hi [M], fb as numpy)``: the bins ``[lo, hi)`` where each row of the filterbank
    ``fb [M, F]`` (CPU) is nonzero; cached for the last few filterbanks seen."""
    key = (fb.data_ptr(), fb._version, tuple(fb.shape), fb.dtype)
    hit = _BANDS.get(key)
    if hit is None:
        w = fb.detach().contiguous().numpy()
        nz = w != 0
        any_ = nz.any(axis=1)
        lo = np.where(any_, nz.argmax(axis=1), 0).astype(np.int64)
        hi = np.where(any_, w.shape[1] - nz[:, ::-1].argmax(axis=1), 0).astype(np.int64)
        hit = _BANDS[key] = (lo, hi, w)
        while len(_BANDS) > 4:
            _BANDS.pop(next(iter(_BANDS)))
    return hit


def as_rows(z: torch.Tensor):
    """Numpy view ``[rows, 2 F]`` of a contiguous complex ``[..., F]`` CPU tensor."""
    return torch.view_as_real(z).reshape(-1, 2 * z.shape[-1]).numpy()

def get_window(name: str, win_length: int, n_fft: int | None = None, *,
               device=None, dtype=torch.float32) -> torch.Tensor:
    """Periodic analysis window of ``win_length`` samples, zero-padded to ``n_fft`` in the middle.

    ``gaussian`` is ``exp(-(n - L/2)^2 / (2 s^2))`` with ``s = L / 6``; PGHI's ``gamma`` for it is
    ``2 * pi * s^2`` (see :func:`window_gamma`).
    """
    name = canonical_window(name)
    n_fft = win_length if n_fft is None else n_fft
    if win_length > n_fft:
        raise ValueError(f"win_length {win_length} is larger than n_fft {n_fft}")
    kw = dict(device=device, dtype=torch.float64)
    if name == "hann":
        w = torch.hann_window(win_length, periodic=True, **kw)
    elif name == "hamming":
        w = torch.hamming_window(win_length, periodic=True, **kw)
    elif name == "blackman":
        w = torch.blackman_window(win_length, periodic=True, **kw)
    elif name == "bartlett":
        w = torch.bartlett_window(win_length, periodic=True, **kw)
    elif name == "rectangular":
        w = torch.ones(win_length, **kw)
    else:  # gaussian
        n = torch.arange(win_length, **kw) - win_length / 2
        s = GAUSSIAN_STD_FRACTION * win_length
        w = torch.exp(-0.5 * (n / s) ** 2)
    if win_length < n_fft:
        left = (n_fft - win_length) // 2
        w = F.pad(w, (left, n_fft - win_length - left))
    return w.to(dtype)


def window_gamma(name: str, win_length: int) -> float:
    """Time-frequency ratio ``gamma`` (in samples^2) of a window, for PGHI (Průša et al. 2017).

    For a Gaussian ``exp(-pi t^2 / gamma)`` it is exact; for the others it is the value of the
    Gaussian that fits the window best, as tabulated by Průša et al. (Hann: ``0.25645 L^2``).
    """
    name = canonical_window(name)
    factors = {"hann": 0.25645, "hamming": 0.29794, "blackman": 0.17954, "bartlett": 0.22402,
               "rectangular": 0.6165}  # ltfat's pghi table; rectangular is a rough fit
    if name == "gaussian":
        s = GAUSSIAN_STD_FRACTION * win_length
        return 2 * math.pi * s * s
    return factors[name] * win_length ** 2


def fit_frames(spec: torch.Tensor, n_frames: int) -> torch.Tensor:
    """``spec [..., T']`` cropped or zero-padded to exactly ``n_frames`` frames (a custom output
    length can change the frame count of a re-analysis by one)."""
    t = spec.shape[-1]
    if t == n_frames:
        return spec
    return spec[..., :n_frames] if t > n_frames else F.pad(spec, (0, n_frames - t))


def magnitude_projection(mag: torch.Tensor, c: torch.Tensor, eps: float = 1e-16) -> torch.Tensor:
    """Closest spectrogram with magnitude ``mag`` to ``c``: ``mag * c / |c|`` (phase 0 where c = 0)."""
    return c * (mag / c.abs().clamp_min(eps))


class MagnitudeProjection:
    """:func:`magnitude_projection` onto a fixed ``mag``, written into a buffer without allocating.

    ``P(x, out)`` writes ``mag * x / max(|x|, eps)`` into ``out`` (which may be ``x``). On the fast
    path (``x`` and ``out`` laid out as :meth:`Projector.new_spec` makes them, ``[..., T, F]``
    in memory) it runs five real passes over the interleaved complex data: ``|x|^2`` from the
    real and imaginary parts (no complex ``abs``, which is not vectorised on the CPU), the clamp
    at ``eps^2``, ``rsqrt``, the product with ``mag`` (stored once in the same layout) written into the real
    part of a complex buffer whose imaginary part stays 0, and one complex multiply. Any other
    layout, or autograd, takes :func:`magnitude_projection`.
    """

    def __init__(self, mag: torch.Tensor, eps: float = 1e-16):
        self.mag, self.eps = mag, float(eps)
        self._mag_tf = mag.transpose(-1, -2).contiguous()  # [..., T, F], the FFTs' layout
        self._q = torch.empty_like(self._mag_tf)
        self._f = torch.zeros(self._mag_tf.shape, dtype=mag.dtype.to_complex(), device=mag.device)
        self._f_re = torch.view_as_real(self._f)[..., 0]
        # for the numba kernel: [rows, F] on the CPU, eps^2 in the data's precision
        cpu = mag.device.type == "cpu" and mag.dtype in (torch.float32, torch.float64)
        self._m_np = self._mag_tf.detach().reshape(-1, mag.shape[-2]).numpy() if cpu else None
        self._eps2 = (np.float32 if mag.dtype == torch.float32 else np.float64)(self.eps * self.eps)

    def __call__(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        x_tf = x.transpose(-1, -2)
        if out is None:
            out = torch.empty_like(self._f).transpose(-1, -2)
        o_tf = out.transpose(-1, -2)
        if (x.shape != self.mag.shape or out.shape != self.mag.shape or not x_tf.is_contiguous()
                or not o_tf.is_contiguous() or x.dtype != self._f.dtype
                or (torch.is_grad_enabled() and x.requires_grad)):
            return out.copy_(magnitude_projection(self.mag, x, self.eps))
        if self._m_np is not None and jit_ready(x.dtype.to_real()) and not x.is_conj():
            J, _ = jit_kernels()
            if out.data_ptr() == x.data_ptr():
                J.project(as_rows(x_tf), self._m_np, self._eps2)
            else:
                J.project_into(as_rows(x_tf), self._m_np, as_rows(o_tf), self._eps2)
            return out
        xr = torch.view_as_real(x_tf)
        re, im = xr[..., 0], xr[..., 1]
        q = self._q
        torch.mul(re, re, out=q)
        q.addcmul_(im, im).clamp_min_(self.eps * self.eps).rsqrt_()
        torch.mul(q, self._mag_tf, out=self._f_re)
        torch.mul(x_tf, self._f, out=o_tf)
        return out


class STFT:
    """STFT/ISTFT pair for one set of settings, device and dtype.

    Parameters
    ----------
    config : STFTConfig
        Framing settings (``n_fft``, ``hop_length``, ``win_length``, ``window``, ``center``,
        ``pad_mode``, ``normalized``).
    device, dtype :
        Where and in which real precision (``float32`` or ``float64``) to compute; spectrograms
        are the matching complex dtype.
    """

    def __init__(self, config: "STFTConfig", device=None, dtype=torch.float32):
        self.config = config
        self.n_fft = int(config.n_fft)
        self.hop = int(config.hop_length)
        self.win_length = int(config.win_length or config.n_fft)
        self.center = bool(config.center)
        # Samples of padding on each side before framing: n_fft // 2 for centred frames, else the
        # config's explicit ``pad`` (HiFi-GAN style: (n_fft - hop) / 2 with center=False).
        self.pad = self.n_fft // 2 if self.center else int(getattr(config, "pad", 0) or 0)
        self.pad_mode = config.pad_mode
        self.normalized = bool(config.normalized)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        self.window = get_window(config.window, self.win_length, self.n_fft,
                                 device=self.device, dtype=dtype)
        self.n_freqs = self.n_fft // 2 + 1
        self._scale = self.n_fft ** -0.5 if self.normalized else 1.0
        self._env_cache: dict[int, torch.Tensor] = {}
        self._proj_cache: dict[tuple, Projector] = {}

    # --- sizes -----------------------------------------------------------------------------
    def n_frames(self, length: int) -> int:
        """Number of frames ``forward`` produces for a signal of ``length`` samples."""
        return 1 + (length + 2 * self.pad - self.n_fft) // self.hop

    def default_length(self, n_frames: int) -> int:
        """Signal length ``inverse`` returns when no length is given (as ``torch.istft``):
        ``(T - 1) * hop`` for centred frames, ``T * hop`` for HiFi-GAN framing."""
        return self.n_fft + self.hop * (n_frames - 1) - 2 * self.pad

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, L]`` with ``pad`` samples of ``pad_mode`` padding on each side."""
        if not self.pad:
            return x
        p = self.pad
        mode = self.pad_mode
        if mode == "reflect" and x.shape[-1] <= p:
            mode = "constant"  # reflect needs more samples than the pad; stay defined
        if mode == "circular" and 0 < x.shape[-1] < p:  # torch wraps at most once: index instead
            idx = torch.arange(-p, x.shape[-1] + p, device=x.device) % x.shape[-1]
            return x[..., idx]
        if mode in ("circular", "replicate") and x.shape[-1] == 0:
            mode = "constant"
        if mode == "reflect":  # one concatenation: several times faster than torch's reflection pad on the CPU
            L = x.shape[-1]
            return torch.cat((x[..., 1:p + 1].flip(-1), x, x[..., L - 1 - p:L - 1].flip(-1)), dim=-1)
        return F.pad(x.unsqueeze(1), (p, p), mode=mode).squeeze(1)

    # --- analysis --------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Complex STFT ``[..., F, T]`` of real signals ``[..., L]``."""
        lead = x.shape[:-1]
        x = self._pad(x.reshape(-1, x.shape[-1]))
        if x.shape[-1] < self.n_fft:
            raise ValueError(f"signal of {x.shape[-1]} samples is shorter than n_fft {self.n_fft}")
        frames = x.unfold(-1, self.n_fft, self.hop) * self.window  # [B, T, n_fft]
        spec = torch.fft.rfft(frames, dim=-1)
        if self.normalized:
            spec.mul_(self._scale)
        return spec.transpose(-1, -2).reshape(*lead, self.n_freqs, -1) if lead else spec.transpose(-1, -2)[0]

    # --- synthesis -------------------------------------------------------------------------
    def _overlap_add(self, frames: torch.Tensor) -> torch.Tensor:
        """Sum ``frames [B, T, n_fft]`` at hop spacing into ``[B, n_fft + hop (T - 1)]``."""
        B, T, N = frames.shape
        hop = self.hop
        if N % hop == 0:
            r = N // hop
            out = frames.new_zeros(B, T + r - 1, hop)
            blocks = frames.reshape(B, T, r, hop)
            for k in range(r):  # r = n_fft / hop adds of [B, T, hop]: no Python loop over frames
                out[:, k:k + T] += blocks[:, :, k]
            return out.reshape(B, -1)
        length = N + hop * (T - 1)
        return F.fold(frames.transpose(1, 2), output_size=(1, length), kernel_size=(1, N),
                      stride=(1, hop)).reshape(B, length)

    def _inverse_envelope(self, n_frames: int) -> torch.Tensor:
        env = self._env_cache.get(n_frames)
        if env is None:
            w2 = (self.window.to(torch.float64) ** 2).expand(1, n_frames, self.n_fft)
            e = self._overlap_add(w2.contiguous())[0]
            tiny = e.max() * 1e-11
            env = torch.where(e > tiny, 1.0 / e.clamp_min(tiny), torch.zeros_like(e)).to(self.dtype)
            self._env_cache[n_frames] = env
        return env

    def inverse(self, spec: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Least-squares ISTFT of ``spec [..., F, T]`` to ``[..., length]`` samples."""
        lead = spec.shape[:-2]
        n_frames = spec.shape[-1]
        spec = spec.reshape(-1, spec.shape[-2], n_frames).transpose(-1, -2)  # [B, T, F]
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=-1)
        frames.mul_(self.window if not self.normalized else self.window / self._scale)
        y = self._overlap_add(frames)
        y.mul_(self._inverse_envelope(n_frames))
        start = self.pad
        if length is None:
            length = self.default_length(n_frames)
        y = y[:, start:start + length]
        if y.shape[-1] < length:
            y = F.pad(y, (0, length - y.shape[-1]))
        return y.reshape(*lead, length)

    def project(self, spec: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Projection onto consistent spectrograms, ``STFT(ISTFT(spec))``, same frame count.
        Returns a new tensor (see :meth:`STFT.projector` for writing into a buffer)."""
        n_frames = spec.shape[-1]
        proj = self.projector(spec.shape, length)
        if proj.fast:
            return proj.project(spec)
        x = self.inverse(spec, length if length is not None else self.default_length(n_frames))
        return fit_frames(self.forward(x), n_frames)

    # --- fast path: fixed-size workspaces for repeated ISTFT -> STFT --------------------------
    def projector(self, shape, length: int | None = None) -> "Projector":
        """A :class:`Projector` for spectrograms of ``shape`` ``[..., F, T]`` and signals of
        ``length`` samples (default ``default_length(T)``): ``synth`` / ``analyze`` / ``project``
        with preallocated buffers (cached here, a few sizes at a time)."""
        shape = tuple(shape)
        n_frames = int(shape[-1])
        length = self.default_length(n_frames) if length is None else int(length)
        key = (shape[:-2], n_frames, length)
        proj = self._proj_cache.pop(key, None)
        if proj is None:
            proj = Projector(self, shape[:-2], n_frames, length)
        self._proj_cache[key] = proj  # most recent last
        while len(self._proj_cache) > 4:
            self._proj_cache.pop(next(iter(self._proj_cache)))
        return proj

    def item_frames(self) -> list[int] | None:
        """Each item's own frame count in a ragged batch (:class:`~specinv_cli.dsp.ragged.RaggedSTFT`);
        ``None``: every item has all the frames."""
        return None

    def _fast_ok(self, n_frames: int, length: int) -> bool:
        """Whether the in-place padded-signal path reproduces ``forward(inverse(.))`` exactly."""
        if type(self).forward is not STFT.forward or type(self).inverse is not STFT.inverse:
            return False  # a subclass defines its own operators
        return self._fast_framing(n_frames, length)

    def _fast_framing(self, n_frames: int, length: int) -> bool:
        if self.n_fft % self.hop or self.n_frames(length) != n_frames:
            return False
        p, W = self.pad, self.n_fft + self.hop * (n_frames - 1)
        if p == 0:
            return length >= W
        if self.pad_mode == "constant":
            return 2 * p + 1 <= W
        if self.pad_mode == "circular":
            return p <= length and length + p <= W
        return length > p and 2 * p + 1 <= W  # reflect, replicate

    def __repr__(self) -> str:
        return (f"STFT(n_fft={self.n_fft}, hop={self.hop}, win_length={self.win_length}, "
                f"window={self.config.window!r}, center={self.center}, device={self.device}, dtype={self.dtype})")


class Projector:
    """``P_C = STFT o ISTFT`` for one spectrogram size, split at the signal in the middle.

    ``synth(spec)`` is the least-squares ISTFT and ``analyze(sig)`` the STFT, so that
    ``analyze(synth(spec)) == stft.project(spec, length)``; both are linear, so linear
    combinations (momentum) can be taken on the signals, four times smaller than the
    spectrograms. On the fast path (the common settings: ``hop`` divides ``n_fft``, the frame
    count matches ``length``, the plain :class:`STFT`) a signal is the *padded* signal
    ``[B, n_fft + hop (T - 1)]`` that the frames are cut from, and only the FFTs allocate (their
    ``out=`` computes then copies, which is slower):

    - ``synth``: ``irfft`` into a frame buffer, overlap-add of the windowed frames as
      ``n_fft / hop`` shifted ``addcmul`` into the signal (window folded in), multiply by the
      precomputed inverse window-square envelope, then the padding rewritten in place (the
      samples past ``length`` are replaced, as ``F.pad`` of the cropped signal would);
    - ``analyze``: zero-copy framing (``unfold``), one multiply by the window into the frame
      buffer, ``rfft`` into the caller's spectrogram buffer (``out``) or a new one.

    On the CPU with the numba kernels on (:meth:`fused`), ``synth`` ends in one overlap-add
    kernel (envelope and padding included), and ``analyze`` lets the FFT read the frames in place
    from the signal and applies a cosine-sum window as taps along frequency (:func:`cosine_taps`);
    :meth:`gla_step`, :meth:`agla_step`, :meth:`raar_step` and :meth:`admm_step` fuse a method's
    whole elementwise update with the window and the magnitude projection.

    A ragged batch (:class:`~specinv_cli.dsp.ragged.RaggedSTFT` whose items all have fast
    framings) runs on the same path: item ``b`` on its own span ``[0, W_b)`` of its row, with its
    own envelope and padding, zeros after it, and the frames ``t >= T_b`` of every analysis zeroed.
    Elsewhere (other framings, other subclasses) it falls back to ``stft.inverse`` /
    ``fit_frames(stft.forward(.))``.

    Buffer ownership: the frame buffer is private scratch; signals and spectrograms returned are
    new tensors, or the ``out`` the caller passed (and owns). A Projector is not thread-safe.
    """

    def __init__(self, stft: STFT, lead: tuple, n_frames: int, length: int):
        # a weak reference: the STFT caches its projectors, and a cycle would keep their buffers
        # (tens of MB per block of a long input) alive until the garbage collector happens by
        self.stft = weakref.proxy(stft)
        self.lead, self.n_frames, self.length = tuple(lead), n_frames, length
        self.batch = math.prod(self.lead)
        self.fast = stft._fast_ok(n_frames, length)
        self.width = stft.n_fft + stft.hop * (n_frames - 1)
        self._frames: torch.Tensor | None = None
        # a ragged batch (RaggedSTFT): item b has its own frames T_b <= T and length; its padded
        # signal is the span [0, W_b) of its row, with its own envelope and padding, zero after
        items = stft.item_frames() if self.fast else None
        self.items = None if items is None or min(items) == n_frames else list(items)
        if self.items is not None:
            self._lengths = [stft.default_length(t) for t in self.items]
            self._widths = [stft.n_fft + stft.hop * (t - 1) for t in self.items]
        else:
            self._lengths, self._widths = [length] * self.batch, [self.width] * self.batch
        if self.fast:
            if self.items is None:
                self._env = stft._inverse_envelope(n_frames)
            else:
                self._env = torch.zeros(self.batch, self.width, device=stft.device, dtype=stft.dtype)
                for b, (t, w) in enumerate(zip(self.items, self._widths)):  # once per projector
                    self._env[b, :w] = stft._inverse_envelope(t)
            # normalized scaling cancels in analyze(synth(.)); keep it for each half alone
            self._wsyn = (stft.window / stft._scale).contiguous()
            self._wana = (stft.window * stft._scale).contiguous()
        # the numba kernels (CPU, float32/64); with a cosine-sum window the analysis window is
        # applied as taps along frequency and the FFT reads the frames straight from the signal
        self._jit_ok = self.fast and stft.device.type == "cpu" and stft.dtype in (torch.float32, torch.float64)
        if self._jit_ok:
            npdt = np.float32 if stft.dtype == torch.float32 else np.float64
            named = get_window(stft.config.window, stft.win_length, stft.n_fft, dtype=torch.float64)
            # the window the operators use; the name's in double precision when it is that window
            same = torch.equal(stft.window.cpu(), named.to(stft.dtype))
            taps = (cosine_taps(named) if same else
                    cosine_taps(stft.window, rtol=max(1e-9, 16 * torch.finfo(stft.dtype).eps)))
            self._taps = None if taps is None else (taps * stft._scale).astype(npdt)
            # taps that turn _spectrum's output into the STFT (identity when it windowed in time)
            self._ktaps = self._taps if taps is not None else np.ones(1, npdt)
            self._wsyn_np, self._env_np = self._wsyn.numpy(), self._env.reshape(-1, self.width).numpy()
            self._lengths_np = np.array(self._lengths, dtype=np.int64)
            self._widths_np = np.array(self._widths, dtype=np.int64)
            self._mode = 0 if stft.pad == 0 else _PAD_CODES[stft.pad_mode]

    def _frame_buffer(self) -> torch.Tensor:
        if self._frames is None:
            s = self.stft
            self._frames = torch.empty(self.batch, self.n_frames, s.n_fft, device=s.device, dtype=s.dtype)
        return self._frames

    def new_signal(self) -> torch.Tensor:
        """An uninitialised signal buffer for ``synth(..., out=)``."""
        s = self.stft
        n = self.width if self.fast else self.length
        return torch.empty(*self.lead, n, device=s.device, dtype=s.dtype)

    def new_spec(self) -> torch.Tensor:
        """An uninitialised spectrogram ``[..., F, T]`` laid out as ``analyze`` writes it."""
        s = self.stft
        buf = torch.empty(*self.lead, self.n_frames, s.n_freqs, device=s.device, dtype=s.dtype.to_complex())
        return buf.transpose(-1, -2)

    def signal(self, sig: torch.Tensor) -> torch.Tensor:
        """The waveform ``[..., length]`` of a signal from ``synth`` (a view on the fast path)."""
        if not self.fast:
            return sig
        p, L = self.stft.pad, self.length
        y = sig[..., p:p + L]
        y = y if y.shape[-1] == L else F.pad(y, (0, L - y.shape[-1]))
        if self.items is not None:  # each item's padding lies inside the row: zeros past its end
            y = y.clone()
            for b, n in enumerate(self._lengths):
                y.view(self.batch, -1)[b, n:] = 0
        return y

    def _mask_tail(self, X: torch.Tensor) -> None:
        """Zero the frames ``t >= T_b`` of a ragged batch's spectrum ``X [B, T, F]`` (in place):
        what each item's own STFT has not (its frames read its padding and the zeros after)."""
        if self.items is not None:
            for b, t in enumerate(self.items):
                if t < self.n_frames:
                    X[b, t:] = 0

    def _use_fast(self, *tensors) -> bool:
        return self.fast and not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))

    # --- the two halves ----------------------------------------------------------------------
    def synth(self, spec: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """ISTFT of ``spec [..., F, T]`` as a signal (see the class docstring)."""
        if not self._use_fast(spec):
            y = self.stft.inverse(spec, self.length)
            if self.fast:  # autograd: same layout, out of place (a ragged batch pads each item itself)
                y = self.stft._pad(y.reshape(self.batch, -1))[:, :self.width].reshape(*self.lead, self.width)
            return y if out is None else out.copy_(y)
        s = self.stft
        B, T, N, hop = self.batch, self.n_frames, s.n_fft, s.hop
        r = N // hop
        sig = self.new_signal() if out is None else out
        y = sig.view(B, self.width)
        spec_tf = spec.reshape(B, s.n_freqs, T).transpose(1, 2)  # [B, T, F]: a view when analyze made it
        frames = torch.fft.irfft(spec_tf, n=N, dim=-1)  # (out= is slower: it computes, then copies)
        if self._use_jit():
            self._overlap_add(frames, y)
            return sig
        blocks = frames.view(B, T, r, hop)
        acc = y.view(B, T + r - 1, hop)
        w = self._wsyn.view(r, hop)
        torch.mul(blocks[:, :, 0], w[0], out=acc[:, :T])
        acc[:, T:].zero_()
        for k in range(1, r):  # n_fft / hop shifted adds: no loop over frames
            acc[:, k:k + T].addcmul_(blocks[:, :, k], w[k])
        y.mul_(self._env)
        self._repad(y)
        return sig

    def _repad(self, y: torch.Tensor) -> None:
        """Rewrite in place the padding of ``y [B, W]`` from its samples ``[p, p + length)`` (of
        a ragged batch: each item's span ``[0, W_b)`` from its own ``[p, p + L_b)``)."""
        if self.items is not None:
            for b, (L, W) in enumerate(zip(self._lengths, self._widths)):
                self._repad_rows(y[b:b + 1, :W], L, W)
            return
        self._repad_rows(y, self.length, self.width)

    def _repad_rows(self, y: torch.Tensor, L: int, W: int) -> None:
        s = self.stft
        p = s.pad
        if p == 0:
            return
        K = W - p - L  # samples of right padding inside the framed span (may be <= 0)
        mode = s.pad_mode
        if mode == "constant":
            y[:, :p].zero_()
            if K > 0:
                y[:, p + L:].zero_()
        elif mode == "reflect":
            y[:, :p] = y[:, p + 1:2 * p + 1].flip(-1)
            if K > 0:
                y[:, p + L:] = y[:, p + L - 1 - K:p + L - 1].flip(-1)
        elif mode == "replicate":
            y[:, :p] = y[:, p:p + 1]
            if K > 0:
                y[:, p + L:] = y[:, p + L - 1:p + L]
        else:  # circular
            y[:, :p] = y[:, L:L + p]
            if K > 0:
                y[:, p + L:] = y[:, p:p + K]

    def analyze(self, sig: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """STFT ``[..., F, T]`` of a signal from ``synth`` (or a linear combination of them).
        ``out``: a spectrogram from ``new_spec`` / an earlier ``analyze`` to write into."""
        s = self.stft
        if not self._use_fast(sig):
            if self.fast:  # autograd: same layout, out of place
                frames = sig.reshape(self.batch, self.width).unfold(-1, s.n_fft, s.hop) * self._wana
                spec = torch.fft.rfft(frames, dim=-1)
                if self.items is not None:  # out of place: the frames t >= T_b of each item zeroed
                    t = torch.arange(self.n_frames, device=spec.device)
                    spec = spec * (t < torch.tensor(self.items, device=spec.device)[:, None])[..., None]
                spec = spec.transpose(1, 2).reshape(*self.lead, s.n_freqs, self.n_frames)
            else:
                spec = fit_frames(s.forward(self.signal(sig)), self.n_frames)
            return spec if out is None else out.copy_(spec)
        T = self.n_frames
        fused = self._use_jit()
        spec = self._spectrum(sig, fused)
        self._mask_tail(spec)
        if fused and self._taps is not None:
            J, nchunk = jit_kernels()
            J.window_conv(as_rows(spec), self._taps, s.n_fft, nchunk)
        spec = spec.view(*self.lead, T, s.n_freqs).transpose(-1, -2)
        return spec if out is None else out.copy_(spec)

    def _spectrum(self, sig: torch.Tensor, fused: bool = True) -> torch.Tensor:
        """``rfft`` of the frames of ``sig`` as ``[B, T, F]``; windowed, except for the numba
        kernels (``fused``) with a cosine-sum window: then the FFT reads the overlapping frames in
        place and the window is left to the kernel (``_ktaps``, taps along frequency)."""
        s = self.stft
        frames = sig.reshape(self.batch, self.width).unfold(-1, s.n_fft, s.hop)
        if not (fused and self._taps is not None):
            frames = torch.mul(frames, self._wana, out=self._frame_buffer())
        return torch.fft.rfft(frames, dim=-1)

    def _use_jit(self) -> bool:
        return self._jit_ok and jit_ready(self.stft.dtype)

    def _overlap_add(self, frames: torch.Tensor, y: torch.Tensor, prev: torch.Tensor | None = None,
                     alpha: float = 0.0) -> None:
        """Numba path of ``synth`` after the ``irfft``: ``y [B, W]`` from ``frames [B, T, n_fft]``;
        with ``prev``, also ``prev <- y + alpha (y - prev)``."""
        s = self.stft
        J, nchunk = jit_kernels()
        yn = y.numpy()
        pn = yn if prev is None else prev.view(y.shape).numpy()
        J.overlap_add(frames.numpy(), self._wsyn_np, self._env_np, yn, pn, s.hop, float(alpha),
                      prev is not None, s.pad, self._lengths_np, self._widths_np, self._mode, nchunk)

    def fused(self, p_a: "MagnitudeProjection | None" = None, x: torch.Tensor | None = None) -> bool:
        """Whether this projector runs the numba kernels; given ``p_a`` (and the starting
        estimate ``x``), whether the fused steps :meth:`gla_step`, :meth:`agla_step`,
        :meth:`raar_step` and :meth:`admm_step` do (not under autograd)."""
        if not self._use_jit() or (x is not None and torch.is_grad_enabled() and x.requires_grad):
            return False
        return p_a is None or (p_a._m_np is not None
                               and tuple(p_a.mag.shape) == (*self.lead, self.stft.n_freqs, self.n_frames))

    def _fused_update(self, kernel: str, sig: torch.Tensor, p_a: "MagnitudeProjection", states=(),
                      params=()) -> torch.Tensor:
        """``rfft`` of the frames of ``sig``, then the numba ``kernel`` on it in place (window,
        the method's update of the spectrograms ``states``, projection onto ``p_a``'s target)
        with scalar ``params``; returns the result as a spectrogram ``[..., F, T]``."""
        s = self.stft
        J, nchunk = jit_kernels()
        X = self._spectrum(sig)
        if kernel != "window_conv_project":  # a zero target projects those frames to zero anyway
            self._mask_tail(X)
        getattr(J, kernel)(as_rows(X), *(as_rows(z.transpose(-1, -2)) for z in states), p_a._m_np, self._ktaps,
                           s.n_fft, *(float(v) for v in params), p_a._eps2, nchunk)
        return X.view(*self.lead, self.n_frames, s.n_freqs).transpose(-1, -2)

    def agla_step(self, sig: torch.Tensor, p_a: "MagnitudeProjection", t: torch.Tensor, d: torch.Tensor,
                  gamma: float, alpha: float, beta: float) -> torch.Tensor:
        """AGLA's update after ``g = analyze(sig)`` (numba path only, see :meth:`fused`), in
        place in ``t`` and ``d`` (spectrograms from :meth:`new_spec`): ``t <- (1 - gamma) d + gamma g``,
        ``c = t + alpha (t - t_prev)``, ``d <- t + beta (t - t_prev)``; returns ``P_A(c)`` (a new
        spectrogram)."""
        return self._fused_update("agla_update", sig, p_a, (d, t), (gamma, alpha, beta))

    def raar_step(self, sig: torch.Tensor, p_a: "MagnitudeProjection", h: torch.Tensor,
                  beta: float) -> torch.Tensor:
        """RAAR's update after ``g = analyze(sig)`` (numba path only) on its one state
        ``h = beta (x - c) + (1 - 2 beta) a`` (a spectrogram from :meth:`new_spec`, updated in
        place): returns the next ``a = P_A(x)`` (a new spectrogram); see
        :func:`specinv_cli.dsp.kernels.raar_update`."""
        return self._fused_update("raar_update", sig, p_a, (h,), (beta,))

    def admm_step(self, sig: torch.Tensor, p_a: "MagnitudeProjection", u: torch.Tensor, x: torch.Tensor,
                  w: float) -> None:
        """ADMM's update after ``g = analyze(sig)``, ``sig = synth(y)``, ``y`` held in ``u`` (numba
        path only): ``z = (1 - w) g + w y``, ``u' = y - z``, ``x <- P_A(z - u')``, ``u <- x + u'``."""
        self._fused_update("admm_update", sig, p_a, (u, x), (w,))

    def gla_step(self, sig: torch.Tensor, p_a: "MagnitudeProjection", out: torch.Tensor,
                 prev: torch.Tensor | None = None, alpha: float = 0.0) -> torch.Tensor:
        """One Griffin–Lim step on signals: ``out <- synth(P_A(analyze(sig)))``; with ``prev``, then
        ``prev <- out + alpha (out - prev)`` (FGLA's momentum point, in place). ``out`` must not
        be ``prev``; it may be ``sig``. On the numba path this is four passes: ``rfft`` of the
        frames read in place, window and projection in one kernel, ``irfft``, and one kernel for
        the overlap-add, envelope, padding and momentum."""
        if self.fused(p_a, sig):
            spec_tf = self._fused_update("window_conv_project", sig, p_a).transpose(-1, -2)
            frames = torch.fft.irfft(spec_tf.reshape(self.batch, self.n_frames, -1), n=self.stft.n_fft, dim=-1)
            self._overlap_add(frames, out.view(self.batch, self.width), prev, alpha)
            return out
        x = self.analyze(sig)
        self.synth(p_a(x, out=x), out=out)
        if prev is not None:
            prev.lerp_(out, 1 + alpha)
        return out

    def project(self, spec: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``analyze(synth(spec))`` = ``stft.project(spec, length)``."""
        if not self.fast:
            s = self.stft
            if s.project.__func__ is not STFT.project:  # s is a weak proxy: ask the bound method
                r = s.project(spec, self.length)
            else:
                r = fit_frames(s.forward(s.inverse(spec, self.length)), self.n_frames)
            return r if out is None else out.copy_(r)
        sig = self.synth(spec, out=None if torch.is_grad_enabled() and spec.requires_grad else self._scratch_signal())
        return self.analyze(sig, out=out)

    # --- the closed-form gradient of a spectral loss (L-BFGS): numba path only ----------------
    def spectral_fused(self) -> bool:
        """Whether :meth:`spectrum_magnitude`, :meth:`residual_gradient`, :meth:`gradient_spectrum`
        and :meth:`adjoint_overlap_add` run: the numba kernels on, a cosine-sum window."""
        return self._use_jit() and self._taps is not None

    def _raw_spectrum(self, padded: torch.Tensor) -> torch.Tensor:
        # the frames of the padded waveform [B, >= width], read in place by the FFT
        return self._spectrum(padded[:, :self.width])

    def spectrum_magnitude(self, padded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(c, |c|)``: the STFT ``[B, T, F]`` (frame-major) of the padded waveform
        ``padded [B, >= width]`` (``stft._pad`` of the signal) and its magnitude."""
        J, nchunk = jit_kernels()
        X = self._raw_spectrum(padded)
        m = torch.empty(X.shape, dtype=self.stft.dtype)
        J.window_magnitude(as_rows(X), m.view(-1, m.shape[-1]).numpy(), self._taps, self.stft.n_fft, nchunk)
        return X, m

    def residual_gradient(self, padded: torch.Tensor, target: torch.Tensor, rowscale: torch.Tensor,
                          binw: torch.Tensor, floor: float) -> tuple[torch.Tensor, torch.Tensor]:
        """For ``L = sum_rows s_row ||c_row| - target_row|^2 / 2`` (``c`` the STFT of ``padded``,
        ``target [B, T, F]`` contiguous, ``rowscale [B * T]``): ``(sum_f r^2 per row [B * T],
        G)`` with ``G = window * (s binw (|c| - target) c / max(|c|, floor))`` ``[B, T, F]``, ready
        for :meth:`adjoint_overlap_add` (kernel :func:`~specinv_cli.dsp.kernels.residual_grad`)."""
        J, nchunk = jit_kernels()
        X = self._raw_spectrum(padded)
        F_ = X.shape[-1]
        loss = torch.empty(X.shape[0] * X.shape[1], dtype=self.stft.dtype)
        J.residual_grad(as_rows(X), target.view(-1, F_).numpy(), rowscale.numpy(), binw.numpy(), self._taps,
                        self.stft.n_fft, floor, loss.numpy(), nchunk)
        return loss, X

    def gradient_spectrum(self, c: torch.Tensor, ga: torch.Tensor, m: torch.Tensor, power: float,
                          floor: float, tiny: float) -> torch.Tensor:
        """In place on ``c`` from :meth:`spectrum_magnitude`: ``c <- window * (c ga p m^(p-2))``,
        the gradient with respect to the STFT from ``ga [B, T, F]``, the one with respect to
        ``m^p`` (contiguous), ready for :meth:`adjoint_overlap_add`."""
        J, nchunk = jit_kernels()
        F_ = m.shape[-1]
        J.grad_window(as_rows(c), ga.reshape(-1, F_).numpy(), m.view(-1, F_).numpy(), float(power), floor, tiny,
                      self._taps, self.stft.n_fft, nchunk)
        return c

    def filterbank(self, a: torch.Tensor, fb: torch.Tensor, adjoint: bool = False) -> torch.Tensor:
        """``a [B, T, F] @ fb^T`` (``[B, T, M]``), or with ``adjoint`` ``a [B, T, M] @ fb``
        (``[B, T, F]``), for a filterbank ``fb [M, F]`` of this dtype, over each band's nonzero bins
        only (kernels :func:`~specinv_cli.dsp.kernels.band_project` / ``band_adjoint``; the torch
        twin is the dense ``matmul``). ``a`` contiguous."""
        J, nchunk = jit_kernels()
        lo, hi, w = filterbank_bands(fb)
        M, F_ = fb.shape
        out = torch.empty(*a.shape[:-1], F_ if adjoint else M, dtype=a.dtype)
        fn = J.band_adjoint if adjoint else J.band_project
        fn(a.view(-1, a.shape[-1]).numpy(), lo, hi, w, out.view(-1, out.shape[-1]).numpy(), nchunk)
        return out

    def adjoint_overlap_add(self, g: torch.Tensor) -> torch.Tensor:
        """``[B, width]``: the inverse FFTs of the windowed gradient spectra ``g [B, T, F]``,
        overlap-added (no envelope, no padding rewrite: the adjoint of the framing)."""
        J, nchunk = jit_kernels()
        s = self.stft
        frames = torch.fft.irfft(g, n=s.n_fft, dim=-1)
        ones = getattr(self, "_ones", None)
        if ones is None:
            dt = frames.numpy().dtype
            ones = self._ones = (np.ones(s.n_fft, dt), np.ones((1, self.width), dt))
        y = torch.empty(self.batch, self.width, dtype=s.dtype)
        yn = y.numpy()
        J.overlap_add(frames.numpy(), ones[0], ones[1], yn, yn, s.hop, 0.0, False, 0, self._lengths_np,
                      self._widths_np, 0, nchunk)
        return y

    def _scratch_signal(self) -> torch.Tensor:
        buf = getattr(self, "_sig", None)
        if buf is None:
            buf = self._sig = self.new_signal()
        return buf
