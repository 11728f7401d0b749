"""Every method under HiFi-GAN framing (center=False, reflect pad (n_fft - hop) / 2)."""
import pytest
import torch

from conftest import load_clip
from specinv_cli import invert
from specinv_cli.algorithms.registry import REGISTRY
from specinv_cli.config import STFTConfig
from specinv_cli.dsp.stft import STFT

CFG = STFTConfig(center=False, pad=384)


@pytest.fixture(scope="module")
def mag(corpus):
    x = torch.from_numpy(load_clip("speech_male_hts1a", seconds=1.5))
    return STFT(CFG).forward(x).abs()


@pytest.fixture(scope="module")
def random_sc(mag):
    return float(invert(mag, method="gla", n_iter=0, init="random", config=CFG, device="cpu").metrics["sc"])


@pytest.mark.parametrize("method", list(REGISTRY))
def test_method_with_hifigan_framing(mag, random_sc, method):
    r = invert(mag, method=method, config=CFG, n_iter=20, device="cpu")
    assert r.audio.shape == (mag.shape[-1] * 256,)  # T * hop samples
    assert torch.isfinite(r.audio).all()
    assert float(r.metrics["sc"]) < random_sc - 5.0, (method, float(r.metrics["sc"]), random_sc)
