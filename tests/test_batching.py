"""Cross-file batching: padded batches give each item its one-by-one result."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from clihelp import files_in, read_wav, run
from conftest import load_clip, reference_magnitude
from specinv_cli.api import invert
from specinv_cli.config import STFTConfig
from specinv_cli.dsp.stft import STFT
from specinv_cli.dsp.ragged import RaggedSTFT

CONFIGS = [dict(n_fft=256, hop_length=64), dict(n_fft=256, hop_length=64, pad_mode="constant"),
           dict(n_fft=256, hop_length=64, center=False, pad=96),
           dict(n_fft=200, hop_length=50, win_length=120, pad_mode="replicate"),
           dict(n_fft=128, hop_length=32, pad_mode="circular", window="hamming")]


@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
def test_ragged_operator_is_each_items_own(kw):
    cfg = STFTConfig(**kw)
    # 2 frames: shorter than the pad, reflect falls back to zeros (torch's circular pad refuses it)
    frames = [40, 25, 3, 40, 6 if kw.get("pad_mode") == "circular" else 2]
    op = RaggedSTFT(cfg, frames, dtype=torch.float64)
    alone = STFT(cfg, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(len(frames), op.l_max, dtype=torch.float64, generator=g)
    X = op.forward(x)
    Y = torch.randn(X.shape, dtype=X.dtype, generator=g) * op._frame_mask[:, None]
    y = op.inverse(Y)
    for b, t in enumerate(frames):
        L = op.lengths[b]
        own = alone.forward(x[b, :L])
        assert own.shape[-1] == t
        torch.testing.assert_close(X[b, :, :t], own, rtol=0, atol=1e-12)
        assert bool((X[b, :, t:] == 0).all())
        torch.testing.assert_close(y[b, :L], alone.inverse(Y[b, :, :t], L), rtol=0, atol=1e-12)
        assert bool((y[b, L:] == 0).all())


@pytest.fixture(scope="module")
def pieces(corpus):
    """Three real excerpts of different lengths (0.6, 1.1, 1.7 s)."""
    return [reference_magnitude(load_clip(f, s, 0.5)) for f, s in
            ((corpus[0], 0.6), (corpus[6], 1.1), (corpus[9], 1.7))]


def _padded(mags):
    t_max = max(m.shape[-1] for m in mags)
    return torch.stack([torch.nn.functional.pad(m, (0, t_max - m.shape[-1])) for m in mags])


@pytest.mark.parametrize("method", ["gla", "fgla", "agla", "admm", "dm", "raar"])
@pytest.mark.parametrize("init", ["pghi", "random"])
def test_batched_equals_one_by_one_in_double(pieces, method, init):
    kw = dict(method=method, n_iter=20, init=init, device="cpu", precision="double")
    res = invert(_padded(pieces).double(), frames=[m.shape[-1] for m in pieces], **kw)
    for b, m in enumerate(pieces):
        one = invert(m.double(), **kw)
        L = res.lengths[b]
        assert L == one.audio.shape[-1]
        err = (res.audio[b, :L] - one.audio).abs().max() / one.audio.abs().max()
        assert float(err) < 1e-5, (method, init, b, float(err))
        assert bool((res.audio[b, L:] == 0).all())
        assert abs(float(res.metrics["sc"][b]) - float(one.metrics["sc"])) < 1e-4


@pytest.mark.parametrize("method", ["gla", "fgla"])
def test_batched_single_precision_matches_within_rounding(pieces, method):
    """float32: batched FFTs round differently, so results agree to rounding, not bit for bit.
    (DM and ADMM amplify such rounding: the same item batched twice, without any padding, moves
    by up to 0.2 dB there; in double precision they agree to 1e-5, test above.)"""
    kw = dict(n_iter=40, device="cpu", method=method)
    res = invert(_padded(pieces), frames=[m.shape[-1] for m in pieces], **kw)
    for b, m in enumerate(pieces):
        one = invert(m, **kw)
        L = res.lengths[b]
        assert float((res.audio[b, :L] - one.audio).abs().max() / one.audio.abs().max()) < 2e-3
        assert abs(float(res.metrics["sc"][b]) - float(one.metrics["sc"])) < 0.05


def test_ragged_batch_refuses_methods_that_cannot(pieces):
    with pytest.raises(ValueError, match="ragged"):
        invert(_padded(pieces), frames=[m.shape[-1] for m in pieces], method="lbfgs", device="cpu")
    with pytest.raises(ValueError, match="frames"):
        invert(_padded(pieces), frames=[10, 10], method="fgla", device="cpu")


def test_mel_batch_equals_one_by_one(corpus):
    """Mel features are padded after decoding (zero magnitude, not zero log-mel)."""
    from specinv_cli.config import load_preset
    from specinv_cli.dsp.mel import MelTransform, encode

    cfg = load_preset("hifigan-22k")
    op = STFT(cfg.with_bins(80, "t"))
    mel = MelTransform(cfg.with_bins(80, "t"))
    feats = [encode(mel(op.forward(torch.from_numpy(load_clip(corpus[i], s, 0.3))).abs()), cfg)
             for i, s in ((1, 0.5), (7, 0.9))]
    t_max = max(f.shape[-1] for f in feats)
    batch = torch.stack([torch.nn.functional.pad(f, (0, t_max - f.shape[-1])) for f in feats]).double()
    kw = dict(config=cfg, method="fgla", refine=0, n_iter=15, device="cpu", precision="double")
    res = invert(batch, frames=[f.shape[-1] for f in feats], **kw)
    assert res.domain == "mel"
    for b, f in enumerate(feats):
        one = invert(f.double(), **kw)
        torch.testing.assert_close(res.audio[b, : res.lengths[b]], one.audio, rtol=1e-5, atol=1e-6)


def test_cli_batch_size_gives_the_same_files(tmp_path, capsys, corpus):
    """Five inputs of 0.5-2.5 s: --batch-size 4 (two batches) == --batch-size 1, sample for sample."""
    names = []
    for i in range(5):
        m = reference_magnitude(load_clip(corpus[i * 2], 0.5 + 0.5 * i, 0.2)).numpy()
        np.save(tmp_path / f"p{i}.npy", m)
        names.append(tmp_path / f"p{i}.npy")
    common = ["-n", "12", "--precision", "double", "--subtype", "FLOAT", "--normalize", "none", "--json"]
    rc1, out1, _ = run(capsys, "invert", *names, "-O", tmp_path / "b4", "--batch-size", "4", *common)
    rc2, out2, _ = run(capsys, "invert", *names, "-O", tmp_path / "b1", "--batch-size", "1", *common)
    assert rc1 == rc2 == 0
    assert files_in(tmp_path / "b4") == files_in(tmp_path / "b1") == [f"p{i}.wav" for i in range(5)]
    recs = [json.loads(ln) for ln in out1.splitlines()]
    assert sorted(r["batch"] for r in recs[:-1]) == [1, 4, 4, 4, 4]
    for i in range(5):
        a, _ = read_wav(tmp_path / "b4" / f"p{i}.wav")
        b, _ = read_wav(tmp_path / "b1" / f"p{i}.wav")
        assert a.shape == b.shape == ((np.load(names[i]).shape[-1] - 1) * 256,)
        assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()


def test_cpu_default_is_one_item_at_a_time(tmp_path, capsys, corpus):
    """Without --batch-size on the CPU every input runs alone: the files are --batch-size 1's."""
    names = []
    for i, secs in enumerate([1.0, 1.0, 1.5, 0.7]):
        m = reference_magnitude(load_clip(corpus[i], secs, 0.3)).numpy()
        np.save(tmp_path / f"p{i}.npy", m)
        names.append(tmp_path / f"p{i}.npy")
    common = ["-n", "12", "--subtype", "FLOAT", "--json", "--device", "cpu"]
    rc1, out1, err = run(capsys, "invert", *names, "-O", tmp_path / "d", *common)
    assert rc1 == 0, err
    rc2, _, err = run(capsys, "invert", *names, "-O", tmp_path / "b1", "--batch-size", "1", *common)
    assert rc2 == 0, err
    recs = [json.loads(line) for line in out1.splitlines()[:-1]]
    assert len(recs) == 4 and all(r["batch"] == 1 for r in recs)
    for i in range(4):
        a, _ = read_wav(tmp_path / "d" / f"p{i}.wav")
        b, _ = read_wav(tmp_path / "b1" / f"p{i}.wav")
        assert np.array_equal(a, b)


