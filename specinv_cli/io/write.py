"""Writing outputs safely: where an output goes (file, stream, stdout), checks against the inputs,
and atomic writes (a temporary file in the destination folder renamed into place, so an
interrupted or failed run never leaves a partial file under the final name)."""
from __future__ import annotations

import errno
import io as _io
import os
import re
import stat
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import OutputError, StdoutClosed
from ..util.stdio import write_stdout
from ..util.text import describe_os_error
from .encode import AUDIO_FORMATS, AudioFormat, EncodedAudio, encode_audio

__all__ = ["Destination", "destination", "is_stdout", "same_file", "check_destination", "check_outputs", "audio_format",
           "atomic_output", "cleanup_temporaries", "remove_stale_temporaries", "describe_write_error", "save_audio",
           "wav_bytes"]

_TMP_PREFIX = ".specinv-tmp-"
#: Temporary files currently being written (removed on interrupt).
_PENDING: set[str] = set()
_CODECS = {".ogg": "VORBIS", ".oga": "VORBIS", ".opus": "OPUS", ".mp3": "MPEG_LAYER_III"}


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
            raise OutputError(name, f"cannot use it as an output: {describe_os_error(e).lower()}") from None
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
