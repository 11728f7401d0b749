"""Hostile inputs (issue 14, the input side): every size derived from an input is checked before
it is allocated, messages say what the file is, and values that pass the first parse but fail
deep inside are usage errors (exit 2, one ``error:`` line naming the file, no traceback).

Classes (each test names its class): sizes from inputs (resampling ratios, headers, stride-0
views, streams, options against the input, address-space limits); messages (true shapes,
long name lists, what a misnamed file looks like, FIFOs and devices, the real errno); values
failing deep inside (stats files, preset types, exotic tensors, a closed or odd stdin).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
import soundfile as sf
import torch

from clihelp import ROOT, run

F = 513
SR = 22050


def _mag(frames=20, seed=0):
    return np.abs(np.random.default_rng(seed).standard_normal((F, frames))).astype(np.float32)


def _errors(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("error:")]


def assert_one_error(code, err, name, *words):
    """Exit 2, exactly one ``error:`` line, naming ``name`` and saying ``words``; no traceback."""
    lines = _errors(err)
    assert code == 2, err
    assert len(lines) == 1, err
    assert str(name) in lines[0], lines[0]
    for w in words:
        assert w in lines[0], lines[0]
    assert "Traceback" not in err and "internal error" not in err, err
    assert len(lines[0]) < 600, lines[0]


def _wav(path, data, sr, subtype="PCM_16"):
    sf.write(str(path), np.asarray(data, dtype=np.float32), sr, subtype=subtype)
    return path


@pytest.fixture
def small_memory(monkeypatch):
    """The available memory every default limit reads, made small (nothing big is allocated)."""
    monkeypatch.setattr("specinv_cli.util.limits.host_memory", lambda: 200 * 2 ** 20)


# --- 1. sizes derived from inputs are checked before allocating -------------------------------
def test_sizes_resampling_blowups_are_refused_in_every_command(tmp_path, capsys, small_memory):
    """A 4 KB WAV at 1 Hz would become 44 million samples at 22050 Hz."""
    one_hz = _wav(tmp_path / "one_hz.wav", np.random.default_rng(0).standard_normal(2000) * 0.1, 1)
    assert one_hz.stat().st_size < 5000
    three_hz = _wav(tmp_path / "three_hz.flac", np.random.default_rng(1).standard_normal(6000) * 0.1, 3)
    for f in (one_hz, three_hz):
        code, _, err = run(capsys, "stft", f, "-O", tmp_path / "specs", "-q")
        assert_one_error(code, err, f.name, "resampling from", "Hz to 22050 Hz", "available memory")
        assert not list((tmp_path / "specs").glob("*"))
    # as eval's reference (resampled deliberately) and as plot's audio SPEC
    ok = _wav(tmp_path / "ok.wav", np.random.default_rng(2).standard_normal(SR) * 0.1, SR, "FLOAT")
    from specinv_cli.companion.analysis import analyze
    from specinv_cli.config import STFTConfig

    np.save(tmp_path / "ok.npy", analyze(sf.read(str(ok), dtype="float32")[0], STFTConfig()))
    code, _, err = run(capsys, "eval", ok, "-t", tmp_path / "ok.npy", "-r", one_hz, "--resample",
                       "--truncate", "--no-perceptual")
    assert_one_error(code, err, "one_hz.wav", "resampling from 1 Hz")
    pytest.importorskip("matplotlib")
    code, _, err = run(capsys, "plot", one_hz, "-o", tmp_path / "p.png")
    assert_one_error(code, err, "one_hz.wav", "resampling from 1 Hz")
    assert not (tmp_path / "p.png").exists()


def test_sizes_the_library_takes_a_limit_and_checks_the_stft_too(tmp_path):
    from specinv_cli.companion.analysis import analyze, load_audio, resample
    from specinv_cli.config import STFTConfig
    from specinv_cli.io.spectrogram import InputError

    x = np.zeros(1000, np.float32)
    with pytest.raises(InputError, match="resampling from 1 Hz to 22050 Hz would need about .* more than the limit"):
        resample(x, 1, 22050, max_bytes=10 * 2 ** 20, source="x")
    assert resample(x, 1, 2, max_bytes=10 * 2 ** 20).shape == (2000,)
    with pytest.raises(InputError, match="spectrogram of 5000000 samples would need"):
        analyze(np.zeros(5_000_000, np.float32), STFTConfig(), max_bytes=50 * 2 ** 20, source="x")
    with pytest.raises(InputError, match="spectrogram"):  # a huge n_fft is refused before its window exists
        analyze(np.zeros(10, np.float32), STFTConfig(n_fft=2 ** 34, hop_length=2 ** 30), source="x")
    wav = _wav(tmp_path / "w.wav", np.zeros(4000), 2)
    with pytest.raises(InputError, match="w.wav: resampling from 2 Hz"):
        load_audio(wav, 22050, max_bytes=20 * 2 ** 20)


def test_sizes_audio_headers_are_checked_before_reading(tmp_path, capsys):
    """A 2 KB FLAC whose STREAMINFO claims 2^36 samples would allocate 256 GiB."""
    good = _wav(tmp_path / "s.flac", np.random.default_rng(0).standard_normal(1000) * 0.1, SR)
    b = bytearray(good.read_bytes())
    v = int.from_bytes(b[18:26], "big")
    b[18:26] = ((v & ~((1 << 36) - 1)) | ((1 << 36) - 1)).to_bytes(8, "big")
    (tmp_path / "lie.flac").write_bytes(bytes(b))
    assert sf.info(str(tmp_path / "lie.flac")).frames == (1 << 36) - 1
    code, _, err = run(capsys, "stft", tmp_path / "lie.flac", "-O", tmp_path / "o", "-q")
    assert_one_error(code, err, "lie.flac", "frames", "its header says")
    np.save(tmp_path / "t.npy", _mag())
    code, _, err = run(capsys, "eval", tmp_path / "lie.flac", "-t", tmp_path / "t.npy")
    assert_one_error(code, err, "lie.flac", "its header says")


def test_sizes_options_are_bounded_by_the_input(tmp_path, capsys):
    """RTISI-LA's cost grows as frames x look_ahead, L-BFGS allocates history_size slots."""
    from specinv_cli.algorithms.registry import get_method

    m = get_method("rtisi-la")
    opts, notes = m.fit_options(m.resolve_options({"look_ahead": 100000}), frames=100, n_iter=100,
                                win_length=1024, hop=256)
    assert opts["look_ahead"] == 99 and "look_ahead" in notes
    opts, _ = m.fit_options(m.resolve_options({"look_ahead": 100000}), frames=100, n_iter=8,
                            win_length=1024, hop=256)
    assert opts["look_ahead"] == 7
    opts, notes = m.fit_options(m.resolve_options({"look_ahead": 2}), frames=100, n_iter=100,
                                win_length=1024, hop=256)
    assert opts["look_ahead"] == 2 and not notes  # within range: as given
    opts, _ = m.fit_options(m.resolve_options({}), frames=1, n_iter=1, win_length=1024, hop=256)
    assert opts["look_ahead"] == -1  # the default is never changed
    lb = get_method("lbfgs")
    opts, notes = lb.fit_options(lb.resolve_options({"history_size": 10 ** 15}), frames=10, n_iter=5,
                                 win_length=1024, hop=256)
    assert opts["history_size"] == 5 and "history_size" in notes

    from specinv_cli.api import invert

    res = invert(_mag(12), method="lbfgs", history_size=10 ** 15, n_iter=3, device="cpu")
    assert res.options["history_size"] == 3 and "history_size" in res.inferred
    np.save(tmp_path / "s.npy", _mag(30))
    r = subprocess.run([sys.executable, "-m", "specinv_cli", "invert", str(tmp_path / "s.npy"), "-m", "rtisi-la",
                        "--look-ahead", "100000", "-n", "4", "-o", str(tmp_path / "x.wav"), "-q"],
                       capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert r.returncode == 0, r.stderr
    assert sf.info(str(tmp_path / "x.wav")).frames > 0


def test_sizes_a_stride0_view_is_checked_before_it_is_materialised(tmp_path, capsys):
    """A 1.6 KB .pt holding ``zeros(1).expand(513, N)`` describes N x 2 KiB of data."""
    big = torch.zeros(1).expand(F, 2_000_000_000)  # 4 TB logical: more than any machine has
    torch.save(big, tmp_path / "view.pt")
    torch.save({"spec": big, "other": torch.zeros(3)}, tmp_path / "dict.pt")
    assert (tmp_path / "view.pt").stat().st_size < 4000
    for name in ("view.pt", "dict.pt"):
        args = ["--key", "spec"] if name == "dict.pt" else []
        code, _, err = run(capsys, "invert", tmp_path / name, *args, "-o", tmp_path / "x.wav", "-q")
        assert_one_error(code, err, name, "(513, 2000000000)", "TiB", "more than the")
        code, _, err = run(capsys, "eval", tmp_path / "nothing.wav", "-t", tmp_path / name, *args)
        assert code == 2 and "Traceback" not in err
    assert not (tmp_path / "x.wav").exists()
    from specinv_cli.io.read import load_array, load_spectrogram
    from specinv_cli.io.spectrogram import InputError

    torch.save(torch.zeros(1).expand(F, 100_000), tmp_path / "mid.pt")  # 205 MB logical
    with pytest.raises(InputError, match="mid.pt: loading its tensor .* more than the limit"):
        load_array(tmp_path / "mid.pt", max_bytes=100 * 2 ** 20)
    with pytest.raises(InputError, match="more than the limit"):
        load_spectrogram(tmp_path / "mid.pt", max_bytes=100 * 2 ** 20)
    assert tuple(load_array(tmp_path / "mid.pt", max_bytes=float("inf")).shape) == (F, 100_000)


def _npy_header(shape, dtype="<f4") -> bytes:
    import io

    from numpy.lib import format as npf

    buf = io.BytesIO()  # the magic, then the header
    npf.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def test_sizes_npy_headers_are_checked_before_reading(tmp_path, capsys, small_memory):
    """A header may describe more data than the file holds, or than memory holds."""
    (tmp_path / "lie.npy").write_bytes(_npy_header((F, 10 ** 9)) + b"\0" * 64)
    code, _, err = run(capsys, "eval", tmp_path / "x.wav", "-t", tmp_path / "lie.npy")
    assert code == 2 and "Traceback" not in err
    code, _, err = run(capsys, "invert", tmp_path / "lie.npy", "-o", tmp_path / "x.wav", "-q")
    assert_one_error(code, err, "lie.npy", "truncated")
    np.save(tmp_path / "big.npy", np.zeros((F, 60_000), np.float32))  # 123 MB
    from specinv_cli.io.read import load_array
    from specinv_cli.io.spectrogram import InputError

    with pytest.raises(InputError, match="big.npy: loading its array .* more than the limit"):
        load_array(tmp_path / "big.npy", max_bytes=64 * 2 ** 20)
    np.savez(tmp_path / "big.npz", x=np.zeros((F, 60_000), np.float32))
    with pytest.raises(InputError, match="big.npz: loading array 'x' .* more than the limit"):
        load_array(tmp_path / "big.npz", max_bytes=64 * 2 ** 20)


def _proc(args, *, input=None, stdin=None, preexec=None, env=None, timeout=180):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "specinv_cli", *map(str, args)], input=input, stdin=stdin,
                          capture_output=True, timeout=timeout, cwd=str(ROOT), env=e, preexec_fn=preexec)


