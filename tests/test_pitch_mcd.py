"""The pitch metrics (torchcrepe: F0 RMSE, periodicity RMSE, V/UV F1) and the mel-cepstral
distortion, on 2.5 s of two corpus speech clips: the best value for identical signals, the right
direction and a plausible size for known degradations, reference properties (a semitone is 100
cents; the fast mel-cepstrum equals SPTK's freqt recursion written out), and clean failures.

Values measured when the bounds were set (speech_04 / speech_02, noise seed 0):

========================  =============  =============  =============
metric                    20 dB SNR      10 dB SNR      low-pass 4 kHz
========================  =============  =============  =============
f0_rmse (cents)           1.60 / 1.04    2.61 / 3.88    0.31 / 2.38
periodicity               0.060 / 0.060  0.066 / 0.069  0.010 / 0.009
vuv_f1                    0.980 / 0.972  0.967 / 0.967  1.000 / 1.000
MCD (dB)                  10.73 / 10.69  13.32 / 13.17  7.22 / 7.78
========================  =============  =============  =============

A semitone up (a harmonic glide, 140-220 Hz): f0_rmse 99.9 cents (tiny), 100.2 (full).
A 50 ms delay: MCD 8.8 dB aligned as is, 0.4 dB with DTW.
"""
from __future__ import annotations

import importlib
import math
import sys

import numpy as np
import pytest
import scipy.signal

from conftest import load_clip
from specinv_cli.companion import mcd as M

#: (clip, seconds, offset): two talkers, 2.5 s each
CLIPS = [("speech_04_en_m_cmu_arctic_awb_a0007", 2.5, 0.5), ("speech_02_en_f_codec2_harvard", 2.5, 1.0)]
SR = 22050


def _noisy(x: np.ndarray, snr_db: float) -> np.ndarray:
    noise = np.random.default_rng(0).standard_normal(len(x))
    return x + noise * math.sqrt(np.mean(x ** 2) / np.mean(noise ** 2)) * 10 ** (-snr_db / 20)


def _lowpass(x: np.ndarray, sr: int) -> np.ndarray:
    return scipy.signal.sosfiltfilt(scipy.signal.butter(8, 4000, fs=sr, output="sos"), x)


@pytest.fixture(scope="module", params=CLIPS, ids=lambda c: c[0][:9])
def versions(request, corpus):
    """A clip and its degradations, float64 at 22.05 kHz."""
    x = load_clip(*request.param).astype(np.float64)
    return {"clean": x, "20dB": _noisy(x, 20), "10dB": _noisy(x, 10), "lowpass": _lowpass(x, SR)}


@pytest.fixture(scope="module")
def speech(corpus):
    """The first clip alone, for the checks that need speech but not two talkers."""
    return load_clip(*CLIPS[0]).astype(np.float64)


def _glide(seconds: float, ratio: float = 1.0, sr: int = SR) -> np.ndarray:
    """A harmonic tone (10 partials, 1/k) gliding 140 -> 220 Hz, its pitch times ``ratio``."""
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum((140 + 40 * t) * ratio) / sr
    return 0.3 * sum(np.sin(k * phase) / k for k in range(1, 11))


# --- pitch ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def P():
    pytest.importorskip("torchcrepe")
    from specinv_cli.companion import pitch

    return pitch


@pytest.fixture(scope="module")
def tracks(P, versions):
    return {k: P.pitch_track(v, SR) for k, v in versions.items()}


def test_pitch_identical_is_best(P, speech, capsys):
    x = speech
    # deterministic decoding (no dither): a signal against itself is exact, not merely close
    assert P.f0_metrics(x, x, SR) == {"f0_rmse": 0.0, "periodicity": 0.0, "vuv_f1": 1.0}
    assert capsys.readouterr().out == ""          # no progress bars or prints


