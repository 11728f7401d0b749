"""Keep freed memory in the process instead of handing it back to the OS (glibc). Standard library only.

glibc's ``malloc`` serves a block above its mmap threshold (128 KiB at first, raised as such
blocks are freed) with a fresh mapping that ``free`` unmaps, and returns the top of its heap to
the OS once more than its trim threshold is free there. An iterative inversion allocates and frees
spectrogram-sized temporaries every iteration (torch's FFTs allocate their outputs); when one of
those rules fires, every iteration page-faults its temporaries in again, and the kernel zeroes
each page first. Whether it fires depends on the order of earlier allocations and frees, so the
same FFT in two processes can differ several-fold in time
(``benchmarks/results/allocator.md``). :func:`retain_freed_memory` fixes both thresholds: blocks
up to ``mmap_threshold`` come from the heap, and up to ``trim_threshold`` of free heap is kept.
The price is resident memory: a process keeps up to ``trim_threshold`` it no longer uses.

The CLI calls it at start-up. It is process-wide, so the library does not call it for you; a
program that runs many inversions may (it changes nothing on other C libraries):

>>> from specinv_cli.util.allocator import retain_freed_memory
>>> retain_freed_memory() in (True, False)
True
"""
from __future__ import annotations

import os
import sys

__all__ = ["retain_freed_memory", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

#: Blocks up to this size come from the heap (glibc's upper limit on 64-bit systems).
MMAP_THRESHOLD = 32 * 2 ** 20
#: Free memory at the top of the heap kept before any is returned to the OS.
TRIM_THRESHOLD = 128 * 2 ** 20

_M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3
_DONE: list = []


def _glibc():
    """glibc's ``mallopt``, or ``None`` (another C library, another OS, no ctypes)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        import ctypes

        fn = ctypes.CDLL(None).mallopt
    except (OSError, ValueError, AttributeError, ImportError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int)
    fn.restype = ctypes.c_int
    return fn


def retain_freed_memory(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Set glibc's mmap and trim thresholds (``mallopt``) for this process; idempotent.
    Returns whether both were set (``False`` on other C libraries, or when
    ``SPECINV_MALLOC=0`` in the environment leaves the allocator alone)."""
    if os.environ.get("SPECINV_MALLOC", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    key = (int(mmap_threshold), int(trim_threshold))
    if key in _DONE:
        return True
    fn = _glibc()
    if fn is None:
        return False
    ok = fn(_M_MMAP_THRESHOLD, key[0]) == 1 and fn(_M_TRIM_THRESHOLD, key[1]) == 1
    if ok:
        _DONE.append(key)
    return ok
