"""`specinv plot`: spectrogram comparisons and convergence curves as PNG (matplotlib)."""
import json
import sys

import numpy as np
import pytest

from clihelp import run
from companionhelp import json_lines, no_temporaries, write_clip

mpl = pytest.importorskip("matplotlib")


def png_size(path):
    """(width, height) from the PNG header."""
    data = open(path, "rb").read(24)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.fixture
def made(tmp_path, capsys, corpus):
    write_clip(tmp_path / "clip.wav")
    assert run(capsys, "stft", tmp_path / "clip.wav", "-O", tmp_path / "d")[0] == 0
    code, out, err = run(capsys, "invert", tmp_path / "d" / "clip.npy", "-m", "fgla", "-n", "20", "--subtype", "FLOAT",
                         "--normalize", "none", "-o", tmp_path / "y.wav", "--json",
                         "--eval-every", "5", "--history", tmp_path / "h.json")
    assert code == 0, err
    return json_lines(out)[0]


def test_spectrogram_comparison_png(tmp_path, capsys, made):
    code, out, err = run(capsys, "plot", tmp_path / "d" / "clip.npy", "-a", tmp_path / "y.wav", "-o",
                         tmp_path / "c.png", "--json")
    assert code == 0, err
    rec = json.loads(out)
    assert rec["panels"] == 3                       # target, reconstruction, difference
    assert rec["sc"]["y"] == pytest.approx(made["sc"], abs=0.05)   # the panel title's SC is invert's
    w, h = png_size(tmp_path / "c.png")
    assert w == 1000 and h == 780                   # 10 x 2.6 in per panel at 100 dpi
    assert no_temporaries(tmp_path)


def test_axes_read_in_seconds_and_hz(tmp_path):
    """Linear: y in Hz up to sr/2, x in seconds; mel: ticks at round Hz on the band positions."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from specinv_cli.config import load_preset
    from specinv_cli.dsp.mel import mel_frequencies
    from specinv_cli.companion.plot import _draw

    cfg = load_preset("default", explicit=False)
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    _draw(fig, ax, np.zeros((513, 87)), cfg, "linear", "t")
    assert ax.get_xlabel() == "time (s)" and ax.get_ylabel() == "Hz"
    x0, x1 = ax.get_xlim()
    assert x1 - x0 == pytest.approx(87 * 256 / 22050)
    assert ax.get_ylim()[1] == pytest.approx(11025 + 22050 / 1024 / 2)
    mel = load_preset("hifigan-22k")
    ax = fig.subplots()
    _draw(fig, ax, np.zeros((80, 87)), mel, "mel", "m")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "1k" in labels and "8k" not in labels[:-1]
    pos = ax.get_yticks()[labels.index("1k")]
    centres = mel_frequencies(82, 0, 8000).numpy()[1:-1]
    assert np.interp(pos, np.arange(80), centres) == pytest.approx(1000, rel=1e-6)


def test_convergence_by_running_methods(tmp_path, capsys, made):
    code, out, err = run(capsys, "plot", tmp_path / "d" / "clip.npy", "--convergence", "-m", "fgla", "-m", "pghi",
                         "-n", "20", "--eval-every", "5", "-o", tmp_path / "conv.png", "--json")
    assert code == 0, err
    rec = json.loads(out)
    assert rec["curves"] == 2 and png_size(tmp_path / "conv.png") == (800, 450)
    # the curve ends where api.invert with the same settings ends; FGLA improves on its PGHI start
    from specinv_cli.api import invert
    from specinv_cli.io.read import load_spectrogram

    res = invert(load_spectrogram(tmp_path / "d" / "clip.npy"), method="fgla", n_iter=20, device="cpu")
    assert rec["final"]["fgla [pghi]"] == pytest.approx(float(res.metrics["sc"]), abs=0.01)
    assert rec["final"]["fgla [pghi]"] < rec["final"]["pghi"]
    assert made["sc"] < rec["final"]["pghi"]


def _hand_written(tmp_path):
    """Two history files in `invert --history`'s format, written by hand."""
    a = {"items": [{"input": "a.npy", "item": None, "output": "a.wav", "method": "fgla", "domain": "linear",
                    "history": [{"iteration": 10, "sc": -20.0, "snr": 20.0, "ser": 19.0},
                                {"iteration": 20, "sc": -25.25, "snr": 25.0, "ser": 24.0}]}]}
    b = {"items": [{"input": "x.npy", "item": 0, "output": "x_000.wav", "method": "gla", "domain": "linear",
                    "history": [{"iteration": 10, "sc": -12.0, "snr": 12.0, "ser": 11.0},
                                {"iteration": 20, "sc": -15.5, "snr": 15.0, "ser": 14.0}]},
                   {"input": "x.npy", "item": 1, "output": "x_001.wav", "method": "gla", "domain": "linear",
                    "history": [{"iteration": 10, "sc": -13.0, "snr": 13.0, "ser": 12.0}]}]}
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    return tmp_path / "a.json", tmp_path / "b.json"