def test_one_length_batches(tmp_path, corpus):
    """With ``ragged_batches=False`` (a library choice) items of the same length run as one plain
    batch (the fused path) and others one by one; the files equal one-by-one's to float64 rounding."""
    from specinv_cli.batch.pipeline import Pipeline, Settings
    from specinv_cli.cli.progress import Reporter
    from specinv_cli.config import load_preset
    from specinv_cli.options import InversionOptions

    names = []
    for i, secs in enumerate([1.0, 1.0, 1.5, 1.0, 1.5, 0.7]):
        np.save(tmp_path / f"p{i}.npy", reference_magnitude(load_clip(corpus[i], secs, 0.3)).numpy())
        names.append(str(tmp_path / f"p{i}.npy"))
    out = {}
    for tag, size, ragged in (("d", 16, False), ("b1", 1, True)):
        (tmp_path / tag).mkdir()
        pipe = Pipeline(Settings(cfg=load_preset("default", explicit=False), subtype="FLOAT",
                                 inversion=InversionOptions(n_iter=12, precision="double"),
                                 batch_size=size, ragged_batches=ragged, output_dir=str(tmp_path / tag)),
                        Reporter(quiet=True))
        recs = [r for n in names for r in pipe.feed(n)] + list(pipe.flush())
        out[tag] = {Path(r["output"]).stem: r for r in recs}
    assert {k: v["batch"] for k, v in out["d"].items()} == {"p0": 3, "p1": 3, "p3": 3, "p2": 2, "p4": 2, "p5": 1}
    for i in range(6):
        a, _ = read_wav(tmp_path / "d" / f"p{i}.wav")
        b, _ = read_wav(tmp_path / "b1" / f"p{i}.wav")
        assert a.shape == b.shape and np.abs(a - b).max() <= 1e-6 * np.abs(b).max()


