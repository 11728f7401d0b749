"""A signal that ends the run, remembered where raising it is not enough.

The CLI turns SIGINT/SIGTERM/SIGHUP into ``KeyboardInterrupt``. Raised inside a callback from C
(numba compiling a kernel calls back into Python through ctypes; so do cffi callbacks), that
exception is printed and dropped by the callback's caller, and the run would go on to finish
as if nothing had happened. So the handler also records the signal here, and the long loops
(every iteration, through :meth:`~specinv_cli.algorithms.base.Monitor.step`) call :func:`check`.
Standard library only; a process that installs no handler never sets it.
"""
from __future__ import annotations

__all__ = ["note", "pending", "check", "clear"]

_PENDING: list[int] = []


def note(signum: int) -> None:
    """Record that signal ``signum`` asked the run to end."""
    _PENDING.append(int(signum))


def pending() -> bool:
    return bool(_PENDING)


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a signal asked the run to end (once it was dropped)."""
    if _PENDING:
        raise KeyboardInterrupt


def clear() -> None:
    _PENDING.clear()