def test_convergence_from_history_files(tmp_path, capsys):
    a, b = _hand_written(tmp_path)
    code, out, err = run(capsys, "plot", "--convergence", "--history", a, "--history", b, "--metric", "snr",
                         "-o", tmp_path / "conv.png", "--json")
    assert code == 0, err
    final = json.loads(out)["final"]
    # one curve per item, labelled by method and input (several inputs), last value of the metric
    assert final == {"fgla (a)": 25.0, "gla (x[0])": 15.0, "gla (x[1])": 13.0}
    assert png_size(tmp_path / "conv.png") == (800, 450)


def test_convergence_from_invert_history(tmp_path, capsys, made):
    hist = json.loads((tmp_path / "h.json").read_text())
    pts = hist["items"][0]["history"]
    assert [p["iteration"] for p in pts] == [5, 10, 15, 20]
    code, out, err = run(capsys, "plot", "--convergence", "--history", tmp_path / "h.json",
                         "-o", tmp_path / "conv.png", "--json")
    assert code == 0, err
    assert json.loads(out)["final"]["fgla"] == pytest.approx(pts[-1]["sc"])


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"runs": []}', "not a history file"),
    ('{"items": [{"method": "dm"}]}', "item 0 has no 'history' list"),
    ('{"items": [{"method": "dm", "history": [{"iteration": 5}]}]}', "has no 'sc' values"),
])
def test_bad_history_files(tmp_path, capsys, content, message):
    (tmp_path / "h.json").write_text(content)
    code, out, err = run(capsys, "plot", "--convergence", "--history", tmp_path / "h.json", "-o", tmp_path / "c.png")
    assert code == 2 and message in err and err.count("error:") == 1
    assert f"{tmp_path / 'h.json'}:" in err and not (tmp_path / "c.png").exists() and no_temporaries(tmp_path)


def test_mel_spectrogram_from_audio_and_usage_errors(tmp_path, capsys, corpus):
    write_clip(tmp_path / "clip.wav")
    code, out, err = run(capsys, "plot", tmp_path / "clip.wav", "--config", "hifigan-22k", "-a", tmp_path / "clip.wav",
                         "-o", tmp_path / "m.png", "--json")
    assert code == 0, err
    assert json.loads(out)["sc"]["clip"] < -60   # the audio itself against its own mel
    code, _, err = run(capsys, "plot", tmp_path / "clip.wav", "-m", "fgla", "-o", tmp_path / "x.png")
    assert code == 2 and "go with --convergence" in err
    code, _, err = run(capsys, "plot", "-o", tmp_path / "x.png")
    assert code == 2 and "no spectrogram given" in err
    code, _, err = run(capsys, "plot", tmp_path / "clip.wav", "--convergence", "-m", "nope", "-o", tmp_path / "x.png")
    assert code == 2 and "unknown method 'nope'" in err
    assert not (tmp_path / "x.png").exists()


def test_without_matplotlib_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = run(capsys, "plot", tmp_path / "x.npy", "-o", tmp_path / "x.png")
    assert code == 2 and "pip install 'specinv-cli[plot]'" in err and out == ""


