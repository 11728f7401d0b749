"""`specinv stft`: audio -> spectrograms in the conventions `invert` reads back (round trips)."""
import numpy as np
import pytest
import soundfile as sf
import torch

from clihelp import files_in, run
from companionhelp import SR, json_lines, no_temporaries, write_clip
from conftest import reference_magnitude, stft_atol


@pytest.fixture
def clip(tmp_path, corpus):
    return write_clip(tmp_path / "clip.wav")


def test_linear_roundtrip_stft_invert_eval(tmp_path, capsys, clip):
    """The issue's round trip: stft -> invert (defaults) -> eval; SC agrees with invert's own."""
    code, out, err = run(capsys, "stft", tmp_path / "clip.wav", "-O", tmp_path / "d", "--json")
    assert code == 0, err
    recs = json_lines(out)
    assert recs[0]["output"] == str(tmp_path / "d" / "clip.npy") and recs[-1]["summary"]["outputs"] == 1
    spec = np.load(tmp_path / "d" / "clip.npy", allow_pickle=False)
    # exactly the reference STFT (periodic Hann 1024/256, centred, reflect): what invert assumes
    ref = reference_magnitude(clip).numpy()
    assert spec.dtype == np.float32 and spec.shape == ref.shape == (513, 1 + len(clip) // 256)
    np.testing.assert_allclose(spec, ref, rtol=0, atol=stft_atol(clip))
    assert "read back with: specinv invert" in err

    code, out, err = run(capsys, "invert", tmp_path / "d" / "clip.npy", "-n", "40", "-o", tmp_path / "y.wav", "--json")
    assert code == 0, err
    inv = json_lines(out)[0]
    code, out, err = run(capsys, "eval", tmp_path / "y.wav", "--target", tmp_path / "d" / "clip.npy",
                         "--reference", tmp_path / "clip.wav", "--json")
    assert code == 0, err
    ev = json_lines(out)[0]
    assert ev["domain"] == "linear" and ev["sc"] < -20 and ev["lsd"] < 3
    if inv["gain"] == 1.0:
        assert ev["sc"] == pytest.approx(inv["sc"], abs=0.1)   # same domain, same frames (PCM_16 rounding)
    else:  # invert peak-normalised the WAV: eval measures the file as written, so the level error counts
        assert ev["sc"] > inv["sc"] + 1
    # without the gain, eval finds invert's own figure
    code, out, err = run(capsys, "eval", tmp_path / "y.wav", "--target", tmp_path / "d" / "clip.npy",
                         "--scale-invariant", "--json")
    ev = json_lines(out)[0]
    assert ev["sc"] == pytest.approx(inv["sc"], abs=0.1)
    assert ev["gain"] == pytest.approx(1 / inv["gain"], rel=2e-3)


def _hifigan_mel(audio):
    """HiFi-GAN's meldataset.mel_spectrogram (jik876/hifi-gan), re-implemented independently;
    without its +1e-9 inside the magnitude's square root (invert decodes |X|)."""
    import librosa

    y = torch.from_numpy(audio).float()[None, None]
    y = torch.nn.functional.pad(y, (384, 384), mode="reflect")[0]
    spec = torch.stft(y, 1024, 256, 1024, window=torch.hann_window(1024), center=False,
                      return_complex=True).abs()[0]
    fb = torch.from_numpy(librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000)).float()
    return torch.log(torch.clamp(fb @ spec, min=1e-5)).numpy()


