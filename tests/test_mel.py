"""Mel spectrograms: filterbanks vs librosa, compressions, presets reproduced from their sources."""
import json

import librosa
import numpy as np
import pytest
import torch

from clihelp import run
from conftest import load_clip
from specinv_cli.config import STFTConfig, load_preset
from specinv_cli.dsp.mel import MelTransform, decode, encode, load_stats, mel_filterbank


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax,htk,norm", [
    (22050, 1024, 80, 0.0, 8000.0, False, "slaney"),
    (22050, 2048, 128, 0.0, None, False, "slaney"),
    (24000, 1024, 100, 0.0, 12000.0, True, None),
    (22050, 1024, 80, 80.0, 7600.0, False, "slaney"),
    (44100, 2048, 128, 0.0, 22050.0, False, "slaney"),
    (16000, 512, 40, 20.0, 7000.0, True, "slaney"),
])
def test_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax, htk, norm):
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm,
                              dtype=np.float64)
    got = mel_filterbank(sr, n_fft, n_mels, fmin, fmax, "htk" if htk else "slaney", norm or "none",
                         dtype=torch.float64).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("compression", ["none", "ln", "log10", "db", "log1p"])
@pytest.mark.parametrize("mel_power", [1.0, 2.0])
def test_compressions_round_trip(compression, mel_power):
    cfg = STFTConfig(n_mels=8, compression=compression, clamp=1e-6, mel_power=mel_power)
    mel = torch.rand(2, 8, 30, dtype=torch.float64) * 10 + 1e-3  # above the clamp
    torch.testing.assert_close(decode(encode(mel, cfg), cfg), mel, rtol=1e-9, atol=1e-12)


def test_db_uses_ten_log10_for_power_mels_and_top_db():
    mel = torch.tensor([[[1.0, 10.0, 100.0]]], dtype=torch.float64)
    assert encode(mel, STFTConfig(n_mels=1, compression="db", mel_power=2.0)).tolist() == [[[0.0, 10.0, 20.0]]]
    assert encode(mel, STFTConfig(n_mels=1, compression="db", mel_power=1.0)).tolist() == [[[0.0, 20.0, 40.0]]]
    clipped = encode(mel, STFTConfig(n_mels=1, compression="db", mel_power=2.0, top_db=15.0))
    assert clipped.tolist() == [[[5.0, 10.0, 20.0]]]
    lib = librosa.power_to_db(mel.numpy(), ref=1.0, amin=1e-5, top_db=15.0)
    np.testing.assert_allclose(clipped.numpy(), lib)


def test_normalisations_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((500, 8)) * 2 - 5          # [T, n_mels], log10 mel
    np.savez(tmp_path / "feats_stats.npz", count=np.array(500), sum=feats.sum(0), sum_square=(feats ** 2).sum(0))
    mean, std = load_stats(str(tmp_path / "feats_stats.npz"), 8)
    np.testing.assert_allclose(mean.numpy(), feats.mean(0), rtol=1e-12)
    np.testing.assert_allclose(std.numpy(), feats.std(0), rtol=1e-9)
    cfg = STFTConfig(n_mels=8, compression="log10", clamp=1e-10, normalization="meanvar",
                     stats=str(tmp_path / "feats_stats.npz"))
    mel = torch.rand(1, 8, 20, dtype=torch.float64) + 0.01
    enc = encode(mel, cfg)
    assert abs(float(enc.mean())) < 10
    torch.testing.assert_close(decode(enc, cfg), mel, rtol=1e-9, atol=1e-12)
    sym = STFTConfig(n_mels=8, compression="db", clamp=1e-8, normalization="symmetric")
    mel = torch.rand(1, 8, 20, dtype=torch.float64) * 5 + 1e-3  # inside Coqui's [-80, +20] dB window
    enc = encode(mel, sym)
    assert float(enc.abs().max()) <= 4.0
    torch.testing.assert_close(decode(enc, sym), mel, rtol=1e-9, atol=1e-12)


def test_nnls_is_non_negative_and_matches_the_mel():
    cfg = STFTConfig(n_mels=80, fmax=8000.0)
    x = torch.from_numpy(load_clip("speech_male_hts1a", seconds=2.0))
    mag = torch.stft(x, 1024, 256, window=torch.hann_window(1024), return_complex=True).abs()
    op = MelTransform(cfg)
    mel = op(mag)
    lin = op.to_linear(mel, 100)
    assert float(lin.min()) >= 0
    rel = float((op(lin) - mel).norm() / mel.norm())
    assert rel < 1e-3  # the mel of the estimate matches (the bins it cannot see stay free)
    pinv = torch.linalg.pinv(op.fb) @ mel
    assert float(pinv.min()) < 0  # what a plain pseudo-inverse does


# --- front-ends re-implemented from their sources (see the comments in configs/*.toml) -------
def _mel_fb(sr, n_fft, n_mels, fmin, fmax, htk=False, norm="slaney"):
    return torch.from_numpy(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                                                htk=htk, norm=norm)).float()