def test_sizes_stdin_is_read_header_first_and_bounded(tmp_path):
    good = (tmp_path / "s.npy")
    np.save(good, _mag())
    data = good.read_bytes()
    r = _proc(["invert", "-", "-o", tmp_path / "ok.wav", "-n", "2", "-q"], input=data)
    assert r.returncode == 0, r.stderr
    cases = [
        (_npy_header((F, 10 ** 12)) + b"\0" * 100, "PiB, more than the"),  # the header says 2 PB
        (data[:3000], "truncated .npy stream"),
        (data + data, "goes on after the array"),
        ((tmp_path / "s.npy").read_bytes()[:5], "not a .npy stream"),
        (b"RIFF\0\0\0\0WAVEfmt " + b"\0" * 40, "looks like a WAV audio file"),
        (b"", "standard input is empty"),
    ]
    for blob, words in cases:
        r = _proc(["invert", "-", "-o", tmp_path / "x.wav", "-q"], input=blob)
        err = r.stderr.decode()
        assert_one_error(r.returncode, err, "<stdin>", words)
        assert not (tmp_path / "x.wav").exists()


@pytest.mark.parametrize("limit_mb", [1000, 1400, 2200, 3200])
@pytest.mark.parametrize("jit", ["1", "0"])
def test_sizes_under_an_address_space_limit_a_run_succeeds_or_says_why(tmp_path, limit_mb, jit):
    """Under ``ulimit -v`` numba's start-up fails (llvmlite cannot map its library) or hangs
    (OpenBLAS retries its buffer forever): the plain code takes over, with one warning at most."""
    import resource

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit_mb * 2 ** 20, resource.RLIM_INFINITY))

    out = tmp_path / "x.wav"
    r = _proc(["invert", "--example", "-o", out], preexec=cap, env={"SPECINV_JIT": jit}, timeout=240)
    err = r.stderr.decode()
    assert "Traceback" not in err and "internal error" not in err, err
    assert len([ln for ln in err.splitlines() if "Warning" in ln or ln.startswith("warning:")]) <= 1, err
    if r.returncode == 0:
        assert sf.info(str(out)).frames > 0
    else:
        assert r.returncode == 2 and len(_errors(err)) == 1, err
        assert not out.exists()