def test_mel_preset_roundtrip(tmp_path, capsys, clip):
    code, out, err = run(capsys, "stft", tmp_path / "clip.wav", "-O", tmp_path / "m", "--config", "hifigan-22k", "--json")
    assert code == 0, err
    assert json_lines(out)[0]["domain"] == "mel"
    feats = np.load(tmp_path / "m" / "clip.npy")
    expected = _hifigan_mel(clip)
    assert feats.shape == expected.shape == (80, len(clip) // 256)
    np.testing.assert_allclose(feats, expected, atol=2e-3)
    assert "--config hifigan-22k" in err  # the read-back hint names the preset

    code, out, err = run(capsys, "invert", tmp_path / "m" / "clip.npy", "--config", "hifigan-22k", "-n", "30",
                         "-o", tmp_path / "y.wav", "--json")
    assert code == 0, err
    inv = json_lines(out)[0]
    assert inv["domain"] == "mel"
    code, out, err = run(capsys, "eval", tmp_path / "y.wav", "-t", tmp_path / "m" / "clip.npy",
                         "--config", "hifigan-22k", "--json")
    assert code == 0, err
    ev = json_lines(out)[0]
    assert ev["domain"] == "mel" and ev["sc"] < -25
    assert ev["sc"] == pytest.approx(inv["sc"], abs=0.1)


@pytest.mark.parametrize("kind", ["power", "db", "log"])
def test_kinds_read_back_with_input_kind(tmp_path, capsys, clip, kind):
    from specinv_cli.io.read import load_spectrogram

    code, _, err = run(capsys, "stft", tmp_path / "clip.wav", "-O", tmp_path / "d", "--kind", kind)
    assert code == 0, err
    assert f"--input-kind {kind}" in err
    got = load_spectrogram(tmp_path / "d" / "clip.npy", input_kind=kind).mag.numpy()
    ref = reference_magnitude(clip).numpy()
    # the kind's round trip (log/exp, pow) adds a relative error of a few eps times |ln x|
    np.testing.assert_allclose(got, np.maximum(ref, 1e-10), rtol=1e-5, atol=stft_atol(clip))
    code, _, err = run(capsys, "invert", tmp_path / "d" / "clip.npy", "--input-kind", kind, "-m", "pghi",
                       "-o", tmp_path / "y.wav")
    assert code == 0, err


def test_pt_format_tf_layout_and_fft_flags(tmp_path, capsys, clip):
    code, out, err = run(capsys, "stft", tmp_path / "clip.wav", "-O", tmp_path / "d", "--format", "pt",
                         "--layout", "tf", "--n-fft", "512", "--hop-length", "128", "--json", "-q")
    assert code == 0, err
    assert err == ""  # --quiet
    assert json_lines(out)[-1]["summary"]["invert_flags"] == "--n-fft 512 --hop-length 128 --layout tf"
    t = torch.load(tmp_path / "d" / "clip.pt", weights_only=True)
    assert isinstance(t, torch.Tensor) and t.shape == (1 + len(clip) // 128, 257)
    ref = reference_magnitude(clip, n_fft=512, hop=128)
    torch.testing.assert_close(t, ref.T.contiguous(), rtol=0, atol=stft_atol(clip, 512, 128))


def test_stereo_mixdown_channel_and_resampling(tmp_path, capsys, clip):
    import librosa

    left = clip
    right = np.roll(clip, 500) * 0.5
    stereo = np.stack([left, right], axis=1)
    sf.write(tmp_path / "st.flac", librosa.resample(stereo.T, orig_sr=SR, target_sr=44100).T, 44100)
    code, _, err = run(capsys, "stft", tmp_path / "st.flac", "-O", tmp_path / "mix")
    assert code == 0, err
    code, _, err = run(capsys, "stft", tmp_path / "st.flac", "-O", tmp_path / "ch1", "--channel", "1")
    assert code == 0, err
    mix = np.load(tmp_path / "mix" / "st.npy")
    ch1 = np.load(tmp_path / "ch1" / "st.npy")
    assert mix.shape[1] == ch1.shape[1] == 1 + len(clip) // 256   # resampled 44.1 kHz -> 22.05 kHz
    exp_mix = reference_magnitude((left + right) / 2).numpy()
    exp_ch1 = reference_magnitude(right).numpy()
    from specinv_cli.dsp.metrics import sc

    # two resamplings (and FLAC's 16 bits) away from the originals: close, not equal
    assert float(sc(torch.from_numpy(mix), torch.from_numpy(exp_mix))) < -30
    assert float(sc(torch.from_numpy(ch1), torch.from_numpy(exp_ch1))) < -30
    assert float(sc(torch.from_numpy(ch1), torch.from_numpy(exp_mix))) > -15  # the channel was chosen


def test_bad_inputs_one_line_each_and_partial_exit(tmp_path, capsys, clip):
    (tmp_path / "fake.wav").write_text("not audio at all")
    code, out, err = run(capsys, "stft", tmp_path / "clip.wav", tmp_path / "fake.wav", tmp_path / "nope.wav",
                         "-O", tmp_path / "d")
    assert code == 1
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 2
    assert any(f"{tmp_path / 'fake.wav'}: not a readable audio file" in ln for ln in lines)
    assert any(f"{tmp_path / 'nope.wav'}: no such file" in ln for ln in lines)
    assert "Traceback" not in err and out == ""
    assert files_in(tmp_path / "d") == ["clip.npy"] and no_temporaries(tmp_path)

    code, _, err = run(capsys, "stft", tmp_path / "nope.wav", "-O", tmp_path / "e")
    assert code == 2 and files_in(tmp_path / "e") == []


@pytest.mark.parametrize("args, message", [
    (["--mel"], "--mel needs mel settings"),
    (["--config", "hifigan-22k", "--kind", "db"], "--kind db is for linear spectrograms"),
    (["--channel", "3"], "has 1 channel(s); --channel 3 does not exist"),
    (["--config", "nope"], "unknown preset 'nope'"),
])
def test_usage_errors(tmp_path, capsys, clip, args, message):
    code, out, err = run(capsys, "stft", tmp_path / "clip.wav", "-O", tmp_path / "d", *args)
    assert code == 2, err
    assert message in err and err.count("error:") == 1 and out == ""
    assert not (tmp_path / "d" / "clip.npy").exists()


def test_linear_under_mel_preset_and_folder_input(tmp_path, capsys, corpus):
    (tmp_path / "in").mkdir()
    write_clip(tmp_path / "in" / "a.wav")
    write_clip(tmp_path / "in" / "b.wav", ("music_guitar_em9", 0.5, 0.0))
    (tmp_path / "in" / "notes.txt").write_text("ignored: not audio")
    code, out, err = run(capsys, "stft", tmp_path / "in", "-O", tmp_path / "d", "--config", "hifigan-22k",
                         "--linear", "--json")
    assert code == 0, err
    recs = json_lines(out)
    assert [r["input"].rsplit("/", 1)[-1] for r in recs[:-1]] == ["a.wav", "b.wav"]
    assert all(r["domain"] == "linear" and r["shape"][0] == 513 for r in recs[:-1])
    # invert reads a 513-bin file under the mel preset as linear (HiFi-GAN framing: T * hop samples)
    code, out, err = run(capsys, "invert", tmp_path / "d" / "b.npy", "--config", "hifigan-22k", "-m", "pghi",
                         "-o", tmp_path / "b.wav", "--json")
    assert code == 0, err
    rec = json_lines(out)[0]
    assert rec["domain"] == "linear" and rec["samples"] == np.load(tmp_path / "d" / "b.npy").shape[1] * 256
