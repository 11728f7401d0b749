"""PESQ, STOI, ViSQOL and DNSMOS (companion.perceptual, the [eval] extra): the packages' own values,
the best value for identical signals, the right direction and a plausible size for known
degradations, a note when a package is missing, and no network at all."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

from conftest import load_clip
from specinv_cli.companion import perceptual as P
from specinv_cli.dsp.resample import resample

SR = 22050
pytest.importorskip("pesq")
pytest.importorskip("pystoi")
pytest.importorskip("visqol")
pytest.importorskip("speechmos")


@pytest.fixture(scope="module")
def signals(corpus):
    """A 3 s speech excerpt, with white noise at 20 and 10 dB SNR and low-passed at 4 kHz."""
    import scipy.signal as ss

    x = load_clip("speech_04_en_m_cmu_arctic_awb_a0007", 3.0, 0.5).astype(np.float64)
    rng = np.random.default_rng(0)

    def noisy(snr_db):
        n = rng.standard_normal(len(x))
        return x + n * np.sqrt(np.mean(x ** 2) / np.mean(n ** 2) / 10 ** (snr_db / 10))

    lp = ss.sosfiltfilt(ss.butter(8, 4000, fs=SR, output="sos"), x)
    return {"clean": x, "20dB": noisy(20), "10dB": noisy(10), "lp4k": lp}


def test_pesq_and_stoi_are_the_packages_called_directly(signals):
    from pesq import pesq
    from pystoi import stoi

    x, y = signals["clean"], signals["20dB"]
    r16 = resample(x, SR, 16000).astype(np.float64)
    e16 = resample(y, SR, 16000).astype(np.float64)
    assert P.pesq_wb(y, x, SR) == pesq(16000, r16, e16, "wb")           # resampled as documented
    assert P.pesq_wb(e16, r16, 16000) == pesq(16000, r16, e16, "wb")    # at 16 kHz: nothing between
    assert P.stoi(y, x, SR) == stoi(x, y, SR, extended=False)


#: metric -> (function, best value for identical signals, [lo, hi] at 20 dB, least drop 20 -> 10 dB,
#: [lo, hi] low-passed). Measured on this excerpt (2026-12-02): PESQ 4.644 / 1.507 / 1.092 / 4.229;
#: STOI 1.0 / 0.990 / 0.929 / 0.9994; ViSQOL speech 5.0 / 4.09 / 3.06 / 4.43; ViSQOL audio 4.732 /
#: 2.18 / 1.72 / 3.39. The bounds keep a margin around those.
INTRUSIVE = {
    "pesq": (lambda e, r: P.pesq_wb(e, r, SR), 4.64, (1.2, 2.2), 0.2, (3.6, 4.5)),
    "stoi": (lambda e, r: P.stoi(e, r, SR), 1.0, (0.96, 0.998), 0.03, (0.99, 0.99999)),
    "visqol": (lambda e, r: P.visqol(e, r, SR, "speech"), 5.0, (3.3, 4.6), 0.5, (3.8, 4.8)),
    "visqol_audio": (lambda e, r: P.visqol(e, r, SR, "audio"), 4.73, (1.7, 2.8), 0.2, (2.8, 4.2)),
}


@pytest.mark.parametrize("name", list(INTRUSIVE))
def test_intrusive_metrics_best_value_and_degradations(signals, name):
    fn, best, at20, drop, lowpass = INTRUSIVE[name]
    ref = signals["clean"]
    v = {k: fn(y, ref) for k, y in signals.items()}
    assert v["clean"] == pytest.approx(best, abs=0.01), v
    assert at20[0] <= v["20dB"] <= at20[1], v
    assert v["10dB"] <= v["20dB"] - drop, v
    assert lowpass[0] <= v["lp4k"] <= lowpass[1] and v["lp4k"] < v["clean"], v


def test_dnsmos_needs_no_reference_and_hears_noise_and_a_lowpass(signals):
    v = {k: P.dnsmos(y, SR) for k, y in signals.items()}
    for k in v:
        assert set(v[k]) == {"dnsmos", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"}
        assert all(1.0 <= x <= 5.0 for x in v[k].values()), v[k]
    # measured: OVRL 3.14 / 2.31 / 2.09, BAK 3.89 / 2.38 / 2.01, P.808 3.85 clean, 3.35 low-passed
    assert v["clean"]["dnsmos"] - v["20dB"]["dnsmos"] > 0.4
    assert v["20dB"]["dnsmos"] - v["10dB"]["dnsmos"] > 0.1
    assert v["clean"]["dnsmos_bak"] - v["20dB"]["dnsmos_bak"] > 1.0
    assert v["20dB"]["dnsmos_bak"] - v["10dB"]["dnsmos_bak"] > 0.2
    assert v["clean"]["dnsmos_p808"] - v["lp4k"]["dnsmos_p808"] > 0.2


def test_too_short_or_silent_is_unavailable_with_a_reason():
    x = np.zeros(4000)
    with pytest.raises(P.Unavailable, match=r"ViSQOL \(speech\) left out: shorter than 0.5 s"):
        P.visqol(x, x, 16000)
    with pytest.raises(P.Unavailable, match="DNSMOS left out: the audio is silent"):
        P.dnsmos(np.zeros(16000), 16000)
    with pytest.raises(ValueError, match="ViSQOL mode must be one of"):
        P.visqol(x, x, 16000, mode="music")


@pytest.mark.parametrize("module, message", [
    ("pesq", "PESQ left out: the 'pesq' package is not installed"),
    ("visqol", "ViSQOL (speech) left out: the 'visqol-python' package is not installed"),
    ("speechmos", "DNSMOS left out: the 'speechmos' and 'onnxruntime' package is not installed"),
    ("torchcrepe", "F0 metrics left out: the 'torchcrepe' package is not installed"),
])
def test_a_missing_package_leaves_its_metric_out_with_a_note(signals, monkeypatch, module, message):
    from specinv_cli.companion.suite import score_output, score_pair

    monkeypatch.setitem(sys.modules, module, None)      # import raises ImportError
    monkeypatch.setitem(sys.modules, f"{module}.dnsmos", None)
    monkeypatch.setattr(P, "_models", {})
    x = signals["clean"][: SR]
    notes = []
    got = score_pair(x, x, SR, ["pesq", "visqol", "f0", "stoi"], notes)
    got.update(score_output(x, SR, ["dnsmos"], notes))
    assert any(n.startswith(message) for n in notes), notes
    assert len(notes) == 1, notes                         # only that one
    assert "stoi" in got                                  # the others are still there


def test_evaluation_works_with_the_network_unreachable(tmp_path, corpus):
    """Every metric of `specinv eval`, in a fresh process whose sockets all fail and whose caches are
    empty: nothing is downloaded, every model comes from its wheel."""
    pytest.importorskip("torchcrepe")
    from specinv_cli.companion.analysis import analyze
    from specinv_cli.config import STFTConfig

    x = load_clip("speech_female_hts2a", 3.0)
    rng = np.random.default_rng(1)
    y = (x + 0.01 * rng.standard_normal(len(x))).astype(np.float32)
    sf.write(tmp_path / "ref.wav", x, SR, subtype="FLOAT")
    sf.write(tmp_path / "out.wav", y, SR, subtype="FLOAT")
    np.save(tmp_path / "out.npy", analyze(x, STFTConfig()))
    script = textwrap.dedent("""
        import socket, sys
        def blocked(*a, **k):
            raise OSError("network access blocked by the test")
        socket.socket.connect = socket.socket.connect_ex = blocked
        socket.create_connection = socket.getaddrinfo = blocked
        from specinv_cli.cli.app import main
        main(sys.argv[1:])
    """)
    cache = tmp_path / "cache"
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(cache), "TORCH_HOME": str(cache / "torch")}
    proc = subprocess.run([sys.executable, "-c", script, "eval", str(tmp_path / "out.wav"), "-t",
                           str(tmp_path / "out.npy"), "-r", str(tmp_path / "ref.wav"), "--json"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout.splitlines()[0])
    want = {"sc", "snr", "ser", "lsd", "mcd", "pesq", "stoi", "visqol", "visqol_audio", "dnsmos", "dnsmos_sig",
            "dnsmos_bak", "dnsmos_p808", "f0_rmse", "periodicity", "vuv_f1"}
    assert want <= set(rec), (sorted(want - set(rec)), proc.stderr)
    assert "left out" not in proc.stderr, proc.stderr
    assert not [p for p in (cache / "torch").rglob("*") if p.is_file()]   # nothing fetched into a cache
