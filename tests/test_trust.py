"""Issue 13: what is reported describes what was written; explicit settings are honoured; what
is inferred is said; nothing unusable is written as a success. Real clips throughout."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from clihelp import run
from conftest import load_clip, reference_magnitude
from specinv_cli import invert
from specinv_cli.batch.blocks import streaming_metrics
from specinv_cli.config import ConfigError, STFTConfig
from specinv_cli.errors import InversionError, SpecinvError
from specinv_cli.io.encode import encode_audio


@pytest.fixture(scope="module")
def loud(corpus):
    """A speech clip at twice its level: a faithful inversion peaks near 2 (beyond full scale)."""
    y = 2.0 * load_clip("speech_04_en_m_cmu_arctic_awb_a0007", seconds=2.0, offset=0.3)
    assert np.abs(y).max() > 1.2
    return reference_magnitude(y).numpy()


@pytest.fixture(scope="module")
def soft(corpus):
    y = 0.5 * load_clip("music_guitar_em9", seconds=2.0, offset=1.0)
    return reference_magnitude(y).numpy()


def file_sc(path, target):
    """SC of the WAV as a reader decodes it, against the target, in invert's conventions."""
    audio, sr = sf.read(str(path), dtype="float64")
    return streaming_metrics(audio.astype(np.float32), torch.as_tensor(target), STFTConfig(n_fft=1024))["sc"]


