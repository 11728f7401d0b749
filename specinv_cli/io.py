"""Reading spectrograms and writing audio, safely.

- Never unpickles: ``np.load(allow_pickle=False)`` and ``torch.load(weights_only=True)``.
- Every failure is an :class:`~specinv_cli.spectrogram.InputError` whose message names the file.
- Audio is written to a temporary file in the destination folder and renamed into place, so an
  interrupted or failed run never leaves a partial WAV under the final name.
"""
from __future__ import annotations

import io as _io
import os
import sys
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import SpecinvError
from .spectrogram import InputError, Target, interpret

__all__ = ["SUFFIXES", "load_array", "peek_array", "load_spectrogram", "save_audio", "wav_bytes", "example_path",
           "OutputError", "EncodedAudio", "encode_audio", "check_destination", "atomic_output", "cleanup_temporaries"]

SUFFIXES = (".npy", ".npz", ".pt", ".pth")
#: ``auto``: PCM_16 when the audio fits full scale, else 32-bit float (see :func:`encode_audio`).
SUBTYPES = ("auto", "PCM_16", "PCM_24", "FLOAT")
NORMALIZE = ("none", "peak")
_TMP_PREFIX = ".specinv-tmp-"
#: Temporary files currently being written (removed on interrupt).
_PENDING: set[str] = set()


class OutputError(SpecinvError, OSError):
    """The output cannot be written (folder missing, not writable, disk full...)."""

    def __init__(self, path, message):
        self.path = str(path)
        self.message = message
        super().__init__(f"{path}: {message}")


def example_path() -> Path:
    """The bundled example spectrogram (CC0 guitar chord, see ``data/EXAMPLE.md``)."""
    return Path(__file__).resolve().parent / "data" / "example.npz"


def _describe_os_error(e: OSError) -> str:
    return e.strerror or str(e)


def _check_readable(path: Path, name: str, what: str = "a spectrogram file") -> None:
    if not path.exists():
        raise InputError(name, "no such file")
    if path.is_dir():
        raise InputError(name, f"is a directory, not {what}")
    if not os.access(path, os.R_OK):
        raise InputError(name, "permission denied (file is not readable)")
    if path.stat().st_size == 0:
        raise InputError(name, "file is empty (0 bytes)")


def _first_line(e: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message, cut at its first sentence when long."""
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    if len(line) > 100 and ". " in line[:limit]:
        line = line[: line.index(". ") + 1]
    return line[:limit]


def _unpickling_reason(e: BaseException) -> str:
    """The specific part of torch's long weights_only refusal (e.g. 'unsupported GLOBAL posix.mkdir')."""
    parts = [p.strip() for p in str(e).split("\n\n") if p.strip()]
    for p in parts:
        if p.startswith(("Weights only load failed", "Check the documentation")):
            continue
        p = p.split("WeightsUnpickler error:")[-1].strip() or p
        if p.startswith("Please file an issue"):
            continue
        return " ".join(p.split())[:160]
    return "unpickling refused"


def _load_npy_bytes(data, name: str) -> np.ndarray:
    try:
        arr = np.load(data, allow_pickle=False)
    except ValueError as e:
        msg = str(e)
        if "allow_pickle" in msg or "Object arrays" in msg:
            raise InputError(name, "holds Python objects (a pickle), refused: only numeric arrays are loaded") from None
        raise InputError(name, f"not a valid .npy file or truncated ({_first_line(e)})") from None
    except MemoryError:
        raise InputError(name, "too large to load into memory") from None
    except Exception as e:  # untrusted bytes: any parser failure (tokenize.TokenError...) is corruption
        raise InputError(name, f"corrupt or truncated .npy file ({type(e).__name__}: {_first_line(e)})") from None
    if isinstance(arr, np.lib.npyio.NpzFile):
        arr.close()
        raise InputError(name, "is a .npz archive; name it .npz")
    return arr


def _read_npy_header(f, name: str):
    """``(shape, dtype, data_offset)`` from a .npy header, reading only the header."""
    from numpy.lib import format as npf

    try:
        version = npf.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npf.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = npf.read_array_header_2_0(f)
        else:  # 3.0 (utf-8 header) has no public reader; np.load checks it
            return None
    except MemoryError:
        raise InputError(name, "not a valid .npy file (its header does not fit in memory)") from None
    except Exception as e:  # untrusted bytes: any parser failure (ValueError, tokenize.TokenError...) is corruption
        raise InputError(name, f"not a valid .npy file or truncated ({_first_line(e)})") from None
    return tuple(int(d) for d in shape), dtype, f.tell()


def _declared_nbytes(shape, dtype) -> int:
    n = 1
    for d in shape:
        n *= d
    return n * dtype.itemsize


def peek_array(path: str | os.PathLike, key: str | None = None):
    """``(shape, dtype)`` of the array in a .npy file (or a .npz member) from its header alone,
    without reading the data; ``None`` when that is not possible (.pt, stdin, unusual files: the
    full load reports their problems).

    Raises :class:`InputError` when the header claims more data than the file holds.
    """
    name = str(path)
    if name == "-":
        return None
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".npy", ".npz"):
        return None
    _check_readable(p, name)  # the same messages as the full load, in the same order
    try:
        if suffix == ".npy":
            with open(p, "rb") as f:
                info = _read_npy_header(f, name)
            if info is None:
                return None
            shape, dtype, offset = info
            if dtype.hasobject:
                return None  # refused as a pickle by the loader
            need, have = _declared_nbytes(shape, dtype), p.stat().st_size - offset
            if have < need:
                raise InputError(name, f"truncated .npy file: its header describes shape {shape} {dtype} "
                                       f"({_fmt_bytes(need)} of data) but the file holds {_fmt_bytes(max(have, 0))}")
            return shape, dtype
        with zipfile.ZipFile(p) as z:
            members = {n[:-4]: n for n in z.namelist() if n.endswith(".npy")}
            if key is None and len(members) != 1 or key is not None and key not in members:
                return None
            member = members[key if key is not None else next(iter(members))]
            size = z.getinfo(member).file_size
            with z.open(member) as f:
                try:
                    info = _read_npy_header(f, name)
                except InputError:
                    return None  # a corrupt member: the full load names the problem
            if info is None or info[1].hasobject:
                return None
            shape, dtype, offset = info
            need = _declared_nbytes(shape, dtype)
            if size - offset < need:
                raise InputError(name, f"array {member[:-4]!r} is truncated: its header describes shape {shape} "
                                       f"{dtype} ({_fmt_bytes(need)}) but the archive holds {_fmt_bytes(max(size - offset, 0))}")
            return shape, dtype
    except InputError:
        raise
    except (OSError, zipfile.BadZipFile, EOFError, ValueError, RuntimeError, NotImplementedError, KeyError):
        return None  # the full load gives the message


