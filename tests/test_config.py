import pytest

from specinv_cli.config import ConfigError, STFTConfig, list_presets, load_preset


def test_defaults():
    c = STFTConfig()
    assert (c.n_fft, c.hop_length, c.window, c.center, c.pad_mode, c.sample_rate) == (1024, 256, "hann", True, "reflect", 22050)
    assert c.n_freqs == 513


def test_default_preset_matches_dataclass_defaults():
    c = load_preset("default", explicit=False)
    assert c.to_dict() == STFTConfig().to_dict()  # win_length 1024 = n_fft, derived when not given
    assert "default" in list_presets()


def test_bins_infer_n_fft_when_not_explicit():
    c = load_preset("default", explicit=False).with_bins(1025)
    assert c.n_fft == 2048 and c.n_freqs == 1025 and c.effective_win_length == 2048


def test_explicit_n_fft_mismatch_names_both_numbers():
    c = STFTConfig().replace(n_fft=2048)
    with pytest.raises(ConfigError) as e:
        c.with_bins(513, "mag.npy")
    msg = str(e.value)
    assert "mag.npy" in msg and "513" in msg and "2048" in msg and "1025" in msg


def test_user_toml_and_errors(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text("[stft]\nn_fft = 512\nhop_length = 128\nsample_rate = 16000\n")
    c = load_preset(str(p))
    assert (c.n_fft, c.hop_length, c.sample_rate) == (512, 128, 16000)
    assert "n_fft" in c.explicit
    bad = tmp_path / "bad.toml"
    bad.write_text("[stft]\nnfft = 512\n")
    with pytest.raises(ConfigError, match="bad.toml.*unknown setting.*nfft"):
        load_preset(str(bad))
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[stft]\nhop_length = 'x'\n")
    with pytest.raises(ConfigError, match="wrong.toml.*hop_length"):
        load_preset(str(wrong))
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        load_preset("nope")


def test_hop_larger_than_window_rejected():
    with pytest.raises(ConfigError, match="hop_length 600 is larger than the window"):
        STFTConfig(n_fft=512, hop_length=600)


def test_inferred_tiny_n_fft_keeps_a_valid_hop():
    c = load_preset("default", explicit=False).with_bins(2)  # n_fft 2: hop falls to 1, not 0
    assert (c.n_fft, c.hop_length) == (2, 1)
