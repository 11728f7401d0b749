"""Long inputs in overlapping blocks: coverage, stitching, seams, the CLI path."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from clihelp import read_wav, run
from conftest import load_clip, reference_magnitude
from specinv_cli.api import InversionResult, invert
from specinv_cli.batch.blocks import _stitch, block_starts, invert_blocks, streaming_metrics
from specinv_cli.config import STFTConfig
from specinv_cli.dsp.metrics import compute


@pytest.mark.parametrize("n", [1, 5, 99, 100, 101, 257, 1000, 4097])
@pytest.mark.parametrize("block,overlap", [(100, 10), (64, 0), (256, 128), (2048, 128)])
def test_blocks_cover_every_frame_with_the_overlap(n, block, overlap):
    spans = block_starts(n, block, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(0 < e - s <= block for s, e in spans)
    for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
        assert s0 < s1 and e0 < e1 and e0 - s1 >= overlap  # consecutive, overlapping enough
    with pytest.raises(ValueError):
        block_starts(n, block, block)


def test_stitch_aligns_the_sign_and_crossfades():
    rng = np.random.default_rng(0)
    truth = rng.standard_normal(1000).astype(np.float32)
    out = np.zeros(1000, np.float32)
    done = _stitch(out, truth[:600].copy(), 0, 0)
    done = _stitch(out, -truth[400:].copy(), 400, done)  # the second block came out negated
    assert done == 1000
    np.testing.assert_allclose(out, truth, rtol=0, atol=1e-6)


def test_streaming_metrics_equal_the_whole_computation():
    cfg = STFTConfig(n_fft=256, hop_length=64).with_bins(129, "t")
    from specinv_cli.dsp.stft import STFT

    op = STFT(cfg)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64 * 300, generator=g)
    mag = op.forward(x).abs()[:, :301]
    y = x[: op.default_length(301)] + 0.05 * torch.randn(op.default_length(301), generator=g)
    whole = compute(op.forward(y).abs()[:, :301], mag)
    for chunk in (7, 64, 1000):
        got = streaming_metrics(y.numpy(), mag, cfg, chunk=chunk)
        for k in ("sc", "snr", "ser"):
            assert abs(got[k] - float(whole[k])) < 1e-6, (k, chunk)


def test_seams_cost_at_most_1_db(corpus):
    """A 34 s signal (three corpus clips) inverted whole and in blocks of 1024 frames."""
    audio = np.concatenate([load_clip(corpus[i]) for i in (0, 5, 10)])
    mag = reference_magnitude(audio)
    cfg = STFTConfig().with_bins(mag.shape[-2], "t")
    whole = float(invert(mag, config=cfg, n_iter=60, device="cpu").metrics["sc"])
    blocked = invert_blocks(mag, config=cfg, block=1024, overlap=128, n_iter=60, device="cpu")
    assert isinstance(blocked, InversionResult)  # one result type for every path
    assert blocked.blocks >= 4 and blocked.audio.dtype == torch.float32
    assert blocked.audio.shape == ((mag.shape[-1] - 1) * 256,)
    assert blocked.metrics["sc"] <= whole + 1.0, (blocked.metrics["sc"], whole)
    assert blocked.metrics["sc"] < -25


def test_cli_long_input_goes_in_blocks(tmp_path, capsys, corpus):
    mag = reference_magnitude(load_clip(corpus[3], 6.0)).numpy()
    np.save(tmp_path / "long.npy", mag)
    rc, out, err = run(capsys, "invert", tmp_path / "long.npy", "-o", tmp_path / "long.wav", "--json",
                       "--block-frames", "200", "--block-overlap", "32", "-n", "30")
    assert rc == 0, err
    rec = json.loads(out.splitlines()[0])
    assert rec["blocks"] >= 4 and rec["sc"] < -20
    audio, _ = read_wav(tmp_path / "long.wav")
    assert audio.shape == ((mag.shape[-1] - 1) * 256,)
    rc, _, err = run(capsys, "invert", tmp_path / "long.npy", "-o", tmp_path / "x.wav",
                     "--block-frames", "100", "--block-overlap", "100")
    assert rc == 2 and "--block-overlap 100 must be smaller" in err