def test_sizes_available_memory_counts_the_address_space_limit():
    import resource

    code = ("import resource; from specinv_cli.api import available_memory; "
            "print(available_memory('cpu'))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=str(ROOT),
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (2 ** 31, resource.RLIM_INFINITY)))
    assert r.returncode == 0, r.stderr
    assert 0 <= int(r.stdout.strip()) < 2 ** 31


# --- 2. messages that mislead or overflow ------------------------------------------------------
def test_messages_report_the_true_shape(tmp_path, capsys):
    np.save(tmp_path / "zero_d.npy", np.float32(3))
    torch.save(torch.tensor(3.0), tmp_path / "zero_d.pt")
    np.savez(tmp_path / "zero_d.npz", x=np.float64(1))
    np.save(tmp_path / "one_d.npy", np.ones(7, np.float32))
    for name, shape in (("zero_d.npy", "shape ()"), ("zero_d.pt", "shape ()"), ("zero_d.npz", "shape ()"),
                        ("one_d.npy", "shape (7,)")):
        code, _, err = run(capsys, "invert", tmp_path / name, "-o", tmp_path / "x.wav", "-q")
        assert_one_error(code, err, name, shape)
        assert "(1,)" not in err


def test_messages_cut_long_lists_of_names(tmp_path, capsys):
    np.savez(tmp_path / "many.npz", **{f"array_{i}": np.zeros(2) for i in range(3000)})
    torch.save({f"t{i}": torch.zeros(2) for i in range(500)}, tmp_path / "many.pt")
    for args, name in (([tmp_path / "many.npz"], "many.npz"), ([tmp_path / "many.npz", "--key", "nope"], "many.npz"),
                       ([tmp_path / "many.pt"], "many.pt")):
        code, _, err = run(capsys, "invert", *args, "-o", tmp_path / "x.wav", "-q")
        assert_one_error(code, err, name, "more")
        assert len(err) < 400, err
    (tmp_path / "many.toml").write_text("[stft]\n" + "".join(f"key_{i} = 1\n" for i in range(3000)))
    code, _, err = run(capsys, "invert", "--example", "--config", tmp_path / "many.toml", "-o", tmp_path / "x.wav")
    assert_one_error(code, err, "many.toml", "and 2992 more")
    assert len(err) < 600


