"""What an untrusted input may cost, decided before the cost is paid. Standard library only.

- :func:`host_memory`: the memory this process can still take on the host: ``MemAvailable``,
  and under an address-space limit (``ulimit -v``, ``RLIMIT_AS``) what is left of it.
- :func:`check_bytes`: refuse a size derived from an input (a header, a resampling ratio, a
  tensor's shape) when it exceeds a limit, with one line naming both.
- :func:`numba_room`: whether numba's compiler may be brought up here. Under a tight
  address-space limit it does not fail cleanly: llvmlite cannot map its library (OSError), or
  the OpenBLAS that numba's runtime loads through scipy retries its buffer allocation forever.
  Callers then take their plain (torch or Python) code, said once.
- :func:`numba_runtime`: bring numba's runtime up without the scipy it does not need here.
- :func:`name_list`: lists of names in messages, cut after a few.
"""
from __future__ import annotations

import os
import sys
import threading
import warnings

__all__ = ["address_space_left", "host_memory", "fmt_bytes", "check_bytes", "name_list", "numba_room",
           "numba_runtime", "numba_failed", "NUMBA_ROOM"]


def fmt_bytes(n: float) -> str:
    """``3.2 GiB``, ``512 bytes``."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def _proc_bytes(path: str, field: str) -> int | None:
    """A ``field: N kB`` line of ``/proc/self/status`` or ``/proc/meminfo``, in bytes."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _rlimit_left(name: str, used_field: str) -> int | None:
    """Bytes left under the soft limit ``resource.<name>`` given what ``used_field`` of
    ``/proc/self/status`` counts against it; ``None`` when there is no limit (or no reading)."""
    try:
        import resource

        soft, _ = resource.getrlimit(getattr(resource, name))
    except (ImportError, OSError, ValueError, AttributeError):
        return None
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    used = _proc_bytes("/proc/self/status", used_field)
    return max(int(soft) - (used or 0), 0)


def address_space_left() -> int | None:
    """Bytes of address space left under ``RLIMIT_AS`` (its soft limit minus ``VmSize``), or
    ``None`` when there is no such limit (or it cannot be read)."""
    return _rlimit_left("RLIMIT_AS", "VmSize")


def _data_left() -> int | None:
    """Bytes left under ``RLIMIT_DATA`` (``ulimit -d``: heap and anonymous mappings)."""
    return _rlimit_left("RLIMIT_DATA", "VmData")


def _cgroup_left() -> int | None:
    """Bytes left under this process's cgroup v2 ``memory.max`` (containers, batch jobs)."""
    try:
        with open("/proc/self/cgroup") as f:
            rel = next((ln.split(":", 2)[2].strip() for ln in f if ln.startswith("0::")), None)
        if rel is None:
            return None
        base = os.path.join("/sys/fs/cgroup", rel.lstrip("/"))
        with open(os.path.join(base, "memory.max")) as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open(os.path.join(base, "memory.current")) as f:
            current = int(f.read().strip())
        return max(int(limit) - current, 0)
    except (OSError, ValueError, StopIteration, IndexError):
        return None


def host_memory() -> int | None:
    """Memory this process may still use on the host: ``MemAvailable`` (else ``sysconf``),
    and no more than what is left under ``ulimit -v`` (:func:`address_space_left`), ``ulimit
    -d`` and the cgroup's ``memory.max``; ``None`` if none is known."""
    avail = _proc_bytes("/proc/meminfo", "MemAvailable")
    if avail is None:
        try:
            avail = int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            avail = None
    for left in (address_space_left(), _data_left(), _cgroup_left()):
        if left is not None:
            avail = left if avail is None else min(avail, left)
    return avail


