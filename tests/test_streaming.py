"""Streaming inversion (StreamingInverter, the online framework): chunk invariance, causality,
latency, the offline rtisi-la being the stream, bounded state, quality on real recordings."""
import numpy as np
import pytest
import torch

from conftest import load_clip, reference_magnitude
from specinv_cli.algorithms.online import OnlineStream, latency_samples
from specinv_cli.algorithms.rtisi import rtisi_la
from specinv_cli.config import STFTConfig, load_preset
from specinv_cli.dsp.metrics import sc
from specinv_cli.dsp.stft import STFT
from specinv_cli.streaming import DEFAULT_STREAM_METHOD, STREAM_METHODS, StreamingInverter

METHODS = list(STREAM_METHODS)
SPEECH = "speech_03_en_m_librivox_austen"
MUSIC = "music_01_classical_guitar"


def stream(mag, chunk, **kw):
    inv = StreamingInverter("default", **kw)
    T = mag.shape[-1]
    outs = [inv.push(mag[..., i:i + chunk]) for i in range(0, T, chunk)]
    return torch.cat(outs + [inv.flush()], dim=-1)


@pytest.fixture(scope="module")
def speech_mag(corpus):
    return reference_magnitude(load_clip(SPEECH, seconds=1.5, offset=0.5))


@pytest.mark.parametrize("method", METHODS)
def test_chunks_of_1_7_and_all_give_the_same_samples(speech_mag, method):
    """Each frame is one step of the same operations, whatever the push sizes: bit for bit."""
    T = speech_mag.shape[-1]
    one = stream(speech_mag, 1, method=method)
    assert one.shape == ((T - 1) * 256,)
    assert torch.equal(one, stream(speech_mag, 7, method=method))
    assert torch.equal(one, stream(speech_mag, T, method=method))
    assert torch.isfinite(one).all() and float(one.abs().max()) > 0.01


@pytest.mark.parametrize("method,look_ahead", [("fgla", 3), ("fgla", 1), ("rtisi-la", 2), ("rtpghi", 0),
                                               ("rtpghi", 1), ("raar", 2), ("dm", 0)])
def test_samples_do_not_depend_on_frames_beyond_the_look_ahead(corpus, method, look_ahead):
    """When frame j - 1 has arrived, the samples before (j - look_ahead) hop - pad are final:
    changing frames j, j + 1, ... leaves them as they were, and does change later ones."""
    mag = reference_magnitude(load_clip(MUSIC, seconds=1.5))
    other = reference_magnitude(load_clip(SPEECH, seconds=1.5))
    j = 40
    changed = mag.clone()
    changed[:, j:] = other[:, j:]
    kw = dict(method=method, look_ahead=look_ahead)
    y1, y2 = stream(mag, 5, **kw), stream(changed, 3, **kw)
    fixed = (j - look_ahead) * 256 - 512
    assert torch.equal(y1[:fixed], y2[:fixed])
    assert float((y1[fixed:] - y2[fixed:]).abs().max()) > 1e-3
    # and push() hands out exactly the final samples: after frames < j, fixed of them
    inv = StreamingInverter("default", **kw)
    assert inv.push(mag[:, :j]).shape == (fixed,)


def test_offline_rtisi_la_is_the_stream(speech_mag):
    """``-m rtisi-la`` and the streaming rtisi-la share one implementation (issue: one code)."""
    op = STFT(STFTConfig())
    for la, n in ((3, 8), (1, 5), (0, 2), (3, 0)):  # n 0: one iteration a step, as offline
        off = rtisi_la(speech_mag, op, n_iter=n, look_ahead=la)
        assert torch.equal(off, stream(speech_mag, 4, method="rtisi-la", look_ahead=la, n_iter=n))


def test_latency_figures_and_look_ahead_for_a_budget():
    """Algorithmic latency n_fft + (LA - 1) hop: at 22.05 kHz, n_fft 1024, hop 256."""
    got = {la: StreamingInverter.latency_for("default", "fgla", la) for la in (0, 1, 3, 7)}
    assert got == pytest.approx({0: 768 / 22.05, 1: 1024 / 22.05, 3: 1536 / 22.05, 7: 2560 / 22.05})
    inv = StreamingInverter("default", method="fgla", look_ahead=5)
    assert inv.latency_samples == latency_samples(1024, 256, 5) == 2048
    assert StreamingInverter.look_ahead_for(100.0, "default") == 5  # 92.9 ms; 6 would be 104.5 ms
    assert StreamingInverter.look_ahead_for(92.8, "default") == 4  # 5 is 92.88 ms
    assert StreamingInverter.look_ahead_for(1000.0, "default", "rtpghi") == 1  # rtpghi has at most 1
    with pytest.raises(ValueError, match="least latency is 34.8 ms"):
        StreamingInverter.look_ahead_for(30.0, "default")
    for bad in (float("inf"), float("nan"), -1.0):
        with pytest.raises(ValueError, match="finite number of milliseconds"):
            StreamingInverter.look_ahead_for(bad, "default")


