"""Comparisons that cannot be right are refused (issue 13, item 4): one check in the library
(:func:`specinv_cli.analysis.check_comparison`) before audio is compared with a target spectrogram
or a reference recording: its length against what the target's framing implies (one window of
slack), its sample rate against the settings', one channel; each with a deliberate way out
(``truncate``, ``resample``, ``channel``/``mixdown``) that is noted. ``plot`` and ``report`` are
checked in their own test files."""
import math

import numpy as np
import pytest
import soundfile as sf

from clihelp import run
from companionhelp import GUITAR, SPEECH, SR, json_lines, write_clip, write_resampled, write_stereo
from conftest import load_clip


@pytest.fixture(scope="module")
def speech(corpus):
    """3 s of real speech at 22.05 kHz (targets are made from its first part)."""
    return load_clip("speech_02_en_f_codec2_harvard", 3.0, 0.5)


def _cfg(**kw):
    from specinv_cli.config import STFTConfig

    return STFTConfig(**kw)


FRAMINGS = {
    "centred": dict(n_fft=1024, hop_length=256),
    "hifigan": dict(n_fft=1024, hop_length=256, center=False, pad=384),   # (n_fft - hop) / 2
    "no-pad": dict(n_fft=1024, hop_length=256, center=False),
    "short-window": dict(n_fft=1024, win_length=512, hop_length=128),
}


def _target(audio, cfg):
    from specinv_cli.companion.analysis import analyze
    from specinv_cli.io.spectrogram import interpret

    return interpret(analyze(audio, cfg))


# --- the length the framing implies ------------------------------------------------------------
@pytest.mark.parametrize("name", FRAMINGS)
def test_implied_length_is_what_the_frames_cover(name):
    from specinv_cli.companion.analysis import implied_length
    from specinv_cli.dsp.stft import STFT

    cfg = _cfg(**FRAMINGS[name])
    stft = STFT(cfg)
    pad = cfg.n_fft // 2 if cfg.center else cfg.pad
    for length in (4000, 22050, 22050 + 1, 22050 + cfg.hop_length - 1, 66150):
        t = stft.n_frames(length)
        m = implied_length(cfg, t)
        assert m == cfg.n_fft + (t - 1) * cfg.hop_length - 2 * pad == stft.default_length(t)
        if cfg.center:
            assert m == (t - 1) * cfg.hop_length
        assert 0 <= length - m < cfg.hop_length       # the frames explain the signal to within a hop
        assert stft.n_frames(m) == t                  # and that length gives the frames back


@pytest.mark.parametrize("name", FRAMINGS)
def test_length_more_than_one_window_from_the_target_is_refused(speech, name):
    """Accepted up to exactly one window (win_length, else n_fft) from the implied length, refused
    one sample beyond, on either side; the message names the file and both lengths."""
    from specinv_cli.companion.analysis import ComparisonError, evaluate, implied_length
    from specinv_cli.io.spectrogram import InputError

    cfg = _cfg(**FRAMINGS[name])
    target = _target(speech[:33075], cfg)                      # 1.5 s
    m = implied_length(cfg, target.mag.shape[-1])
    w = cfg.effective_win_length
    assert w == (512 if name == "short-window" else 1024)
    for n in (m - w, m + w):
        ev = evaluate(speech[:n], SR, target, cfg)
        assert ev.metrics["sc"] < -15 and not ev.adjusted   # the signal itself, within the framing's slack
    for n in (m - w - 1, m + w + 1, len(speech)):
        with pytest.raises(ComparisonError) as e:
            evaluate(speech[:n], SR, target, cfg, source="out.wav", target_source="t.npy")
        msg = str(e.value)
        assert isinstance(e.value, InputError)
        assert msg.startswith("out.wav: ") and "t.npy" in msg
        assert f"{n} samples ({n / SR:.2f} s)" in msg and f"{m} samples ({m / SR:.2f} s" in msg
        assert f"one window ({w} samples)" in msg and "`truncate`" in msg


def test_truncate_cuts_or_pads_to_the_target_and_says_so(speech):
    from specinv_cli.companion.analysis import CompareOptions, evaluate, implied_length

    cfg = _cfg(n_fft=1024, hop_length=256)
    target = _target(speech[:22050], cfg)
    m = implied_length(cfg, target.mag.shape[-1])
    opts = CompareOptions(truncate=True)
    # too long: cut to the target; the same numbers as the audio cut by hand
    ev = evaluate(speech, SR, target, cfg, options=opts)
    assert ev.metrics == evaluate(speech[:m], SR, target, cfg).metrics
    assert ev.metrics["sc"] < -15      # the signal itself (its last frame lost the samples after m)
    assert ev.adjusted == {"output": {"truncated": [len(speech), m]}}
    assert ev.notes == [f"cut from {len(speech)} samples ({len(speech) / SR:.2f} s) to the target's "
                        f"{m} samples ({m / SR:.2f} s) (`truncate`)"]
    assert len(ev.audio) == m
    # too short: zero-padded to the target
    n = m // 2
    ev = evaluate(speech[:n], SR, target, cfg, options=opts)
    assert ev.metrics == evaluate(np.pad(speech[:n], (0, m - n)), SR, target, cfg).metrics
    assert ev.adjusted == {"output": {"truncated": [n, m]}} and "zero-padded" in ev.notes[0]
    # within one window the flag changes nothing
    assert not evaluate(speech[:m + 100], SR, target, cfg, options=opts).adjusted


