"""Reading spectrograms and writing audio, safely.

- Never unpickles: ``np.load(allow_pickle=False)`` and ``torch.load(weights_only=True)``.
- Every failure is an :class:`~specinv_cli.spectrogram.InputError` whose message names the file.
- Audio is written to a temporary file in the destination folder and renamed into place, so an
  interrupted or failed run never leaves a partial WAV under the final name.
"""
from __future__ import annotations

import errno
import io as _io
import os
import re
import stat
import sys
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import SpecinvError, StdoutClosed
from .limits import check_bytes, fmt_bytes, host_memory, name_list
from .stdio import stdout_binary, write_stdout  # noqa: F401  (also io's: the writers' stdout)
from .spectrogram import InputError, Target, interpret

__all__ = ["SUFFIXES", "load_array", "peek_array", "load_spectrogram", "save_audio", "wav_bytes", "example_path",
           "OutputError", "EncodedAudio", "encode_audio", "AudioFormat", "audio_format", "Destination", "destination",
           "is_stdout", "same_file", "check_destination", "check_outputs", "atomic_output", "cleanup_temporaries",
           "remove_stale_temporaries", "describe_write_error", "stdout_binary", "write_stdout"]

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


def _stat_problem(path, e: OSError) -> str:
    """What ``os.stat`` failing on an input means, in words (the errno's own, not a guess)."""
    if e.errno == errno.ENOENT:
        if os.path.islink(path):
            return f"is a broken symbolic link (to {os.readlink(path)})"
        return "no such file"
    if e.errno == errno.ENOTDIR:
        return "no such file (a part of its path is not a folder)"
    if e.errno == errno.EACCES:
        return "permission denied (a folder on its path cannot be searched)"
    return f"cannot open: {_describe_os_error(e).lower()}"


