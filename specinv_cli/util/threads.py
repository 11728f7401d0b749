"""How many CPU threads a run uses, and how its thread pools wait (standard library only).

torch's OpenMP/MKL pools spin while they wait for work. On a machine whose cores are all busy
(``make -j2`` on 2 cores, a TTS model beside the vocoder) the spinning threads take the cores
the working ones need; ``OMP_WAIT_POLICY=PASSIVE`` makes them sleep instead, at some cost on an
idle machine, so it is chosen only when the machine is already loaded. The pools read these
settings when torch starts: :func:`configure` must run before ``import torch`` to set them, and
sets what it still can (``torch.set_num_threads``) after.
"""
from __future__ import annotations

import os
import sys

__all__ = ["usable_cpus", "runnable_elsewhere", "busy_elsewhere", "configure"]


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, within a cgroup CPU quota if there is one."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:  # cgroup v2: "max 100000" or "200000 100000"
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def runnable_elsewhere() -> float:
    """Tasks running or ready to run now, other than this process: the kernel's instantaneous
    count (``/proc/loadavg``'s ``running/total``), not the load average, which lags by a minute
    and would count the previous command of a shell loop; the 1-minute average where there is no
    such count."""
    try:
        with open("/proc/loadavg") as f:
            return max(0.0, float(f.read().split()[3].split("/")[0]) - 1)  # minus the reader
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def busy_elsewhere(threads: int, cpus: int | None = None) -> bool:
    """Whether ``threads`` more busy threads would oversubscribe the usable CPUs: the tasks
    runnable elsewhere (:func:`runnable_elsewhere`) plus ``threads`` exceed the CPUs."""
    return runnable_elsewhere() + threads > (cpus or usable_cpus())


def configure(threads: int | None = None) -> int:
    """Use ``threads`` CPU threads (``None``: :func:`usable_cpus`) in torch, MKL, OpenMP and numba,
    with pools that sleep rather than spin when :func:`busy_elsewhere`. Settings the user made in
    the environment (``OMP_NUM_THREADS``, ``OMP_WAIT_POLICY``...) are kept unless ``threads`` is
    given. Returns the thread count."""
    n = int(threads) if threads is not None else None
    if n is not None and n < 1:
        raise ValueError(f"`threads` must be >= 1, got {threads}")
    cpus = usable_cpus()
    count = n if n is not None else int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or cpus
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        if n is not None or var not in os.environ:
            os.environ[var] = str(count)
    if "OMP_WAIT_POLICY" not in os.environ and busy_elsewhere(count, cpus):
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    torch = sys.modules.get("torch")
    if torch is not None and n is not None:  # started already: the pool size can still change
        torch.set_num_threads(count)
    numba = sys.modules.get("numba")
    if numba is not None and n is not None:
        try:
            numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
        except (ValueError, AttributeError):
            pass
    return count
