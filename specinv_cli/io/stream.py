"""Streams: spectrogram frames read as they arrive, audio written as it is produced.

What ``specinv stream`` reads and writes, with no click here:

- :class:`FrameReader` takes a byte stream (a file descriptor or a binary file object) and
  yields the frames in it as ``[F, k]`` arrays as soon as they are complete. The format is
  known from the first bytes: concatenated ``.npy`` chunks (each begins with the ``\\x93NUMPY``
  magic; parsed header by header, never unpickled), else raw little-endian float32 frames of
  ``F`` values each. Reads block on the descriptor (no polling) and return what the writer has
  sent, so a frame is yielded as soon as its last byte arrives.
- :class:`WavStreamWriter` writes a WAV stream whose header says "length unknown" as sox and
  ffmpeg write one to a pipe (RIFF and data sizes ``0xFFFFFFFF``), or headerless PCM; on a
  regular file it can seek to, :meth:`~WavStreamWriter.close` writes the true sizes.

Every input problem is an :class:`~specinv_cli.errors.InputError` naming the stream (and
the chunk or frame), raised before anything is allocated for the data it announces.
"""
from __future__ import annotations

import io as _io
import os
import struct

import numpy as np

from ..errors import InputError
from ..util.limits import check_bytes, fmt_bytes
from ..util.sniff import looks_like
from ..util.text import describe_os_error
from .encode import encode_audio

__all__ = ["NPY_MAGIC", "STREAM_SUBTYPES", "FrameReader", "WavStreamWriter", "wav_stream_header",
           "UNKNOWN_SIZE"]

#: What every ``.npy`` chunk starts with.
NPY_MAGIC = b"\x93NUMPY"
#: numpy's own bound on a ``.npy`` header (``max_header_size`` of its readers).
MAX_NPY_HEADER = 10000
#: The sample formats of a stream: those of ``specinv invert --subtype`` but ``auto``, which
#: needs the whole signal to decide.
STREAM_SUBTYPES = ("FLOAT", "PCM_16", "PCM_24")
#: The RIFF and data chunk sizes of a WAV whose length is not known when its header is written.
UNKNOWN_SIZE = 0xFFFFFFFF

#: What a stream of raw float32 frames cannot start with: formats recognised without doubt
#: (``looks_like``), so that a WAV or a text file piped in by mistake is refused, not played as
#: spectrogram frames. The kinds known by one or two bytes (MP3, pickle, JPEG) are left out:
#: ordinary float32 magnitudes start with those bytes too.
_NOT_FRAMES = ("a WAV audio file", "an AIFF audio file", "a FLAC audio file", "an Ogg audio file",
               "a zip archive", "gzip-compressed data", "a PNG image", "a PDF document", "an executable",
               "bzip2-compressed data", "xz-compressed data", "an HDF5 file", "a text file", "a JSON text file")
_SNIFF = 16
_READ = 1 << 16


def _frames_words(first: int, k: int) -> str:
    return f"frame {first}" if k == 1 else f"frames {first}-{first + k - 1}"


