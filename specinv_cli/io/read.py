"""Reading spectrograms (and other arrays) from files and streams, safely.

- Never unpickles: ``np.load(allow_pickle=False)`` and ``torch.load(weights_only=True)``.
- Every failure is an :class:`~specinv_cli.io.spectrogram.InputError` whose message names the file.
"""
from __future__ import annotations

import errno
import io as _io
import os
import stat
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..util.limits import check_bytes, fmt_bytes, host_memory, name_list
from ..util.sniff import SUFFIXES, looks_like  # noqa: F401  (also read's: messages about inputs)
from ..util.text import describe_os_error
from .spectrogram import InputError, Target, interpret

__all__ = ["SUFFIXES", "load_array", "peek_array", "load_spectrogram", "example_path", "check_readable",
           "read_stream_bytes", "looks_like"]

#: ``auto``: PCM_16 when the audio fits full scale, else 32-bit float (see :func:`encode_audio`).


def example_path() -> Path:
    """The bundled example spectrogram (CC0 guitar chord, see ``data/EXAMPLE.md``)."""
    return Path(__file__).resolve().parents[1] / "data" / "example.npz"


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
    return f"cannot open: {describe_os_error(e).lower()}"


def check_readable(path: Path, name: str, what: str = "a spectrogram file") -> str:
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
    if check_readable(p, name) != "file":  # the same messages as the full load, in the same order
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


def read_stream_bytes(path, name: str, max_bytes) -> bytes:
    """All of a FIFO or character device (an audio file given as ``<(...)``), bounded."""
    try:
        with open(path, "rb") as f:
            data = _stream_bytes(f, b"", name, max_bytes)
    except OSError as e:
        raise InputError(name, f"cannot read: {describe_os_error(e)}") from None
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
    (:func:`specinv_cli.util.limits.host_memory`), ``inf`` no limit.
    """
    name = str(path)
    try:
        if name == "-":
            return _load_stream(_stdin_stream("<stdin>"), "<stdin>", ".npy", key, max_bytes)
        p = Path(path)
        suffix = p.suffix.lower()
        kind = check_readable(p, name)
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
        raise InputError("<stdin>" if name == "-" else name, f"cannot read: {describe_os_error(e)}") from None


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

    Returns a :class:`~specinv_cli.io.spectrogram.Target` with magnitudes ``[..., F, T]`` and the
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