def test_messages_say_what_a_misnamed_file_looks_like(tmp_path, capsys):
    wav = _wav(tmp_path / "a.wav", np.zeros(100), SR)
    np.save(tmp_path / "m.npy", _mag())
    sources = {"wav": (wav.read_bytes(), "a WAV audio file"), "npy": ((tmp_path / "m.npy").read_bytes(), "a NumPy .npy array"),
               "text": (b"hello, this is text\n", "a text file"), "png": (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "a PNG image"),
               "flac": (b"fLaC" + b"\0" * 40, "a FLAC audio file")}
    for kind, (blob, words) in sources.items():
        for suffix in (".npy", ".npz", ".pt"):
            if kind == "npy" and suffix == ".npy":
                continue
            p = tmp_path / f"{kind}_as{suffix}"
            p.write_bytes(blob)
            code, _, err = run(capsys, "invert", p, "-o", tmp_path / "x.wav", "-q")
            assert_one_error(code, err, p.name, f"it looks like {words}")
            assert "pickle" not in err
    # the audio side: a spectrogram named .wav
    (tmp_path / "spec.wav").write_bytes((tmp_path / "m.npy").read_bytes())
    code, _, err = run(capsys, "stft", tmp_path / "spec.wav", "-O", tmp_path / "o", "-q")
    assert_one_error(code, err, "spec.wav", "it looks like a NumPy .npy array")