def _check_readable(path: Path, name: str, what: str = "a spectrogram file") -> str:
    """``"file"`` for a regular file, ``"stream"`` for a FIFO or character device (read once,
    front to back, like stdin); anything else is an :class:`InputError` naming the problem."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise InputError(name, _stat_problem(path, e)) from None
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        raise InputError(name, f"is a directory, not {what}")
    if stat.S_ISSOCK(mode):
        raise InputError(name, f"is a socket, not {what}")
    if stat.S_ISBLK(mode):
        raise InputError(name, f"is a block device, not {what}")
    if not os.access(path, os.R_OK):
        raise InputError(name, "permission denied (file is not readable)")
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        return "stream"
    if st.st_size == 0:
        raise InputError(name, "file is empty (0 bytes)")
    return "file"


def looks_like(head: bytes) -> str:
    """What a file whose first bytes are ``head`` (16 or more) appears to be, in words."""
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy .npy array"
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "a WAV audio file"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "an AIFF audio file"
    if head.startswith(b"fLaC"):
        return "a FLAC audio file"
    if head.startswith(b"OggS"):
        return "an Ogg audio file"
    if head.startswith(b"ID3") or len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "an MP3 audio file"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "a zip archive"
    if head.startswith(b"\x80"):
        return "a Python pickle"
    for magic, what in ((b"\x1f\x8b", "gzip-compressed data"), (b"\x89PNG", "a PNG image"),
                        (b"%PDF", "a PDF document"), (b"\x7fELF", "an executable"),
                        (b"\xff\xd8\xff", "a JPEG image"), (b"BZh", "bzip2-compressed data"),
                        (b"\xfd7zXZ", "xz-compressed data"), (b"\x89HDF", "an HDF5 file")):
        if head.startswith(magic):
            return what
    if head and not head.strip(b"\x00"):
        return "zero bytes"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:  # a character cut at the end of the sample is still text
        text = head[:e.start].decode("utf-8") if e.start >= len(head) - 3 and e.start > 0 else None
    if text is not None and all(c.isprintable() or c in "\t\r\n\f" for c in text):
        return "a JSON text file" if text.lstrip()[:1] in ("{", "[") else "a text file"
    return "binary data of an unknown kind"


#: What each suffix's content starts with (a legacy torch file is a pickle stream).
_MAGIC = {".npy": (b"\x93NUMPY",), ".npz": (b"PK\x03\x04", b"PK\x05\x06"),
          ".pt": (b"PK\x03\x04", b"\x80"), ".pth": (b"PK\x03\x04", b"\x80")}
_WHAT = {".npy": "a .npy file", ".npz": "a .npz archive", ".pt": "a torch .pt file", ".pth": "a torch .pth file"}


def _check_magic(head: bytes, suffix: str, name: str) -> None:
    if not head.startswith(_MAGIC[suffix]):
        raise InputError(name, f"not {_WHAT[suffix]} (it looks like {looks_like(head)})")


def _head(path) -> bytes:
    with open(path, "rb") as f:
        return f.read(64)


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
    """``(shape, fortran_order, dtype, data_offset)`` from a .npy header, reading only the
    header; ``None`` for a version without a public reader (3.0: np.load checks it)."""
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
    try:
        offset = f.tell()
    except (OSError, AttributeError):
        offset = None
    return tuple(int(d) for d in shape), bool(fortran), dtype, offset


def _declared_nbytes(shape, dtype) -> int:
    n = 1
    for d in shape:
        n *= d
    return n * dtype.itemsize


def _array_words(shape, dtype) -> str:
    return f"its array (shape {tuple(shape)} {dtype})"


def _check_size(name, need: int, max_bytes, what: str) -> None:
    check_bytes(name, need, max_bytes, f"loading {what}")


def peek_array(path: str | os.PathLike, key: str | None = None):
    """``(shape, dtype)`` of the array in a .npy file (or a .npz member) from its header alone,
    without reading the data; ``None`` when that is not possible (.pt, stdin, FIFOs, unusual
    files: the full load reports their problems).

    Raises :class:`InputError` when the header claims more data than the file holds, or the
    file is not what its suffix says.
    """
    name = str(path)
    if name == "-":
        return None
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".npy", ".npz"):
        return None
    if _check_readable(p, name) != "file":  # the same messages as the full load, in the same order
        return None  # a stream is read once, by the load
    try:
        _check_magic(_head(p), suffix, name)
        if suffix == ".npy":
            with open(p, "rb") as f:
                info = _read_npy_header(f, name)
            if info is None:
                return None
            shape, _, dtype, offset = info
            if dtype.hasobject:
                return None  # refused as a pickle by the loader
            need, have = _declared_nbytes(shape, dtype), p.stat().st_size - offset
            if have < need:
                raise InputError(name, f"truncated .npy file: its header describes shape {shape} {dtype} "
                                       f"({fmt_bytes(need)} of data) but the file holds {fmt_bytes(max(have, 0))}")
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
            if info is None or info[2].hasobject:
                return None
            shape, _, dtype, offset = info
            need = _declared_nbytes(shape, dtype)
            if size - offset < need:
                raise InputError(name, f"array {member[:-4]!r} is truncated: its header describes shape {shape} "
                                       f"{dtype} ({fmt_bytes(need)}) but the archive holds {fmt_bytes(max(size - offset, 0))}")
            return shape, dtype
    except InputError:
        raise
    except (OSError, zipfile.BadZipFile, EOFError, ValueError, RuntimeError, NotImplementedError, KeyError):
        return None  # the full load gives the message


def _pick(mapping_keys, key, name, what):
    keys = list(mapping_keys)
    if key is not None:
        if key not in keys:
            raise InputError(name, f"no {what} named {key!r}; it has: {name_list(map(repr, keys)) or 'none'}")
        return key
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise InputError(name, f"contains no {what}s")
    raise InputError(name, f"holds {len(keys)} {what}s ({name_list(map(repr, keys))}); choose one with `key`")


# --- streams (stdin, FIFOs, character devices): read once, never more than the limit ----------
class _Prefixed:
    """A binary stream with ``head`` (already read from it) put back in front."""

    def __init__(self, head: bytes, f):
        self._head, self._f = head, f

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            out, self._head = self._head + self._f.read(), b""
            return out
        out, self._head = self._head[:n], self._head[n:]
        if len(out) < n:
            out += _read_exactly(self._f, n - len(out))
        return out

    def readinto(self, buf: memoryview) -> int:
        """Fill ``buf`` (fewer bytes only at the end of the stream); the count read."""
        k = min(len(self._head), len(buf))
        buf[:k] = self._head[:k]
        self._head = self._head[k:]
        while k < len(buf):
            part = self._f.read(min(len(buf) - k, 1 << 24))
            if not part:
                break
            buf[k:k + len(part)] = part
            k += len(part)
        return k


def _read_exactly(f, n: int) -> bytes:
    """Up to ``n`` bytes: fewer only at the end of the stream (a pipe returns short reads)."""
    parts, got = [], 0
    while got < n:
        b = f.read(min(n - got, 1 << 24))
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def _stream_npy(f, head: bytes, name: str, max_bytes) -> np.ndarray:
    """A .npy array from a stream: its header first, the declared size checked against
    ``max_bytes``, then exactly that many bytes; a stream that ends early or goes on is refused."""
    src = _Prefixed(head, f)
    info = _read_npy_header(src, name)
    if info is None:
        raise InputError(name, "a .npy stream of format version 3.0 is not supported; save it with numpy's default (1.0)")
    shape, fortran, dtype, _ = info
    if dtype.hasobject:
        raise InputError(name, "holds Python objects (a pickle), refused: only numeric arrays are loaded")
    need = _declared_nbytes(shape, dtype)
    _check_size(name, need, max_bytes, _array_words(shape, dtype))
    arr = np.empty(need // dtype.itemsize if dtype.itemsize else 0, dtype=dtype)
    got = src.readinto(memoryview(arr.view(np.uint8)))  # into the array itself: no second copy
    if got < need:
        raise InputError(name, f"truncated .npy stream: its header describes shape {shape} {dtype} "
                               f"({fmt_bytes(need)} of data) but the stream ended after {fmt_bytes(got)}")
    if src.read(1):
        raise InputError(name, f"the stream goes on after the array its header describes (shape {shape} {dtype}); "
                               f"send one .npy array")
    return arr.reshape(shape, order="F" if fortran else "C")


def _stream_bytes(f, head: bytes, name: str, max_bytes) -> bytes:
    """The whole stream (for .npz/.pt, which need to seek), refused past ``max_bytes``."""
    limit = host_memory() if max_bytes is None else max_bytes
    cap = None if limit is None or limit == float("inf") else int(limit)
    parts, got = [head], len(head)
    while True:
        b = f.read(1 << 24 if cap is None else max(min(1 << 24, cap + 1 - got), 1))
        if not b:
            break
        parts.append(b)
        got += len(b)
        if cap is not None and got > cap:
            raise InputError(name, f"the stream holds more than {'the available memory' if max_bytes is None else 'the limit'} "
                                   f"({fmt_bytes(cap)}); save it to a file, or raise the limit")
    return b"".join(parts)


def _load_stream_bytes(path, name: str, max_bytes) -> bytes:
    """All of a FIFO or character device (an audio file given as ``<(...)``), bounded."""
    try:
        with open(path, "rb") as f:
            data = _stream_bytes(f, b"", name, max_bytes)
    except OSError as e:
        raise InputError(name, f"cannot read: {_describe_os_error(e)}") from None
    if not data:
        raise InputError(name, "is empty (the stream ended at once)")
    return data


def _stdin_stream(name: str):
    """Standard input's binary stream, or an :class:`InputError` saying why it cannot be read."""
    closed = InputError(name, "standard input is closed; pipe or redirect a .npy stream into it")
    if sys.stdin is None or getattr(sys.stdin, "closed", False):  # None: fd 0 closed at start-up
        raise closed
    try:
        fd = sys.stdin.fileno()
    except (OSError, ValueError, AttributeError):  # a stream object without a descriptor
        return getattr(sys.stdin, "buffer", sys.stdin)
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        raise closed from None
    if stat.S_ISDIR(mode):
        raise InputError(name, "standard input is a directory, not a .npy stream")
    if os.isatty(fd):
        raise InputError(name, "standard input is a terminal; pipe or redirect a .npy stream into it")
    return getattr(sys.stdin, "buffer", sys.stdin)