class FrameReader:
    """The spectrogram frames of a byte stream, as ``[F, k]`` arrays (``k >= 1``) while they arrive.

    Parameters
    ----------
    source : a file descriptor (``0`` for standard input) or a binary file object (its
        ``read1`` or ``read`` is called for each read).
    n_bins : ``F``, the values of one frame.
    name : how messages name the stream (``<stdin>``).
    layout : axis order of a ``.npy`` chunk: ``ft`` ``[F, k]``, ``tf`` ``[k, F]`` (raw frames
        come one after another, ``F`` values each, whatever the layout).
    max_bytes : the largest chunk that is loaded (its size declared by its header, checked
        before it is read): ``None`` is the available memory, ``inf`` no limit.
    read_size : bytes asked for in one read.

    Notes
    -----
    Iterating reads until the end of the stream; each read blocks until the writer sends
    something (or closes its end). ``.npy`` chunks hold float32 or float64 arrays of shape
    ``[F]`` (one frame), ``[F, k]`` (``[k, F]`` for ``tf``), or either with leading axes of size
    1 (a batch of one); object arrays are refused without unpickling. Raw frames are
    little-endian float32. Values are not checked here (NaN, negative): that is the inverter's
    input validation. Yielded arrays are native-endian, C-contiguous and writable, of the
    chunk's float type (float32 for raw frames). ``format`` is ``"npy"`` or ``"raw"`` once the
    first bytes came, ``frames`` the frames yielded so far, ``chunks`` the .npy chunks read.
    """

    def __init__(self, source, n_bins: int, *, name: str = "<stdin>", layout: str = "ft",
                 max_bytes: float | None = None, read_size: int = _READ):
        if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
            raise ValueError(f"`n_bins` must be an integer >= 1, got {n_bins!r}")
        if layout not in ("ft", "tf"):
            raise ValueError(f"`layout` must be ft or tf, got {layout!r}")
        self.source, self.n_bins, self.name, self.layout = source, n_bins, name, layout
        self.max_bytes, self.read_size = max_bytes, int(read_size)
        self.format: str | None = None
        self.frames = 0
        self.chunks = 0
        self.bytes_read = 0
        self._buf = bytearray()
        self._eof = False
        if isinstance(source, int):
            self._read = lambda n: os.read(source, n)
        else:
            self._read = getattr(source, "read1", None) or source.read

    # --- reading ----------------------------------------------------------------------------
    def _fill(self, n: int | None = None) -> bool:
        """One read (blocking) appended to the buffer; ``False`` at the end of the stream."""
        if self._eof:
            return False
        try:
            data = self._read(min(n, 1 << 20) if n else self.read_size)
        except IsADirectoryError:
            raise InputError(self.name, "is a directory, not a stream of frames") from None
        except OSError as e:
            raise InputError(self.name, f"cannot read: {describe_os_error(e)}") from None
        if not data:
            self._eof = True
            return False
        self._buf += data
        self.bytes_read += len(data)
        return True

    def _error(self, message: str) -> InputError:
        return InputError(self.name, message)

    def __iter__(self):
        need = max(len(NPY_MAGIC), min(_SNIFF, 4 * self.n_bins))
        while len(self._buf) < need and self._fill():
            pass
        head = bytes(self._buf[:_SNIFF])
        if not head:
            raise self._error("the stream is empty (it ended before any frame)")
        if head.startswith(NPY_MAGIC) or self._eof and NPY_MAGIC.startswith(head):
            self.format = "npy"
            yield from self._npy()
            return
        what = looks_like(head) if len(head) >= _SNIFF or self._eof else None
        if what in _NOT_FRAMES:
            raise self._error(f"not spectrogram frames (it looks like {what}); send raw little-endian float32 "
                              f"frames of {self.n_bins} values or .npy chunks")
        self.format = "raw"
        yield from self._raw()

    def _raw(self):
        frame = 4 * self.n_bins
        while True:
            k = len(self._buf) // frame
            if k:
                n = k * frame
                arr = np.frombuffer(self._buf, dtype="<f4", count=k * self.n_bins).reshape(k, self.n_bins)
                out = np.array(arr.T, dtype=np.float32, order="C", copy=True)  # the buffer moves on
                del arr  # (a view of the buffer would keep it from shrinking)
                del self._buf[:n]
                self.frames += k
                yield out
            if not self._fill():
                break
        if self._buf:
            raise self._error(f"the stream ended inside frame {self.frames} ({len(self._buf)} of its {frame} bytes: "
                              f"{self.n_bins} float32 values); was the last frame cut, or are the frames not "
                              f"{self.n_bins} bins?")

    # --- .npy chunks --------------------------------------------------------------------------
    def _npy(self):
        while True:
            if not self._buf and not self._fill():
                return  # the end, between two chunks
            out = self._chunk()
            if out is not None:
                yield out

    def _need(self, n: int, what: str) -> None:
        while len(self._buf) < n:
            if not self._fill(n - len(self._buf)):
                raise self._error(what.replace("{got}", str(len(self._buf))).replace("{size}", fmt_bytes(len(self._buf))))

    def _chunk(self):
        """The next chunk's frames ``[F, k]`` (``None`` for a chunk of no frames)."""
        i = self.chunks
        where = f"chunk {i} (after frame {self.frames - 1})" if self.frames else f"chunk {i}"
        while len(self._buf) < len(NPY_MAGIC) and self._fill():
            pass
        if not NPY_MAGIC.startswith(bytes(self._buf[:len(NPY_MAGIC)])):
            raise self._error(f"{where} does not start with the .npy magic (it looks like "
                              f"{looks_like(bytes(self._buf[:_SNIFF]))}); a stream that starts with a .npy array "
                              f"is a series of .npy arrays")
        self._need(8, f"the stream ended inside the header of {where} ({{got}} bytes)")
        version = (self._buf[6], self._buf[7])
        if version == (3, 0):
            raise self._error(f"{where} is a .npy array of format version 3.0, which is not supported; save it "
                              f"with numpy's default (1.0)")
        if version not in ((1, 0), (2, 0)):
            raise self._error(f"{where} has an unknown .npy format version {version[0]}.{version[1]}")
        size_len = 2 if version == (1, 0) else 4
        self._need(8 + size_len, f"the stream ended inside the header of {where} ({{got}} bytes)")
        header_len = int.from_bytes(self._buf[8:8 + size_len], "little")
        if header_len > MAX_NPY_HEADER:
            raise self._error(f"{where} declares a .npy header of {header_len} bytes, more than numpy reads "
                              f"({MAX_NPY_HEADER}); not a .npy array, or a corrupt one")
        start = 8 + size_len + header_len
        self._need(start, f"the stream ended inside the header of {where} ({{got}} of {start} bytes)")
        shape, fortran, dtype = self._header(bytes(self._buf[:start]), version, where)
        if dtype.hasobject:
            raise self._error(f"{where} holds Python objects (a pickle), refused: only numeric arrays are loaded")
        if dtype.kind != "f" or dtype.itemsize not in (4, 8) or dtype.fields is not None:
            raise self._error(f"{where} is an array of {dtype}; frames are float32 or float64")
        k = self._frames_of(shape, where)
        need = k * self.n_bins * dtype.itemsize
        check_bytes(self.name, need, self.max_bytes, f"loading {where} (shape {shape} {dtype})")
        del self._buf[:start]
        self._need(need, f"truncated {where}: its header describes shape {shape} {dtype} ({fmt_bytes(need)} of "
                         f"data) but the stream ended after {{size}}")
        data = np.frombuffer(self._buf, dtype=dtype, count=k * self.n_bins)
        arr = data.reshape(shape, order="F" if fortran else "C")
        if arr.ndim > 2:
            arr = arr.reshape(arr.shape[-2:])  # leading axes of size 1
        if arr.ndim == 1:
            arr = arr[:, None]
        elif self.layout == "tf":
            arr = arr.T
        out = np.array(arr, dtype=dtype.newbyteorder("="), order="C", copy=True)
        del data, arr  # (a view of the buffer would keep it from shrinking)
        del self._buf[:need]
        self.chunks += 1
        if k == 0:
            return None
        self.frames += k
        return out

    def _header(self, raw: bytes, version, where: str):
        from numpy.lib import format as npf

        f = _io.BytesIO(raw)
        try:
            npf.read_magic(f)
            read = npf.read_array_header_1_0 if version == (1, 0) else npf.read_array_header_2_0
            shape, fortran, dtype = read(f)
        except Exception as e:  # untrusted bytes: any parser failure is a corrupt header
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            raise self._error(f"{where} has no valid .npy header ({first})") from None
        return tuple(int(d) for d in shape), bool(fortran), dtype

    def _frames_of(self, shape: tuple, where: str) -> int:
        """The frames a chunk of ``shape`` holds; a shape that is not frames of ``F`` bins is refused."""
        F = self.n_bins
        if not shape:
            raise self._error(f"{where} is a 0-d array; a chunk is [F, k] frames (or one frame [F])")
        if len(shape) > 2 and any(d != 1 for d in shape[:-2]):
            raise self._error(f"{where} has shape {shape}: a stream is one signal, so only leading axes of size 1 "
                              f"are allowed ([1, F, k])")
        if len(shape) == 1:
            bins, k = shape[0], 1
        else:
            bins, k = (shape[-2], shape[-1]) if self.layout == "ft" else (shape[-1], shape[-2])
        if bins != F:
            axes = "[k, F]" if self.layout == "tf" else "[F, k]"
            raise self._error(f"{where} has shape {shape}, read as {axes} (`layout` {self.layout}): {bins} bins per "
                              f"frame, but the settings take {F} (check `bins`, `config` or `layout`)")
        return int(k)


