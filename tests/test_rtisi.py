"""RTISI-LA on real recordings: streaming (causal with look-ahead), quality, batching."""
import pytest
import torch

from conftest import EDGE_KINDS, edge_signal, load_clip, reference_magnitude
from specinv_cli import invert
from specinv_cli.algorithms.base import Monitor
from specinv_cli.algorithms.rtisi import asymmetric_windows, rtisi_la
from specinv_cli.config import STFTConfig
from specinv_cli.dsp.stft import STFT, get_window
from specinv_cli.dsp.metrics import sc


@pytest.fixture(scope="module")
def speech(corpus):
    return load_clip("speech_03_en_m_librivox_austen", seconds=3.0)


@pytest.fixture(scope="module")
def op():
    return STFT(STFTConfig())


@pytest.mark.parametrize("look_ahead", [3, 1, 0])
def test_output_does_not_depend_on_frames_beyond_look_ahead(corpus, op, look_ahead):
    """Samples covered only by frames < k depend only on frames < k + look_ahead."""
    x = load_clip("music_01_classical_guitar", seconds=2.0)
    mag = reference_magnitude(x)
    k = 40
    changed = mag.clone()
    changed[:, k + look_ahead:] = reference_magnitude(load_clip("speech_male_hts1a", seconds=2.0))[:, k + look_ahead:]
    y1 = rtisi_la(mag, op, n_iter=8, length=len(x), look_ahead=look_ahead)
    y2 = rtisi_la(changed, op, n_iter=8, length=len(x), look_ahead=look_ahead)
    fixed = k * op.hop - op.n_fft // 2  # frame k (centred on k * hop) starts here
    assert torch.equal(y1[:fixed], y2[:fixed])
    # ... and the change does reach the samples of the later frames.
    assert (y1[fixed:] - y2[fixed:]).abs().max() > 1e-3


def test_speech_quality_beats_gla(speech, op):
    mag = reference_magnitude(speech)
    r = invert(mag, method="rtisi-la", n_iter=40, length=len(speech), device="cpu", init="random")
    # 40 updates per frame (10 per step x 4 steps); GLA gets 100 iterations here.
    r_gla = invert(mag, method="gla", n_iter=100, length=len(speech), device="cpu", init="random")
    assert float(r.metrics["sc"]) < -22.0
    assert float(r.metrics["sc"]) < float(r_gla.metrics["sc"])


def test_iterations_improve_on_single_pass(speech, op):
    mag = reference_magnitude(speech[:44100])
    one = sc(op.forward(rtisi_la(mag, op, n_iter=0, length=44100)).abs(), mag)
    ten = sc(op.forward(rtisi_la(mag, op, n_iter=40, length=44100)).abs(), mag)
    # One update per step gives -18.5 ... -18.7 dB, 40 give -22.5 ... -23.6 dB over seven FFT/kernel
    # code paths of one AMD EPYC (kernels on and off, MKL's Intel AVX-512 / AVX2 / SSE4.2 paths,
    # ATen default, numba without FMA): a gain of 3.7 ... 5.1 dB. Asking for 2 dB keeps 1.7 dB
    # of margin (more than the 1.3 dB spread) and still fails when the iterations do not help.
    assert float(ten) < float(one) - 2.0


def test_true_phase_with_frame_init_is_kept(speech, op):
    x = torch.from_numpy(speech[:22050])
    spec = op.forward(x)
    y = rtisi_la(spec.abs(), op, n_iter=12, init=spec, length=22050, frame_init="init")
    est = op.forward(y).abs()
    # Interior frames: the stream does not know that the last frames hang over a reflected
    # end (torch.stft's padding), so those keep a larger error.
    assert float(sc(est[:, 4:-4], spec.abs()[:, 4:-4])) < -38.0
    assert float(sc(est, spec.abs())) < -30.0


def test_batch_equals_one_by_one(corpus, op):
    a = reference_magnitude(load_clip("speech_female_hts2a", seconds=1.0))
    b = reference_magnitude(load_clip("music_tabla_loop", seconds=1.0))
    batch = torch.stack([torch.stack([a, b]), torch.stack([b, a])])  # [2, 2, F, T]
    yb = rtisi_la(batch, op, n_iter=5, length=22050)
    assert yb.shape == (2, 2, 22050)
    for i, m in enumerate([a, b]):
        torch.testing.assert_close(yb[0, i], rtisi_la(m, op, n_iter=5, length=22050), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(yb[1, 0], yb[0, 1], rtol=1e-4, atol=1e-5)


def test_monitor_sees_progress_and_float64(speech):
    op64 = STFT(STFTConfig(), dtype=torch.float64)
    mag = reference_magnitude(speech[:22050]).to(torch.float64)
    seen = []
    mon = Monitor(mag, n_iter=4, eval_every=1, callback=lambda p: seen.append((p.iteration, float(p.metrics["sc"]))))
    y = rtisi_la(mag, op64, n_iter=4, length=22050, monitor=mon)
    assert y.dtype == torch.float64
    assert [i for i, _ in seen] == [1, 2, 3, 4]
    assert seen[-1][1] < seen[0][1]  # the partial estimate fills in as frames are committed


@pytest.mark.parametrize("kind", EDGE_KINDS)
def test_edge_signals_are_finite(op, kind):
    n = 8192
    x = edge_signal(kind, n)
    y = rtisi_la(op.forward(x).abs(), op, n_iter=3, length=n)
    assert torch.isfinite(y).all()
    if kind == "silence":
        assert y.abs().max() == 0


def test_asymmetric_window_mirrors_the_partial_envelope():
    w = get_window("hann", 1024, dtype=torch.float64)
    a_first, a_later = asymmetric_windows(w, 256)
    # later iterations: envelope of the frame and the earlier ones is 1 on the first hop and
    # decays; its mirror rises from 0 and is 1 on the last hop.
    assert float(a_later[0]) == pytest.approx(0.0, abs=1e-12)
    assert torch.allclose(a_later[-255:], torch.ones(255, dtype=torch.float64))
    assert float(a_first[:256].abs().max()) < 1e-12  # empty new frame: nothing known before hop 1
    assert bool((a_first <= a_later + 1e-12).all())


def test_other_framing(corpus):
    cfg = STFTConfig(n_fft=512, hop_length=128, win_length=400, window="hamming", center=False)
    op = STFT(cfg)
    x = torch.from_numpy(load_clip("speech_male_hts1a", seconds=1.0))
    mag = op.forward(x).abs()
    length = op.default_length(mag.shape[-1])
    y = rtisi_la(mag, op, n_iter=40, length=length)
    assert float(sc(op.forward(y).abs(), mag)) < -15.0