def _fmt_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def _pick(mapping_keys, key, name, what):
    keys = list(mapping_keys)
    if key is not None:
        if key not in keys:
            raise InputError(name, f"no {what} named {key!r}; it has: {', '.join(map(str, keys)) or 'none'}")
        return key
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise InputError(name, f"contains no {what}s")
    raise InputError(name, f"holds {len(keys)} {what}s ({', '.join(map(str, keys))}); choose one with `key`")


def load_array(path: str | os.PathLike, key: str | None = None):
    """The raw array stored in ``path`` (numpy array or torch tensor), without interpretation.

    ``-`` reads a .npy stream from standard input.
    """
    name = str(path)
    if name == "-":
        data = sys.stdin.buffer.read()
        if not data:
            raise InputError("<stdin>", "standard input is empty")
        return _load_npy_bytes(_io.BytesIO(data), "<stdin>")
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(name, f"unknown file type {suffix or '(no extension)'!r}; expected .npy, .npz or .pt")
    _check_readable(p, name)
    try:
        if suffix == ".npy":
            if key is not None:
                raise InputError(name, "`key` applies to .npz and .pt files, not .npy")
            with open(p, "rb") as f:
                return _load_npy_bytes(f, name)
        if suffix == ".npz":
            try:
                with np.load(p, allow_pickle=False) as z:
                    k = _pick(z.files, key, name, "array")
                    try:
                        return z[k]
                    except ValueError as e:
                        if "allow_pickle" in str(e) or "Object arrays" in str(e):
                            raise InputError(name, f"array {k!r} holds Python objects (a pickle), refused") from None
                        raise InputError(name, f"array {k!r} is corrupt ({_first_line(e)})") from None
            except (InputError, MemoryError):
                raise
            except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError, KeyError,
                    UnicodeDecodeError, OverflowError, OSError) as e:
                raise InputError(name, f"corrupt or truncated .npz archive ({_first_line(e)})") from None
            except Exception as e:  # untrusted bytes: any parser failure is corruption
                raise InputError(name, f"not a valid .npz archive ({type(e).__name__}: {_first_line(e)})") from None
        # .pt / .pth
        import pickle

        import torch

        import warnings

        try:
            with warnings.catch_warnings():  # torch warns about pickle protocols on stderr
                warnings.simplefilter("ignore")
                obj = torch.load(p, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise InputError(name, "holds objects other than tensors (or is corrupt), refused without executing "
                                   f"them (torch.load weights_only=True: {_unpickling_reason(e)})") from None
        except MemoryError:
            raise
        except Exception as e:  # untrusted bytes: any failure of the (restricted) unpickler is corruption
            raise InputError(name, f"corrupt or unreadable .pt file ({type(e).__name__}: {_first_line(e)})") from None
        if isinstance(obj, dict):
            tensors = {k: v for k, v in obj.items() if isinstance(v, (torch.Tensor, np.ndarray))}
            if key is None and len(tensors) == 1:
                return next(iter(tensors.values()))
            k = _pick(tensors.keys(), key, name, "tensor")
            return tensors[k]
        if isinstance(obj, (list, tuple)):
            raise InputError(name, f"holds a {type(obj).__name__}, expected a tensor or a dict of tensors")
        if key is not None:
            raise InputError(name, "`key` given but the file holds a single tensor")
        if not isinstance(obj, torch.Tensor):
            raise InputError(name, f"holds a {type(obj).__name__}, expected a tensor")
        return obj
    except InputError:
        raise
    except MemoryError:
        raise InputError(name, "too large to load into memory") from None
    except OSError as e:
        raise InputError(name, f"cannot read: {_describe_os_error(e)}") from None


def load_spectrogram(path, *, key: str | None = None, input_kind: str = "magnitude",
                     layout: str = "ft", n_mels: int | None = None) -> Target:
    """Load and validate a spectrogram file (``.npy``, ``.npz``, ``.pt``).

    Returns a :class:`~specinv_cli.spectrogram.Target` with magnitudes ``[..., F, T]`` and the
    phase of complex inputs (or, with ``n_mels`` and an input of that many bins, the undecoded mel
    features). Raises :class:`InputError` naming the file.

    Example
    -------
    >>> from specinv_cli.io import load_spectrogram, example_path
    >>> t = load_spectrogram(example_path())
    >>> t.mag.shape[-2]
    513
    """
    name = "<stdin>" if str(path) == "-" else str(path)
    arr = load_array(path, key)
    return interpret(arr, input_kind, layout, name, n_mels=n_mels)


# --- audio output ---------------------------------------------------------------------------
#: Full scale of the integer subtypes (a reader decodes ``q / FULL_SCALE``, as soundfile does).
FULL_SCALE = {"PCM_16": 2 ** 15, "PCM_24": 2 ** 23}
_F32_MAX = float(np.finfo(np.float32).max)


@dataclass
class EncodedAudio:
    """Audio ready to be written, and exactly what a reader will decode from the file.

    ``samples`` is float32 ``[L]`` (or ``[C, L]``): the values a reader gets back (after the gain,
    clipping and quantisation), for measuring what was written; ``data`` is what the writer
    stores (int16 for PCM_16, int32 holding 24 bits in its top bytes for PCM_24, float32 for
    FLOAT). ``peak`` is the largest ``|sample|`` after the gain and before clipping; ``clipped``
    counts the samples beyond full scale; ``reason`` says why ``auto`` chose FLOAT.
    """

    data: np.ndarray
    samples: np.ndarray
    subtype: str
    gain: float
    peak: float
    clipped: int
    reason: str | None = None


def _chunks(flat: np.ndarray, step: int = 1 << 20):
    for i in range(0, flat.size, step):
        yield flat[i:i + step]


def encode_audio(audio, subtype: str = "auto", normalize: str = "none", *, inplace: bool = False) -> EncodedAudio:
    """Apply the level and format policy to ``audio`` (float ``[L]`` or ``[C, L]``).

    - ``normalize``: ``none`` (default) keeps the level; ``peak`` scales to a 0.99 peak.
    - ``subtype``: ``auto`` (default) writes PCM_16 when the audio fits full scale, else 32-bit
      FLOAT (which keeps any level; ``reason`` says why); also FLOAT when PCM_16 would round a
      non-silent signal to silence. ``PCM_16``/``PCM_24`` clip what exceeds full scale (counted
      in ``clipped``); ``FLOAT`` writes as is.

    Quantisation is done here (round to nearest, then clip), so ``samples`` is what the file
    holds. ``inplace`` reuses a writable float32 ``audio``'s memory (hour-long outputs).
    Raises ``ValueError`` for non-finite samples, or a level no WAV can hold (float32 range).

    >>> enc = encode_audio(np.array([0.5, -1.25, 0.25], dtype=np.float32))
    >>> enc.subtype, enc.peak, enc.samples.tolist()
    ('FLOAT', 1.25, [0.5, -1.25, 0.25])
    >>> enc = encode_audio(np.array([0.5, -1.25, 0.25]), subtype="PCM_16")
    >>> enc.clipped, enc.samples.tolist(), enc.data.dtype.name
    (1, [0.5, -1.0, 0.25], 'int16')
    """
    if normalize not in NORMALIZE:
        raise ValueError(f"`normalize` must be one of {', '.join(NORMALIZE)}, got {normalize!r}")
    if subtype not in SUBTYPES:
        raise ValueError(f"`subtype` must be one of {', '.join(SUBTYPES)}, got {subtype!r}")
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
    reason = None
    if subtype == "auto":
        hi = max((float(np.max(c)) for c in _chunks(x.reshape(-1))), default=0.0)
        lo = min((float(np.min(c)) for c in _chunks(x.reshape(-1))), default=0.0)
        fs = FULL_SCALE["PCM_16"]
        if round(hi * fs) > fs - 1 or round(lo * fs) < -fs:
            subtype, reason = "FLOAT", f"peak {peak:.4g} exceeds full scale"
        elif 0 < peak < 0.5 / fs:
            subtype, reason = "FLOAT", f"peak {peak:.3g} is below PCM_16's resolution"
        else:
            subtype = "PCM_16"
    if subtype == "FLOAT":
        return EncodedAudio(x, x, subtype, gain, peak, 0, reason)
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
    return EncodedAudio(data, x, subtype, gain, peak, clipped, reason)


def _dest_dir_check(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise OutputError(path, f"output folder {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise OutputError(path, f"{str(parent)!r} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(path, f"output folder {str(parent)!r} is not writable")
    if path.is_dir():
        raise OutputError(path, "is a folder; use -O DIR to write into a folder")


def _identity(path) -> tuple | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def check_destination(path: str | os.PathLike, reads=()) -> None:
    """Refuse, before any work, an output that cannot be written (its folder missing or not
    writable, a folder in its place) or that is one of the files ``reads`` (the inputs and
    other files the command reads), compared by identity, so also through links.
    Raises :class:`OutputError`."""
    path = Path(path)
    _dest_dir_check(path)
    me = _identity(path)
    if me is None:
        return
    for r in reads:
        if str(r) != "-" and _identity(r) == me:
            raise OutputError(path, f"is the same file as the input {r}; writing it would destroy that input")


@contextmanager
def atomic_output(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; rename it to ``path`` on success, delete on error."""
    path = Path(path)
    _dest_dir_check(path)
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=path.suffix or ".tmp", dir=str(path.parent or "."))
    os.close(fd)
    _PENDING.add(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    finally:
        _PENDING.discard(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def cleanup_temporaries() -> None:
    """Remove temporary outputs still being written (for signal handlers)."""
    for tmp in list(_PENDING):
        try:
            os.unlink(tmp)
        except OSError:
            pass
        _PENDING.discard(tmp)


def save_audio(path: str | os.PathLike, audio, sample_rate: int, subtype: str = "auto",
               normalize: str = "none") -> EncodedAudio:
    """Write mono (``[L]``) or multichannel (``[C, L]``) audio as WAV, atomically, with the
    level and format policy of :func:`encode_audio`; returns what was written.

    ``audio`` may also be an :class:`EncodedAudio` (then ``subtype``/``normalize`` are unused).
    """
    enc = audio if isinstance(audio, EncodedAudio) else encode_audio(audio, subtype, normalize)
    import soundfile as sf

    data = enc.data.T if enc.data.ndim == 2 else enc.data
    try:
        with atomic_output(path) as tmp:
            sf.write(tmp, data, int(sample_rate), subtype=enc.subtype, format="WAV")
    except OutputError:
        raise
    except (OSError, RuntimeError, sf.LibsndfileError) as e:
        msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise OutputError(path, f"cannot write: {msg}") from None
    return enc


def wav_bytes(audio, sample_rate: int, subtype: str = "auto", normalize: str = "none") -> bytes:
    """A complete WAV file in memory (for ``-o -``); ``audio`` as :func:`save_audio` takes it."""
    import soundfile as sf

    enc = audio if isinstance(audio, EncodedAudio) else encode_audio(audio, subtype, normalize)
    buf = _io.BytesIO()
    sf.write(buf, enc.data.T if enc.data.ndim == 2 else enc.data, int(sample_rate), subtype=enc.subtype, format="WAV")
    return buf.getvalue()