def _load_stream(f, name: str, suffix: str, key, max_bytes):
    """An array from a stream: ``suffix`` gives the format, else the .npy magic."""
    try:
        head = _read_exactly(f, 16)
    except IsADirectoryError:
        raise InputError(name, "is a directory, not a spectrogram stream") from None
    if not head:
        raise InputError(name, "standard input is empty" if name == "<stdin>" else "is empty (the stream ended at once)")
    if suffix not in SUFFIXES:
        suffix = ".npy" if head.startswith(b"\x93NUMPY") else None
        if suffix is None:
            raise InputError(name, f"not a .npy stream (it looks like {looks_like(head)}); a stream without a "
                                   f"suffix is read as .npy")
    kind = _WHAT[suffix].replace(" file", " stream").replace(" archive", " stream")
    if not head.startswith(_MAGIC[suffix]):
        raise InputError(name, f"not {kind} (it looks like {looks_like(head)})")
    if suffix == ".npy":
        if key is not None:
            raise InputError(name, "`key` applies to .npz and .pt files, not .npy")
        return _stream_npy(f, head, name, max_bytes)
    data = _io.BytesIO(_stream_bytes(f, head, name, max_bytes))
    return _load_file(data, name, suffix, key, max_bytes)


def load_array(path: str | os.PathLike, key: str | None = None, *, max_bytes: float | None = None):
    """The raw array stored in ``path`` (numpy array or torch tensor), without interpretation.

    ``-`` reads a .npy stream from standard input; a FIFO or character device (``/dev/fd/63``
    from ``<(...)``) is read the same way, in the format its suffix names (.npy without one).
    ``max_bytes`` bounds the array's size (from its header or shape, checked before the data
    is read or materialised): ``None`` is the available memory
    (:func:`specinv_cli.limits.host_memory`), ``inf`` no limit.
    """
    name = str(path)
    try:
        if name == "-":
            return _load_stream(_stdin_stream("<stdin>"), "<stdin>", ".npy", key, max_bytes)
        p = Path(path)
        suffix = p.suffix.lower()
        kind = _check_readable(p, name)
        if kind == "stream":
            with open(p, "rb") as f:
                return _load_stream(f, name, suffix, key, max_bytes)
        if suffix not in SUFFIXES:
            raise InputError(name, f"unknown file type {suffix or '(no extension)'!r}; expected .npy, .npz or .pt "
                                   f"(it looks like {looks_like(_head(p))})")
        _check_magic(_head(p), suffix, name)
        return _load_file(p, name, suffix, key, max_bytes)
    except InputError:
        raise
    except MemoryError:
        raise InputError(name, "too large to load into memory") from None
    except OSError as e:
        raise InputError("<stdin>" if name == "-" else name, f"cannot read: {_describe_os_error(e)}") from None