def tacotron2_mel(y):  # NVIDIA/tacotron2 layers.py TacotronSTFT (reflect pad n_fft/2, no eps)
    mag = torch.stft(y, 1024, 256, 1024, torch.hann_window(1024), center=True, pad_mode="reflect",
                     return_complex=True).abs()
    return torch.log(torch.clamp(_mel_fb(22050, 1024, 80, 0, 8000) @ mag, min=1e-5))


def hifigan_mel(y, sr=22050, n_fft=1024, hop=256, n_mels=80, fmax=8000):  # meldataset.mel_spectrogram
    p = int((n_fft - hop) / 2)
    y = torch.nn.functional.pad(y[None, None], (p, p), mode="reflect")[0, 0]
    spec = torch.view_as_real(torch.stft(y, n_fft, hop, n_fft, torch.hann_window(n_fft), center=False,
                                         return_complex=True))
    mag = torch.sqrt(spec.pow(2).sum(-1) + 1e-9)
    return torch.log(torch.clamp(_mel_fb(sr, n_fft, n_mels, 0, fmax) @ mag, min=1e-5))


def vocos_mel(y):  # torchaudio MelSpectrogram(center=True, power=1): HTK scale, no norm; safe_log
    mag = torch.stft(y, 1024, 256, 1024, torch.hann_window(1024), center=True, pad_mode="reflect",
                     return_complex=True).abs()
    return torch.log(torch.clip(_mel_fb(24000, 1024, 100, 0, 12000, htk=True, norm=None) @ mag, min=1e-7))


def espnet_feats(y, stats):  # LogMelFbank + GlobalMVN, [T, 80]
    spec = torch.stft(y, 1024, 256, 1024, torch.hann_window(1024), center=True, pad_mode="reflect",
                      return_complex=True)
    amp = torch.sqrt(torch.clamp(spec.real ** 2 + spec.imag ** 2, min=1e-10)).T  # [T, F]
    logmel = torch.clamp(amp @ _mel_fb(22050, 1024, 80, 80, 7600).T, min=1e-10).log10()
    count, s, s2 = stats
    mean = s / count
    std = np.sqrt(np.maximum(s2 / count - mean ** 2, 1e-20))
    return (logmel - torch.from_numpy(mean).float()) / torch.from_numpy(std).float()


def coqui_mel(y):  # AudioProcessor.melspectrogram with BaseAudioConfig defaults
    D = librosa.stft(y.numpy(), n_fft=1024, hop_length=256, win_length=1024, window="hann", center=True,
                     pad_mode="reflect")
    S = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=None) @ np.abs(D)
    db = 20 * np.log10(np.maximum(1e-8, S)) - 20
    return torch.from_numpy(np.clip(8 * (db + 100) / 100 - 4, -4, 4).astype(np.float32))


def coqui_ljspeech_mel(y):  # recipes/ljspeech: signal_norm False, mel_fmax 8000, spec_gain 1, np.log
    D = librosa.stft(y.numpy(), n_fft=1024, hop_length=256, win_length=1024, window="hann", center=True,
                     pad_mode="reflect")
    S = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000) @ np.abs(D)
    return torch.from_numpy(np.log(np.maximum(1e-8, S)).astype(np.float32))


def librosa_mel(y):
    return torch.from_numpy(librosa.feature.melspectrogram(y=y.numpy(), sr=22050))


PRESETS = {
    "tacotron2": (22050, tacotron2_mel),
    "hifigan-22k": (22050, hifigan_mel),
    "bigvgan-24k-100": (24000, lambda y: hifigan_mel(y, 24000, 1024, 256, 100, None)),
    "bigvgan-44k-128": (44100, lambda y: hifigan_mel(y, 44100, 2048, 512, 128, None)),
    "vocos-24k": (24000, vocos_mel),
    "coqui-22k": (22050, coqui_mel),
    "coqui-22k-ljspeech": (22050, coqui_ljspeech_mel),
    "librosa": (22050, librosa_mel),
}


def _clip_at(sr, seconds=2.5):
    y = load_clip("speech_04_en_m_cmu_arctic_awb_a0007", seconds=seconds, offset=0.5)
    if sr != 22050:
        y = librosa.resample(y, orig_sr=22050, target_sr=sr)
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))


def _invert_and_score(capsys, tmp_path, preset, feats, *extra):
    np.save(tmp_path / "mel.npy", feats.numpy())
    code, out, err = run(capsys, "invert", tmp_path / "mel.npy", "--config", preset, "-o", tmp_path / "out.wav",
                         "--json", *extra)
    assert code == 0, err
    return json.loads(out.splitlines()[0])


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_inverts_its_front_end(capsys, tmp_path, corpus, preset):
    sr, front_end = PRESETS[preset]
    y = _clip_at(sr)
    rec = _invert_and_score(capsys, tmp_path, preset, front_end(y))
    assert rec["domain"] == "mel" and rec["sample_rate"] == sr
    assert rec["sc"] < -20.0, rec
    cfg = load_preset(preset)
    expected = len(y) // cfg.hop_length * cfg.hop_length if not cfg.center else (1 + len(y) // cfg.hop_length - 1) * cfg.hop_length
    assert rec["samples"] == expected


