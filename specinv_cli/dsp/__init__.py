"""Signal processing the algorithms are built on: the STFT and its fused projector
(:mod:`.stft`), the ragged-batch operator (:mod:`.ragged`), mel filterbanks and feature coding
(:mod:`.mel`), spectral metrics (:mod:`.metrics`), L-BFGS's passes over its history
(:mod:`.curvature`) and the numba kernels (:mod:`.kernels`, each with a torch twin in :mod:`.stft`
or :mod:`.curvature`).
"""
from . import metrics
from .mel import MelTransform, decode, encode
from .ragged import RaggedSTFT
from .stft import STFT, get_window, jit_enabled, set_jit

__all__ = ["STFT", "RaggedSTFT", "MelTransform", "encode", "decode", "get_window", "jit_enabled", "set_jit", "metrics"]