def test_pitch_track_shapes_and_speech(P, versions, tracks):
    f0, per = tracks["clean"]
    # T = 1 + L16 // hop, hop = round(16000 * 256 / 22050) = 186 samples at 16 kHz
    n16 = math.ceil(len(versions["clean"]) * 16000 / SR)
    assert f0.shape == per.shape == (1 + n16 // 186,)
    assert np.all((per >= 0) & (per <= 1)) and np.all((f0 >= P.FMIN * 0.9) & (f0 <= P.FMAX * 1.1))
    v = P.voiced(f0, per)
    # speech: voiced about half the time (measured 0.58 and 0.50), at a speaking pitch
    assert 0.3 < v.mean() < 0.8
    assert 80 < np.median(f0[v]) < 250


def test_pitch_degradations(P, tracks):
    m = {k: P.compare_tracks(tracks[k], tracks["clean"]) for k in ("20dB", "10dB", "lowpass")}
    # noise: every metric worse at 10 dB than at 20 dB, and both worse than clean (0, 0, 1). F1 is
    # quantised by single frames (1/216 ~ 0.005), so its order between 20 and 10 dB is not strict
    assert 0 < m["20dB"]["f0_rmse"] < m["10dB"]["f0_rmse"]
    assert 0 < m["20dB"]["periodicity"] < m["10dB"]["periodicity"]
    assert m["10dB"]["vuv_f1"] <= m["20dB"]["vuv_f1"] <= 1 and m["10dB"]["vuv_f1"] < 1
    # plausible sizes (measured 1.0-3.9 cents, 0.06-0.07, F1 0.97-0.98): a few cents, not an octave
    assert 0.3 < m["20dB"]["f0_rmse"] < 8 and 1 < m["10dB"]["f0_rmse"] < 12
    assert 0.02 < m["20dB"]["periodicity"] < 0.12 and 0.04 < m["10dB"]["periodicity"] < 0.15
    assert 0.93 < m["20dB"]["vuv_f1"] and 0.9 < m["10dB"]["vuv_f1"]
    # a 4 kHz low-pass keeps the harmonics CREPE hears: a small change, less than 20 dB noise's
    lp = m["lowpass"]
    assert 0 < lp["f0_rmse"] < 6 and 0 < lp["periodicity"] < min(0.03, m["20dB"]["periodicity"])
    assert lp["vuv_f1"] >= 0.97


@pytest.mark.parametrize("model", ["tiny", "full"])
def test_pitch_semitone_is_100_cents(P, model):
    # CREPE's bins are 20 cents apart; the local average resolves the glide to within 9 cents
    # (median 3) and the two tones' errors are alike, so their difference is 100 cents to within
    # a few (measured 99.9 tiny, 100.2 full). ``full`` is slow on a CPU: 0.3 s of tone
    seconds = 2.0 if model == "tiny" else 0.3
    a, b = _glide(seconds), _glide(seconds, 2 ** (1 / 12))
    m = P.f0_metrics(b, a, SR, model=model)
    assert abs(m["f0_rmse"] - 100) < 5
    assert m["vuv_f1"] == 1.0 and m["periodicity"] < 0.15


def test_pitch_model_loaded_once(P, monkeypatch):
    import torch

    loads = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(k) or real(*a, **k))
    x = _glide(0.3)
    P.pitch_track(x, SR)
    P.pitch_track(x, SR)
    assert len(loads) <= 1 and all(k.get("weights_only") is True for k in loads)


def test_pitch_undefined_values_are_nan(P, speech):
    x = speech[:SR]
    silent = np.zeros_like(x)
    m = P.f0_metrics(silent, x, SR)                # no voiced frame in the estimate
    assert math.isnan(m["f0_rmse"]) and m["vuv_f1"] == 0.0 and m["periodicity"] > 0
    m = P.f0_metrics(silent, silent, SR)           # none anywhere
    assert math.isnan(m["f0_rmse"]) and math.isnan(m["vuv_f1"]) and m["periodicity"] == 0.0


