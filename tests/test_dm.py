"""Difference map (+ AGLA/FGLA finisher) and RAAR on real corpus excerpts."""
from __future__ import annotations

import pytest
import torch

from specinv_cli.algorithms.base import random_phase
from specinv_cli.algorithms.dm import dm, raar
from specinv_cli.api import invert
from specinv_cli.config import STFTConfig
from specinv_cli.dsp.stft import STFT

from conftest import GUITAR, SPEECH, excerpt_magnitude, method_sc

pytestmark = pytest.mark.usefixtures("one_thread")
_mag, _sc = excerpt_magnitude, method_sc


@pytest.mark.parametrize("clip", [SPEECH, GUITAR], ids=["speech", "guitar"])
def test_hybrid_beats_fgla(clip):
    mag = _mag(clip)
    s_dm = _sc("dm", mag, n_iter=100)                       # 50 DM + 50 AGLA
    s_dm_fgla = _sc("dm", mag, n_iter=100, finisher="fgla")
    s_fgla = _sc("fgla", mag, n_iter=100)
    # DM amplifies float32 rounding: over seven FFT/kernel code paths of one AMD EPYC (kernels on
    # and off, MKL's Intel AVX-512 / AVX2 / SSE4.2 paths, ATen default, numba without FMA) the
    # hybrids moved by up to 1.8 dB, FGLA by 0.01 dB. Measured (speech / guitar, dB):
    #   DM + AGLA  -31.6 ... -33.3 / -28.7 ... -30.5
    #   DM + FGLA  -31.1 ... -32.9 / -28.3 ... -29.9
    #   FGLA       -28.36          / -26.14
    # Bounds: worst hybrid at least 2 dB inside each (more than that spread), and each hybrid still
    # beats FGLA at equal iterations (a DM no better than FGLA, or one that stalls, fails).
    assert s_dm < -26.5 and s_dm_fgla < -26.0
    assert s_dm < s_fgla - 0.5       # measured 2.5 ... 5.0 dB better
    assert s_dm_fgla < s_fgla        # measured 2.1 ... 4.5 dB better


def test_variants_converge():
    mag = _mag(SPEECH)
    assert _sc("dm", mag, n_iter=100, dm_iters=100) < -22.0         # DM alone: about -26 dB
    assert _sc("dm", mag, n_iter=100, beta=0.9) < -27.0              # two projections per iteration
    s_raar = _sc("raar", mag, n_iter=100)
    assert s_raar < -25.0 and s_raar < _sc("gla", mag, n_iter=100) - 2.0


def test_dm_beta_one_is_raar_beta_one():
    op = STFT(STFTConfig(), dtype=torch.float64)
    mag = _mag(GUITAR)[:, :120].to(torch.float64)
    length = op.default_length(120)
    init = mag * random_phase(mag.shape, torch.Generator().manual_seed(4), dtype=torch.complex128)
    y_dm = dm(mag, op, n_iter=12, init=init, length=length, beta=1.0, dm_iters=12)
    y_raar = raar(mag, op, n_iter=12, init=init, length=length, beta=1.0)
    assert torch.allclose(y_dm, y_raar, rtol=0, atol=1e-9 * float(y_raar.abs().max()))
    y_all = dm(mag, op, n_iter=12, init=init, length=length, dm_iters=50)
    assert torch.equal(y_all, y_dm)


def test_monitor_counts_dm_and_finisher_iterations():
    mag = _mag(SPEECH)
    res = invert(mag, method="dm", n_iter=100, init="random", device="cpu", eval_every=25,
                 callback=lambda p: None)
    assert [h["iteration"] for h in res.history] == [25, 50, 75, 100]
    assert res.history[-1]["sc"] < res.history[1]["sc"] - 3.0   # the finisher descends
    stopped = invert(mag, method="dm", n_iter=100, init="random", device="cpu", eval_every=5, tol=0.9)
    assert stopped.stopped_early and stopped.iterations < 100


def test_bad_options():
    op = STFT(STFTConfig())
    mag = _mag(SPEECH)[:, :20]
    with pytest.raises(ValueError):
        dm(mag, op, n_iter=2, finisher="lbfgs")
    with pytest.raises(ValueError):
        dm(mag, op, n_iter=2, beta=0.0)
    with pytest.raises(ValueError):
        raar(mag, op, n_iter=2, beta=1.5)
