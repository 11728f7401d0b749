"""Mel filterbanks and mel <-> linear magnitude, in torch (batched, on any device).

:func:`mel_filterbank` reproduces ``librosa.filters.mel`` (Slaney or HTK scale, Slaney area
normalisation or none), which is also what ``torchaudio.functional.melscale_fbanks`` computes for
the HTK scale without norm when the sample rate is even.

Example
-------
>>> fb = mel_filterbank(22050, 1024, 80, fmin=0.0, fmax=8000.0)
>>> tuple(fb.shape)
(80, 513)
"""
from __future__ import annotations

import math

import torch

__all__ = ["hz_to_mel", "mel_to_hz", "mel_frequencies", "mel_filterbank", "MEL_SCALES", "MEL_NORMS"]

MEL_SCALES = ("slaney", "htk")
MEL_NORMS = ("slaney", "none")

# Slaney's Auditory Toolbox scale: linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(f: torch.Tensor, scale: str = "slaney") -> torch.Tensor:
    f = torch.as_tensor(f, dtype=torch.float64)
    if scale == "htk":
        return 2595.0 * torch.log10(1.0 + f / 700.0)
    lin = f / _F_SP
    log = _MIN_LOG_MEL + torch.log(torch.clamp(f, min=_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return torch.where(f >= _MIN_LOG_HZ, log, lin)


def mel_to_hz(m: torch.Tensor, scale: str = "slaney") -> torch.Tensor:
    m = torch.as_tensor(m, dtype=torch.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    lin = _F_SP * m
    log = _MIN_LOG_HZ * torch.exp(_LOGSTEP * (m - _MIN_LOG_MEL))
    return torch.where(m >= _MIN_LOG_MEL, log, lin)


def mel_frequencies(n: int, fmin: float, fmax: float, scale: str = "slaney") -> torch.Tensor:
    """``n`` frequencies (Hz) equally spaced on the mel scale from ``fmin`` to ``fmax``."""
    lo, hi = hz_to_mel(torch.tensor(float(fmin)), scale), hz_to_mel(torch.tensor(float(fmax)), scale)
    return mel_to_hz(torch.linspace(float(lo), float(hi), n, dtype=torch.float64), scale)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None,
                   scale: str = "slaney", norm: str | None = "slaney", *, device=None,
                   dtype=torch.float32) -> torch.Tensor:
    """Triangular mel filters ``[n_mels, n_fft // 2 + 1]`` as ``librosa.filters.mel`` builds them.

    Parameters
    ----------
    scale : ``slaney`` (librosa's default, ``htk=False``) or ``htk``.
    norm : ``slaney`` divides each triangle by its width in Hz (constant energy per band);
        ``none``/``None`` leaves peaks at 1.
    """
    if scale not in MEL_SCALES:
        raise ValueError(f"mel scale must be one of {', '.join(MEL_SCALES)}, got {scale!r}")
    if norm not in ("slaney", "none", None):
        raise ValueError(f"mel norm must be slaney or none, got {norm!r}")
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    if not 0 <= fmin < fmax <= sample_rate / 2.0 + 1e-6:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2, got fmin {fmin}, fmax {fmax}, sr {sample_rate}")
    n_freqs = n_fft // 2 + 1
    fft_freqs = torch.linspace(0, sample_rate / 2.0, n_freqs, dtype=torch.float64)
    mel_f = mel_frequencies(n_mels + 2, fmin, fmax, scale)
    fdiff = mel_f[1:] - mel_f[:-1]
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)
    if norm == "slaney":
        weights = weights * (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.to(device=device, dtype=dtype)


# --- the model's feature encoding: compression and normalisation --------------------------
def load_stats(path: str, n_mels: int | None = None):
    """Per-band ``(mean, std)`` for ``meanvar`` normalisation, as float64 tensors: the arrays
    of :func:`specinv_cli.config.read_stats` (which validates the file once, for every command).
    Accepts an ``.npz`` with ``mean`` and ``std`` (or ``var``), or ESPnet's ``feats_stats.npz``
    (``count``, ``sum``, ``sum_square``). Never unpickles; raises ``ConfigError`` naming the file.
    """
    from ..config import read_stats

    mean, std = read_stats(path, n_mels)
    return torch.from_numpy(mean), torch.from_numpy(std)


def _db_multiplier(cfg) -> float:
    return 20.0 / float(cfg.mel_power)


def encode(mel: torch.Tensor, cfg, stats=None) -> torch.Tensor:
    """Linear mel ``[..., n_mels, T]`` -> the model's features (compression, then normalisation)."""
    c = cfg.compression
    if c == "none":
        x = mel
    elif c == "ln":
        x = torch.log(mel.clamp_min(cfg.clamp))
    elif c == "log10":
        x = torch.log10(mel.clamp_min(cfg.clamp))
    elif c == "db":
        x = _db_multiplier(cfg) * torch.log10(mel.clamp_min(cfg.clamp) / cfg.db_ref)
        if cfg.top_db is not None:
            x = torch.maximum(x, x.amax(dim=(-2, -1), keepdim=True) - cfg.top_db)
    else:  # log1p
        x = torch.log1p(mel)
    n = cfg.normalization
    if n == "meanvar":
        mean, std = stats if stats is not None else load_stats(cfg.stats, cfg.n_mels)
        x = (x - mean.to(x)[:, None]) / std.to(x)[:, None]
    elif n == "symmetric":
        m = cfg.max_norm
        x = 2 * m * (x - cfg.ref_level_db - cfg.min_level_db) / (-cfg.min_level_db) - m
        x = x.clamp(-m, m)
    return x


def decode(feats: torch.Tensor, cfg, stats=None) -> torch.Tensor:
    """The model's features -> linear mel ``filterbank @ |X| ** mel_power`` (>= 0)."""
    x = feats
    n = cfg.normalization
    if n == "meanvar":
        if stats is None and cfg.stats is None:
            from ..io.spectrogram import InputError

            raise InputError(None, "these settings use mean/variance normalisation: give the model's "
                                   "stats file with `stats` (e.g. feats_stats.npz)")
        mean, std = stats if stats is not None else load_stats(cfg.stats, cfg.n_mels)
        x = x * std.to(x)[:, None] + mean.to(x)[:, None]
    elif n == "symmetric":
        m = cfg.max_norm
        x = (x + m) * (-cfg.min_level_db) / (2 * m) + cfg.min_level_db + cfg.ref_level_db
    c = cfg.compression
    if c == "ln":
        x = torch.exp(x)
    elif c == "log10":
        x = torch.pow(10.0, x)
    elif c == "db":
        x = cfg.db_ref * torch.pow(10.0, x / _db_multiplier(cfg))
    elif c == "log1p":
        x = torch.expm1(x)
    return x.clamp_min(0)


class MelTransform:
    """``|X| -> filterbank @ |X| ** p`` and its non-negative least-squares inverse, batched.

    Parameters
    ----------
    cfg : settings with ``n_mels`` (and ``fmin``, ``fmax``, ``mel_scale``, ``mel_norm``, ``mel_power``).
    device, dtype : where the filterbank lives.
    """

    def __init__(self, cfg, device=None, dtype=torch.float32):
        self.cfg = cfg
        self.power = float(cfg.mel_power)
        self.fb = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.effective_fmax,
                                 cfg.mel_scale, cfg.mel_norm, device=device, dtype=dtype)
        # Step of projected gradient: 1 / ||fb||_2^2 (largest singular value squared).
        self._lipschitz = float(torch.linalg.matrix_norm(self.fb.double(), ord=2) ** 2)

    def __call__(self, mag: torch.Tensor) -> torch.Tensor:
        p = mag if self.power == 1 else mag.pow(self.power)
        return torch.matmul(self.fb, p)

    def to_linear(self, mel: torch.Tensor, n_iter: int = 200) -> torch.Tensor:
        """Magnitudes ``[..., F, T]`` whose mel is closest to ``mel`` (non-negative least squares).

        FISTA (Beck & Teboulle 2009) on ``min_{P >= 0} ||fb P - mel||^2`` with ``P = |X| ** p``,
        all frames and items at once, started from the scaled transpose ``fb^T mel``; returns
        ``P ** (1 / p)``. Unlike a pseudo-inverse it never goes negative.
        """
        fb = self.fb.to(mel.dtype)
        fbt = fb.transpose(0, 1)
        rhs = torch.matmul(fbt, mel)          # [..., F, T]
        step = 1.0 / self._lipschitz
        # Start from the transpose, scaled so that its mel has the right energy per frame.
        p0 = rhs.clamp_min(0)
        est = torch.matmul(fb, p0)
        num = (est * mel).sum(dim=-2, keepdim=True)
        den = (est * est).sum(dim=-2, keepdim=True).clamp_min(torch.finfo(mel.dtype).tiny)
        p = p0 * (num / den).clamp_min(0)
        y, t = p, 1.0
        for _ in range(n_iter):
            grad = torch.matmul(fbt, torch.matmul(fb, y) - mel)  # cheaper than the F x F Gram
            p_next = (y - step * grad).clamp_min(0)
            t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
            y = p_next + ((t - 1) / t_next) * (p_next - p)
            p, t = p_next, t_next
        return p if self.power == 1 else p.pow(1.0 / self.power)

    def to_linear_frames(self, mel: torch.Tensor, n_iter: int = 200) -> torch.Tensor:
        """:meth:`to_linear` with each frame on its own (``mel [..., n_mels, k]``, float64): a
        frame's magnitudes then do not depend on the frames beside it (a stream's chunks). On the
        CPU one serial kernel over each band's bins (:func:`specinv_cli.dsp.kernels.mel_nnls`);
        elsewhere :meth:`to_linear` column by column (its twin)."""
        from .stft import filterbank_bands, jit_kernels, jit_ready

        lead, (M, k) = mel.shape[:-2], mel.shape[-2:]
        F = self.fb.shape[-1]
        if mel.dtype == torch.float64 and mel.device.type == "cpu" and jit_ready(torch.float64):
            J, _ = jit_kernels()
            fb = self.fb.to(torch.float64)
            lo, hi, w = filterbank_bands(fb)
            rows = mel.reshape(-1, M, k).transpose(1, 2).reshape(-1, M).contiguous()
            out = torch.empty(rows.shape[0], F, dtype=torch.float64)
            J.mel_nnls(rows.numpy(), lo, hi, w, 1.0 / self._lipschitz, int(n_iter), self.power, out.numpy())
            return out.reshape(-1, k, F).transpose(1, 2).reshape(*lead, F, k)
        cols = [self.to_linear(mel[..., t:t + 1], n_iter) for t in range(k)]
        return torch.cat(cols, dim=-1) if cols else mel.new_zeros(*lead, F, 0)