def _load_file(p, name: str, suffix: str, key, max_bytes):
    """An array from a regular file ``p`` (or a seekable stream) whose magic matched ``suffix``."""
    if suffix == ".npy":
        if key is not None:
            raise InputError(name, "`key` applies to .npz and .pt files, not .npy")
        with open(p, "rb") as f:
            info = _read_npy_header(f, name)
            if info is not None and not info[2].hasobject:
                shape, _, dtype, offset = info
                need = _declared_nbytes(shape, dtype)
                have = os.fstat(f.fileno()).st_size - offset
                if have < need:  # np.load would allocate the declared size first
                    raise InputError(name, f"truncated .npy file: its header describes shape {shape} {dtype} "
                                           f"({fmt_bytes(need)} of data) but the file holds {fmt_bytes(max(have, 0))}")
                _check_size(name, need, max_bytes, _array_words(shape, dtype))
            f.seek(0)
            return _load_npy_bytes(f, name)
    if suffix == ".npz":
        try:
            with np.load(p, allow_pickle=False) as z:
                k = _pick(z.files, key, name, "array")
                member = k + ".npy" if k + ".npy" in z.zip.namelist() else k
                with z.zip.open(member) as f:
                    try:
                        info = _read_npy_header(f, name)
                    except InputError:
                        info = None  # corrupt: reading it below names the problem
                if info is not None and not info[2].hasobject:
                    shape, _, dtype, _ = info
                    _check_size(name, _declared_nbytes(shape, dtype), max_bytes,
                                f"array {k!r} (shape {tuple(shape)} {dtype})")
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
    import warnings

    import torch

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
            k = next(iter(tensors))
        else:
            k = _pick(tensors.keys(), key, name, "tensor")
        return _bounded_tensor(tensors[k], name, max_bytes, f"tensor {k!r}")
    if isinstance(obj, (list, tuple)):
        raise InputError(name, f"holds a {type(obj).__name__}, expected a tensor or a dict of tensors")
    if key is not None:
        raise InputError(name, "`key` given but the file holds a single tensor")
    if not isinstance(obj, torch.Tensor):
        raise InputError(name, f"holds a {type(obj).__name__}, expected a tensor")
    return _bounded_tensor(obj, name, max_bytes, "its tensor")


