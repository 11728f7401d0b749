import math

import torch

from specinv_cli.dsp import metrics


def test_sc_definition():
    ref = torch.rand(2, 10, 7, dtype=torch.float64) + 0.1
    est = ref + 0.01 * torch.randn_like(ref)
    want = 20 * torch.log10((est - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1))
    torch.testing.assert_close(metrics.sc(est, ref), want)
    assert metrics.sc(est, ref).shape == (2,)


def test_snr_is_gain_invariant_and_ser_is_not():
    ref = torch.rand(10, 7, dtype=torch.float64) + 0.1
    est = ref + 0.05 * torch.rand_like(ref)
    assert abs(float(metrics.snr(3 * est, ref) - metrics.snr(est, ref))) < 1e-9
    assert abs(float(metrics.ser(3 * est, ref) - metrics.ser(est, ref))) > 1


def test_values_on_a_simple_case():
    ref = torch.ones(4, 4)
    est = 1.1 * ref
    assert math.isclose(float(metrics.sc(est, ref)), -20.0, abs_tol=1e-4)
    assert math.isclose(float(metrics.ser(est, ref)), 20 * math.log10(11), abs_tol=1e-4)
    assert float(metrics.snr(est, ref)) > 100  # same shape, only the gain differs
