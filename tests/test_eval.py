"""`specinv eval`: SC/SNR/SER in the target's domain, LSD/PESQ/STOI against the original, batches."""
import math
import sys

import numpy as np
import pytest
import soundfile as sf

from clihelp import run
from companionhelp import GUITAR, SR, json_lines, write_clip
from conftest import reference_magnitude
from specinv_cli.companion.analysis import lsd


@pytest.fixture
def setup(tmp_path, capsys, corpus):
    """clip.wav, its half-level copy, and the linear target d/clip.npy."""
    clip = write_clip(tmp_path / "clip.wav", subtype="FLOAT")
    sf.write(tmp_path / "half.wav", clip * 0.5, SR, subtype="FLOAT")
    assert run(capsys, "stft", tmp_path / "clip.wav", "-O", tmp_path / "d")[0] == 0
    return clip


def test_known_answers_identity_and_half_gain(tmp_path, capsys, setup):
    target = tmp_path / "d" / "clip.npy"
    code, out, err = run(capsys, "eval", tmp_path / "clip.wav", tmp_path / "half.wav", "-t", target,
                         "-r", tmp_path / "clip.wav", "--json")
    assert code == 0, err
    same, half, summary = json_lines(out)
    assert same["sc"] < -80 and same["lsd"] < 1e-3            # the signal that made the target
    # |0.5 X| - |X| = -0.5 |X|: SC = 20 log10(0.5) exactly; the power ratio 4 is 6.02 dB in every
    # bin above the LSD floor (less below it: this band-limited clip has many such bins)
    assert half["sc"] == pytest.approx(20 * math.log10(0.5), abs=1e-3)
    from specinv_cli.config import STFTConfig

    assert half["lsd"] == pytest.approx(lsd(setup * 0.5, setup, STFTConfig()), abs=1e-3)
    assert 1 < half["lsd"] <= 6.03
    assert half["snr"] > 80                                    # SNR is gain-invariant
    med = summary["summary"]["median"]
    assert med["sc"] == pytest.approx(np.median([same["sc"], half["sc"]]), abs=1e-3)
    assert summary["summary"]["items"] == 2 and summary["summary"]["failed"] == 0
    if "pesq" in same:
        assert same["pesq"] > 4.4 and same["stoi"] > 0.99
    # with the least-squares gain the half-level copy is perfect again
    code, out, err = run(capsys, "eval", tmp_path / "half.wav", "-t", target, "--scale-invariant", "--json")
    rec = json_lines(out)[0]
    assert rec["sc"] < -80 and rec["gain"] == pytest.approx(2.0, rel=1e-4)


def test_lsd_definition_against_numpy():
    from specinv_cli.config import STFTConfig

    rng = np.random.default_rng(1)
    x = rng.standard_normal(8000)
    y = x + 0.3 * rng.standard_normal(8000)
    cfg = STFTConfig(n_fft=512, hop_length=128)
    import torch

    def power(s):
        return torch.stft(torch.from_numpy(s), 512, 128, window=torch.hann_window(512, dtype=torch.float64),
                          center=True, pad_mode="reflect", return_complex=True).abs().numpy() ** 2

    px, py = power(x), power(y)
    eps = px.max() * 1e-10
    expected = np.mean(np.sqrt(np.mean((10 * np.log10((px + eps) / (py + eps))) ** 2, axis=0)))
    assert lsd(y, x, cfg) == pytest.approx(expected, rel=1e-9)
    assert lsd(x, x, cfg) == 0.0


def test_mel_target_is_scored_in_the_mel_domain(tmp_path, capsys, setup):
    assert run(capsys, "stft", tmp_path / "clip.wav", "-O", tmp_path / "m", "--config", "hifigan-22k")[0] == 0
    code, out, err = run(capsys, "eval", tmp_path / "clip.wav", tmp_path / "half.wav", "-t", tmp_path / "m" / "clip.npy",
                         "--config", "hifigan-22k", "--json", "--no-perceptual")
    assert code == 0, err
    same, half, _ = json_lines(out)
    assert same["domain"] == half["domain"] == "mel"
    # ln(clamp(x, 1e-5)) loses nothing audible but is not exact in silent bands: still far below
    assert same["sc"] < -60
    assert half["sc"] == pytest.approx(20 * math.log10(0.5), abs=0.05)   # the mel is linear in |X|
    assert "pesq" not in same and "lsd" not in same