def _feed_fifo(path, blob):
    def writer():
        with open(path, "wb") as f:
            f.write(blob)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    return t


def test_messages_fifos_and_devices_are_streams_sockets_are_refused(tmp_path, capsys):
    np.save(tmp_path / "m.npy", _mag())
    os.mkfifo(tmp_path / "f.npy")
    t = _feed_fifo(tmp_path / "f.npy", (tmp_path / "m.npy").read_bytes())
    code, _, err = run(capsys, "invert", tmp_path / "f.npy", "-o", tmp_path / "x.wav", "-n", "2", "-q")
    t.join(10)
    assert code == 0, err
    os.mkfifo(tmp_path / "g.npz")
    import io

    buf = io.BytesIO()
    np.savez(buf, x=_mag())
    t = _feed_fifo(tmp_path / "g.npz", buf.getvalue())
    code, _, err = run(capsys, "invert", tmp_path / "g.npz", "-o", tmp_path / "y.wav", "-n", "2", "-q")
    t.join(10)
    assert code == 0, err
    os.mkfifo(tmp_path / "w.wav")
    t = _feed_fifo(tmp_path / "w.wav", _wav(tmp_path / "src.wav", np.zeros(SR), SR).read_bytes())
    code, _, err = run(capsys, "stft", tmp_path / "w.wav", "-O", tmp_path / "specs", "-q")
    t.join(10)
    assert code == 0, err
    code, _, err = run(capsys, "invert", "/dev/null", "-o", tmp_path / "z.wav", "-q")
    assert_one_error(code, err, "/dev/null", "is empty")
    (tmp_path / "zero.npy").symlink_to("/dev/zero")
    code, _, err = run(capsys, "invert", tmp_path / "zero.npy", "-o", tmp_path / "z.wav", "-q")
    assert_one_error(code, err, "zero.npy", "looks like zero bytes")
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(tmp_path / "sock.npy"))
        code, _, err = run(capsys, "invert", tmp_path / "sock.npy", "-o", tmp_path / "z.wav", "-q")
        assert_one_error(code, err, "sock.npy", "is a socket")
        os.symlink(tmp_path / "sock.npy", tmp_path / "sock.wav")
        code, _, err = run(capsys, "stft", tmp_path / "sock.wav", "-O", tmp_path / "specs", "-q")
        assert_one_error(code, err, "sock.wav", "is a socket")
    finally:
        s.close()
    assert not (tmp_path / "z.wav").exists()