def test_streams_in_a_batch_are_independent(corpus):
    a = reference_magnitude(load_clip(SPEECH, seconds=1.0))
    b = reference_magnitude(load_clip(MUSIC, seconds=1.0))
    both = stream(torch.stack([a, b]), 6)
    assert both.shape == (2, (a.shape[-1] - 1) * 256)
    for i, m in enumerate((a, b)):
        one = stream(m, 6)  # batched FFTs may round differently: float32 rounding of the scale
        torch.testing.assert_close(both[i], one, rtol=0, atol=2e-5 * float(one.abs().max()))


def test_state_does_not_grow_with_the_stream(corpus):
    """Memory is independent of how long the stream has run: the tensors the inverter holds
    (engine, RTPGHI, pending frames) weigh the same after 40 and after 1000 frames."""
    mag = reference_magnitude(load_clip(MUSIC, seconds=12.0))
    inv = StreamingInverter("default")

    def held(obj, seen=None):
        seen = set() if seen is None else seen
        if id(obj) in seen:
            return 0
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            return obj.untyped_storage().nbytes()
        if isinstance(obj, np.ndarray):
            return int(obj.nbytes)
        if isinstance(obj, dict):
            return sum(held(v, seen) for v in obj.values())
        if isinstance(obj, (list, tuple)):
            return sum(held(v, seen) for v in obj)
        if hasattr(obj, "__dict__") and type(obj).__module__.startswith("specinv_cli"):
            return held(vars(obj), seen)
        return 0

    inv.push(mag[:, :40])
    early = held(inv)
    inv.push(mag[:, 40:1000])
    assert held(inv) == early > 0


def test_bad_frames_and_calls_are_refused():
    inv = StreamingInverter("default")
    with pytest.raises(ValueError, match=r"\[\.\.\., 513, k\]"):
        inv.push(torch.ones(80, 3))
    with pytest.raises(ValueError, match="NaN"):
        inv.push(torch.full((513, 2), float("nan")))
    with pytest.raises(ValueError, match=">= 0"):
        inv.push(-torch.ones(513, 2))
    inv.push(torch.ones(2, 513, 3))
    with pytest.raises(ValueError, match="leading shape"):
        inv.push(torch.ones(513, 3))
    inv.flush()
    with pytest.raises(RuntimeError):
        inv.push(torch.ones(2, 513, 1))
    with pytest.raises(ValueError, match="unknown streaming method"):
        StreamingInverter("default", method="lbfgs")
    with pytest.raises(ValueError, match="at most 1"):
        StreamingInverter("default", method="rtpghi", look_ahead=2)
    with pytest.raises(ValueError, match="look_ahead"):
        StreamingInverter("default", look_ahead=-1)


def test_short_and_empty_streams(speech_mag):
    assert StreamingInverter("default").flush().shape == (0,)
    for T in (1, 2, 3):
        y = stream(speech_mag[:, :T], 1)
        assert y.shape == ((T - 1) * 256,) and torch.isfinite(y).all()


def test_hifigan_framing_and_float64(corpus):
    """Uncentred frames with explicit padding (HiFi-GAN): T hop samples; float64 runs too."""
    cfg = STFTConfig(n_fft=1024, hop_length=256, center=False, pad=384, pad_mode="reflect")
    x = torch.from_numpy(load_clip(SPEECH, seconds=1.0))
    mag = STFT(cfg).forward(x).abs()
    inv = StreamingInverter(cfg, dtype=torch.float64)
    y = torch.cat([inv.push(mag.double()), inv.flush()])
    assert y.dtype == torch.float64 and y.shape == (mag.shape[-1] * 256,)
    assert float(sc(STFT(cfg, dtype=torch.float64).forward(y).abs(), mag.double())) < -15.0


def test_mel_features_stream_like_magnitudes(corpus):
    """A mel preset's features go through the same path (mel -> linear per frame): the same
    samples whatever the chunks, and a mel close to the target."""
    from specinv_cli.dsp.mel import MelTransform, encode

    cfg = load_preset("hifigan-22k")
    op = STFT(cfg)
    x = torch.from_numpy(load_clip(SPEECH, seconds=1.0))
    mel = MelTransform(cfg)(op.forward(x).abs())
    feats = encode(mel, cfg)
    inv = StreamingInverter(cfg)
    assert inv.n_bins == 80 and inv.input_kind == "mel-features"
    a = torch.cat([inv.push(feats[:, :5]), inv.push(feats[:, 5:]), inv.flush()])
    inv = StreamingInverter(cfg)
    b = torch.cat([inv.push(feats[:, i:i + 1]) for i in range(feats.shape[-1])] + [inv.flush()])
    assert torch.equal(a, b)
    got = MelTransform(cfg)(op.forward(a).abs())[:, :mel.shape[-1]]
    assert float(sc(got, mel)) < -12.0