def test_espnet_preset_with_stats_file(capsys, tmp_path, corpus):
    y = _clip_at(22050)
    spec = torch.stft(y, 1024, 256, 1024, torch.hann_window(1024), return_complex=True).abs().T
    logmel = torch.clamp(spec @ _mel_fb(22050, 1024, 80, 80, 7600).T, min=1e-10).log10().numpy().astype(np.float64)
    stats = (np.array(len(logmel)), logmel.sum(0), (logmel ** 2).sum(0))
    np.savez(tmp_path / "feats_stats.npz", count=stats[0], sum=stats[1], sum_square=stats[2])
    feats = espnet_feats(y, stats)  # [T, 80]
    rec = _invert_and_score(capsys, tmp_path, "espnet-22k", feats, "--stats", tmp_path / "feats_stats.npz")
    assert rec["sc"] < -20.0
    # without the stats file: a clear error naming the flag
    np.save(tmp_path / "m.npy", feats.numpy())
    code, _, err = run(capsys, "invert", tmp_path / "m.npy", "--config", "espnet-22k", "-o", tmp_path / "x.wav")
    assert code == 2 and "--stats" in err and "m.npy" in err and not (tmp_path / "x.wav").exists()


def test_wrong_bin_count_names_the_expected_counts(capsys, tmp_path):
    np.save(tmp_path / "m.npy", np.zeros((100, 50), np.float32))
    code, _, err = run(capsys, "invert", tmp_path / "m.npy", "--config", "tacotron2", "-o", tmp_path / "o.wav")
    assert code == 2
    assert "m.npy" in err and "100" in err and "n_mels 80" in err and "513" in err
    assert not (tmp_path / "o.wav").exists()


def test_linear_input_with_a_mel_preset_is_inverted_as_linear(capsys, tmp_path, corpus):
    y = _clip_at(22050, 1.5)
    mag = torch.stft(y, 1024, 256, window=torch.hann_window(1024), return_complex=True).abs()
    rec = _invert_and_score(capsys, tmp_path, "tacotron2", mag, "-n", "30")
    assert rec["domain"] == "linear" and rec["sc"] < -15


def test_mel_flags_without_preset_and_the_default_beats_the_cascade(capsys, tmp_path, corpus):
    y = _clip_at(22050, 2.0)
    feats = tacotron2_mel(y)
    common = ["--n-mels", "80", "--fmax", "8000", "--compression", "ln", "--clamp", "1e-5"]
    best = _invert_and_score(capsys, tmp_path, "default", feats, *common)  # lbfgs against the mel
    # L-BFGS against the mel: measured -29.9 (Intel Xeon), -29.7 on every AMD EPYC code path below
    assert best["domain"] == "mel" and best["method"] == "lbfgs" and best["sc"] < -27
    cascade = _invert_and_score(capsys, tmp_path, "default", feats, *common, "-m", "dm", "--refine", "0")
    refined = _invert_and_score(capsys, tmp_path, "default", feats, *common, "-m", "dm")  # refine 50
    assert cascade["sc"] < -15  # NNLS + phase retrieval alone is a valid but weaker inversion
    # The cascade and its refinement start with DM, which amplifies float32 rounding: over seven
    # FFT/kernel code paths of one AMD EPYC (kernels on and off, MKL's Intel AVX-512 / AVX2 /
    # SSE4.2 paths, ATen default, numba without FMA) the cascade gave -21.6 ... -22.7 dB and the
    # refined one -29.0 ... -35.8, so refining gained 6.6 ... 13.3 dB and the default L-BFGS 7.0 ...
    # 8.1 dB. 3 dB keeps 3.6 / 4.0 dB of margin and still fails when refining does not help.
    assert refined["sc"] < cascade["sc"] - 3 and best["sc"] < cascade["sc"] - 3


def test_user_toml_config_with_mel_settings(capsys, tmp_path, corpus):
    (tmp_path / "mine.toml").write_text(
        "# my front-end\n[stft]\nn_fft = 1024\nhop_length = 256\nsample_rate = 22050\n\n"
        "[mel]\nn_mels = 80\nfmax = 8000.0\ncompression = \"ln\"\nclamp = 1e-5\n")
    code, out, _ = run(capsys, "configs", "show", tmp_path / "mine.toml")
    assert code == 0 and "n_mels = 80" in out
    y = _clip_at(22050, 2.0)
    rec = _invert_and_score(capsys, tmp_path, str(tmp_path / "mine.toml"), tacotron2_mel(y), "-n", "40")
    assert rec["domain"] == "mel" and rec["sc"] < -20
    (tmp_path / "bad.toml").write_text("[mel]\nn_mel = 80\n")
    np.save(tmp_path / "x.npy", np.ones((80, 20), np.float32))
    code, _, err = run(capsys, "invert", tmp_path / "x.npy", "--config", tmp_path / "bad.toml", "-o", tmp_path / "y.wav")
    assert code == 2 and "bad.toml" in err and "n_mel" in err and not (tmp_path / "y.wav").exists()
