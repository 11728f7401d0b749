"""Interpreting arrays as spectrograms: input kinds, layouts, validation.

Everything here works on tensors already in memory; reading files is :mod:`specinv_cli.io`.
Errors are :class:`InputError` with a message that names the source and the problem.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["InputError", "INPUT_KINDS", "LAYOUTS", "Target", "interpret"]

#: ``magnitude``: ``|X|``; ``power``: ``|X|^2``; ``db``: ``20 log10 |X|``; ``log``: ``ln |X|``;
#: ``complex``: X itself (complex dtype, or real with a trailing axis of 2 = (re, im)).
INPUT_KINDS = ("magnitude", "power", "db", "log", "complex")
LAYOUTS = ("ft", "tf")


from ..errors import InputError  # noqa: E402  (re-exported: where callers have always found it)


@dataclass
class Target:
    """A validated spectrogram: ``mag [..., F, T]`` real >= 0, and ``phase`` (unit complex,
    same shape) when the input carried one."""

    mag: torch.Tensor
    phase: torch.Tensor | None = None
    #: ``mag`` holds a model's (possibly log-compressed, normalised) mel features, to be decoded
    #: with the settings' compression (see :func:`specinv_cli.dsp.mel.decode`).
    mel_features: bool = False
    #: What was inferred about the data rather than given (``{"input_kind": "complex (...)"}``).
    inferred: dict = field(default_factory=dict)

    @property
    def batch_shape(self) -> tuple:
        return tuple(self.mag.shape[:-2])


def interpret(x, kind: str = "magnitude", layout: str = "ft", source: str | None = None,
              n_mels: int | None = None) -> Target:
    """Turn an array (numpy or torch) into a validated :class:`Target`.

    - ``kind`` says what the numbers are (see :data:`INPUT_KINDS`); a complex-dtype array is
      always taken as ``complex`` when ``kind`` is ``magnitude`` (the default).
    - ``layout`` ``ft`` is ``[..., F, T]`` (torch/librosa), ``tf`` is ``[..., T, F]``.
    - integer and half-precision arrays are converted to float32.

    - with ``n_mels`` (mel settings), an input of ``n_mels`` bins is a model's mel features: it
      is returned undecoded (``mel_features=True``; ``kind`` must be ``magnitude``, the default).

    Raises :class:`InputError` for wrong ndim, empty axes, NaN/Inf, negative magnitudes, or a
    kind that does not fit the data.
    """
    if kind not in INPUT_KINDS:
        raise InputError(source, f"unknown input kind {kind!r}; choose one of {', '.join(INPUT_KINDS)}")
    if layout not in LAYOUTS:
        raise InputError(source, f"unknown layout {layout!r}; choose ft or tf")
    if not isinstance(x, torch.Tensor):
        import numpy as np

        arr = np.asarray(x)
        if arr.dtype.kind not in "biufc":
            raise InputError(source, f"array of dtype {arr.dtype} is not numeric")
        if arr.dtype.kind == "b":
            arr = arr.astype(np.float32)
        if arr.dtype.kind in "iu" or arr.dtype == np.float16:
            arr = arr.astype(np.float32)
        elif arr.dtype.kind == "f" and arr.dtype.itemsize > 8:  # long double: torch has none
            arr = arr.astype(np.float64)
        elif arr.dtype.kind == "c" and arr.dtype.itemsize > 16:
            arr = arr.astype(np.complex128)
        if not arr.dtype.isnative:  # big-endian data: torch only takes the native byte order
            arr = arr.astype(arr.dtype.newbyteorder("="))
        # not np.ascontiguousarray: it turns a 0-d array into shape (1,)
        x = torch.from_numpy(arr if arr.flags.c_contiguous else np.ascontiguousarray(arr))
    if getattr(x, "is_nested", False):
        raise InputError(source, "holds a nested tensor; save a regular (rectangular, dense) one")
    if x.device.type == "meta":
        raise InputError(source, f"holds a tensor on the meta device (shape {tuple(x.shape)}), which has no "
                                 f"values; save the tensor with its data")
    if x.layout != torch.strided:
        raise InputError(source, f"holds a {str(x.layout).replace('torch.', '')} tensor; save a dense one "
                                 f"(tensor.to_dense())")
    if x.is_quantized:
        x = x.dequantize()
    x = x.detach()
    if x.is_complex():
        if x.dtype not in (torch.complex64, torch.complex128):  # complex32
            x = x.to(torch.complex64)
    elif x.dtype not in (torch.float32, torch.float64):  # ints, bool, half, bfloat16, float8...
        try:
            x = x.to(torch.float32)
        except (RuntimeError, TypeError) as e:
            raise InputError(source, f"tensor of dtype {x.dtype} cannot be converted to float32 ({e})") from None

    is_complex = x.is_complex()
    inferred = {}
    if is_complex and kind == "magnitude":
        kind = "complex"
        inferred["input_kind"] = "complex (complex dtype)"
    if is_complex and kind != "complex":
        raise InputError(source, f"complex array given with `input_kind` {kind}; use `input_kind` complex "
                                 f"(or pass its magnitude)")
    if kind == "complex" and not is_complex:
        if x.ndim < 3 or x.shape[-1] != 2:
            raise InputError(source, f"`input_kind` complex needs a complex array or a real one with a last "
                                     f"axis of 2 (real, imaginary); got shape {tuple(x.shape)}")
        if x.numel() == 0:
            raise InputError(source, f"empty spectrogram: shape {tuple(x.shape)}")
        x = torch.view_as_complex(x.to(torch.float64 if x.dtype == torch.float64 else torch.float32).contiguous())

    if x.ndim < 2:
        raise InputError(source, f"expected a spectrogram of at least 2 dimensions [..., F, T], got shape {tuple(x.shape)}")
    if layout == "tf":
        x = x.transpose(-1, -2)
    n_f, n_t = x.shape[-2], x.shape[-1]
    if n_f == 0 or n_t == 0 or x.numel() == 0:
        raise InputError(source, f"empty spectrogram: shape {tuple(x.shape)} ({n_f} bins, {n_t} frames)")
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise InputError(source, f"contains {bad} NaN or infinite value(s)")

    phase = None
    if n_mels is not None and n_f == n_mels:
        if kind != "magnitude" or x.is_complex():
            raise InputError(source, f"a mel input ({n_mels} bins) is decoded with the settings' compression "
                                     f"(`compression`, `config`), not `input_kind` {kind}")
        return Target(x.contiguous(), None, mel_features=True)
    if kind == "complex":
        mag = x.abs()
        phase = torch.where(mag > 0, x / mag.clamp_min(torch.finfo(mag.dtype).tiny), torch.ones_like(x))
    elif kind in ("magnitude", "power"):
        if bool((x < 0).any()):
            from ..config import MEL_SIZES

            hint = (f"{n_f} bins is a common mel size: a model's (log-)mel features need mel settings "
                    f"(a preset in `config`, see 'specinv configs', or `n_mels` {n_f})"
                    if n_mels is None and n_f in MEL_SIZES else "is it in dB or log? use `input_kind` db|log")
            raise InputError(source, f"{int((x < 0).sum())} negative value(s) in a {kind} spectrogram "
                                     f"(min {float(x.min()):.4g}); {hint}")
        mag = x.sqrt() if kind == "power" else x
    elif kind == "db":
        mag = torch.pow(10.0, x / 20)
    else:  # log
        mag = torch.exp(x)
    if not bool(torch.isfinite(mag).all()):
        raise InputError(source, f"values overflow when converted from {kind} to magnitude "
                                 f"(max input {float(x.real.max() if x.is_complex() else x.max()):.4g}); check `input_kind`")
    return Target(mag.contiguous(), phase.contiguous() if phase is not None else None, inferred=inferred)