def test_messages_process_substitution_reads_the_npy_magic(tmp_path):
    np.save(tmp_path / "m.npy", _mag())
    _wav(tmp_path / "a.wav", np.zeros(100), SR)
    cmd = f"{sys.executable} -m specinv_cli invert <(cat {tmp_path / 'm.npy'}) -o {tmp_path / 'x.wav'} -n 2 -q"
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert r.returncode == 0, r.stderr
    cmd = f"{sys.executable} -m specinv_cli invert <(cat {tmp_path / 'a.wav'}) -o {tmp_path / 'y.wav'} -q"
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert_one_error(r.returncode, r.stderr, "/dev/fd/", "looks like a WAV audio file")


def test_messages_use_the_real_errno(tmp_path, capsys):
    os.symlink("loop_b.npy", tmp_path / "loop_a.npy")
    os.symlink("loop_a.npy", tmp_path / "loop_b.npy")
    os.symlink("gone.npy", tmp_path / "dangling.npy")
    (tmp_path / "file").write_text("x")
    os.symlink("loop_b.wav", tmp_path / "loop_a.wav")
    os.symlink("loop_a.wav", tmp_path / "loop_b.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    cases = [(["invert", tmp_path / "loop_a.npy"], "loop_a.npy", "too many levels of symbolic links"),
             (["invert", tmp_path / "dangling.npy"], "dangling.npy", "broken symbolic link"),
             (["invert", tmp_path / "file" / "x.npy"], "x.npy", "not a folder"),
             (["stft", tmp_path / "loop_a.wav"], "loop_a.wav", "too many levels of symbolic links"),
             (["stft", tmp_path / "empty.wav"], "empty.wav", "empty")]
    for args, name, words in cases:
        extra = ["-o", tmp_path / "x.wav"] if args[0] == "invert" else ["-O", tmp_path / "o"]
        code, _, err = run(capsys, *args, *extra, "-q")
        assert_one_error(code, err, name, words)
        assert "no such file" not in err or words == "not a folder"
    # the library names the errno too (the CLI's folder walk, not ours, stops at a too-long name)
    from specinv_cli.companion.analysis import read_audio
    from specinv_cli.io.read import load_array
    from specinv_cli.io.spectrogram import InputError

    for fn, suffix in ((load_array, ".npy"), (read_audio, ".wav")):
        with pytest.raises(InputError, match="file name too long"):
            fn(tmp_path / ("n" * 300 + suffix))


# --- 3. values that pass the first parse and fail deep inside ----------------------------------
@pytest.fixture
def mel_input(tmp_path):
    np.save(tmp_path / "mel.npy", np.random.default_rng(0).standard_normal((80, 30)).astype(np.float32))
    _wav(tmp_path / "clip.wav", np.random.default_rng(1).standard_normal(SR) * 0.1, SR, "FLOAT")
    return tmp_path