def test_folders_match_by_name_with_table_and_partial_failure(tmp_path, capsys, setup):
    (tmp_path / "out").mkdir()
    sf.write(tmp_path / "out" / "clip.wav", setup * 0.5, SR, subtype="FLOAT")
    write_clip(tmp_path / "g.wav", GUITAR, subtype="FLOAT")
    assert run(capsys, "stft", tmp_path / "g.wav", "-O", tmp_path / "d")[0] == 0
    sf.write(tmp_path / "out" / "g.wav", sf.read(tmp_path / "g.wav")[0], SR, subtype="FLOAT")
    code, out, err = run(capsys, "eval", tmp_path / "out", "-t", tmp_path / "d", "-r", tmp_path)
    assert code == 0, err
    assert "median of 2" in out and "mean of 2" in out and "LSD" in out
    row = next(ln for ln in out.splitlines() if "clip.wav" in ln)
    assert "-6.02" in row                       # the half-level copy
    # an output without a target: one error line, the others still scored, exit 1
    sf.write(tmp_path / "out" / "orphan.wav", setup, SR)
    code, out, err = run(capsys, "eval", tmp_path / "out", "-t", tmp_path / "d", "--json", "--no-perceptual")
    assert code == 1
    recs = json_lines(out)
    bad = [r for r in recs if r.get("status") == "error"]
    assert len(bad) == 1 and "orphan.wav: no target named orphan" in bad[0]["error"]
    assert err.count("error:") == 1
    assert recs[-1]["summary"] == {**recs[-1]["summary"], "items": 2, "failed": 1}


def test_batched_target_items_by_output_name(tmp_path, capsys, setup):
    g = write_clip(tmp_path / "g.wav", GUITAR, subtype="FLOAT")
    n = min(len(g), len(setup))
    batch = np.stack([reference_magnitude(setup[:n]).numpy(), reference_magnitude(g[:n]).numpy()])
    np.save(tmp_path / "batch.npy", batch)
    sf.write(tmp_path / "batch_000.wav", setup[:n], SR, subtype="FLOAT")
    sf.write(tmp_path / "batch_001.wav", g[:n], SR, subtype="FLOAT")
    code, out, err = run(capsys, "eval", tmp_path / "batch_000.wav", tmp_path / "batch_001.wav",
                         "-t", tmp_path / "batch.npy", "--json")
    assert code == 0, err
    a, b, _ = json_lines(out)
    assert (a["item"], b["item"]) == (0, 1) and a["sc"] < -80 and b["sc"] < -80
    code, out, err = run(capsys, "eval", tmp_path / "batch_000.wav", "-t", tmp_path / "batch.npy", "--item", "1", "--json")
    assert json_lines(out)[0]["sc"] > -10       # the other item: a different signal
    sf.write(tmp_path / "x.wav", setup[:n], SR)
    code, out, err = run(capsys, "eval", tmp_path / "x.wav", "-t", tmp_path / "batch.npy")
    assert code == 2 and "holds a batch of 2 spectrograms" in err and "--item" in err


def test_perceptual_metrics_left_out_with_a_note(tmp_path, capsys, setup, monkeypatch):
    monkeypatch.setitem(sys.modules, "pesq", None)      # import pesq -> ImportError
    monkeypatch.setitem(sys.modules, "pystoi", None)
    code, out, err = run(capsys, "eval", tmp_path / "half.wav", "-t", tmp_path / "d" / "clip.npy",
                         "-r", tmp_path / "clip.wav", "--json")
    assert code == 0, err
    rec = json_lines(out)[0]
    assert "lsd" in rec and "pesq" not in rec and "stoi" not in rec
    assert "PESQ left out: the 'pesq' package is not installed" in err and "STOI left out" in err


def test_resampled_output_and_errors(tmp_path, capsys, setup):
    import librosa

    sf.write(tmp_path / "sr16k.wav", librosa.resample(setup, orig_sr=SR, target_sr=16000), 16000, subtype="FLOAT")
    # another rate is refused (both rates named) unless resampling is asked for deliberately
    code, out, err = run(capsys, "eval", tmp_path / "sr16k.wav", "-t", tmp_path / "d" / "clip.npy", "--json")
    assert code == 2 and "sr16k.wav: sample rate 16000 Hz" in err and "22050 Hz" in err and "--resample" in err
    code, out, err = run(capsys, "eval", tmp_path / "sr16k.wav", "-t", tmp_path / "d" / "clip.npy", "--json",
                         "--resample")
    assert code == 0, err
    rec = json_lines(out)[0]
    assert "resampled from 16000 Hz" in " ".join(rec["notes"]) and rec["sc"] < -20  # 8 kHz band limit
    assert rec["adjusted"] == {"output": {"resampled": [16000, 22050]}}
    code, out, err = run(capsys, "eval", tmp_path / "clip.wav", "-t", tmp_path / "missing.npy")
    assert code == 2 and "missing.npy: no such target file or folder" in err and out == ""
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVEjunk")
    code, out, err = run(capsys, "eval", tmp_path / "bad.wav", "-t", tmp_path / "d" / "clip.npy")
    assert code == 2 and err.count("error:") == 1 and "bad.wav: not a readable audio file" in err
    assert "Traceback" not in err
