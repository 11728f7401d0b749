"""Audio ready to write: the sample format chosen (level kept, never clipped unless asked), and
exactly what a reader will decode from it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


__all__ = ["SUBTYPES", "NORMALIZE", "FULL_SCALE", "AUDIO_FORMATS", "AudioFormat", "EncodedAudio", "encode_audio"]

#: Full scale of the integer subtypes (a reader decodes ``q / FULL_SCALE``, as soundfile does).
FULL_SCALE = {"PCM_16": 2 ** 15, "PCM_24": 2 ** 23}
SUBTYPES = ("auto", "PCM_16", "PCM_24", "FLOAT")
NORMALIZE = ("none", "peak")
_F32_MAX = float(np.finfo(np.float32).max)

#: Audio formats by file extension (those libsndfile writes); no extension (``-``, ``/dev/null``,
#: a FIFO) is WAV. Lossy formats are decoded again after writing, so metrics are of what a
#: reader gets.
AUDIO_FORMATS = {".wav": "WAV", ".wave": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG",
                 ".opus": "OGG", ".mp3": "MP3", ".aiff": "AIFF", ".aif": "AIFF", ".aifc": "AIFF",
                 ".caf": "CAF", ".w64": "W64", ".rf64": "RF64", ".au": "AU", ".snd": "AU"}
_FLOAT_FORMATS = ("WAV", "AIFF", "CAF", "W64", "RF64", "AU")


@dataclass(frozen=True)
class AudioFormat:
    """How an output is stored: libsndfile ``format``, and ``codec`` for lossy formats."""

    format: str = "WAV"
    codec: str | None = None

    @property
    def lossy(self) -> bool:
        return self.codec is not None

    @property
    def holds_float(self) -> bool:
        return self.format in _FLOAT_FORMATS


@dataclass
class EncodedAudio:
    """Audio ready to be written, and exactly what a reader will decode from the file.

    ``samples`` is float32 ``[L]`` (or ``[C, L]``): the values a reader gets back (after the gain,
    clipping and quantisation; for a lossy format, after decoding the written file), for
    measuring what was written; ``data`` is what the writer stores (int16 for PCM_16, int32
    holding 24 bits in its top bytes for PCM_24, float32 for FLOAT and lossy codecs). ``peak`` is
    the largest ``|sample|`` after the gain and before clipping; ``clipped`` counts the samples
    beyond full scale; ``reason`` says why ``auto`` chose FLOAT.
    """

    data: np.ndarray
    samples: np.ndarray
    subtype: str
    gain: float
    peak: float
    clipped: int
    reason: str | None = None
    format: AudioFormat = AudioFormat()


def _chunks(flat: np.ndarray, step: int = 1 << 20):
    for i in range(0, flat.size, step):
        yield flat[i:i + step]


def encode_audio(audio, subtype: str = "auto", normalize: str = "none", *, inplace: bool = False,
                 format: AudioFormat | str = "WAV") -> EncodedAudio:
    """Apply the level and format policy to ``audio`` (float ``[L]`` or ``[C, L]``).

    - ``normalize``: ``none`` (default) keeps the level; ``peak`` scales to a 0.99 peak.
    - ``subtype``: ``auto`` (default) writes PCM_16 when the audio fits full scale, else 32-bit
      FLOAT (which keeps any level; ``reason`` says why); also FLOAT when PCM_16 would round a
      non-silent signal to silence. ``PCM_16``/``PCM_24`` clip what exceeds full scale (counted
      in ``clipped``); ``FLOAT`` writes as is.
    - ``format``: an :class:`AudioFormat` or libsndfile name. Formats without float samples
      (FLAC) take PCM_24 where ``auto`` would take FLOAT for a quiet signal, and refuse a level
      beyond full scale unless ``subtype`` says to clip; lossy codecs (OGG, MP3) take ``auto``.

    Quantisation is done here (round to nearest, then clip), so ``samples`` is what the file
    holds. ``inplace`` reuses a writable float32 ``audio``'s memory (hour-long outputs).
    Raises ``ValueError`` for non-finite samples, a level the format cannot hold, or a
    subtype the format does not have.

    >>> enc = encode_audio(np.array([0.5, -1.25, 0.25], dtype=np.float32))
    >>> enc.subtype, enc.peak, enc.samples.tolist()
    ('FLOAT', 1.25, [0.5, -1.25, 0.25])
    >>> enc = encode_audio(np.array([0.5, -1.25, 0.25]), subtype="PCM_16")
    >>> enc.clipped, enc.samples.tolist(), enc.data.dtype.name
    (1, [0.5, -1.0, 0.25], 'int16')
    """
    fmt = format if isinstance(format, AudioFormat) else AudioFormat(str(format))
    if normalize not in NORMALIZE:
        raise ValueError(f"`normalize` must be one of {', '.join(NORMALIZE)}, got {normalize!r}")
    if subtype not in SUBTYPES:
        raise ValueError(f"`subtype` must be one of {', '.join(SUBTYPES)}, got {subtype!r}")
    if fmt.lossy and subtype != "auto":
        raise ValueError(f"`subtype` {subtype} does not apply to {fmt.format} ({fmt.codec}); leave it auto")
    if subtype == "FLOAT" and not fmt.holds_float:
        raise ValueError(f"{fmt.format} has no float samples; use `subtype` PCM_16 or PCM_24, or write .wav")
    a = np.asarray(audio)
    if a.dtype.kind != "f":
        a = a.astype(np.float32)
    flat = a.reshape(-1)
    peak = max((float(np.max(np.abs(c))) for c in _chunks(flat)), default=0.0)
    if not np.isfinite(peak):
        raise ValueError("the audio has non-finite samples (NaN or inf)")
    gain = 0.99 / peak if normalize == "peak" and peak > 0 else 1.0
    peak *= gain
    if peak > _F32_MAX:
        raise ValueError(f"its level (peak {peak:.3g}) is beyond what a WAV can hold (32-bit float, at most "
                         f"{_F32_MAX:.3g}); `normalize` peak scales it to full scale")
    own = inplace and a.dtype == np.float32 and a.flags.writeable and a.flags.c_contiguous
    if gain == 1.0:
        x = a.astype(np.float32, copy=False)  # FLOAT writes it as is; PCM copies it below
    elif own:
        x = a
        x *= np.float32(gain)
    else:
        x = (a * gain).astype(np.float32)
    own = own or x is not a  # x may be quantised in place
    if fmt.lossy:
        return EncodedAudio(x, x, fmt.codec, gain, peak, 0, None, fmt)
    reason = None
    if subtype == "auto":
        hi = max((float(np.max(c)) for c in _chunks(x.reshape(-1))), default=0.0)
        lo = min((float(np.min(c)) for c in _chunks(x.reshape(-1))), default=0.0)
        fs = FULL_SCALE["PCM_16"]
        over = round(hi * fs) > fs - 1 or round(lo * fs) < -fs
        if over and not fmt.holds_float:
            raise ValueError(f"peak {peak:.4g} exceeds full scale, which {fmt.format} (integer samples) cannot "
                             f"hold; `normalize` peak scales it, `subtype` PCM_16 clips it, or write .wav "
                             f"(32-bit float)")
        if over:
            subtype, reason = "FLOAT", f"peak {peak:.4g} exceeds full scale"
        elif 0 < peak < 0.5 / fs:
            if fmt.holds_float:
                subtype, reason = "FLOAT", f"peak {peak:.3g} is below PCM_16's resolution"
            elif peak >= 0.5 / FULL_SCALE["PCM_24"]:
                subtype = "PCM_24"
            else:
                raise ValueError(f"peak {peak:.3g} is below {fmt.format}'s 24-bit resolution; `normalize` peak "
                                 f"scales it, or write .wav (32-bit float)")
        else:
            subtype = "PCM_16"
    if subtype == "FLOAT":
        return EncodedAudio(x, x, subtype, gain, peak, 0, reason, fmt)
    fs = FULL_SCALE[subtype]
    if not own or not x.flags.c_contiguous:
        x = np.array(x, dtype=np.float32, order="C")
    clipped = 0
    for c in _chunks(x.reshape(-1)):  # in place, chunk by chunk: q = clip(round(x fs)) / fs
        c *= np.float32(fs)
        np.rint(c, out=c)
        clipped += int(np.count_nonzero((c > fs - 1) | (c < -fs)))
        np.clip(c, -fs, fs - 1, out=c)
    data = x.astype(np.int16) if subtype == "PCM_16" else x.astype(np.int32) << 8
    for c in _chunks(x.reshape(-1)):
        c *= np.float32(1.0 / fs)  # exact: a power of two
    return EncodedAudio(data, x, subtype, gain, peak, clipped, reason, fmt)


