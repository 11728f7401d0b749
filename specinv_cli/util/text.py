"""Text that is safe to show: every message and JSON string goes through here.

A file name is data, not markup: a newline in it must not start a forged ``error:`` line, an
escape sequence must not reach the terminal, and bytes that are not UTF-8 (kept by Python as
lone surrogates) must not make the JSON invalid. They are written as Python writes them in a
string literal (``\\n``, ``\\x1b``, ``\\xff``).

>>> printable("a\\nerror: forged")
'a\\\\nerror: forged'
>>> printable("caf\\udce9.npy")
'caf\\\\xe9.npy'
"""
from __future__ import annotations

import json
import re

__all__ = ["printable", "json_line", "describe_os_error"]

# C0/C1 controls, DEL, line/paragraph separators, bidirectional overrides, lone surrogates
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m) -> str:
    c = m.group()
    o = ord(c)
    if 0xDC80 <= o <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape)
        return f"\\x{o - 0xDC00:02x}"
    if o > 0xFF:
        return f"\\u{o:04x}"
    return _NAMED.get(c, f"\\x{o:02x}")


def printable(text) -> str:
    """``text`` with control characters, bidi overrides and undecodable bytes escaped."""
    return _UNSAFE.sub(_escape, str(text))


def _surrogates_only(obj):
    if isinstance(obj, str):
        return re.sub("[\ud800-\udfff]", _escape, obj)
    if isinstance(obj, dict):
        return {_surrogates_only(k): _surrogates_only(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_surrogates_only(v) for v in obj]
    return obj


def json_line(obj) -> str:
    """One line of valid JSON: control characters are JSON escapes, and an undecodable byte of
    a file name is the text ``\\xNN`` (a lone surrogate is not valid JSON)."""
    return json.dumps(_surrogates_only(obj))


def describe_os_error(e: OSError) -> str:
    """The system's words for a failed file operation (``No such file or directory``)."""
    return e.strerror or str(e)