def _bounded_tensor(t, name: str, max_bytes, what: str):
    """``t`` if its logical size (elements x element size, what any conversion materialises;
    a stride-0 view stores one element) fits ``max_bytes``."""
    try:
        numel, size = int(t.numel()), int(t.element_size())
        shape = tuple(t.shape)
    except (RuntimeError, TypeError, ValueError, AttributeError):  # nested/odd tensors: interpret names them
        return t
    _check_size(name, numel * size, max_bytes, f"{what} (shape {shape} {str(t.dtype).replace('torch.', '')})")
    return t


def load_spectrogram(path, *, key: str | None = None, input_kind: str = "magnitude",
                     layout: str = "ft", n_mels: int | None = None, max_bytes: float | None = None) -> Target:
    """Load and validate a spectrogram file (``.npy``, ``.npz``, ``.pt``).

    Returns a :class:`~specinv_cli.spectrogram.Target` with magnitudes ``[..., F, T]`` and the
    phase of complex inputs (or, with ``n_mels`` and an input of that many bins, the undecoded mel
    features). ``max_bytes`` bounds the stored array (see :func:`load_array`). Raises
    :class:`InputError` naming the file.

    Example
    -------
    >>> from specinv_cli.io import load_spectrogram, example_path
    >>> t = load_spectrogram(example_path())
    >>> t.mag.shape[-2]
    513
    """
    name = "<stdin>" if str(path) == "-" else str(path)
    arr = load_array(path, key, max_bytes=max_bytes)
    return interpret(arr, input_kind, layout, name, n_mels=n_mels)


# --- audio output ---------------------------------------------------------------------------
#: Full scale of the integer subtypes (a reader decodes ``q / FULL_SCALE``, as soundfile does).
FULL_SCALE = {"PCM_16": 2 ** 15, "PCM_24": 2 ** 23}
_F32_MAX = float(np.finfo(np.float32).max)

#: Audio formats by file extension (those libsndfile writes); no extension (``-``, ``/dev/null``,
#: a FIFO) is WAV. Lossy formats are decoded again after writing, so metrics are of what a
#: reader gets.
AUDIO_FORMATS = {".wav": "WAV", ".wave": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG",
                 ".opus": "OGG", ".mp3": "MP3", ".aiff": "AIFF", ".aif": "AIFF", ".aifc": "AIFF",
                 ".caf": "CAF", ".w64": "W64", ".rf64": "RF64", ".au": "AU", ".snd": "AU"}
_CODECS = {".ogg": "VORBIS", ".oga": "VORBIS", ".opus": "OPUS", ".mp3": "MPEG_LAYER_III"}
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