def test_comparisons_that_cannot_be_right_are_refused(tmp_path, capsys, corpus):
    """plot -a goes through the comparison check: length, rate, channels (and those of an audio
    SPEC it is compared with); refused with exit 2 and no PNG, unless a flag asks deliberately."""
    import soundfile as sf

    from companionhelp import SR, write_resampled, write_stereo

    clip = write_clip(tmp_path / "clip.wav", subtype="FLOAT")
    assert run(capsys, "stft", tmp_path / "clip.wav", "-O", tmp_path / "d")[0] == 0
    spec = tmp_path / "d" / "clip.npy"
    png = tmp_path / "c.png"
    sf.write(tmp_path / "long.wav", np.concatenate([clip, clip, clip]), SR, subtype="FLOAT")
    write_stereo(tmp_path / "st.wav")
    write_resampled(tmp_path / "s16.wav", clip, 16000)
    for audio, words in (("long.wav", [f"{3 * len(clip)} samples (3.00 s), but the target {spec}", "--truncate"]),
                         ("st.wav", ["has 2 channels", "--channel N", "--mixdown"]),
                         ("s16.wav", ["sample rate 16000 Hz", "22050 Hz", "--resample"])):
        code, out, err = run(capsys, "plot", spec, "-a", tmp_path / audio, "-o", png)
        assert code == 2 and err.count("error:") == 1 and f"{tmp_path / audio}: " in err, err
        assert all(w in err for w in words), err
        assert not png.exists() and no_temporaries(tmp_path)
    code, out, err = run(capsys, "plot", spec, "-a", tmp_path / "long.wav", "-a", tmp_path / "st.wav",
                         "-a", tmp_path / "s16.wav", "--truncate", "--channel", "0", "--resample", "-o", png, "--json")
    assert code == 0, err
    rec = json.loads(out)
    assert rec["panels"] == 7 and png.exists()
    assert rec["adjusted"]["long"] == {"output": {"truncated": [3 * len(clip), 22016]}}
    assert rec["adjusted"]["st"] == {"output": {"channel": 0}}
    assert rec["adjusted"]["s16"]["output"]["resampled"] == [16000, 22050]
    assert rec["sc"]["st"] < -60 and rec["sc"]["long"] < -15     # the same signal, chosen and cut on purpose
    assert any("cut from" in n and "--truncate" in n for n in rec["notes"])
    # an audio SPEC that the outputs are compared with obeys the same rules; drawn alone it is
    # analysed as 'specinv stft' does (mixed down)
    code, out, err = run(capsys, "plot", tmp_path / "st.wav", "-a", tmp_path / "clip.wav", "-o", png)
    assert code == 2 and f"{tmp_path / 'st.wav'}: has 2 channels" in err
    code, out, err = run(capsys, "plot", tmp_path / "st.wav", "-a", tmp_path / "clip.wav", "--mixdown", "-o", png,
                         "--json")
    assert code == 0, err
    assert json.loads(out)["sc"]["clip"] == pytest.approx(20 * np.log10(1 / 3), abs=1e-3)  # |X| vs |0.75 X|
    code, out, err = run(capsys, "plot", tmp_path / "st.wav", "-o", tmp_path / "alone.png")
    assert code == 0, err


def test_spectrogram_png_checks_each_output_before_drawing(tmp_path, corpus):
    from specinv_cli.companion.analysis import ComparisonError, CompareOptions, analyze
    from specinv_cli.config import STFTConfig
    from specinv_cli.companion.plot import spectrogram_png
    from specinv_cli.io.spectrogram import interpret

    from companionhelp import SR

    clip = write_clip(tmp_path / "clip.wav", subtype="FLOAT")
    cfg = STFTConfig()
    target = interpret(analyze(clip, cfg))
    png = tmp_path / "x.png"
    with pytest.raises(ComparisonError, match=r"^y\.wav: 44100 samples \(2\.00 s\), but the target implies 22016"):
        spectrogram_png(png, target, cfg, [("ok", clip, SR), ("y", np.concatenate([clip, clip]), SR, "y.wav")])
    assert not png.exists()
    info = spectrogram_png(png, target, cfg, [("y", np.stack([clip, clip]), SR)], options=CompareOptions(mixdown=True))
    assert info["sc"][0] < -60 and info["adjusted"] == [{"output": {"mixdown": 2}}]