def test_a_rate_other_than_the_settings_is_refused_unless_resampled(speech):
    from specinv_cli.companion.analysis import ComparisonError, CompareOptions, evaluate, resample

    cfg = _cfg(n_fft=1024, hop_length=256)
    x = speech[:22050]
    target = _target(x, cfg)
    x16 = resample(x, SR, 16000)
    with pytest.raises(ComparisonError) as e:
        evaluate(x16, 16000, target, cfg, source="out16k.wav")
    msg = str(e.value)
    assert msg.startswith("out16k.wav: sample rate 16000 Hz") and "22050 Hz" in msg and "`resample`" in msg
    ev = evaluate(x16, 16000, target, cfg, options=CompareOptions(resample=True))
    assert ev.metrics == evaluate(resample(x16, 16000, SR), SR, target, cfg).metrics
    assert ev.adjusted == {"output": {"resampled": [16000, 22050]}}
    assert ev.notes == ["resampled from 16000 Hz to the settings' 22050 Hz (`resample`)"]
    # the rule is the settings' rate, not 22.05 kHz: 16 kHz audio against 16 kHz settings passes
    cfg16 = _cfg(n_fft=1024, hop_length=256, sample_rate=16000)
    assert evaluate(x16, 16000, _target(x16, cfg16), cfg16).metrics["sc"] < -60


def test_more_than_one_channel_is_refused_unless_one_is_chosen(speech):
    from specinv_cli.companion.analysis import ComparisonError, CompareOptions, evaluate

    cfg = _cfg(n_fft=1024, hop_length=256)
    x = speech[:22050]
    target = _target(x, cfg)
    stereo = np.stack([x, 0.5 * x])                          # [C, L], channels first
    with pytest.raises(ComparisonError) as e:
        evaluate(stereo, SR, target, cfg, source="st.wav")
    msg = str(e.value)
    assert msg.startswith("st.wav: has 2 channels") and "`channel`" in msg and "`mixdown`" in msg
    ev = evaluate(stereo, SR, target, cfg, options=CompareOptions(channel=1))
    assert ev.metrics["sc"] == pytest.approx(20 * math.log10(0.5), abs=1e-3)   # |0.5 X| against |X|
    assert ev.adjusted == {"output": {"channel": 1}}
    ev = evaluate(stereo, SR, target, cfg, options=CompareOptions(mixdown=True))
    assert ev.metrics["sc"] == pytest.approx(20 * math.log10(0.25), abs=1e-3)  # 0.75 X: SC of -0.25 X
    assert ev.adjusted == {"output": {"mixdown": 2}} and "mixed down from 2 channels" in ev.notes[0]
    with pytest.raises(ComparisonError, match="has 2 channels; `channel` 2 does not exist"):
        evaluate(stereo, SR, target, cfg, options=CompareOptions(channel=2))
    # one channel is one channel, however it is shaped; [L, C] (soundfile's order) is not guessed at
    assert evaluate(x[None], SR, target, cfg).metrics["sc"] < -60
    assert evaluate(x, SR, target, cfg, options=CompareOptions(channel=1)).metrics["sc"] < -60
    with pytest.raises(ComparisonError, match=r"reads as 22050 channels of 2 sample"):
        evaluate(stereo.T, SR, target, cfg)
    with pytest.raises(ValueError, match="exclude each other"):
        CompareOptions(channel=0, mixdown=True)


