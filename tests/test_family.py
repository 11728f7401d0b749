"""What every GLA-family method owes, on both CPU paths (numba kernels and torch ops): a batch
is its items one by one, and degenerate inputs give finite audio (silence gives silence)."""
from __future__ import annotations

import pytest
import torch

from specinv_cli.algorithms.base import Monitor, random_phase
from specinv_cli.algorithms.registry import REGISTRY
from specinv_cli.config import STFTConfig
from specinv_cli.dsp.stft import STFT
from specinv_cli.dsp.metrics import sc

from conftest import GUITAR, SPEECH, edge_signal, excerpt_magnitude

pytestmark = pytest.mark.usefixtures("one_thread")

#: name -> options that make a short run exercise every phase (DM hands over to AGLA)
FAMILY = {"gla": {}, "fgla": {}, "agla": {}, "admm": {}, "dm": {"dm_iters": 5}, "raar": {}}


@pytest.mark.parametrize("name", FAMILY)
def test_batch_matches_one_by_one(name, kernels):
    op = STFT(STFTConfig(), dtype=torch.float64)
    mags = torch.stack([excerpt_magnitude(SPEECH)[:, :150], excerpt_magnitude(GUITAR)[:, :150]]).to(torch.float64)
    length = op.default_length(150)
    init = mags * random_phase(mags.shape, torch.Generator().manual_seed(1), dtype=torch.complex128)
    fn, kw = REGISTRY[name].load(), FAMILY[name]
    both = fn(mags[None], op, n_iter=20, init=init[None], length=length, **kw)[0]  # two leading dims
    assert both.shape == (2, length) and both.dtype == torch.float64
    for k in range(2):
        one = fn(mags[k], op, n_iter=20, init=init[k], length=length, **kw)
        assert torch.allclose(both[k], one, rtol=0, atol=1e-8 * float(one.abs().max()))


@pytest.mark.parametrize("name", FAMILY)
@pytest.mark.parametrize("kind", ["silence", "impulse", "quiet"])
def test_finite_on_degenerate_input(name, kind, kernels):
    op = STFT(STFTConfig())
    x = edge_signal(kind)
    mag = op.forward(x).abs()
    init = mag * random_phase(mag.shape, torch.Generator().manual_seed(0))
    y = REGISTRY[name].load()(mag, op, n_iter=10, init=init, length=x.shape[-1],
                              monitor=Monitor(mag, 10, 5, callback=lambda p: None), **FAMILY[name])
    assert torch.isfinite(y).all()
    if kind == "silence":
        assert float(y.abs().max()) == 0.0
    else:
        assert float(sc(op.forward(y).abs(), mag)) < -5.0
