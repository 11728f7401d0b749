"""Standard output as the commands use it: closed from the start, or closed by its reader.

Standard library only, so the CLI can record at start-up that file descriptor 1 was closed
without importing the numeric stack. :func:`write_stdout` turns a reader that went away into
:class:`~specinv_cli.errors.StdoutClosed`, which ``cli.main`` ends quietly (exit 141).
"""
from __future__ import annotations

import sys

from ..errors import StdoutClosed

__all__ = ["mark_stdout_closed", "stdout_was_closed", "stdout_binary", "write_stdout", "emit_json"]

#: Set (by :func:`mark_stdout_closed`) when the process started with file descriptor 1 closed.
_CLOSED_AT_START = False


def mark_stdout_closed() -> None:
    """Record that the process started without a standard output (``>&-``)."""
    global _CLOSED_AT_START
    _CLOSED_AT_START = True


def stdout_was_closed() -> bool:
    """Whether the process started without a standard output."""
    return _CLOSED_AT_START


def stdout_binary():
    """Standard output as a binary stream; :class:`StdoutClosed` when there is none."""
    out = sys.stdout
    if out is None or getattr(out, "closed", False) or _CLOSED_AT_START:
        raise StdoutClosed("standard output is closed")
    return getattr(out, "buffer", out)


def write_stdout(data: bytes) -> None:
    """Write ``data`` to standard output; a reader that went away is :class:`StdoutClosed`."""
    out = stdout_binary()
    try:
        out.write(data)
        out.flush()
    except BrokenPipeError:
        raise StdoutClosed("standard output was closed by its reader") from None
    except ValueError:  # closed file
        raise StdoutClosed("standard output is closed") from None


def emit_json(rec: dict) -> None:
    """One JSON line (:func:`~specinv_cli.util.text.json_line`) on standard output."""
    from .text import json_line

    write_stdout((json_line(rec) + "\n").encode("utf-8"))
