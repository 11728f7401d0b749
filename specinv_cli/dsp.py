"""Short-time Fourier transform operators used by every algorithm.

:class:`STFT` is a pair of linear maps between waveforms ``[..., L]`` and complex
spectrograms ``[..., F, T]`` (``F = n_fft // 2 + 1``) with exactly the conventions of
``torch.stft`` / ``torch.istft`` (frame ``t`` centred on sample ``t * hop`` when
``center=True``, phase referenced to the start of the ``n_fft``-long frame, window
zero-padded to ``n_fft`` in the middle). The inverse is the least-squares ISTFT
(Griffin & Lim 1984, eq. 6): windowed overlap-add divided by the window-square envelope.

What is precomputed once per (frame count, device, dtype) and reused on every call is what
makes an iteration cost about two real FFTs: the window, the inverse envelope and the
overlap-add layout.

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

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .config import GAUSSIAN_STD_FRACTION, WINDOWS, canonical_window

if TYPE_CHECKING:  # pragma: no cover
    from .config import STFTConfig

__all__ = ["STFT", "get_window", "WINDOWS", "magnitude_projection", "fit_frames"]

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

    # --- sizes -----------------------------------------------------------------------------
    def n_frames(self, length: int) -> int:
        """Number of frames ``forward`` produces for a signal of ``length`` samples."""
        return 1 + (length + 2 * self.pad - self.n_fft) // self.hop

    def default_length(self, n_frames: int) -> int:
        """Signal length ``inverse`` returns when no length is given (as ``torch.istft``):
        ``(T - 1) * hop`` for centred frames, ``T * hop`` for HiFi-GAN framing."""
        return self.n_fft + self.hop * (n_frames - 1) - 2 * self.pad

    # --- analysis --------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Complex STFT ``[..., F, T]`` of real signals ``[..., L]``."""
        lead = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])
        if self.pad:
            p = self.pad
            mode = self.pad_mode
            if mode == "reflect" and x.shape[-1] <= p:
                mode = "constant"  # reflect needs more samples than the pad; stay defined
            x = F.pad(x.unsqueeze(1), (p, p), mode=mode).squeeze(1)
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
        """Projection onto consistent spectrograms, ``STFT(ISTFT(spec))``, same frame count."""
        n_frames = spec.shape[-1]
        x = self.inverse(spec, length if length is not None else self.default_length(n_frames))
        return fit_frames(self.forward(x), n_frames)

    def __repr__(self) -> str:
        return (f"STFT(n_fft={self.n_fft}, hop={self.hop}, win_length={self.win_length}, "
                f"window={self.config.window!r}, center={self.center}, device={self.device}, dtype={self.dtype})")