# --- writing ----------------------------------------------------------------------------------
_BITS = {"FLOAT": 32, "PCM_16": 16, "PCM_24": 24}


def wav_stream_header(sample_rate: int, subtype: str = "FLOAT", channels: int = 1,
                      data_bytes: int | None = None) -> bytes:
    """The header of a WAV stream: ``RIFF``, a ``fmt`` chunk and the start of a ``data`` chunk
    of ``data_bytes`` (``None``: unknown, the RIFF and data sizes ``0xFFFFFFFF``, as ffmpeg
    writes to a pipe; readers then read to the end of the stream).

    ``PCM_16``/``PCM_24``: format 1 (PCM), a 16-byte ``fmt``, 44 bytes in all (Python's
    ``wave`` reads them); ``FLOAT``: format 3 (IEEE float) with the 18-byte ``fmt`` (its
    ``cbSize`` 0) that non-PCM formats carry, 46 bytes.

    >>> h = wav_stream_header(22050, "PCM_16")
    >>> len(h), h[:4], h[4:8].hex(), h[40:44].hex()
    (44, b'RIFF', 'ffffffff', 'ffffffff')
    """
    if subtype not in _BITS:
        raise ValueError(f"`subtype` must be one of {', '.join(STREAM_SUBTYPES)}, got {subtype!r}")
    rate = int(sample_rate)
    if not 1 <= rate <= 2 ** 31 - 1:
        raise ValueError(f"`sample_rate` must be from 1 to {2 ** 31 - 1} Hz, got {sample_rate!r}")
    bits = _BITS[subtype]
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 3 if subtype == "FLOAT" else 1, channels, rate, rate * align, align, bits)
    if subtype == "FLOAT":
        fmt += struct.pack("<H", 0)  # cbSize: no extension
    head = 4 + 8 + len(fmt) + 8  # "WAVE", the fmt chunk, the data chunk's header
    if data_bytes is None or head + data_bytes > UNKNOWN_SIZE:
        riff = data = UNKNOWN_SIZE
    else:
        riff, data = head + data_bytes, data_bytes
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", data))