def test_one_length_queues_hold_at_most_a_batch(tmp_path):
    """Queues per length would otherwise keep every distinct-length input loaded until the end."""
    from specinv_cli.batch.pipeline import Pipeline, Settings
    from specinv_cli.cli.progress import Reporter
    from specinv_cli.config import load_preset
    from specinv_cli.options import InversionOptions

    rng = np.random.default_rng(0)
    for i in range(9):
        np.save(tmp_path / f"s{i}.npy", rng.random((129, 10 + i)).astype(np.float32))
    pipe = Pipeline(Settings(cfg=load_preset("default", explicit=False), inversion=InversionOptions(method="gla", n_iter=2),
                             batch_size=4, ragged_batches=False, output_dir=str(tmp_path / "o")), Reporter(quiet=True))
    (tmp_path / "o").mkdir()
    seen = []
    for i in range(9):
        seen += list(pipe.feed(str(tmp_path / f"s{i}.npy")))
        assert sum(map(len, pipe._queues.values())) <= 4
    seen += list(pipe.flush())
    assert sorted(r["output"] for r in seen) == sorted(str(tmp_path / "o" / f"s{i}.wav") for i in range(9))
    assert all(r["status"] == "ok" and r["batch"] == 1 for r in seen)


FAST_CONFIGS = [dict(n_fft=256, hop_length=64), dict(n_fft=256, hop_length=64, pad_mode="constant"),
                dict(n_fft=256, hop_length=64, center=False, pad=96),
                dict(n_fft=128, hop_length=32, pad_mode="circular", window="hamming")]