def test_deep_stats_files_are_refused_where_they_enter(mel_input, capsys):
    d = mel_input
    np.save(d / "st.npy", np.zeros(80))
    (d / "damaged.npz").write_bytes(b"PK\x03\x04" + os.urandom(200))
    np.savez(d / "zero_count.npz", count=np.array(0), sum=np.zeros(80), sum_square=np.zeros(80))
    np.savez(d / "no_count.npz", count=np.array([]), sum=np.zeros(80), sum_square=np.zeros(80))
    np.savez(d / "text.npz", mean=np.array(["a"] * 80), std=np.ones(80))
    np.savez(d / "bands.npz", mean=np.zeros(40), std=np.ones(40))
    (d / "wav_stats.npz").write_bytes((d / "clip.wav").read_bytes())
    cases = {"st.npy": "it looks like a NumPy .npy array", "damaged.npz": "damaged", "zero_count.npz": "positive",
             "no_count.npz": "one number", "text.npz": "not numeric", "bands.npz": "40 bands",
             "wav_stats.npz": "a WAV audio file"}
    base = ["--config", "espnet-22k", "--layout", "ft"]
    for stats, words in cases.items():
        for cmd in (["invert", d / "mel.npy", "-o", d / "x.wav", "-q"], ["stft", d / "clip.wav", "-O", d / "o", "-q"],
                    ["eval", d / "clip.wav", "-t", d / "mel.npy"]):
            code, _, err = run(capsys, *cmd, *base, "--stats", d / stats)
            assert_one_error(code, err, stats, words)
    assert not (d / "x.wav").exists() and not (d / "o").exists()


def test_deep_preset_values_of_the_wrong_type(mel_input, capsys):
    d = mel_input
    for body, words in (('[mel]\nn_mels = 80\nnormalization = "meanvar"\nstats = 5\n', "stats must be"),
                        ('[mel]\nn_mels = 80\nstats = ["a", "b"]\n', "stats must be"),
                        ('[mel]\nn_mels = 80\nnormalization = "meanvar"\nstats = "missing.npz"\n', "not found")):
        (d / "p.toml").write_text(body)
        for cmd in (["invert", d / "mel.npy", "-o", d / "x.wav", "-q"], ["stft", d / "clip.wav", "-O", d / "o", "-q"]):
            code, _, err = run(capsys, *cmd, "--config", d / "p.toml")
            assert code == 2 and len(_errors(err)) == 1 and words in err, err
            assert "Traceback" not in err and "internal error" not in err


def test_deep_exotic_tensors(tmp_path, capsys):
    base = torch.rand(F, 12)
    refused = {"meta": torch.empty(F, 12, device="meta"), "sparse": base.to_sparse()}
    try:
        refused["nested"] = torch.nested.nested_tensor([torch.rand(F, 12), torch.rand(F, 14)])
    except (RuntimeError, AttributeError):
        pass
    usable = {"grad": base.clone().requires_grad_(True), "bool": base > 0.5, "bf16": base.to(torch.bfloat16),
              "quantized": torch.quantize_per_tensor(base, 0.01, 0, torch.quint8),
              "complex32": torch.complex(base, base).to(torch.complex32)}
    if hasattr(torch, "float8_e4m3fn"):
        usable["float8"] = base.to(torch.float8_e4m3fn)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k, v in {**refused, **usable}.items():
            torch.save(v, tmp_path / f"{k}.pt")
    for k in refused:
        code, _, err = run(capsys, "invert", tmp_path / f"{k}.pt", "-o", tmp_path / "x.wav", "-q")
        assert_one_error(code, err, f"{k}.pt", k.replace("nested", "nested tensor").replace("sparse", "sparse"))
    assert not (tmp_path / "x.wav").exists()
    for k in usable:
        code, _, err = run(capsys, "invert", tmp_path / f"{k}.pt", "-o", tmp_path / f"{k}.wav", "-n", "2", "-q")
        assert code == 0 and not _errors(err), (k, err)


def test_deep_a_closed_or_odd_stdin(tmp_path):
    import pty

    def close0():
        os.close(0)

    for args, name in ((["invert", "-", "-o", tmp_path / "x.wav"], "<stdin>"),
                       (["invert", "--from-list", "-", "-O", tmp_path / "out"], "--from-list -")):
        r = _proc(args, preexec=close0)
        assert_one_error(r.returncode, r.stderr.decode(), name, "standard input is closed")
    master, slave = pty.openpty()
    try:
        r = _proc(["invert", "-", "-o", tmp_path / "x.wav"], stdin=slave)
    finally:
        os.close(slave)
        os.close(master)
    assert_one_error(r.returncode, r.stderr.decode(), "<stdin>", "terminal")
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "out").exists()