def records(out):
    return [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"summary"' not in line]


# --- 1. level-faithful output -----------------------------------------------------------------
def test_default_keeps_the_level_and_reports_the_file(tmp_path, capsys, loud):
    np.save(tmp_path / "loud.npy", loud)
    code, out, err = run(capsys, "invert", tmp_path / "loud.npy", "-m", "fgla", "-n", "30",
                         "-o", tmp_path / "x.wav", "--json")
    assert code == 0, err
    (rec,) = records(out)
    info = sf.info(str(tmp_path / "x.wav"))
    assert info.subtype == "FLOAT" and rec["subtype"] == "FLOAT" and rec["gain"] == 1.0
    assert rec["peak"] > 1.0 and rec["clipped"] == 0
    assert "32-bit float" in err and "exceeds full scale" in err
    assert abs(file_sc(tmp_path / "x.wav", loud) - rec["sc"]) < 0.05
    assert rec["sc"] < -20  # a real inversion, not a level accident


def test_fitting_audio_is_pcm16_and_reported_as_written(tmp_path, capsys, soft):
    np.save(tmp_path / "soft.npy", soft)
    code, out, err = run(capsys, "invert", tmp_path / "soft.npy", "-m", "fgla", "-n", "30",
                         "-o", tmp_path / "x.wav", "--json")
    assert code == 0, err
    (rec,) = records(out)
    assert sf.info(str(tmp_path / "x.wav")).subtype == "PCM_16" and rec["subtype"] == "PCM_16"
    assert rec["peak"] <= 1.0 and "warning" not in err
    assert abs(file_sc(tmp_path / "x.wav", soft) - rec["sc"]) < 0.05


def test_asked_gain_is_reported_with_the_sc_before_it(tmp_path, capsys, loud):
    np.save(tmp_path / "loud.npy", loud)
    code, out, err = run(capsys, "invert", tmp_path / "loud.npy", "-m", "fgla", "-n", "30", "--normalize", "peak",
                         "-o", tmp_path / "x.wav", "--json", "--history", tmp_path / "h.json")
    assert code == 0, err
    (rec,) = records(out)
    assert rec["gain"] < 0.9 and rec["subtype"] == "PCM_16"
    assert abs(file_sc(tmp_path / "x.wav", loud) - rec["sc"]) < 0.05
    assert rec["sc_before_gain"] < rec["sc"] - 3  # scaling by ~0.5 costs several dB of SC
    hist = json.loads((tmp_path / "h.json").read_text())["items"][0]["history"]
    assert hist[-1]["written"] and hist[-1]["sc"] == rec["sc"]


def test_explicit_pcm16_clips_and_counts(tmp_path, capsys, loud):
    np.save(tmp_path / "loud.npy", loud)
    code, out, err = run(capsys, "invert", tmp_path / "loud.npy", "-m", "fgla", "-n", "10", "--subtype", "PCM_16",
                         "--normalize", "none", "-o", tmp_path / "x.wav", "--json")
    assert code == 0, err
    (rec,) = records(out)
    audio, _ = sf.read(str(tmp_path / "x.wav"), dtype="int16")
    assert rec["clipped"] > 0 and f"{rec['clipped']} sample(s) beyond full scale clipped" in err
    assert audio.max() == 32767 or audio.min() == -32768  # clipped at full scale, not wrapped
    assert abs(file_sc(tmp_path / "x.wav", loud) - rec["sc"]) < 0.05


def test_encode_quantises_as_a_reader_decodes(tmp_path):
    x = np.random.default_rng(0).uniform(-1.2, 1.2, 5000).astype(np.float32)
    for subtype in ("PCM_16", "PCM_24", "FLOAT"):
        enc = encode_audio(x, subtype)
        sf.write(str(tmp_path / "q.wav"), enc.data, 22050, subtype=subtype)
        back, _ = sf.read(str(tmp_path / "q.wav"), dtype="float32")
        assert np.array_equal(back, enc.samples), subtype
    assert encode_audio(x).subtype == "FLOAT" and encode_audio(x * 0.5).subtype == "PCM_16"
    assert encode_audio(x * 1e-7).subtype == "FLOAT"  # PCM_16 would round it to silence


def test_api_metrics_are_those_of_the_returned_audio(soft):
    mag = torch.as_tensor(soft, dtype=torch.float64) * 1e8  # outside the safe range: scaled inside
    res = invert(mag, method="fgla", n_iter=20, device="cpu")
    assert res.audio.dtype == torch.float64
    got = streaming_metrics(res.audio.numpy().astype(np.float32), mag, res.config)["sc"]
    assert abs(got - float(res.metrics["sc"])) < 0.05


# --- 2. explicit settings in the API ----------------------------------------------------------
def test_api_uses_given_fields_and_names_both_numbers():
    with pytest.raises(ConfigError, match=r"80 frequency bins do not match `n_fft` 1024 \(which gives 513"):
        invert(torch.rand(2, 80, 50), config=STFTConfig(n_fft=1024, hop_length=256))
    with pytest.raises(ConfigError, match="1025 frequency bins do not match `n_fft` 1024") as e:
        invert(torch.rand(1025, 20), config=STFTConfig(n_fft=1024), n_iter=1)
    assert "--" not in str(e.value)  # parameters, not CLI flags
    res = invert(torch.rand(1025, 20), config=STFTConfig(hop_length=300), n_iter=1, method="fgla")
    assert (res.config.n_fft, res.config.hop_length) == (2048, 300)  # set fields kept, unset inferred
    assert "hop_length" not in res.inferred and res.inferred["n_fft"].startswith("2048")


# --- 3. say what was inferred, guess right about mel ------------------------------------------
def test_inferred_settings_are_said(tmp_path, capsys, soft):
    np.save(tmp_path / "s.npy", soft)
    code, out, err = run(capsys, "invert", tmp_path / "s.npy", "-n", "2", "-o", tmp_path / "x.wav", "--json")
    assert code == 0, err
    (rec,) = records(out)
    assert "n_fft 1024 (from 513 bins)" in err and "hop 256" in err
    assert rec["inferred"]["n_fft"] == "1024 (from 513 bins)" and "hop_length" in rec["inferred"]
    code, out, err = run(capsys, "invert", tmp_path / "s.npy", "-n", "2", "--n-fft", "1024", "--hop-length", "256",
                         "-o", tmp_path / "y.wav", "--json")
    assert records(out)[0]["inferred"] == {} and "from 513 bins" not in err


def test_librosa_default_hop_gives_the_right_duration(tmp_path, capsys, corpus):
    import librosa

    y = load_clip("speech_03_en_m_librivox_austen", seconds=3.0)
    S = np.abs(librosa.stft(y, n_fft=2048))  # librosa's default hop: n_fft / 4 = 512
    np.save(tmp_path / "l.npy", S)
    code, out, err = run(capsys, "invert", tmp_path / "l.npy", "-n", "20", "-o", tmp_path / "x.wav", "--json")
    assert code == 0, err
    (rec,) = records(out)
    assert rec["hop_length"] == 512 and "hop 512" in err
    assert abs(rec["samples"] - len(y)) <= 512 and rec["sc"] < -20


def test_log_mel_without_settings_gets_a_mel_hint(tmp_path, capsys, corpus):
    from specinv_cli.companion.analysis import analyze
    from specinv_cli.config import load_preset

    y = load_clip("speech_female_hts2a", seconds=1.5)
    mel = analyze(y, load_preset("hifigan-22k"), mel=True)  # [80, T] log-mel, mostly negative
    np.save(tmp_path / "m.npy", mel)
    for extra in ([], ["--input-kind", "log"], ["--input-kind", "db"]):
        code, out, err = run(capsys, "invert", tmp_path / "m.npy", *extra, "-o", tmp_path / "x.wav")
        assert code == 2, (extra, err)
        assert "mel" in err and "specinv configs" in err and "--config" in err, err
        assert "use --input-kind db|log" not in err
        assert not (tmp_path / "x.wav").exists()
    np.save(tmp_path / "p.npy", np.exp(mel))  # a mel magnitude: non-negative, still 80 bins
    code, _, err = run(capsys, "invert", tmp_path / "p.npy", "-o", tmp_path / "x.wav")
    assert code == 2 and "common mel size" in err and "--n-fft 158" in err
    code, _, err = run(capsys, "invert", tmp_path / "m.npy", "--config", "hifigan-22k", "-n", "4",
                       "-o", tmp_path / "x.wav")
    assert code == 0, err


# --- 5. check before working, never write silence as success ----------------------------------
def test_output_folder_is_checked_before_any_inversion(tmp_path, capsys, soft, monkeypatch):
    import specinv_cli.api as api

    np.save(tmp_path / "s.npy", soft)

    def boom(*a, **k):
        raise AssertionError("inversion started")

    monkeypatch.setattr(api, "invert", boom)
    code, _, err = run(capsys, "invert", tmp_path / "s.npy", "-o", tmp_path / "missing" / "x.wav")
    assert code == 2 and "does not exist" in err and "inversion started" not in err
    code, _, err = run(capsys, "invert", tmp_path / "s.npy", "-o", tmp_path / "x.wav", "--history",
                       tmp_path / "s.npy")
    assert code == 2 and "same file as the input" in err
    code, _, err = run(capsys, "invert", tmp_path / "s.npy", "-o", tmp_path / "x.wav", "--history",
                       tmp_path / "x.wav")
    assert code == 2 and "also the audio output" in err
    assert np.array_equal(np.load(tmp_path / "s.npy"), soft)


def test_overflowing_level_is_a_failure_not_silence(tmp_path, capsys, soft):
    np.save(tmp_path / "big.npy", soft.astype(np.float64) * 1e300)
    code, out, err = run(capsys, "invert", tmp_path / "big.npy", "-m", "fgla", "-n", "10", "-o", tmp_path / "x.wav",
                         "--json")
    assert code == 2 and "beyond what a WAV can hold" in err and "--normalize peak" in err
    assert not (tmp_path / "x.wav").exists()
    code, out, err = run(capsys, "invert", tmp_path / "big.npy", "-m", "fgla", "-n", "10", "--normalize", "peak",
                         "-o", tmp_path / "x.wav", "--json")
    assert code == 0, err
    rec = records(out)[0]
    assert rec["sc_before_gain"] < -15 and rec["gain"] < 1e-290  # the inversion was fine; the level is not
    assert abs(file_sc(tmp_path / "x.wav", soft.astype(np.float64) * 1e300) - rec["sc"]) < 0.05


@pytest.mark.parametrize("args, word", [(["-m", "fgla", "--alpha", "inf"], "finite"),
                                        (["-m", "fgla", "--alpha", "1.5"], "[0, 1)"),
                                        (["-m", "agla", "--gamma", "2"], "unstable"),
                                        (["-m", "agla", "--beta", "5"], "unstable")])
def test_diverging_options_are_refused_with_their_range(tmp_path, capsys, soft, args, word):
    np.save(tmp_path / "s.npy", soft)
    code, _, err = run(capsys, "invert", tmp_path / "s.npy", *args, "-o", tmp_path / "x.wav")
    assert code == 2 and word in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.wav").exists()


def test_silent_output_from_a_loud_target_is_a_failed_item(tmp_path, capsys, soft, monkeypatch):
    import specinv_cli.algorithms.gla as gla

    monkeypatch.setattr(gla, "fgla", lambda mag, stft, length=None, **k: torch.zeros(*mag.shape[:-2], length))
    with pytest.raises(InversionError, match="silence"):
        invert(torch.as_tensor(soft), method="fgla", n_iter=2)
    res = invert(torch.as_tensor(np.stack([soft, 0 * soft])), method="fgla", n_iter=2, errors="report")
    assert res.failures[0] and res.failures[1] is None  # a silent target may give silence
    np.save(tmp_path / "s.npy", soft)
    code, out, err = run(capsys, "invert", tmp_path / "s.npy", "-m", "fgla", "-o", tmp_path / "x.wav", "--json")
    assert code == 2 and "silence" in err and not (tmp_path / "x.wav").exists()
    assert json.loads(out.splitlines()[0])["status"] == "error"


def test_pcm16_rounding_everything_to_zero_is_a_failure(tmp_path, capsys, soft):
    np.save(tmp_path / "q.npy", soft * 1e-7)
    code, _, err = run(capsys, "invert", tmp_path / "q.npy", "-m", "fgla", "-n", "5", "--subtype", "PCM_16",
                       "-o", tmp_path / "x.wav")
    assert code == 2 and "rounds to zero" in err and not (tmp_path / "x.wav").exists()
    code, out, err = run(capsys, "invert", tmp_path / "q.npy", "-m", "fgla", "-n", "5", "-o", tmp_path / "x.wav",
                         "--json")
    assert code == 0 and records(out)[0]["subtype"] == "FLOAT"


def test_default_refine_adapts_to_the_iterations(tmp_path, capsys, corpus):
    from specinv_cli.api import default_refine
    from specinv_cli.config import load_preset

    cfg = load_preset("hifigan-22k")
    assert default_refine(cfg, "dm", 100) == 50 and default_refine(cfg, "dm", 30) == 15
    from specinv_cli.companion.analysis import analyze

    np.save(tmp_path / "m.npy", analyze(load_clip("speech_male_hts1a", seconds=1.0), cfg, mel=True))
    code, _, err = run(capsys, "invert", tmp_path / "m.npy", "--config", "hifigan-22k", "-m", "dm", "-n", "30",
                       "-o", tmp_path / "x.wav")
    assert code == 0, err
    code, _, err = run(capsys, "invert", tmp_path / "m.npy", "--config", "hifigan-22k", "-m", "dm", "-n", "30",
                       "--refine", "40", "-o", tmp_path / "y.wav")
    assert code == 2 and "refine" in err  # an explicit one may still be refused


def test_history_is_recorded_when_asked(soft):
    mag = torch.as_tensor(soft)
    assert invert(mag, method="fgla", n_iter=20).history == []
    res = invert(mag, method="fgla", n_iter=20, history=True, eval_every=5)
    assert [h["iteration"] for h in res.history] == [5, 10, 15, 20]
    assert res.history[-1]["sc"] == pytest.approx(float(res.metrics["sc"]), abs=0.1)


def test_errors_share_one_root():
    from specinv_cli.errors import DeviceError
    from specinv_cli.errors import OutputError
    from specinv_cli.io.spectrogram import InputError

    for cls in (InputError, ConfigError, DeviceError, OutputError, InversionError):
        assert issubclass(cls, SpecinvError)


def test_progress_bar_ends_on_the_file_as_written(tmp_path, soft):
    """On a terminal the bar's last value is the written file's SC (here after a gain)."""
    import io

    from rich.console import Console

    from specinv_cli.config import load_preset
    from specinv_cli.batch.pipeline import Pipeline, Settings
    from specinv_cli.cli.progress import Reporter

    np.save(tmp_path / "s.npy", soft)
    buf = io.StringIO()
    rep = Reporter(stream=buf)
    rep.console, rep.live = Console(file=buf, force_terminal=True, width=120), True
    from specinv_cli.options import InversionOptions

    pipe = Pipeline(Settings(cfg=load_preset("default", explicit=False), inversion=InversionOptions(method="fgla", n_iter=10), batch_size=1,
                             normalize="peak", output=str(tmp_path / "x.wav")), rep)
    with rep.session():
        (rec,) = list(pipe.feed(str(tmp_path / "s.npy")))
    assert rec["gain"] > 1.5 and abs(rec["sc"] - rec["sc_before_gain"]) > 1
    assert f"SC {rec['sc']:7.2f} dB" in buf.getvalue()[-300:]  # the bar's last redraw
