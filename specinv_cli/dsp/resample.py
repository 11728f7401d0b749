"""Resampling of waveforms (soxr, high quality), with the output's size checked before it is allocated.

Example
-------
>>> import numpy as np
>>> resample(np.zeros(22050, np.float32), 22050, 16000).shape
(16000,)
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["resample", "resampled_length"]


def resampled_length(n: int, sr_in: int, sr_out: int) -> int:
    return int(math.ceil(n * (int(sr_out) / int(sr_in))))


def resample(audio: np.ndarray, sr_in: int, sr_out: int, *, max_bytes: float | None = None,
             source: str | None = None) -> np.ndarray:
    """``audio [..., L]`` from ``sr_in`` to ``sr_out`` Hz (soxr, high quality; what librosa's
    ``resample(res_type="soxr_hq")`` gives, without importing librosa and numba).

    The result's size follows from the ratio, not from the input's: it is checked against
    ``max_bytes`` (``None``: the available memory, :func:`specinv_cli.util.limits.host_memory`;
    ``inf``: no limit) before anything is allocated, an :class:`~specinv_cli.errors.InputError` naming ``source``."""
    if int(sr_in) == int(sr_out):
        return audio
    import soxr

    from ..util.limits import check_bytes

    x = np.asarray(audio, dtype=np.float32)
    n_out = resampled_length(x.shape[-1], sr_in, sr_out)
    rows = int(np.prod(x.shape[:-1])) if x.ndim > 1 else 1
    # soxr's output, and the copy that fixes its length
    check_bytes(source, 2 * 4 * rows * n_out, max_bytes, f"resampling from {int(sr_in)} Hz to {int(sr_out)} Hz")
    flat = x.reshape(rows, x.shape[-1])
    out = np.zeros((rows, n_out), dtype=np.float32)
    for r in range(rows):
        y = soxr.resample(flat[r], int(sr_in), int(sr_out), quality="soxr_hq")
        k = min(len(y), n_out)
        out[r, :k] = y[:k]
    return out.reshape(*x.shape[:-1], n_out)