class WavStreamWriter:
    """Mono audio written to ``fileobj`` as it comes: a WAV stream (:func:`wav_stream_header`)
    or, with ``raw``, headerless little-endian samples.

    Parameters
    ----------
    fileobj : a binary file object; each :meth:`write` is one ``write`` and one ``flush``.
    sample_rate : of the audio, in Hz (the header's).
    subtype : ``FLOAT`` (32-bit float: any level, nothing clipped), ``PCM_16`` or ``PCM_24``
        (beyond full scale clipped, counted in ``clipped``), quantised as
        :func:`~specinv_cli.io.encode.encode_audio` does for files.
    raw : no header, the samples only.

    Notes
    -----
    The header goes out with the first :meth:`write` (or :meth:`start`). :meth:`close`
    flushes; where ``fileobj`` is a regular file it can seek back in (not a pipe, not one opened
    for appending), it also writes the true sizes into the header, so the file is an ordinary
    WAV. A stream always ends on a whole sample. ``samples`` counts the samples written,
    ``clipped`` those clipped, ``peak`` the largest ``|sample|`` before clipping.
    """

    def __init__(self, fileobj, sample_rate: int, subtype: str = "FLOAT", raw: bool = False):
        if subtype not in STREAM_SUBTYPES:
            raise ValueError(f"`subtype` must be one of {', '.join(STREAM_SUBTYPES)}, got {subtype!r}")
        self.header = b"" if raw else wav_stream_header(sample_rate, subtype)
        self.f, self.sample_rate, self.subtype, self.raw = fileobj, int(sample_rate), subtype, raw
        self.samples = 0
        self.clipped = 0
        self.peak = 0.0
        self._started = False
        self._origin = None

    def start(self) -> None:
        """Write the header now (a reader can get ready before the first samples)."""
        if not self._started:
            self._origin = self._position()
            self._started = True
            if self.header:
                self._out(self.header)

    def write(self, samples) -> None:
        """Encode ``samples`` (float ``[n]``, ``n`` may be 0) and write them, flushed."""
        head = b""
        if not self._started:
            self._origin = self._position()
            self._started = True
            head = self.header
        x = np.asarray(samples).reshape(-1)
        body = self._encode(x) if x.size else b""
        if head or body:
            self._out(head + body)
        self.samples += x.size

    def _encode(self, x: np.ndarray) -> bytes:
        enc = encode_audio(x, self.subtype)
        self.clipped += enc.clipped
        self.peak = max(self.peak, enc.peak)
        if self.subtype == "FLOAT":
            return enc.data.astype("<f4", copy=False).tobytes()
        if self.subtype == "PCM_16":
            return enc.data.astype("<i2", copy=False).tobytes()
        # PCM_24: int32 holding the 24 bits in its top bytes -> the 3 top bytes, little-endian
        b = enc.data.astype("<i4", copy=False).view(np.uint8).reshape(-1, 4)[:, 1:]
        return np.ascontiguousarray(b).tobytes()

    def _out(self, data: bytes) -> None:
        self.f.write(data)
        self.f.flush()

    def _position(self):
        """Where the header starts, if the true sizes can be written there at the end: a
        seekable file object, and for one with a descriptor a regular file not opened for
        appending (where a seek would not move the writes)."""
        try:
            if not self.f.seekable():
                return None
            try:
                fd = self.f.fileno()
            except (OSError, ValueError, AttributeError, _io.UnsupportedOperation):
                fd = None  # in memory
            if fd is not None:
                import fcntl
                import stat

                if not stat.S_ISREG(os.fstat(fd).st_mode) or fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND:
                    return None
            return self.f.tell()
        except (OSError, ValueError, ImportError):
            return None

    def close(self) -> None:
        """Flush; on a regular file, write the true sizes into the header (see the class)."""
        if not self._started:
            self.start()
        self.f.flush()
        if self.raw or self._origin is None:
            return
        nbytes = self.samples * _BITS[self.subtype] // 8
        if len(self.header) - 8 + nbytes > UNKNOWN_SIZE:
            return  # a WAV cannot say it: the sizes stay "unknown", as in a pipe
        try:
            end = self.f.tell()
            self.f.seek(self._origin)
            self.f.write(wav_stream_header(self.sample_rate, self.subtype, data_bytes=nbytes))
            self.f.seek(end)
            self.f.flush()
        except (OSError, ValueError):
            pass  # not seekable after all: the header keeps saying "unknown"
