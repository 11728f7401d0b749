"""Spectrogram-domain quality metrics (the seed package's definitions).

All take an estimate ``est`` and a target ``ref`` magnitude of the same shape ``[..., F, T]``
and reduce over the last two dimensions, so a batch gives one value per item.

- ``sc``  spectral convergence, dB: ``20 log10(||est - ref||_F / ||ref||_F)`` (lower is better).
- ``snr`` signal-to-noise ratio of the normalised magnitudes, dB:
  ``-10 log10 sum((est/||est||_F - ref/||ref||_F)^2)`` (higher is better, scale-invariant).
- ``ser`` signal-to-error ratio, dB: ``10 log10(||est||_F^2 / ||est - ref||_F^2)`` (higher is better).

Example
-------
>>> import torch
>>> ref = torch.ones(3, 4)
>>> round(float(sc(1.1 * ref, ref)), 3)
-20.0
"""
from __future__ import annotations

import torch

__all__ = ["sc", "snr", "ser", "METRICS", "compute", "HIGHER_IS_BETTER"]

_TINY = 1e-30


def _norm2(x: torch.Tensor) -> torch.Tensor:
    x = x.to(torch.float64) if x.dtype != torch.float64 else x
    return x.pow(2).sum(dim=(-2, -1))


def sc(est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Spectral convergence in dB, ``20 log10(||est - ref|| / ||ref||)``."""
    return 10 * (torch.log10(_norm2(est - ref) + _TINY) - torch.log10(_norm2(ref) + _TINY))


def snr(est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """SNR in dB of the Frobenius-normalised magnitudes (insensitive to overall gain)."""
    e = est / (_norm2(est).sqrt()[..., None, None] + _TINY)
    r = ref / (_norm2(ref).sqrt()[..., None, None] + _TINY)
    return -10 * torch.log10(_norm2(e - r) + _TINY)


def ser(est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Signal-to-error ratio in dB, ``10 log10(||est||^2 / ||est - ref||^2)``."""
    return 10 * (torch.log10(_norm2(est) + _TINY) - torch.log10(_norm2(est - ref) + _TINY))


#: The metrics by name, as ``metric`` options and JSON records name them.
METRICS = {"sc": sc, "snr": snr, "ser": ser}
HIGHER_IS_BETTER = {"sc": False, "snr": True, "ser": True}


def compute(est: torch.Tensor, ref: torch.Tensor, names=("sc", "snr", "ser")) -> dict[str, torch.Tensor]:
    """Several metrics at once, ``{name: tensor of shape est.shape[:-2]}``."""
    return {n: METRICS[n](est, ref) for n in names}