def audio_format(path) -> AudioFormat:
    """The format an output path names by its extension (``.wav``, ``.flac``, ``.ogg``...).

    No extension, ``-``, and FIFOs/devices are WAV. Raises :class:`OutputError` for an
    extension that names no format libsndfile writes.

    >>> audio_format("out.flac"), audio_format("-").format
    (AudioFormat(format='FLAC', codec=None), 'WAV')
    """
    name = str(path)
    suffix = Path(name).suffix.lower() if name != "-" else ""
    if not suffix:
        return AudioFormat()
    fmt = AUDIO_FORMATS.get(suffix)
    if fmt is None:
        try:
            if destination(name).kind != "file":
                return AudioFormat()  # /dev/null.x, a FIFO named x.pipe: a stream, WAV
        except OutputError:
            pass
        known = ", ".join(sorted({s for s in AUDIO_FORMATS}))
        raise OutputError(name, f"{suffix!r} names no audio format specinv writes (use one of {known})")
    import soundfile as sf

    codec = _CODECS.get(suffix)
    if fmt not in sf.available_formats() or codec and codec not in sf.available_subtypes(fmt):
        raise OutputError(name, f"this libsndfile ({sf.__libsndfile_version__}) cannot write {suffix} files; use .wav or .flac")
    return AudioFormat(fmt, codec)


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


# --- destinations ---------------------------------------------------------------------------
_STDOUT_NAMES = re.compile(r"/dev/stdout|/dev/fd/1|/proc/(self|thread-self|\d+)/fd/1")


@dataclass(frozen=True)
class Destination:
    """Where an output goes. ``kind``: ``stdout`` (``-``, ``/dev/stdout`` and its aliases),
    ``stream`` (a FIFO or character device: written into, never replaced) or ``file`` (a
    regular file or nothing yet: written beside and renamed over). ``path`` is what is opened
    or renamed over: for ``file``, the end of any chain of symbolic links (the links stay)."""

    name: str
    kind: str
    path: str | None


def _stdout_alias(p: str) -> bool:
    m = _STDOUT_NAMES.fullmatch(os.path.normpath(p))
    return bool(m) and (m.group(1) in (None, "self", "thread-self") or m.group(1) == str(os.getpid()))


def destination(path) -> Destination:
    """Classify an output path (see :class:`Destination`); raises :class:`OutputError` for what
    must not be written: a folder, a socket, a block device, a link loop."""
    name = str(path)
    if name == "-":
        return Destination(name, "stdout", None)
    p = name
    for _ in range(41):  # follow links by hand: an alias of stdout is known by its name
        if _stdout_alias(p):
            return Destination(name, "stdout", None)
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return Destination(name, "file", p)  # nothing there yet (or a dangling link's target)
        except OSError as e:
            raise OutputError(name, f"cannot use it as an output: {_describe_os_error(e).lower()}") from None
        if not stat.S_ISLNK(st.st_mode):
            break
        p = os.path.join(os.path.dirname(p), os.readlink(p))
    else:
        raise OutputError(name, "too many levels of symbolic links")
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return Destination(name, "file", p)
    if stat.S_ISDIR(mode):
        raise OutputError(name, "is a folder; use -O DIR to write into a folder")
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        try:
            out = os.fstat(1)
            if (out.st_dev, out.st_ino) == (st.st_dev, st.st_ino) and not stat.S_ISREG(out.st_mode):
                return Destination(name, "stdout", None)
        except OSError:
            pass
        return Destination(name, "stream", p)
    what = "a socket" if stat.S_ISSOCK(mode) else "a block device" if stat.S_ISBLK(mode) else "a special file"
    raise OutputError(name, f"is {what}; outputs go to files, FIFOs or character devices, never replace {what}")


def is_stdout(path) -> bool:
    """``-`` or a name of standard output (``/dev/stdout``, ``/proc/self/fd/1``, links to them)."""
    try:
        return destination(path).kind == "stdout"
    except OutputError:
        return False


