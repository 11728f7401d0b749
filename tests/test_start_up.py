"""Process start-up and the C allocator: malloc keeps freed memory for reuse (the CLI sets it), and
numba's runtime comes up without scipy's BLAS."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from specinv_cli.util import allocator

GLIBC = sys.platform.startswith("linux") and bool(getattr(os, "confstr", lambda _: "")("CS_GNU_LIBC_VERSION"))
ENV = {k: v for k, v in os.environ.items() if k != "SPECINV_MALLOC"}


def _child(code: str, *args: str, **env) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                         env={**ENV, **env})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# Page faults per FFT pair, in a fresh process, after a fixed warm-up of smaller sizes (the
# sequence that, with glibc's default thresholds, has every call at 692+ frames map its output
# afresh: about one fault per 4 KiB page of it).
FAULTS = r"""
import json, resource, sys, torch
torch.set_num_threads(1)
if sys.argv[1] == "1":
    from specinv_cli.util.allocator import retain_freed_memory
    assert retain_freed_memory()
out = {}
for R in (173, 256, 346, 692, 1400):
    x = torch.randn(R, 1024)
    for _ in range(3):
        torch.fft.irfft(torch.fft.rfft(x), n=1024)
    m0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        torch.fft.irfft(torch.fft.rfft(x), n=1024)
    out[R] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - m0) / 10
print(json.dumps(out))
"""


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt")
def test_retained_memory_is_reused_without_page_faults():
    """Each call's output ([1400, 513] complex64, 2.9 MB, then the frames, 5.7 MB) is over 2000
    pages: once freed memory is kept, the calls fault almost none of them in again."""
    code = FAULTS.replace("sys.argv[1]", "'1'")
    got = _child(code)
    for R in ("692", "1400"):
        pages = int(R) * (513 * 8 + 1024 * 4) / 4096
        assert got[R] < 0.02 * pages, (R, got[R], pages)


def test_retain_is_idempotent_and_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("SPECINV_MALLOC", "0")
    assert allocator.retain_freed_memory() is False
    monkeypatch.delenv("SPECINV_MALLOC")
    first = allocator.retain_freed_memory()
    assert first is GLIBC
    assert allocator.retain_freed_memory() is first


def test_non_glibc_is_left_alone(monkeypatch):
    monkeypatch.setattr(allocator, "_DONE", [])
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    assert allocator.retain_freed_memory() is False


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt")
def test_the_cli_retains_freed_memory(tmp_path):
    """`specinv` sets the thresholds before its work: the mallopt calls are seen in the process."""
    code = r"""
import json, sys
from specinv_cli.util import allocator
calls = []
real = allocator._glibc
def spy():
    fn = real()
    def wrapped(param, value):
        calls.append((param, value))
        return fn(param, value)
    return wrapped
allocator._glibc = spy
from specinv_cli.cli import main
sys.argv = ["specinv", "invert", "--example", "-n", "1", "-q", "-o", sys.argv[1]]
try:
    main()
except SystemExit as e:
    assert not e.code, e.code
print(json.dumps(calls))
"""
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.wav")], capture_output=True, text=True,
                         timeout=300, env=ENV)
    assert out.returncode == 0, out.stderr[-2000:]
    calls = json.loads(out.stdout.strip().splitlines()[-1])
    assert [-3, allocator.MMAP_THRESHOLD] in calls and [-1, allocator.TRIM_THRESHOLD] in calls
    assert (tmp_path / "x.wav").stat().st_size > 0


NUMBA_UP = r"""
import json, sys
if sys.argv[1:] == ["preload"]:
    import scipy.linalg
import torch
from specinv_cli import STFTConfig, invert
from specinv_cli.dsp import STFT
from specinv_cli.dsp.stft import jit_enabled, jit_ready
st = STFT(STFTConfig(n_fft=512, hop_length=128))
mag = st.forward(torch.randn(8192)).abs()
invert(mag, config=STFTConfig(n_fft=512, hop_length=128), n_iter=2, device="cpu")  # PGHI: numba's runtime
kernels = jit_enabled() and jit_ready(torch.float32)
up = "numba.np.arraymath" in sys.modules
scipy_blas = "scipy.linalg" in sys.modules
probe = bool(sys.modules["numba.np.arraymath"]._HAVE_BLAS) if up else None
import numba, numpy as np
@numba.njit
def dot(a, b):
    return np.dot(a, b)
d = float(dot(np.arange(3.0), np.arange(3.0)))
import scipy.linalg
n = float(scipy.linalg.norm(np.ones(4)))
print(json.dumps({"up": up, "kernels": bool(kernels), "scipy_linalg_before": scipy_blas, "probe": probe,
                  "dot": d, "norm": n}))
"""


def test_numba_comes_up_without_scipy_and_blas_still_works_after():
    """The PGHI start and the kernels bring numba's runtime up without importing scipy.linalg
    (its BLAS probe is held off for that moment); afterwards scipy.linalg imports and numba code
    that calls np.dot compiles and is right."""
    pytest.importorskip("numba")
    got = _child(NUMBA_UP)
    if not got["up"]:
        pytest.skip("numba's runtime did not come up here")
    assert got["scipy_linalg_before"] is False and got["probe"] is False
    assert got["dot"] == 5.0 and got["norm"] == 2.0


def test_numba_runtime_keeps_an_already_loaded_scipy():
    """With scipy.linalg imported before, nothing is held off: numba's BLAS probe finds it."""
    pytest.importorskip("numba")
    got = _child(NUMBA_UP, "preload")
    if not got["up"]:
        pytest.skip("numba's runtime did not come up here")
    assert got["probe"] is True and got["dot"] == 5.0