def test_voiced_hysteresis(P):
    # runs above 0.19 are kept only where they reach 0.31: the first run (peak 0.25) goes
    per = np.array([0, .25, .25, 0, .25, .4, .25, 0])
    f0 = np.full(per.shape, 200.0)
    assert P.voiced(f0, per).tolist() == [False, False, False, False, True, True, True, False]
    # a frame far off the track's pitch needs more than 0.19 (two octaves off: 0.2 z^2 more)
    f0 = np.array([200.0] * 20 + [800.0])
    per = np.full(21, 0.5)
    v = P.voiced(f0, per)
    assert v[:20].all() and not v[20]


def test_pitch_bad_inputs(P):
    x = _glide(0.2)
    with pytest.raises(ValueError, match="mono"):
        P.pitch_track(np.stack([x, x]), SR)
    with pytest.raises(ValueError, match="model"):
        P.pitch_track(x, SR, model="large")
    with pytest.raises(ValueError, match="hop_seconds"):
        P.pitch_track(x, SR, hop_seconds=0)
    with pytest.raises(ValueError, match="fmin"):
        P.f0_metrics(x, x, SR, fmin=600.0, fmax=500.0)
    with pytest.raises(ValueError, match="non-finite"):
        P.f0_metrics(x, np.full_like(x, np.nan), SR)


def test_without_torchcrepe(monkeypatch):
    import specinv_cli.companion as companion

    monkeypatch.setitem(sys.modules, "torchcrepe", None)     # `import torchcrepe` now fails
    monkeypatch.delitem(sys.modules, "specinv_cli.companion.pitch", raising=False)
    monkeypatch.setattr(companion, "pitch", getattr(companion, "pitch", None), raising=False)
    pitch = importlib.import_module("specinv_cli.companion.pitch")   # imports all the same
    x = _glide(0.2)
    with pytest.raises(ImportError):
        pitch.pitch_track(x, SR)
    with pytest.raises(ImportError):
        pitch.f0_metrics(x, x, SR)
    assert M.mcd(x, x, SR) == 0.0                     # the MCD needs no torchcrepe at all


# --- MCD ------------------------------------------------------------------------------------
def _freqt_plain(c, order: int, alpha: float) -> np.ndarray:
    """SPTK's freqt: the Oppenheim-Johnson all-pass network, fed c[n] from the highest n down."""
    b = 1 - alpha * alpha
    g = [0.0] * (order + 1)
    for n in range(len(c) - 1, -1, -1):
        prev = list(g)
        g[0] = c[n] + alpha * prev[0]
        if order >= 1:
            g[1] = b * prev[0] + alpha * prev[1]
        for m in range(2, order + 1):
            g[m] = prev[m - 1] + alpha * (prev[m] - g[m - 1])
    return np.array(g)


