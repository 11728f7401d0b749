"""What a file appears to be from its first bytes, in words (for one-line error messages)."""
from __future__ import annotations

__all__ = ["SUFFIXES", "looks_like"]

#: Spectrogram files by extension (the readers are in :mod:`specinv_cli.io.read`; folders are
#: searched for these): the one list, so that adding a format is one place here and its reader.
SUFFIXES = (".npy", ".npz", ".pt", ".pth")


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
