"""GLA and FGLA on real recordings."""
import numpy as np
import pytest
import torch

from conftest import load_clip, reference_magnitude
from specinv_cli import invert
from specinv_cli.algorithms.base import Monitor
from specinv_cli.algorithms.gla import gla
from specinv_cli.config import STFTConfig
from specinv_cli.dsp.stft import STFT


@pytest.fixture(scope="module")
def speech(corpus):
    return load_clip("speech_04_en_m_cmu_arctic_awb_a0007", seconds=3.0)


def test_gla_inconsistency_never_increases(speech):
    """Griffin & Lim 1984: the distance between |STFT(x_n)| and the target is non-increasing."""
    mag = reference_magnitude(speech).to(torch.float64)
    op = STFT(STFTConfig(), dtype=torch.float64)
    history = []
    mon = Monitor(mag, n_iter=60, eval_every=1, callback=lambda p: history.append(float(p.metrics["sc"])))
    init = mag * torch.polar(torch.ones_like(mag), torch.rand(mag.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 6.283)
    gla(mag, op, n_iter=60, init=init.to(torch.complex128), length=len(speech), monitor=mon)
    assert len(history) == 60
    steps = np.diff(history)
    assert steps.max() <= 1e-9, f"GLA's spectral distance increased by {steps.max()} dB"
    assert history[-1] < history[0] - 5  # and it actually converges


def test_fgla_beats_gla_and_meets_speech_bound(speech):
    mag = reference_magnitude(speech)
    r_gla = invert(mag, method="gla", n_iter=100, length=len(speech), device="cpu", init="random")
    r_fgla = invert(mag, method="fgla", n_iter=100, length=len(speech), device="cpu", init="random")
    assert r_fgla.audio.shape == (len(speech),)
    assert float(r_fgla.metrics["sc"]) < -25.0
    assert float(r_fgla.metrics["sc"]) < float(r_gla.metrics["sc"]) - 1.0


def test_batch_equals_one_by_one(speech):
    mag = reference_magnitude(speech[:22050])
    mag2 = reference_magnitude(load_clip("music_tabla_loop", seconds=1.0))
    batch = torch.stack([mag, mag2])
    # same random phase per item when run alone: give the batch's phase as complex input
    phase = torch.polar(torch.ones_like(batch), torch.rand(batch.shape, generator=torch.Generator().manual_seed(3)) * 6.283)
    rb = invert(batch * phase, method="fgla", n_iter=20, device="cpu")
    for i in range(2):
        ri = invert(batch[i] * phase[i], method="fgla", n_iter=20, device="cpu")
        torch.testing.assert_close(rb.audio[i], ri.audio, rtol=1e-3, atol=1e-4)
        assert abs(float(rb.metrics["sc"][i]) - float(ri.metrics["sc"])) < 1e-3


def test_seed_makes_runs_reproducible(speech):
    mag = reference_magnitude(speech[:22050])
    a = invert(mag, n_iter=5, seed=7, device="cpu", init="random").audio
    b = invert(mag, n_iter=5, seed=7, device="cpu", init="random").audio
    c = invert(mag, n_iter=5, seed=8, device="cpu", init="random").audio
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_true_phase_gives_near_perfect_reconstruction(speech):
    x = torch.from_numpy(speech[:22050])
    X = torch.stft(x, 1024, 256, window=torch.hann_window(1024), return_complex=True)
    r = invert(X, method="gla", n_iter=0, length=22050, device="cpu", precision="double")
    assert float(r.metrics["sc"]) < -100
    assert torch.allclose(r.audio, x, atol=1e-5)


def test_tol_stops_early(speech):
    mag = reference_magnitude(speech[:22050])
    r = invert(mag, method="gla", n_iter=500, tol=1e-2, eval_every=5, device="cpu")
    assert r.stopped_early and r.iterations < 500 and r.iterations % 5 == 0


def test_double_precision_runs(speech):
    mag = reference_magnitude(speech[:11025])
    r = invert(mag, n_iter=3, precision="double", device="cpu")
    assert r.audio.dtype == torch.float32 and torch.isfinite(r.audio).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(speech):
    mag = reference_magnitude(speech[:22050])
    a = invert(mag, n_iter=10, device="cpu")
    b = invert(mag, n_iter=10, device="cuda")
    assert b.device.startswith("cuda")
    assert abs(float(a.metrics["sc"]) - float(b.metrics["sc"])) < 0.5


def test_cuda_request_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    from specinv_cli.errors import DeviceError

    with pytest.raises(DeviceError, match="no CUDA device"):
        invert(torch.ones(513, 10), device="cuda")