@pytest.mark.parametrize("kw", FAST_CONFIGS, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
@pytest.mark.parametrize("method", ["gla", "fgla", "agla", "admm", "dm", "raar"])
def test_ragged_fast_path_is_the_ragged_operator(kw, method, kernels, monkeypatch):
    """A ragged batch runs on the projector's fast path (fused kernels, or their torch twin):
    each item on its own span of the padded signal with its own envelope and padding, frames past
    its end zeroed. In float64 it gives what RaggedSTFT's own forward/inverse give (the reference),
    to rounding, for every method that takes ragged batches."""
    from specinv_cli.algorithms.registry import REGISTRY
    from specinv_cli.dsp import stft as dsp

    cfg = STFTConfig(**kw)
    frames = [40, 25, 7, 40, 12]
    op = RaggedSTFT(cfg, frames, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(len(frames), op.l_max, dtype=torch.float64, generator=g)
    mag = op.forward(x).abs()
    init = mag * torch.exp(2j * torch.pi * torch.rand(mag.shape, dtype=torch.float64, generator=g))
    proj = op.projector(mag.shape, op.l_max)
    assert proj.fast and proj.items == frames
    m = REGISTRY[method]
    fn, opts = m.load(), m.defaults()
    with dsp.jit_scope(1e12, torch.float64):
        fast = fn(mag, op, n_iter=10, init=init, length=op.l_max, **opts)
    if kernels == "jit":
        assert proj.fused()
    slow_op = RaggedSTFT(cfg, frames, dtype=torch.float64)
    monkeypatch.setattr(slow_op, "_fast_ok", lambda *a: False)
    ref = fn(mag, slow_op, n_iter=10, init=init, length=op.l_max, **opts)
    for b, L in enumerate(op.lengths):
        err = float((fast[b, :L] - ref[b, :L]).abs().max() / ref[b, :L].abs().max())
        assert err < 1e-10, (b, err)
        assert bool((fast[b, L:] == 0).all())


def test_ragged_pool_batches_close_lengths():
    """A ragged pool runs the items of closest frame counts together (padding to the longest is
    work for nothing): every item once, batches of at most batch_size, each the tightest run."""
    from types import SimpleNamespace

    from specinv_cli.batch.pipeline import Pipeline

    p = object.__new__(Pipeline)
    p.s = SimpleNamespace(batch_size=3, limit=(None,))
    lengths = [90, 10, 55, 12, 88, 11, 54, 91, 56, 30]
    q = [(SimpleNamespace(target=SimpleNamespace(mag=torch.zeros(1, 2, t))), i) for i, t in enumerate(lengths)]
    batches = []
    while q:
        batches.append(sorted(job.target.mag.shape[-1] for job, _ in p._take(q)))
    assert sorted(t for b in batches for t in b) == sorted(lengths)
    assert all(len(b) <= 3 for b in batches)
    assert batches[0] == [10, 11, 12]  # the tightest run of three first (spread 2)
    assert {tuple(b) for b in batches} >= {(54, 55, 56), (88, 90, 91)}


def test_batching_defaults_are_decided_by_the_pipeline():
    """One place decides the batching per device: CPU one item at a time, CUDA batches of any
    lengths and blocks four at a time; a given batch size batches any lengths on both."""
    from specinv_cli.batch.pipeline import DEFAULT_BATCH, DEFAULT_CPU_BATCH, batching

    assert DEFAULT_CPU_BATCH == 1 and DEFAULT_BATCH > 1
    assert batching(torch.device("cpu")) == dict(batch_size=DEFAULT_CPU_BATCH, ragged_batches=False, block_batch=1)
    assert batching(torch.device("cuda", 0)) == dict(batch_size=DEFAULT_BATCH, ragged_batches=True, block_batch=4)
    assert batching(torch.device("cpu"), 3) == dict(batch_size=3, ragged_batches=True, block_batch=1)
