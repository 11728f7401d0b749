"""L-BFGS's history passes: the numba kernels against their torch twins in float64, and the
whole minimiser on a known quadratic with either."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from specinv_cli.algorithms.lbfgs import minimize_lbfgs
from specinv_cli.dsp import curvature
from specinv_cli.dsp.stft import jit_ready, jit_enabled


def _kernels_or_skip():
    if not (jit_enabled() and jit_ready(torch.float64)):
        pytest.skip("numba kernels unavailable (SPECINV_JIT=0 or no numba)")


def _twin(monkeypatch):
    monkeypatch.setattr(curvature, "_fused", lambda *ts: False)


@pytest.mark.parametrize("n, k", [(5, 4), (1001, 0), (1001, 3), (40000, 10)])
def test_direction_kernel_equals_its_twin(monkeypatch, n, k):
    _kernels_or_skip()
    gen = torch.Generator().manual_seed(n + k)
    W = torch.randn(10, n, generator=gen, dtype=torch.float64)
    g = torch.randn(n, generator=gen, dtype=torch.float64)
    coef = np.random.default_rng(k).standard_normal(10)
    assert curvature._fused(W, g, g)
    d1, gd1 = curvature.direction(W, k, coef, 0.7, g)
    _twin(monkeypatch)
    d2, gd2 = curvature.direction(W, k, coef, 0.7, g)
    scale = float(W.abs().max()) * np.abs(coef).sum() + float(g.abs().max())
    assert float((d1 - d2).abs().max()) <= 1e-13 * scale
    assert abs(gd1 - gd2) <= 1e-12 * abs(gd2) + 1e-12
    ref = -(W[:k].T @ torch.from_numpy(coef[:k]) + 0.7 * g)  # the definition, one more time
    assert float((d1 - ref).abs().max()) <= 1e-13 * scale


@pytest.mark.parametrize("n, k", [(7, 2), (1001, 0), (40000, 10)])
def test_pair_kernel_equals_its_twin(monkeypatch, n, k):
    _kernels_or_skip()
    gen = torch.Generator().manual_seed(3 * n + k)
    W, d, g, gn = (torch.randn(*s, generator=gen, dtype=torch.float64) for s in ((10, n), (n,), (n,), (n,)))
    P1, P2 = torch.empty(2, n, dtype=torch.float64), torch.empty(2, n, dtype=torch.float64)
    dots1, wg1 = curvature.pair(W, k, d, 0.3, g, gn, P1)
    _twin(monkeypatch)
    dots2, wg2 = curvature.pair(W, k, d, 0.3, g, gn, P2)
    assert torch.equal(P1, P2)  # elementwise: the same operations
    assert torch.equal(P1[0], d * 0.3) and torch.equal(P1[1], gn - g)
    np.testing.assert_allclose(dots1, dots2, rtol=1e-12, atol=1e-12 * n)
    np.testing.assert_allclose(wg1, wg2, rtol=1e-12, atol=1e-12 * n)
    assert wg1.shape == (k,) and dots1[6] == float(gn.abs().max())


def test_minimiser_with_either_path_solves_a_quadratic(monkeypatch):
    """f(z) = 1/2 (z - a)^T D (z - a) with a spread diagonal D: both paths reach a, with the same
    iterates to double rounding."""
    _kernels_or_skip()
    n = 3000
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(n, generator=gen, dtype=torch.float64)
    D = torch.logspace(0, 1, n, dtype=torch.float64)

    def fun(z):
        r = z - a
        return 0.5 * float((D * r * r).sum()), D * r

    z0 = torch.zeros(n, dtype=torch.float64)
    z1 = minimize_lbfgs(fun, z0, n_iter=60, history_size=5)
    _twin(monkeypatch)
    z2 = minimize_lbfgs(fun, z0, n_iter=60, history_size=5)
    assert float((z1 - a).abs().max()) < 1e-6
    assert float((z1 - z2).abs().max()) < 1e-9
