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
