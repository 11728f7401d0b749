"""Thread pools: sized to what the process may use (or --threads), sleeping when the machine is busy."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from specinv_cli.util import threads


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "OMP_WAIT_POLICY")}
    return {**env, **extra}


def test_usable_cpus_is_the_affinity_mask():
    n = threads.usable_cpus()
    assert 1 <= n <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert n <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize("load, n, cpus, busy", [(0, 2, 2, False), (1, 2, 2, True), (1, 1, 2, False),
                                                 (2, 1, 2, True), (4, 4, 8, False), (5, 4, 8, True)])
def test_busy_elsewhere_means_oversubscribed(monkeypatch, load, n, cpus, busy):
    monkeypatch.setattr(threads, "runnable_elsewhere", lambda: float(load))
    assert threads.busy_elsewhere(n, cpus) is busy


def test_runnable_elsewhere_counts_a_busy_process():
    """The instantaneous count sees a spinning process at once (the 1-minute average would not).
    Compared as the least count over many samples, which other work can only raise."""
    import time

    def least():
        out = []
        for _ in range(60):
            out.append(threads.runnable_elsewhere())
            time.sleep(0.002)
        return min(out)

    idle = least()
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        busy = least()
    finally:
        spin.kill()
        spin.wait()
    assert busy >= idle + 1 or not os.path.exists("/proc/loadavg"), (idle, busy)


@pytest.mark.parametrize("load, policy", [(0, None), (2, "PASSIVE")])
def test_configure_before_torch_sets_the_pools(load, policy):
    """In a fresh process: the thread count reaches torch, and pools sleep only when busy."""
    code = f"""
import os
from specinv_cli.util import threads
threads.runnable_elsewhere = lambda: {load}
n = threads.configure(1)
import torch
print(n, torch.get_num_threads(), os.environ.get("OMP_WAIT_POLICY"), os.environ["NUMBA_NUM_THREADS"])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_clean_env(), check=True)
    assert out.stdout.split() == ["1", "1", str(policy), "1"]


def test_the_user_environment_is_kept_unless_threads_is_given():
    code = """
import os
from specinv_cli.util.threads import configure
a = configure(None)
b = os.environ["OMP_WAIT_POLICY"]
print(a, b, configure(3), os.environ["OMP_NUM_THREADS"])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=_clean_env(OMP_NUM_THREADS="1", OMP_WAIT_POLICY="ACTIVE"))
    assert out.stdout.split() == ["1", "ACTIVE", "3", "3"]
    with pytest.raises(ValueError, match="`threads` must be >= 1"):
        threads.configure(0)


def test_invert_threads_flag(tmp_path):
    import numpy as np

    np.save(tmp_path / "s.npy", np.random.default_rng(0).random((129, 20)).astype(np.float32))
    code = ("import sys, torch; from specinv_cli.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code, "invert", str(tmp_path / "s.npy"), "-o", str(tmp_path / "s.wav"),
                          "-n", "2", "-q", "--threads", "1"], capture_output=True, text=True, env=_clean_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "1" and (tmp_path / "s.wav").is_file()
