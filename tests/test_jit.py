"""The fused numba kernels (specinv_cli/jit.py) against the plain torch path they replace."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from specinv_cli.dsp import stft as dsp
from specinv_cli.config import STFTConfig
from specinv_cli.dsp.stft import STFT, MagnitudeProjection, cosine_taps, get_window

pytestmark = pytest.mark.skipif(dsp._load_jit() is None, reason="numba does not import here")


@pytest.fixture(autouse=True)
def _restore():
    yield
    dsp.set_jit(None)


@pytest.mark.parametrize("name, taps", [("hann", [0.5, -0.25]), ("hamming", [0.54, -0.23]),
                                        ("blackman", [0.42, -0.25, 0.04]), ("rectangular", [1.0])])
def test_cosine_taps_of_cosine_sum_windows(name, taps):
    got = cosine_taps(get_window(name, 512, dtype=torch.float64))
    np.testing.assert_allclose(got, taps, atol=1e-12)


@pytest.mark.parametrize("name, win_length", [("gaussian", 512), ("bartlett", 512), ("hann", 400)])
def test_cosine_taps_refuses_other_windows(name, win_length):
    assert cosine_taps(get_window(name, win_length, 512, dtype=torch.float64)) is None


@pytest.mark.parametrize("n_fft", [512, 511])
@pytest.mark.parametrize("name", ["hann", "hamming", "blackman", "rectangular"])
def test_window_conv_is_the_windowed_fft(name, n_fft):
    """Taps along frequency (with the Hermitian extension at both ends) give rfft(w * frame)."""
    from specinv_cli.dsp import kernels as jit

    w = get_window(name, n_fft, dtype=torch.float64)
    frames = torch.randn(37, n_fft, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    X = torch.fft.rfft(frames, dim=-1)
    jit.window_conv(dsp.as_rows(X), cosine_taps(w), n_fft, 4)
    torch.testing.assert_close(X, torch.fft.rfft(frames * w, dim=-1), rtol=1e-12, atol=1e-10)


def test_the_reference_stft_takes_the_fused_path():
    dsp.set_jit(True)
    op = STFT(STFTConfig(n_fft=1024, hop_length=256))
    proj = op.projector((513, 100))
    assert proj._use_jit() and proj._taps is not None
    dsp.set_jit(False)
    assert not proj._use_jit()
    assert not STFT(STFTConfig(n_fft=1024, hop_length=256), device="meta").projector((513, 100))._use_jit()


@pytest.mark.parametrize("kw", [dict(n_fft=512, hop_length=128),
                                dict(n_fft=512, hop_length=128, pad_mode="constant", window="hamming"),
                                dict(n_fft=512, hop_length=128, pad_mode="replicate", window="blackman"),
                                dict(n_fft=512, hop_length=128, pad_mode="circular", window="gaussian"),
                                dict(n_fft=512, hop_length=128, center=False, pad=192, normalized=True),
                                dict(n_fft=512, hop_length=256, win_length=400)])
@pytest.mark.parametrize("length", [6000, 5888])
def test_gla_step_equals_the_torch_path(kw, length):
    """One fused step (rfft of frames read in place, window + projection, irfft, overlap-add +
    envelope + padding + momentum) is the torch step, in double precision to rounding."""
    op = STFT(STFTConfig(**kw), dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    T = op.n_frames(length)
    mag = torch.rand(2, op.n_freqs, T, dtype=torch.float64, generator=g)
    p_a = MagnitudeProjection(mag, 1e-150)
    proj = op.projector(mag.shape, length)
    assert proj.fast
    spec = torch.randn(2, op.n_freqs, T, dtype=torch.complex128, generator=g)
    results = {}
    for on in (True, False):
        dsp.set_jit(on)
        assert proj._use_jit() == on
        sig = proj.synth(spec)
        prev = proj.synth(spec * 0.5)
        out = proj.new_signal()
        proj.gla_step(sig, p_a, out=out, prev=prev, alpha=0.9)
        same = proj.gla_step(sig.clone(), p_a, out=sig)  # out may be the input
        results[on] = (out, prev, same)
    for a, b in zip(results[True], results[False]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    out, prev, _ = results[True]
    # and the waveform is ISTFT(P_A(STFT(x))) of the input's waveform
    x = proj.signal(proj.synth(spec))
    ref = op.inverse(dsp.magnitude_projection(mag, op.forward(x), 1e-150), length)
    torch.testing.assert_close(proj.signal(out), ref, rtol=1e-9, atol=1e-9)


def test_fgla_on_a_recording_matches_the_torch_path(corpus):
    """Float32 FGLA trajectories differ by rounding only: same SC after 40 iterations."""
    from conftest import GUITAR, excerpt_magnitude

    from specinv_cli.algorithms.base import random_phase
    from specinv_cli.algorithms.gla import fgla
    from specinv_cli.dsp.metrics import sc

    mag = excerpt_magnitude(GUITAR)
    op = STFT(STFTConfig(n_fft=1024, hop_length=256))
    init = mag * random_phase(mag.shape, torch.Generator().manual_seed(0))
    got = {}
    for on in (True, False):
        dsp.set_jit(on)
        y = fgla(mag, op, n_iter=40, init=init)
        got[on] = float(sc(op.forward(y).abs(), mag))
    assert got[True] < -20
    assert abs(got[True] - got[False]) < 0.1, got


def test_kernel_threads_follow_torch():
    import numba

    dsp.set_jit(True)
    saved = torch.get_num_threads()
    op = STFT(STFTConfig(n_fft=256, hop_length=64))
    proj = op.projector((129, 20))
    spec = torch.randn(129, 20, dtype=torch.complex64)
    try:
        torch.set_num_threads(1)
        proj.synth(spec)
        assert numba.get_num_threads() == 1
    finally:
        torch.set_num_threads(saved)
    proj.synth(spec)
    assert numba.get_num_threads() == min(saved, numba.config.NUMBA_NUM_THREADS)


def test_specinv_jit_0_turns_the_kernels_off():
    code = "from specinv_cli import dsp; print(dsp.jit_enabled())"
    env = {**os.environ, "SPECINV_JIT": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_kernel_that_fails_hands_over_to_torch(monkeypatch):
    """A numba that imports but cannot compile here: one warning, then the torch path."""
    from specinv_cli.dsp import kernels as jit

    def broken(*args):
        raise RuntimeError("no working LLVM target")

    monkeypatch.setattr(jit, "overlap_add", broken)
    dsp.set_jit(True)
    op = STFT(STFTConfig(n_fft=256, hop_length=64), dtype=torch.float64)
    spec = torch.randn(129, 30, dtype=torch.complex128, generator=torch.Generator().manual_seed(1))
    proj = op.projector(spec.shape)
    with pytest.warns(RuntimeWarning, match="numba kernels failed"):
        y = proj.signal(proj.synth(spec))
    assert not dsp.jit_enabled()
    torch.testing.assert_close(y, op.inverse(spec), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("method, opts", [("fgla", {}), ("gla", {}), ("agla", {}), ("agla", {"gamma": 1.0}),
                                          ("dm", {}), ("dm", {"dm_iters": 12}), ("raar", {}),
                                          ("admm", {}), ("admm", {"rho": 0.0})])
@pytest.mark.parametrize("window", ["hann", "gaussian"])
def test_fused_methods_equal_their_torch_loops(method, opts, window):
    """Each method's fused loop (one kernel for its elementwise update, window and projection)
    is its torch loop: double precision, batch of two, 12 iterations, monitor called alike."""
    from specinv_cli.algorithms.base import Monitor, random_phase
    from specinv_cli.algorithms.registry import REGISTRY

    op = STFT(STFTConfig(n_fft=256, hop_length=64, window=window), dtype=torch.float64)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 6000, dtype=torch.float64, generator=g)
    mag = op.forward(x).abs()
    init = mag * random_phase(mag.shape, g, dtype=torch.complex128)
    init_keep = init.clone()
    fn = REGISTRY[method].load()
    out, seen = {}, {}
    for on in (True, False):
        dsp.set_jit(on)
        assert op.projector(mag.shape, 6000).fused(MagnitudeProjection(mag)) == on
        mon = Monitor(mag, n_iter=12, eval_every=4, callback=lambda p: None)
        out[on] = fn(mag, op, n_iter=12, init=init, length=6000, monitor=mon, **opts)
        seen[on] = [(h["iteration"], h["sc"]) for h in mon.history]
    torch.testing.assert_close(out[True], out[False], rtol=1e-7, atol=1e-7 * float(out[False].abs().max()))
    assert [i for i, _ in seen[True]] == [i for i, _ in seen[False]] == [4, 8, 12]
    np.testing.assert_allclose([s for _, s in seen[True]], [s for _, s in seen[False]], atol=1e-6)
    torch.testing.assert_close(init, init_keep, rtol=0, atol=0)  # the caller's init is not written


def test_short_jobs_in_a_fresh_process_skip_the_kernels():
    """Loading numba's runtime costs more than a short job saves: the first small inversions
    stay on torch; once the process's work passes JIT_MIN_WORK the kernels load and stay."""
    code = """
import torch
from specinv_cli.dsp import stft as dsp
from specinv_cli import invert
mag = torch.rand(513, 60)
invert(mag, method="fgla", n_iter=50)                       # 1.5e6
print(bool(dsp._READY))
invert(torch.rand(513, 1000), method="fgla", n_iter=50)     # 5.1e7: over the threshold
print(bool(dsp._READY))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if k != "SPECINV_JIT"})
    assert out.stdout.split() == ["False", "True"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_a_forked_child_of_a_process_that_ran_the_kernels_uses_torch():
    """numba's threading layer does not survive fork(): such a child turns the kernels off
    (torch's own thread pool is the caller's concern: MKL's FFT hangs there too)."""
    code = """
import os, torch
from specinv_cli.dsp import stft as dsp
from specinv_cli.config import STFTConfig
op = dsp.STFT(STFTConfig(n_fft=256, hop_length=64))
op.projector((129, 30)).synth(torch.randn(129, 30, dtype=torch.complex64))
assert dsp.jit_enabled() and any(dsp._READY.values())
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(w, b"1" if dsp.jit_enabled() else b"0")
    os._exit(0)
os.waitpid(pid, 0)
print(os.read(r, 1).decode(), dsp.jit_enabled())
"""
    env = {k: v for k, v in os.environ.items() if k != "SPECINV_JIT"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "True"]  # off in the child, still on in the parent
