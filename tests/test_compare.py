"""`specinv compare`: two runs matched by name, per-metric paired differences with bootstrap
intervals and Wilcoxon tests; a synthetic pair of runs whose true difference is known."""
from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from clihelp import run
from companionhelp import SR, json_lines
from conftest import load_clip

N_ITEMS = 16
DELTA = 3.0      # dB: the true mean difference of SC, B - A
SPREAD = 1.0     # dB: the per-item spread around it


@pytest.fixture(scope="module")
def known_runs(tmp_path_factory, corpus):
    """Reference clips x_i (1 s pieces of two corpus clips) and two runs of scaled copies,
    A_i = g_i x_i and B_i = h_i x_i. With the reference's spectrogram as the target,
    | |STFT(g x)| - |STFT(x)| | = (1 - g) |STFT(x)| in every bin, so SC(A_i) = 20 log10(1 - g_i)
    exactly; the gains are chosen so that SC(B_i) - SC(A_i) = DELTA + e_i, e_i ~ N(0, SPREAD)
    centred on 0 (the coverage over random draws is tests/test_stats.py's)."""
    root = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(7)
    clips = [load_clip("speech_02_en_f_codec2_harvard"), load_clip("music_guitar_em9")]
    ref, a, b = (root / n for n in ("ref", "a", "b"))
    for d in (ref, a, b):
        d.mkdir()
    sc_a = rng.uniform(-30, -15, N_ITEMS)
    e = rng.normal(0, SPREAD, N_ITEMS)
    sc_b = sc_a + DELTA + (e - e.mean())   # centred: DELTA is these items' true mean difference
    for i in range(N_ITEMS):
        x = clips[i % 2][(i // 2) * SR // 2:][:SR].astype(np.float64)
        x *= 0.5 / np.abs(x).max()
        name = f"item_{i:02d}.wav"
        sf.write(ref / name, x, SR, subtype="DOUBLE")
        sf.write(a / name, (1 - 10 ** (sc_a[i] / 20)) * x, SR, subtype="DOUBLE")
        sf.write(b / name, (1 - 10 ** (sc_b[i] / 20)) * x, SR, subtype="DOUBLE")
    sf.write(a / "only_in_a.wav", x, SR)
    return {"ref": ref, "a": a, "b": b, "sc_a": sc_a, "sc_b": sc_b}


def test_the_interval_covers_the_known_difference(capsys, known_runs):
    k = known_runs
    code, out, err = run(capsys, "compare", k["a"], k["b"], "-r", k["ref"], "--metrics", "spectral,lsd", "--json")
    assert code == 0, err
    lines = json_lines(out)
    items, cmp_ = lines[:-1], lines[-1]["comparison"]
    assert [r["item"] for r in items] == [f"item_{i:02d}" for i in range(N_ITEMS)]   # matched by name
    assert cmp_["only"] == {"a": ["only_in_a"], "b": []}
    assert "1 item(s) only in a, left out: only_in_a" in err
    # the per-item SC is the analytic value (float64 WAVs: the error is far below 1e-6 dB)
    np.testing.assert_allclose([r["a"]["sc"] for r in items], k["sc_a"], atol=1e-3)
    np.testing.assert_allclose([r["b"]["sc"] for r in items], k["sc_b"], atol=1e-3)
    sc = cmp_["metrics"]["sc"]
    d = k["sc_b"] - k["sc_a"]
    assert sc["n"] == N_ITEMS
    assert sc["mean_diff"] == pytest.approx(d.mean(), abs=1e-3)
    assert sc["median_diff"] == pytest.approx(np.median(d), abs=1e-3)
    lo, hi = sc["ci"]
    assert lo < DELTA < hi                                # the interval covers the true difference
    assert lo < d.mean() < hi and hi - lo < 4 * SPREAD / math.sqrt(N_ITEMS) * 1.5
    # all 16 differences are positive: the exact two-sided Wilcoxon and sign p are 2 / 2^16
    assert sc["p_wilcoxon"] == pytest.approx(2 / 2 ** 16, rel=1e-6)
    assert sc["p_sign"] == pytest.approx(2 / 2 ** 16, rel=1e-6)
    assert sc["significant"] and sc["better"] == "a"      # SC: lower is better, and A is lower


def test_no_difference_is_not_significant(capsys, known_runs):
    k = known_runs
    code, out, err = run(capsys, "compare", k["a"], k["a"], "-r", k["ref"], "--metrics", "spectral",
                         "--labels", "first,second", "--json")
    assert code == 0, err
    sc = json_lines(out)[-1]["comparison"]["metrics"]["sc"]
    assert sc["mean_diff"] == 0 and not sc["significant"] and sc["better"] is None and sc["p_wilcoxon"] == 1


def test_table_plot_and_labels(tmp_path, capsys, known_runs):
    k = known_runs
    png = tmp_path / "d.png"
    code, out, err = run(capsys, "compare", k["a"], k["b"], "-r", k["ref"], "--metrics", "spectral",
                         "--labels", "fgla,dm", "--plot", png)
    assert code == 0, err
    assert "dm - fgla over 16 items" in out
    row = next(line for line in out.splitlines() if line.startswith("SC dB"))
    assert row.rstrip().endswith("fgla *")               # the better run, significant
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_perceptual_metrics_agree_on_a_noisier_run(tmp_path, capsys, corpus):
    """B = A + more noise: every reference-based metric is worse for B, significantly (n = 8)."""
    pytest.importorskip("pesq")
    pytest.importorskip("pystoi")
    rng = np.random.default_rng(3)
    x = load_clip("speech_02_en_f_codec2_harvard").astype(np.float64)
    for d in ("ref", "a", "b"):
        (tmp_path / d).mkdir()
    for i in range(8):
        seg = x[i * SR:][: SR]
        n = rng.standard_normal(len(seg)) * np.sqrt(np.mean(seg ** 2))
        sf.write(tmp_path / "ref" / f"s{i}.wav", seg, SR, subtype="FLOAT")
        sf.write(tmp_path / "a" / f"s{i}.wav", seg + n * 10 ** (-30 / 20), SR, subtype="FLOAT")
        sf.write(tmp_path / "b" / f"s{i}.wav", seg + n * 10 ** (-15 / 20), SR, subtype="FLOAT")
    code, out, err = run(capsys, "compare", tmp_path / "a", tmp_path / "b", "-r", tmp_path / "ref",
                         "--metrics", "spectral,lsd,mcd,pesq,stoi", "--json")
    assert code == 0, err
    res = json_lines(out)[-1]["comparison"]["metrics"]
    assert set(res) >= {"sc", "snr", "ser", "lsd", "mcd", "pesq", "stoi"}
    for name, r in res.items():
        assert r["significant"] and r["better"] == "a", (name, r)


def test_refusals(tmp_path, capsys, known_runs):
    k = known_runs
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "compare", k["a"], tmp_path / "empty")
    assert code == 2 and "no output name in common" in err and "Traceback" not in err
    code, _, err = run(capsys, "compare", k["a"], tmp_path / "missing")
    assert code == 2 and "missing: no such run folder" in err
    code, _, err = run(capsys, "compare", k["a"], k["b"], "--metrics", "pesq,visqol-speech")
    assert code == 2 and "unknown metric group 'visqol-speech'" in err
    code, _, err = run(capsys, "compare", k["a"], k["b"], "--labels", "x,x")
    assert code == 2 and "--labels takes two different names" in err