def test_the_reference_obeys_the_same_rules(speech):
    from specinv_cli.companion.analysis import ComparisonError, CompareOptions, evaluate, lsd, resample

    cfg = _cfg(n_fft=1024, hop_length=256)
    x = speech[:44100]
    target = _target(x, cfg)
    n, w = len(x), cfg.effective_win_length
    kw = dict(perceptual=False, source="out.wav", reference_source="ref.wav")
    assert evaluate(x, SR, target, cfg, reference=x[:n - w], **kw).metrics["lsd"] == 0.0
    # length: more than one window apart is refused (today it was noted and cut)
    with pytest.raises(ComparisonError) as e:
        evaluate(x, SR, target, cfg, reference=x[:n - w - 1], **kw)
    msg = str(e.value)
    assert msg.startswith("out.wav: ") and "the reference ref.wav" in msg
    assert f"{n} samples ({n / SR:.2f} s)" in msg and f"{n - w - 1} samples" in msg and "`truncate`" in msg
    ev = evaluate(x, SR, target, cfg, reference=x[:n // 2], options=CompareOptions(truncate=True), **kw)
    assert ev.metrics["lsd"] == 0.0
    assert ev.adjusted == {"reference_cut": {"output": n, "reference": n // 2, "to": n // 2}}
    assert "both cut to" in ev.notes[0]
    # rate
    r16 = resample(x, SR, 16000)
    with pytest.raises(ComparisonError) as e:
        evaluate(x, SR, target, cfg, reference=r16, reference_rate=16000, **kw)
    assert str(e.value).startswith("ref.wav: sample rate 16000 Hz") and "22050 Hz" in str(e.value)
    ev = evaluate(x, SR, target, cfg, reference=r16, reference_rate=16000, options=CompareOptions(resample=True), **kw)
    back = resample(r16, 16000, SR)
    k = min(len(back), n)
    assert ev.metrics["lsd"] == pytest.approx(lsd(x[:k], back[:k], cfg), rel=1e-9)
    assert ev.adjusted == {"reference": {"resampled": [16000, 22050]}}
    # channels
    with pytest.raises(ComparisonError, match=r"^ref\.wav: has 2 channels"):
        evaluate(x, SR, target, cfg, reference=np.stack([x, x]), **kw)
    ev = evaluate(x, SR, target, cfg, reference=np.stack([0.5 * x, x]), options=CompareOptions(channel=1), **kw)
    assert ev.metrics["lsd"] == 0.0 and ev.adjusted == {"reference": {"channel": 1}}


def test_read_audio_keeps_what_the_file_holds(tmp_path, corpus):
    from specinv_cli.companion.analysis import load_audio, read_audio

    st = write_stereo(tmp_path / "st.wav")
    data, sr = read_audio(tmp_path / "st.wav")
    assert sr == SR and data.shape == (2, len(st)) and np.array_equal(data, st.T)
    mono, _ = load_audio(tmp_path / "st.wav")                    # what stft reads: the mix-down
    assert np.allclose(mono, st.mean(axis=1))


# --- the CLI: eval ------------------------------------------------------------------------------
def test_eval_refuses_audio_far_longer_than_the_target(tmp_path, capsys, corpus):
    """The issue's case: ten seconds of audio against a 1.43 s target scored a plausible SC with
    exit 0. Now: exit 2, one line naming the file and both lengths; --truncate does it on purpose."""
    write_clip(tmp_path / "t.wav", ("speech_female_hts2a", 1.43, 0.3), subtype="FLOAT")
    assert run(capsys, "stft", tmp_path / "t.wav", "-O", tmp_path / "specs")[0] == 0
    long = write_clip(tmp_path / "out.wav", ("music_guitar_em9", None, 0.0), subtype="FLOAT")
    assert len(long) / SR > 9.5
    target = tmp_path / "specs" / "t.npy"
    code, out, err = run(capsys, "eval", tmp_path / "out.wav", "--target", target)
    assert code == 2 and out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / 'out.wav'}: {len(long)} samples "
                                                   f"({len(long) / SR:.2f} s), but the target {target}")
    assert "31488 samples (1.43 s" in lines[0] and "--truncate" in lines[0] and "`" not in lines[0]
    code, out, err = run(capsys, "eval", tmp_path / "out.wav", "--target", target, "--truncate", "--json")
    assert code == 0, err
    rec = json_lines(out)[0]
    assert rec["adjusted"] == {"output": {"truncated": [len(long), 31488]}}
    assert rec["notes"] == [f"cut from {len(long)} samples ({len(long) / SR:.2f} s) to the target's 31488 samples "
                            f"(1.43 s) (--truncate)"]
    assert "note:" in err and "--truncate" in err
    assert rec["sc"] > -10                  # another signal: a poor score, but one asked for


def test_eval_rates_channels_and_references(tmp_path, capsys, corpus):
    clip = write_clip(tmp_path / "clip.wav", subtype="FLOAT")
    assert run(capsys, "stft", tmp_path / "clip.wav", "-O", tmp_path / "d")[0] == 0
    target = tmp_path / "d" / "clip.npy"
    write_stereo(tmp_path / "st.wav")
    # several channels
    code, out, err = run(capsys, "eval", tmp_path / "st.wav", "-t", target)
    assert code == 2 and err.count("error:") == 1
    assert f"{tmp_path / 'st.wav'}: has 2 channels" in err and "--channel N" in err and "--mixdown" in err
    code, out, err = run(capsys, "eval", tmp_path / "st.wav", "-t", target, "--channel", "1", "--json")
    assert code == 0, err
    rec = json_lines(out)[0]
    assert rec["sc"] == pytest.approx(20 * math.log10(0.5), abs=1e-3) and rec["adjusted"] == {"output": {"channel": 1}}
    code, out, err = run(capsys, "eval", tmp_path / "st.wav", "-t", target, "--mixdown", "--json")
    assert code == 0 and json_lines(out)[0]["adjusted"] == {"output": {"mixdown": 2}}
    code, out, err = run(capsys, "eval", tmp_path / "st.wav", "-t", target, "--mixdown", "--channel", "0")
    assert code == 2 and "exclude each other" in err
    # the reference: another rate, several channels, another length
    write_resampled(tmp_path / "ref44k.wav", clip, 44100)
    code, out, err = run(capsys, "eval", tmp_path / "clip.wav", "-t", target, "-r", tmp_path / "ref44k.wav")
    assert code == 2 and f"{tmp_path / 'ref44k.wav'}: sample rate 44100 Hz" in err and "22050 Hz" in err
    code, out, err = run(capsys, "eval", tmp_path / "clip.wav", "-t", target, "-r", tmp_path / "ref44k.wav",
                         "--resample", "--json", "--no-perceptual")
    assert code == 0, err
    rec = json_lines(out)[0]
    assert rec["adjusted"] == {"reference": {"resampled": [44100, 22050]}} and rec["lsd"] < 1.0
    code, out, err = run(capsys, "eval", tmp_path / "clip.wav", "-t", target, "-r", tmp_path / "st.wav")
    assert code == 2 and f"{tmp_path / 'st.wav'}: has 2 channels" in err
    sf.write(tmp_path / "half_ref.wav", clip[: len(clip) // 2], SR, subtype="FLOAT")
    code, out, err = run(capsys, "eval", tmp_path / "clip.wav", "-t", target, "-r", tmp_path / "half_ref.wav")
    assert code == 2 and f"the reference {tmp_path / 'half_ref.wav'} has {len(clip) // 2} samples" in err
    code, out, err = run(capsys, "eval", tmp_path / "clip.wav", "-t", target, "-r", tmp_path / "half_ref.wav",
                         "--truncate", "--json", "--no-perceptual")
    assert code == 0, err
    rec = json_lines(out)[0]
    assert rec["lsd"] == 0.0 and rec["adjusted"]["reference_cut"]["to"] == len(clip) // 2


def test_eval_scores_the_others_when_one_is_refused(tmp_path, capsys, corpus):
    clip = write_clip(tmp_path / "clip.wav", subtype="FLOAT")
    assert run(capsys, "stft", tmp_path / "clip.wav", "-O", tmp_path / "d")[0] == 0
    (tmp_path / "out").mkdir()
    sf.write(tmp_path / "out" / "a.wav", clip, SR, subtype="FLOAT")
    sf.write(tmp_path / "out" / "b.wav", np.concatenate([clip, clip]), SR, subtype="FLOAT")
    code, out, err = run(capsys, "eval", tmp_path / "out", "-t", tmp_path / "d" / "clip.npy", "--json")
    assert code == 1 and err.count("error:") == 1 and "b.wav: 44100 samples (2.00 s)" in err
    recs = json_lines(out)
    assert [r.get("status") for r in recs[:2]] == ["ok", "error"]
    assert recs[-1]["summary"]["items"] == 1 and recs[-1]["summary"]["failed"] == 1
    # nothing scored: exit 2
    code, out, err = run(capsys, "eval", tmp_path / "out" / "b.wav", "-t", tmp_path / "d" / "clip.npy")
    assert code == 2 and out == ""


def test_stft_keeps_its_mixdown_and_resampling(tmp_path, capsys, corpus):
    """Making a spectrogram is not a comparison: stft still mixes down and resamples."""
    from specinv_cli.companion.analysis import analyze
    from specinv_cli.config import STFTConfig

    st = write_stereo(tmp_path / "st.wav", GUITAR)
    code, out, err = run(capsys, "stft", tmp_path / "st.wav", "-O", tmp_path / "d")
    assert code == 0, err
    spec = np.load(tmp_path / "d" / "st.npy")
    assert np.allclose(spec, analyze(st.mean(axis=1), STFTConfig()), atol=1e-6)
    write_resampled(tmp_path / "s16.wav", load_clip(*SPEECH), 16000)
    code, out, err = run(capsys, "stft", tmp_path / "s16.wav", "-O", tmp_path / "d", "--json")
    assert code == 0, err
    assert json_lines(out)[0]["sample_rate"] == SR
