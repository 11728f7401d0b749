"""Every bad input: exit code 2 (1 when others in the batch succeed), one stderr line naming the
file and the problem, no traceback, and no output file left behind."""
import os
import pickle

import numpy as np
import pytest
import torch

from clihelp import files_in, run

F, T = 513, 40


@pytest.fixture
def good(tmp_path):
    mag = np.abs(np.random.default_rng(0).standard_normal((F, T))).astype(np.float32)
    np.save(tmp_path / "good.npy", mag)
    return tmp_path / "good.npy"


class PlantsAFile:
    """Unpickling this would create ``target`` (it must never happen)."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def assert_refused(capsys, tmp_path, args, *needles, code=2):
    before = set(files_in(tmp_path))
    rc, out, err = run(capsys, "invert", *args, "-o", tmp_path / "out.wav")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == code, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert str(n) in lines[0], lines[0]
    assert not (tmp_path / "out.wav").exists()
    assert set(files_in(tmp_path)) == before  # no temporaries either
    return lines[0]


def test_missing_file(tmp_path, capsys):
    assert_refused(capsys, tmp_path, [tmp_path / "nope.npy"], "nope.npy", "no such file")


def test_directory_input(tmp_path, capsys):
    (tmp_path / "d.npy").mkdir()
    assert_refused(capsys, tmp_path, [tmp_path / "d.npy"], "d.npy", "directory")


def test_empty_file(tmp_path, capsys):
    (tmp_path / "e.npy").write_bytes(b"")
    assert_refused(capsys, tmp_path, [tmp_path / "e.npy"], "e.npy", "empty")


def test_unknown_extension(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("1 2 3")
    assert_refused(capsys, tmp_path, [tmp_path / "x.txt"], "x.txt", "unknown file type")


def test_truncated_npy(tmp_path, capsys, good):
    data = good.read_bytes()
    (tmp_path / "t.npy").write_bytes(data[: len(data) // 2])
    assert_refused(capsys, tmp_path, [tmp_path / "t.npy"], "t.npy", "truncated")


def test_corrupt_npz_and_pt(tmp_path, capsys):
    (tmp_path / "c.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 50)
    assert_refused(capsys, tmp_path, [tmp_path / "c.npz"], "c.npz", "corrupt")
    (tmp_path / "c.pt").write_bytes(b"\x80\x02garbage" * 10)
    assert_refused(capsys, tmp_path, [tmp_path / "c.pt"], "c.pt")


def test_npy_pickle_is_refused_without_executing(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    arr = np.empty(1, dtype=object)
    arr[0] = PlantsAFile(marker)
    np.save(tmp_path / "evil.npy", arr, allow_pickle=True)
    assert_refused(capsys, tmp_path, [tmp_path / "evil.npy"], "evil.npy", "pickle")
    assert not marker.exists()


def test_pt_pickle_is_refused_without_executing(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    torch.save({"spec": torch.ones(F, T), "payload": PlantsAFile(marker)}, tmp_path / "evil.pt")
    # sanity: a plain unpickler *would* run it
    assert_refused(capsys, tmp_path, [tmp_path / "evil.pt"], "evil.pt", "refused")
    assert not marker.exists()
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump(PlantsAFile(marker), f)
    os.rename(tmp_path / "evil.pkl", tmp_path / "evil2.pt")
    assert_refused(capsys, tmp_path, [tmp_path / "evil2.pt"], "evil2.pt")
    assert not marker.exists()


@pytest.mark.parametrize("shape,needle", [((F,), "at least 2 dimensions"), ((F, 0), "empty"), ((0, T), "empty")])
def test_wrong_shapes(tmp_path, capsys, shape, needle):
    np.save(tmp_path / "s.npy", np.ones(shape, np.float32))
    assert_refused(capsys, tmp_path, [tmp_path / "s.npy"], "s.npy", needle)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf(tmp_path, capsys, good, bad):
    x = np.load(good)
    x[3, 4] = bad
    np.save(tmp_path / "n.npy", x)
    assert_refused(capsys, tmp_path, [tmp_path / "n.npy"], "n.npy", "NaN or infinite")


@pytest.mark.parametrize("kind", ["magnitude", "power"])
def test_negative_values(tmp_path, capsys, good, kind):
    x = np.load(good)
    x[0, 0] = -1
    np.save(tmp_path / "neg.npy", x)
    assert_refused(capsys, tmp_path, [tmp_path / "neg.npy", "--input-kind", kind], "neg.npy", "negative")


def test_bins_do_not_match_explicit_n_fft(tmp_path, capsys, good):
    line = assert_refused(capsys, tmp_path, [good, "--n-fft", "2048"], "good.npy", "513", "2048")
    assert "1025" in line


def test_db_overflow(tmp_path, capsys):
    np.save(tmp_path / "db.npy", np.full((F, T), 1e5, np.float32))
    assert_refused(capsys, tmp_path, [tmp_path / "db.npy", "--input-kind", "db"], "db.npy", "overflow")


def test_unknown_method_preset_and_option_values(tmp_path, capsys, good):
    assert_refused(capsys, tmp_path, [good, "-m", "nope"], "unknown method 'nope'", "fgla")
    assert_refused(capsys, tmp_path, [good, "--config", "nope"], "unknown preset 'nope'", "default")
    assert_refused(capsys, tmp_path, [good, "--config", tmp_path / "missing.toml"], "missing.toml", "not found")
    assert_refused(capsys, tmp_path, [good, "-m", "fgla", "--alpha", "-1"], "--alpha", ">= 0")
    assert_refused(capsys, tmp_path, [good, "--alpha", "0.5"], "--alpha", "does not apply", "-m")
    assert_refused(capsys, tmp_path, [good, "-m", "gla", "--alpha", "0.5"], "--alpha", "does not apply", "gla")
    assert_refused(capsys, tmp_path, [good, "--iters", "-3"], "--iters")
    assert_refused(capsys, tmp_path, [good, "--window", "kaiserx"], "unknown window 'kaiserx'")
    assert_refused(capsys, tmp_path, [good, "--input-kind", "decibels"], "--input-kind")
    assert_refused(capsys, tmp_path, [good, "--hop-length", "4096"], "hop_length 4096")


def test_cuda_without_gpu(tmp_path, capsys, good):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert_refused(capsys, tmp_path, [good, "--device", "cuda"], "no CUDA device")


def test_output_folder_missing(tmp_path, capsys, good):
    rc, _, err = run(capsys, "invert", good, "-n", "2", "-o", tmp_path / "nodir" / "out.wav")
    assert rc == 2 and "nodir" in err and "does not exist" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "nodir").exists()


def test_output_equal_to_input(tmp_path, capsys, good):
    rc, _, err = run(capsys, "invert", good, "-n", "2", "-o", good)
    assert rc == 2 and "is the same file as the input" in err
    assert np.load(good).shape == (F, T)  # untouched


def test_disk_full_during_write_leaves_nothing(tmp_path, capsys, good, monkeypatch):
    import errno

    import soundfile as sf

    real_write = sf.write

    def full(file, data, *a, **k):
        real_write(file, data[: len(data) // 2], *a, **k)  # half a file reaches the disk...
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sf, "write", full)
    rc, _, err = run(capsys, "invert", good, "-n", "2", "-o", tmp_path / "out.wav")
    assert rc == 2 and "no space left on device" in err and "out.wav" in err
    assert files_in(tmp_path) == ["good.npy"]  # neither the WAV nor its temporary


def test_one_bad_file_does_not_lose_the_others(tmp_path, capsys, good):
    np.save(tmp_path / "nan.npy", np.full((F, T), np.nan, np.float32))
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    out_dir = tmp_path / "out"
    rc, out, err = run(capsys, "invert", good, tmp_path / "nan.npy", tmp_path / "junk.npy", "-n", "3",
                       "-O", out_dir, "--json")
    assert rc == 1
    assert files_in(out_dir) == ["good.wav"]
    errors = [ln for ln in err.splitlines() if ln.startswith("error")]
    assert len(errors) == 2 and "nan.npy" in errors[0] and "junk.npy" in errors[1]
    import json

    recs = [json.loads(l) for l in out.splitlines()]
    # items go out as they finish: the good one waits for its batch, the refusals come at once
    assert sorted((r["input"].rsplit("/", 1)[-1], r["status"]) for r in recs[:3]) == [
        ("good.npy", "ok"), ("junk.npy", "error"), ("nan.npy", "error")]
    assert recs[3]["summary"]["outputs"] == 1 and recs[3]["summary"]["failed_inputs"] == 2


def test_integer_and_half_dtypes_are_accepted(tmp_path, capsys, good):
    x = np.load(good)
    for dt in (np.int16, np.float16, np.float64, np.uint8):
        np.save(tmp_path / "d.npy", (x * 10).astype(dt))
        rc, _, err = run(capsys, "invert", tmp_path / "d.npy", "-n", "2", "-o", tmp_path / f"{np.dtype(dt).name}.wav")
        assert rc == 0, err
    torch.save(torch.from_numpy(x).to(torch.bfloat16), tmp_path / "bf.pt")
    assert run(capsys, "invert", tmp_path / "bf.pt", "-n", "2", "-o", tmp_path / "bf.wav")[0] == 0


def test_silence_gives_silence(tmp_path, capsys):
    import soundfile as sf

    np.save(tmp_path / "z.npy", np.zeros((F, T), np.float32))
    rc, _, err = run(capsys, "invert", tmp_path / "z.npy", "-n", "5", "-o", tmp_path / "z.wav")
    assert rc == 0, err
    audio, _ = sf.read(str(tmp_path / "z.wav"))
    assert np.all(np.isfinite(audio)) and np.abs(audio).max() == 0