def test_default_beats_rtisi_la_at_the_same_latency_and_compute(corpus):
    """The default (online FGLA from RTPGHI) against streaming RTISI-LA at look-ahead 3
    (69.7 ms) and 8 updates per frame, on whole clips: two speech clips, the tabla and the
    guitar (the corpus' worst clip; per-clip gains in benchmarks/results/streaming.json, where
    the corpus median is above 3 dB). Asked, with a margin: a median above 2 dB and no clip
    more than 1.5 dB worse."""
    gains = []
    op = STFT(STFTConfig())
    for name in ("speech_female_hts2a", SPEECH, "music_tabla_loop", MUSIC):
        mag = reference_magnitude(load_clip(name))
        got = {}
        for method in (DEFAULT_STREAM_METHOD, "rtisi-la"):
            y = stream(mag, 16, method=method, look_ahead=3, n_iter=8)
            got[method] = float(sc(op.forward(y).abs()[:, :mag.shape[-1]], mag))
        gains.append(got["rtisi-la"] - got[DEFAULT_STREAM_METHOD])
    gains.sort()
    assert (gains[1] + gains[2]) / 2 > 2.0 and gains[0] > -1.5, gains


def test_online_rules_run_on_the_block(speech_mag):
    """Each rule is a different algorithm: the same frames give different audio, all finite."""
    op = STFT(STFTConfig())
    outs = {}
    for rule in ("gla", "fgla", "raar", "dm"):
        s = OnlineStream(op, look_ahead=2, iterations=2, rule=rule)
        y = torch.cat([s.step(speech_mag[None, :, t]) for t in range(speech_mag.shape[-1])] + [s.flush()], -1)
        assert torch.isfinite(y).all()
        outs[rule] = y
    assert len({tuple(v[0, 2000:2010].tolist()) for v in outs.values()}) == 4
    with pytest.raises(ValueError, match="rule"):
        OnlineStream(op, rule="admm")


@pytest.mark.parametrize("rule,look_ahead,iterations", [("gla", 2, 3), ("fgla", 2, 3), ("gla", 0, 0)])
def test_block_kernels_equal_their_torch_twin_in_float64(speech_mag, rule, look_ahead, iterations):
    """The numba kernels of a gla/fgla step (block_enter, block_frames, block_impose,
    block_commit) against the torch code of the same step, in double precision: from the same
    state (a stream 30 frames in, at a few points), one step each way; also the step without
    iterations (RTPGHI's stream). (Over a whole stream the online iterations, like any
    non-convex iteration, carry rounding differences on; one step does not.)"""
    import copy

    from specinv_cli.dsp.stft import jit_ready

    if not jit_ready(torch.float64):
        pytest.skip("numba kernels unavailable (SPECINV_JIT=0)")
    op = STFT(STFTConfig(), dtype=torch.float64)
    mag = speech_mag.double()[None]
    phase = torch.exp(1j * torch.linspace(0, 50, mag.shape[1], dtype=torch.float64))[None]
    s = OnlineStream(op, look_ahead=look_ahead, iterations=iterations, rule=rule, alpha=0.9)
    s._fused = False
    for t in range(mag.shape[-1] - 1):
        s.step(mag[:, :, t], phase if t % 3 else None)
        if t in (30, 61, 100):
            got = {}
            for fused in (True, False):
                c = copy.deepcopy(s)
                c._fused = fused
                y = c.step(mag[:, :, t + 1], phase if t % 2 else None)
                assert (c._np is not None) == fused  # the kernels ran (their buffers' views) or not
                aux = c._Ab if c._Ab is not None else c._Xb
                got[fused] = (y, c.X.clone(), c.acc.clone(), aux.narrow(1, c._head, c.K).clone())
            for a, b in zip(got[True], got[False]):
                assert float((a - b).abs().max()) <= 1e-12 * float(b.abs().max()), t


def test_mel_nnls_kernel_equals_to_linear_frame_by_frame(corpus):
    """mel -> linear per frame: the numba kernel (banded filterbank) against the torch twin,
    MelTransform.to_linear on each column, in float64; both for a power-1 and a power-2 mel."""
    from specinv_cli.dsp.mel import MelTransform
    from specinv_cli.dsp.stft import jit_ready

    if not jit_ready(torch.float64):
        pytest.skip("numba kernels unavailable (SPECINV_JIT=0)")
    x = torch.from_numpy(load_clip(SPEECH, seconds=0.5)).double()
    for cfg in (load_preset("hifigan-22k"), load_preset("librosa")):  # mel_power 1 and 2
        op = STFT(cfg, dtype=torch.float64)
        mt = MelTransform(cfg, dtype=torch.float64)
        mel = mt(op.forward(x).abs())[:, :12]
        fast = mt.to_linear_frames(mel, 40)
        slow = torch.cat([mt.to_linear(mel[:, t:t + 1], 40) for t in range(mel.shape[-1])], dim=-1)
        assert fast.shape == slow.shape == (op.n_freqs, 12)
        assert float((fast - slow).abs().max()) <= 1e-10 * float(slow.abs().max())
        assert float(slow.abs().max()) > 0