def check_bytes(source, need: float, limit, what: str) -> None:
    """Raise :class:`~specinv_cli.errors.InputError` when ``need`` bytes (for ``what``, e.g.
    ``"resampling from 1 Hz to 22050 Hz"``) exceed ``limit`` (``None``: :func:`host_memory`;
    ``inf``: no limit)."""
    if limit is None:
        limit, origin = host_memory(), "the available memory"
    else:
        origin = "the limit"
    if limit is None or limit == float("inf") or need <= limit:
        return
    from ..errors import InputError

    raise InputError(source, f"{what} would need about {fmt_bytes(need)}, more than {origin} "
                             f"({fmt_bytes(limit)})")


def name_list(names, limit: int = 8) -> str:
    """``a, b, c`` or, past ``limit`` names, ``a, b, ... and 2992 more``."""
    names = [str(n) for n in names]
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} ... and {len(names) - limit} more"


#: Address space numba's compiler and runtime take when first brought up (llvmlite's library,
#: the compiled code), before the per-thread buffers of the OpenBLAS it loads.
NUMBA_ROOM = 384 * 2 ** 20
#: Per thread: OpenBLAS's buffer, the thread's stack and its malloc arena.
NUMBA_ROOM_PER_THREAD = 96 * 2 ** 20

_NUMBA: list = []  # [False] once numba was found unusable in this process
_LOCK = threading.Lock()


def _threads() -> int:
    """OpenBLAS's thread count: its environment variables, at most the CPUs."""
    cpus = os.cpu_count() or 1
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        try:
            n = int(os.environ.get(var, ""))
            if n > 0:
                return min(n, cpus)
        except ValueError:
            pass
    return cpus


def _runtime_up() -> bool:
    """Whether numba's runtime (and with it scipy's OpenBLAS) is already loaded here."""
    return "scipy.linalg._fblas" in sys.modules or "numba.np.arraymath" in sys.modules


def numba_room() -> bool:
    """Whether numba may be loaded and compile here: not found unusable before in this process,
    and, under ``RLIMIT_AS``, enough address space left for its start-up (:data:`NUMBA_ROOM`
    plus :data:`NUMBA_ROOM_PER_THREAD` per thread). Says once when it is not."""
    if _NUMBA:
        return False
    left = address_space_left()
    if left is None or _runtime_up():
        return True
    need = NUMBA_ROOM + NUMBA_ROOM_PER_THREAD * _threads()
    if left >= need:
        return True
    numba_failed(None, f"{fmt_bytes(left)} of address space left (ulimit -v), numba needs about "
                       f"{fmt_bytes(need)}")
    return False


def numba_runtime() -> None:
    """Bring numba's CPU runtime up (the first compile or cache load would) without scipy's BLAS.

    numba's CPU target imports every implementation registry it has on first use, and one of
    them probes for BLAS by importing ``scipy.linalg``, which loads scipy and its OpenBLAS (and
    OpenBLAS's threads and buffers). No kernel here calls BLAS, so the probe is made to fail for
    the moment of that import: the start costs less and maps less. Afterwards ``scipy.linalg``
    imports as usual, and numba code that calls ``np.dot`` still compiles (numba checks for BLAS
    again when it compiles such a call). A no-op once the runtime is up."""
    if "numba.np.arraymath" in sys.modules:
        return
    name = "scipy.linalg.cython_blas"
    blocked = name not in sys.modules
    if blocked:
        sys.modules[name] = None  # import raises ImportError
    try:
        from numba.core.registry import cpu_target

        cpu_target.target_context.refresh()
    finally:
        if blocked and name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]


def numba_failed(exc: BaseException | None, why: str | None = None) -> None:
    """Record that numba cannot be used in this process (``exc``: what it raised) and say it
    once, on one line; the callers' plain code takes over."""
    with _LOCK:
        if _NUMBA:
            return
        _NUMBA.append(False)
    if why is None:
        first = (str(exc).splitlines() or [""])[0][:160] if exc is not None else ""
        why = f"{type(exc).__name__}: {first}" if exc is not None else "unavailable"
    # warn_explicit with a file name that has no source: one line on stderr, not two
    warnings.warn_explicit(f"numba cannot be used here ({why}); running the slower plain "
                           f"code instead", RuntimeWarning, "specinv", 0)
