"""The one waveform check of the metric modules (:mod:`.mcd`, :mod:`.pitch`). No click here."""
from __future__ import annotations

import numpy as np

__all__ = ["mono_waveform"]


def mono_waveform(audio, name: str) -> np.ndarray:
    """``audio`` as a float64 mono waveform ``[L]``; ``ValueError`` naming ``name`` when it is not
    one (other shape, empty, not real numbers, nan or inf).

    >>> mono_waveform([0, 1], "est").dtype
    dtype('float64')
    """
    x = np.asarray(audio)
    if x.ndim != 1:
        raise ValueError(f"`{name}` must be a mono waveform [L], got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"`{name}` is empty")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise ValueError(f"`{name}` must be real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"`{name}` has non-finite samples (nan or inf)")
    return x