@pytest.mark.parametrize("alpha", [0.0, None, -0.3])
def test_mel_cepstrum_equals_plain_freqt(speech, alpha):
    x = speech
    order = 24
    c_fast = M.mel_cepstrum(x, SR, order=order, alpha=alpha)
    a = M.default_alpha(SR) if alpha is None else alpha
    win, hop, n_fft = M.framing(SR)
    assert (win, hop, n_fft) == (551, 110, 1024) and c_fast.shape == (1 + len(x) // hop, order + 1)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    padded = np.concatenate([np.zeros(win // 2), x, np.zeros(win)])
    floor = np.max(np.abs(x)) * window.sum() * 10 ** (-M.FLOOR_DB / 20)
    K = n_fft // 2 + 1
    n, k = np.arange(K), np.arange(n_fft)
    for t in (0, 40, 111, len(c_fast) // 2, len(c_fast) - 1):
        logmag = np.log(np.maximum(np.abs(np.fft.rfft(padded[t * hop:t * hop + win] * window, n_fft)), floor))
        full = np.concatenate([logmag, logmag[-2:0:-1]])          # the even log spectrum, N points
        r = np.cos(2 * np.pi * np.outer(n, k) / n_fft) @ full / n_fft   # real cepstrum by its sum
        c = np.concatenate([[r[0]], 2 * r[1:K - 1], [r[K - 1]]])        # SPTK's one-sided form
        # both sides are float64 sums of ~10^3 terms of |log magnitude| < 30: rounding ~1e-11;
        # a wrong convention (the factor 2, alpha's sign, the frame's position) errs by > 1e-2
        np.testing.assert_allclose(c_fast[t], _freqt_plain(c, order, a), rtol=0, atol=1e-9)


def test_mcd_identical_and_gain(speech):
    x = speech
    assert M.mcd(x, x, SR) == 0.0
    # c_0 is left out and the floor follows the signal's level: a gain changes only c_0, up to
    # rounding of the logs (~1e-15 of values ~10, summed over 25 coefficients)
    assert M.mcd(0.3 * x, x, SR) < 1e-9
    assert M.mcd(x, 4.0 * x, SR, dtw=True) < 1e-9


def test_mcd_degradations(versions):
    x = versions["clean"]
    m = {k: M.mcd(v, x, SR) for k, v in versions.items() if k != "clean"}
    # white noise fills the valleys and the weak high band: 10 dB more noise, 2.5 dB more MCD
    # (measured 10.7 -> 13.3 and 10.7 -> 13.2)
    assert 8 < m["20dB"] < 13.5 and 10.5 < m["10dB"] < 16
    assert m["10dB"] - m["20dB"] > 1.5
    # a 4 kHz low-pass empties the top third of the warped axis (measured 7.2, 7.8)
    assert 5 < m["lowpass"] < 10


def test_mcd_dtw_undoes_a_delay(speech):
    x = speech
    d = int(0.05 * SR)                                      # 50 ms, 10 frames
    delayed = np.concatenate([np.zeros(d), x[:-d]])
    plain, warped = M.mcd(delayed, x, SR), M.mcd(delayed, x, SR, dtw=True)
    # measured 8.8 and 0.4 dB: the residue is the first 50 ms, which the delayed copy lacks
    assert plain > 5 and warped < 1.5 and warped < 0.2 * plain
    # lengths may differ with DTW: the delayed copy kept whole
    assert M.mcd(np.concatenate([np.zeros(d), x]), x, SR, dtw=True) < 1.5
    # the band: a path held within 20 ms of the diagonal cannot undo 50 ms
    assert M.mcd(delayed, x, SR, dtw=True, dtw_radius=0.02) > 2 * warped


def test_mcd_silent_reference_is_nan(speech):
    x = speech
    assert math.isnan(M.mcd(x, np.zeros_like(x), SR))


def test_default_alpha():
    assert [M.default_alpha(r) for r in (16000, 22050, 24000, 44100, 48000)] == [0.42, 0.455, 0.466, 0.544, 0.554]
    # other rates: the least-squares fit to the mel scale, which rises with the rate
    rates = [11025, 32000, 88200, 96000]
    alphas = [M.default_alpha(r) for r in rates]
    assert alphas == sorted(alphas) and 0.35 < alphas[0] < 0.42 and 0.466 < alphas[1] < 0.544 and alphas[-1] < 0.7


def test_mcd_bad_inputs():
    x = _glide(0.2)
    with pytest.raises(ValueError, match="mono"):
        M.mcd(np.stack([x, x]), x, SR)
    with pytest.raises(ValueError, match="order"):
        M.mel_cepstrum(x, SR, order=0)
    with pytest.raises(ValueError, match="alpha"):
        M.mel_cepstrum(x, SR, alpha=1.0)
    with pytest.raises(ValueError, match="sample_rate"):
        M.default_alpha(0)
    with pytest.raises(ValueError, match="empty"):
        M.mcd(x, np.zeros(0), SR)