def _dest_dir_check(name, path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not os.path.exists(parent):  # (Path.exists raises on a name too long)
        raise OutputError(name, f"output folder {str(parent)!r} does not exist")
    if not os.path.isdir(parent):
        raise OutputError(name, f"{str(parent)!r} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(name, f"output folder {str(parent)!r} is not writable")


def _identity(path) -> tuple | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def same_file(a, b) -> bool:
    """Whether two paths name one file: by identity (also through links and hard links) when
    both exist, else by their resolved absolute paths. ``-`` is standard output or input."""
    a, b = str(a), str(b)
    if a == "-" or b == "-":
        return a == b
    ia, ib = _identity(a), _identity(b)
    if ia is not None and ib is not None:
        return ia == ib
    return os.path.realpath(a) == os.path.realpath(b)


def check_destination(path: str | os.PathLike, reads=()) -> Destination:
    """Refuse, before any work, an output that cannot be written (its folder missing or not
    writable, a folder, a socket or a block device in its place) or that is one of the files
    ``reads`` (what the command reads), compared by identity, so also through links. Returns
    its :class:`Destination`. Raises :class:`OutputError`."""
    dest = destination(path)
    if dest.kind == "file":
        _dest_dir_check(str(path), Path(dest.path))
    if dest.kind == "stdout":
        return dest
    me = _identity(dest.path)
    if me is None or dest.kind == "stream" and not stat.S_ISFIFO(os.stat(dest.path).st_mode):
        return dest  # nothing there yet; a character device (/dev/null) may be both read and written
    for r in reads:
        if str(r) != "-" and _identity(r) == me:
            raise OutputError(path, f"is the same file as the input {r}; writing it would destroy that input")
    return dest


def check_outputs(writes, reads=(), roles=None) -> list:
    """:func:`check_destination` for each of ``writes``, and no two of them one file (two
    outputs on standard output included); ``roles`` names each in messages (e.g. "the audio
    output (-o)"). Returns their :class:`Destination` s."""
    roles = list(roles) if roles is not None else [f"the output {w}" for w in writes]
    dests = [check_destination(w, reads) for w in writes]
    for i, (w, d) in enumerate(zip(writes, dests)):
        for role, d2 in zip(roles[:i], dests[:i]):
            if d.kind == d2.kind == "stdout":
                raise OutputError(w, f"is standard output, which {role} also writes; give one of them a file")
            if d.path and d2.path and same_file(d.path, d2.path):
                raise OutputError(w, f"is also {role}; give one of them another name")
    return dests


# --- writing --------------------------------------------------------------------------------
def _tmp_prefix() -> str:
    return f"{_TMP_PREFIX}{_HOST}+{os.getpid()}+"


_HOST = re.sub(r"[^A-Za-z0-9-]", "-", os.uname().nodename if hasattr(os, "uname") else "host") or "host"
_STALE = re.compile(re.escape(_TMP_PREFIX) + r"([A-Za-z0-9-]*)\+(\d+)\+")
_SWEPT: set[str] = set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_stale_temporaries(folder) -> list:
    """Remove the temporary outputs that runs of specinv on this host, by this user, left in
    ``folder`` when they were killed (their process no longer exists). Returns what went."""
    gone = []
    try:
        names = os.listdir(folder)
    except OSError:
        return gone
    for n in names:
        m = _STALE.match(n)
        if not m or m[1] != _HOST or int(m[2]) == os.getpid() or _alive(int(m[2])):
            continue
        p = os.path.join(folder, n)
        try:
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid():
                os.unlink(p)
                gone.append(p)
        except OSError:
            pass
    return gone


def _sweep(folder: str) -> None:
    key = os.path.realpath(folder)
    if key not in _SWEPT:
        _SWEPT.add(key)
        remove_stale_temporaries(folder)


def describe_write_error(e: BaseException, folder=None) -> str:
    """A short reason for a failed write, in words (libsndfile says only "System error.")."""
    code = getattr(e, "errno", None)
    if code == errno.ENOSPC:
        return "no space left on device"
    if code == errno.EDQUOT:
        return "disk quota exceeded"
    if folder is not None:
        try:
            st = os.statvfs(folder)
            if st.f_bavail * st.f_frsize < 1 << 16:
                return "no space left on device"
        except OSError:
            pass
    msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
    return (msg or type(e).__name__).rstrip(".")


def _stream_into(dest: Destination, tmp: str) -> None:
    if dest.kind == "stdout":
        with open(tmp, "rb") as f:
            while True:
                block = f.read(1 << 20)
                if not block:
                    break
                write_stdout(block)
        return
    try:
        with open(dest.path, "wb") as out, open(tmp, "rb") as f:
            while True:
                block = f.read(1 << 20)
                if not block:
                    break
                out.write(block)
    except BrokenPipeError:
        raise OutputError(dest.name, "the reader of this FIFO went away (broken pipe)") from None
    except OSError as e:
        raise OutputError(dest.name, f"cannot write: {describe_write_error(e)}") from None


@contextmanager
def atomic_output(path: str | os.PathLike):
    """Yield a temporary path to write an output into; on success it becomes ``path``.

    A regular file (or nothing) is replaced by renaming the temporary over it (through links:
    the link stays), so a failed or interrupted write never leaves a partial file; FIFOs,
    character devices and standard output (``-``, ``/dev/stdout``) are written into once the
    output is complete; sockets, block devices and folders are refused (:class:`OutputError`).
    Temporaries that killed runs left in the folder are removed first."""
    dest = destination(path)
    if dest.kind == "file":
        target = Path(dest.path)
        _dest_dir_check(str(path), target)
        folder = str(target.parent) or "."
    else:
        target, folder = None, tempfile.gettempdir()
    _sweep(folder)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(), suffix=Path(str(path)).suffix or ".tmp", dir=folder)
    os.close(fd)
    _PENDING.add(tmp)
    try:
        yield tmp
        if target is None:
            _stream_into(dest, tmp)
            os.unlink(tmp)
        else:
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual mode
            os.replace(tmp, target)
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


def _write_sf(target, enc: EncodedAudio, sample_rate: int) -> None:
    import soundfile as sf

    data = enc.data.T if enc.data.ndim == 2 else enc.data
    sf.write(target, data, int(sample_rate), subtype=enc.subtype, format=enc.format.format)


def _decoded(tmp, enc: EncodedAudio) -> EncodedAudio:
    """What a reader gets from a lossy file: its samples, at the encoded length."""
    import soundfile as sf

    got, _ = sf.read(tmp, dtype="float32", always_2d=True)
    got = got.T if enc.samples.ndim == 2 else got[:, 0]
    n = enc.samples.shape[-1]
    if got.shape[-1] != n:
        fixed = np.zeros(enc.samples.shape, dtype=np.float32)
        m = min(n, got.shape[-1])
        fixed[..., :m] = got[..., :m]
        got = fixed
    return EncodedAudio(enc.data, np.ascontiguousarray(got), enc.subtype, enc.gain, enc.peak, enc.clipped,
                        enc.reason, enc.format)


def save_audio(path: str | os.PathLike, audio, sample_rate: int, subtype: str = "auto",
               normalize: str = "none") -> EncodedAudio:
    """Write mono (``[L]``) or multichannel (``[C, L]``) audio in the format its extension names
    (WAV, FLAC, OGG...; WAV without one), atomically, with the level and format policy of
    :func:`encode_audio`; returns what was written (for a lossy format, ``samples`` decoded
    from the file).

    ``audio`` may also be an :class:`EncodedAudio` (then ``subtype``/``normalize`` are unused).
    Raises :class:`OutputError` naming ``path``.
    """
    if isinstance(audio, EncodedAudio):
        enc = audio
    else:
        try:
            enc = encode_audio(audio, subtype, normalize, format=audio_format(path))
        except ValueError as e:
            raise OutputError(path, str(e)) from None
    import soundfile as sf

    folder = None
    try:
        with atomic_output(path) as tmp:
            folder = os.path.dirname(tmp)
            _write_sf(tmp, enc, sample_rate)
            if enc.format.lossy:
                enc = _decoded(tmp, enc)
    except (OutputError, StdoutClosed):
        raise
    except (OSError, RuntimeError, sf.LibsndfileError) as e:
        raise OutputError(path, f"cannot write: {describe_write_error(e, folder)}") from None
    return enc


def wav_bytes(audio, sample_rate: int, subtype: str = "auto", normalize: str = "none") -> bytes:
    """A complete WAV file in memory (for ``-o -``); ``audio`` as :func:`save_audio` takes it."""
    enc = audio if isinstance(audio, EncodedAudio) else encode_audio(audio, subtype, normalize)
    buf = _io.BytesIO()
    _write_sf(buf, enc, sample_rate)
    return buf.getvalue()
