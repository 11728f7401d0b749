"""Hostile outputs and environments (issue 14): what a command writes never replaces what it must
not, never destroys what it reads, and every failure is one line with a documented exit code.

Classes (each test names its class): special files as outputs; outputs that are inputs; one
outcome per item; values that fail deep inside; signals and leftovers; a reader that goes
away; recursive names; formats by extension; messages with hostile names.
"""
from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clihelp import ROOT, files_in, run, run_process

F = 513  # bins of n_fft 1024


def _mag(frames=16, items=None, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    shape = (F, frames) if items is None else (items, F, frames)
    return (np.abs(rng.standard_normal(shape)) * scale).astype(np.float32)


def _digest(path) -> bytes:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).digest()


def _no_temporaries(*folders):
    for folder in folders:
        left = [f for f in os.listdir(folder) if f.startswith(".specinv-tmp-")]
        assert not left, left


def _errors(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("error:")]


# --- 1. special files as outputs --------------------------------------------------------------
def test_character_devices_are_written_into_never_replaced(tmp_path, capsys):
    np.save(tmp_path / "s.npy", _mag())
    before = os.stat("/dev/null")
    (tmp_path / "null.wav").symlink_to("/dev/null")
    for args in (["-o", "/dev/null"], ["-o", tmp_path / "null.wav"], ["-o", tmp_path / "x.wav", "--history", "/dev/null"]):
        code, _, err = run(capsys, "invert", tmp_path / "s.npy", "-n", "1", "-q", *args)
        assert code == 0, err
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)
    assert (tmp_path / "null.wav").is_symlink()
    # the companions' writers are the same
    code, _, err = run(capsys, "stft", tmp_path / "x.wav", "-O", tmp_path / "specs", "-q")
    assert code == 0, err
    (tmp_path / "specs" / "x.npy").unlink()
    (tmp_path / "specs" / "x.npy").symlink_to("/dev/null")
    code, _, err = run(capsys, "stft", tmp_path / "x.wav", "-O", tmp_path / "specs", "-q")
    assert code == 0, err
    assert (tmp_path / "specs" / "x.npy").is_symlink() and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    code, _, err = run(capsys, "report", tmp_path, "-o", "/dev/null", "--no-images", "-q")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    _no_temporaries(tmp_path, tmp_path / "specs")


def test_a_full_device_is_one_line_no_space_left(tmp_path, capsys):
    np.save(tmp_path / "s.npy", _mag())
    code, _, err = run(capsys, "invert", tmp_path / "s.npy", "-n", "1", "-q", "-o", "/dev/full")
    assert code == 2 and _errors(err) == ["error: /dev/full: cannot write: no space left on device"], err


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_is_said_in_words(tmp_path, capsys):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        np.save(tmp_path / "s.npy", _mag(frames=200))
        code, _, err = run(capsys, "invert", tmp_path / "s.npy", "-n", "1", "-q", "-o", mnt / "x.wav")
        assert code == 2 and "no space left on device" in err and "System error" not in err, err
        assert os.listdir(mnt) == []  # no partial file, no temporary
    finally:
        subprocess.run(["umount", str(mnt)])


def test_a_fifo_gets_the_complete_output_and_stays_a_fifo(tmp_path, capsys):
    np.save(tmp_path / "s.npy", _mag())
    fifo = tmp_path / "out.pipe"
    os.mkfifo(fifo)
    got = {}

    def reader():
        with open(fifo, "rb") as f:
            got["bytes"] = f.read()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    code, _, err = run(capsys, "invert", tmp_path / "s.npy", "-n", "1", "-q", "-o", fifo)
    t.join(60)
    assert code == 0, err
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    import io

    audio, sr = sf.read(io.BytesIO(got["bytes"]))
    assert sr == 22050 and len(audio) == 15 * 256
    _no_temporaries(tmp_path)


def test_sockets_and_block_devices_are_refused(tmp_path, capsys):
    np.save(tmp_path / "s.npy", _mag())
    sock_path = tmp_path / "s.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(sock_path))
    try:
        for args in (["-o", sock_path], ["-o", tmp_path / "x.wav", "--history", sock_path]):
            code, _, err = run(capsys, "invert", tmp_path / "s.npy", "-n", "1", "-q", *args)
            assert code == 2 and len(_errors(err)) == 1 and "socket" in err, err
        code, _, err = run(capsys, "plot", tmp_path / "s.npy", "-o", sock_path, "-q")
        assert code == 2 and "socket" in err
        assert stat.S_ISSOCK(os.stat(sock_path).st_mode)
    finally:
        sock.close()
    if os.geteuid() == 0:
        blk = tmp_path / "blk"
        os.mknod(blk, 0o600 | stat.S_IFBLK, os.makedev(7, 200))
        code, _, err = run(capsys, "invert", tmp_path / "s.npy", "-n", "1", "-q", "-o", blk)
        assert code == 2 and "block device" in err and stat.S_ISBLK(os.stat(blk).st_mode)
    assert not (tmp_path / "x.wav").exists()


def test_a_symlink_to_a_file_keeps_the_link(tmp_path, capsys):
    np.save(tmp_path / "s.npy", _mag())
    (tmp_path / "real.wav").write_bytes(b"old")
    (tmp_path / "link.wav").symlink_to("real.wav")
    code, _, err = run(capsys, "invert", tmp_path / "s.npy", "-n", "1", "-q", "-o", tmp_path / "link.wav")
    assert code == 0, err
    assert (tmp_path / "link.wav").is_symlink() and sf.info(str(tmp_path / "real.wav")).frames == 15 * 256


@pytest.mark.parametrize("alias", ["/dev/stdout", "/proc/self/fd/1", "link"])
def test_stdout_aliases_are_standard_output(tmp_path, alias):
    np.save(tmp_path / "s.npy", _mag())
    if alias == "link":
        alias = tmp_path / "out.wav"
        alias.symlink_to("/proc/self/fd/1")
    p = run_process("invert", tmp_path / "s.npy", "-n", "1", "-q", "-o", alias)
    assert p.returncode == 0, p.stderr
    import io

    audio, sr = sf.read(io.BytesIO(p.stdout))
    assert sr == 22050 and len(audio) == 15 * 256
    # like '-': --json cannot share it
    p = run_process("invert", tmp_path / "s.npy", "-n", "1", "-q", "-o", alias, "--json")
    assert p.returncode == 2 and p.stdout == b"" and b"standard output" in p.stderr


# --- 2. a written path is one that is read -----------------------------------------------------
def test_no_command_writes_over_what_it_reads(tmp_path, capsys):
    np.save(tmp_path / "s.npy", _mag())
    code, _, err = run(capsys, "invert", tmp_path / "s.npy", "-o", tmp_path / "x.wav", "-n", "1", "-q")
    assert code == 0
    (tmp_path / "hard.npy").hardlink_to(tmp_path / "s.npy")
    (tmp_path / "soft.png").symlink_to("s.npy")
    run_dir = tmp_path / "run"
    (run_dir / "reference").mkdir(parents=True)
    (run_dir / "fgla").mkdir()
    (tmp_path / "x.wav").rename(run_dir / "fgla" / "s.wav")
    sf.write(str(run_dir / "reference" / "s.wav"), sf.read(str(run_dir / "fgla" / "s.wav"))[0], 22050)
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "s.npy").symlink_to(run_dir / "reference" / "s.wav")
    files = [tmp_path / "s.npy", run_dir / "reference" / "s.wav", run_dir / "fgla" / "s.wav"]
    before = [_digest(f) for f in files]
    cases = [
        ["invert", tmp_path / "s.npy", "-o", tmp_path / "hard.npy"],
        ["invert", tmp_path / "s.npy", "-o", tmp_path / "y.wav", "--history", tmp_path / "hard.npy"],
        ["invert", tmp_path / "s.npy", "-o", tmp_path / "y.wav", "--history", tmp_path / "y.wav"],
        ["plot", tmp_path / "s.npy", "-o", tmp_path / "soft.png"],
        ["plot", tmp_path / "s.npy", "-a", run_dir / "fgla" / "s.wav", "-o", run_dir / "fgla" / "s.wav"],
        ["report", run_dir, "-o", run_dir / "reference" / "s.wav", "--no-images"],
        ["report", run_dir, "-o", run_dir / "fgla" / "s.wav", "--no-images"],
        ["stft", run_dir / "reference" / "s.wav", "-O", tmp_path / "specs"],
    ]
    for args in cases:
        code, _, err = run(capsys, *args, "-q")
        assert code == 2 and len(_errors(err)) == 1, (args, err)
        assert "same file" in err or "also" in err, (args, err)
    assert [_digest(f) for f in files] == before
    assert not (tmp_path / "y.wav").exists()


# --- 3. every item ends in one record ---------------------------------------------------------
@pytest.mark.parametrize("mode", ["single", "batch", "long"])
def test_a_failed_item_does_not_stop_the_others(tmp_path, capsys, mode):
    np.save(tmp_path / "b.npy", _mag(frames=40, items=4))
    out = tmp_path / "o"
    (out / "b_001.wav").mkdir(parents=True)  # item 1 cannot be written
    extra = {"single": [], "batch": ["--batch-size", "4", "-m", "fgla"],
             "long": ["--block-frames", "16", "--block-overlap", "4"]}[mode]
    code, outp, err = run(capsys, "invert", tmp_path / "b.npy", "-O", out, "-n", "1", "--json", "-q", *extra)
    lines = [json.loads(ln) for ln in outp.splitlines()]
    recs, summary = lines[:-1], lines[-1]["summary"]
    assert code == 1, err
    recs.sort(key=lambda r: r["item"])  # a batch reports an unwritable item before it runs
    assert [(r["item"], r["status"]) for r in recs] == [(0, "ok"), (1, "error"), (2, "ok"), (3, "ok")]
    assert summary["outputs"] == 3 and summary["failed"] == 1
    assert sorted(files_in(out)) == ["b_000.wav", "b_001.wav", "b_002.wav", "b_003.wav"]
    assert (out / "b_001.wav").is_dir()
    assert _errors(err) == ["error: " + recs[1]["error"]]


# --- 5. values that pass the first parse and fail deep inside: exit 2, one line ----------------
def test_values_failing_deep_inside_are_usage_errors(tmp_path, capsys, monkeypatch):
    np.save(tmp_path / "s.npy", _mag())
    (tmp_path / "big_sr.toml").write_text("[stft]\nsample_rate = 4294967296\n")
    cases = [
        (["--block-frames", "1"], "--block-frames"),
        (["--block-frames", "3", "--block-overlap", "3"], "--block-overlap"),
        (["--sr", str(2 ** 31)], "--sr"),
        (["--config", tmp_path / "big_sr.toml"], "at most"),
        (["--seed", str(2 ** 70)], "--seed"),
    ]
    for args, word in cases:
        code, _, err = run(capsys, "invert", tmp_path / "s.npy", "-o", tmp_path / "x.wav", "-n", "1", "-q", *args)
        assert code == 2 and len(_errors(err)) == 1 and word in err and "internal" not in err, (args, err)
    for env in ({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"},
                {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "one", "SLURM_ARRAY_TASK_COUNT": "2"},
                {"SLURM_PROCID": "0", "SLURM_NTASKS": "2.5"}, {"RANK": "a", "WORLD_SIZE": "2"}):
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        code, _, err = run(capsys, "invert", tmp_path / "s.npy", "-o", tmp_path / "x.wav", "-n", "1", "-q")
        assert code == 2 and len(_errors(err)) == 1 and "expected" in err and "internal" not in err, (env, err)
        for k in env:
            monkeypatch.delenv(k)
    assert not (tmp_path / "x.wav").exists()


def test_an_invalid_matplotlib_backend_does_not_stop_plots(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    np.save(tmp_path / "s.npy", _mag())
    monkeypatch.setenv("MPLBACKEND", "no-such-backend")
    code, _, err = run(capsys, "plot", tmp_path / "s.npy", "-o", tmp_path / "p.png", "-q")
    assert code == 0, err
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args", [["-o", "-"], ["-o", "x.wav", "--json"]], ids=["-o -", "--json"])
def test_a_closed_stdout_is_a_usage_error(tmp_path, args):
    np.save(tmp_path / "s.npy", _mag())
    p = subprocess.run([sys.executable, "-c", "import os, sys; os.close(1); from specinv_cli.cli import main; "
                        "sys.argv = ['specinv'] + sys.argv[1:]; main()", "invert", str(tmp_path / "s.npy"),
                        "-n", "1", "-q", *[str(tmp_path / a) if a == "x.wav" else a for a in args]],
                       capture_output=True, cwd=str(ROOT), timeout=120)
    err = p.stderr.decode()
    assert p.returncode == 2 and len(_errors(err)) == 1 and "standard output" in err and "Traceback" not in err, err
    assert not (tmp_path / "x.wav").exists()


# --- 6. signals and leftovers -----------------------------------------------------------------
def test_stale_temporaries_of_dead_runs_are_removed(tmp_path, capsys):
    from specinv_cli.io import write as io

    np.save(tmp_path / "s.npy", _mag())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    mine_dead = f".specinv-tmp-{io._HOST}+{dead.pid}+abcdefgh.wav"
    alive = f".specinv-tmp-{io._HOST}+{os.getppid()}+abcdefgh.wav"
    other_host = f".specinv-tmp-elsewhere+{dead.pid}+abcdefgh.wav"
    for n in (mine_dead, alive, other_host, "keep.wav"):
        (tmp_path / n).write_bytes(b"partial")
    io._SWEPT.clear()
    code, _, err = run(capsys, "invert", tmp_path / "s.npy", "-o", tmp_path / "x.wav", "-n", "1", "-q")
    assert code == 0, err
    assert sorted(files_in(tmp_path)) == sorted([alive, other_host, "keep.wav", "s.npy", "x.wav"])


# --- 7. a reader that goes away --------------------------------------------------------------
def test_a_closed_pipe_ends_the_run_quietly(tmp_path):
    for i in range(4):
        np.save(tmp_path / f"in{i}.npy", _mag(seed=i))
    out = tmp_path / "w"
    proc = subprocess.Popen([sys.executable, "-m", "specinv_cli", "invert", *[tmp_path / f"in{i}.npy" for i in range(4)],
                             "-O", out, "-n", "1", "--json", "-q"], cwd=str(ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    first = proc.stdout.readline()
    proc.stdout.close()  # `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert json.loads(first)["status"] == "ok"
    assert "Traceback" not in err and "error" not in err, err
    written = files_in(out)
    assert written and len(written) < 4 and not [f for f in written if f.startswith(".specinv")]
    for f in written:
        assert sf.info(str(out / f)).frames == 15 * 256
    # -o - into a pipe that is gone: quiet too, no "cannot create folder"
    proc = subprocess.Popen([sys.executable, "-m", "specinv_cli", "invert", tmp_path / "in0.npy", "-o", "-", "-n", "1",
                             "-q"], cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == "", err


# --- 8. recursive names -----------------------------------------------------------------------
def test_recursive_without_output_dir_writes_beside_each_input(tmp_path, capsys):
    (tmp_path / "d" / "sub" / "deeper").mkdir(parents=True)
    for rel in ("a.npy", "sub/b.npy", "sub/deeper/c.npy"):
        np.save(tmp_path / "d" / rel, _mag())
    code, _, err = run(capsys, "invert", tmp_path / "d", "-r", "-n", "1", "-q")
    assert code == 0, err
    for rel in ("a.wav", "sub/b.wav", "sub/deeper/c.wav"):
        assert sf.info(str(tmp_path / "d" / rel)).frames == 15 * 256
    assert not (tmp_path / "d" / "sub" / "sub").exists()


# --- 9. formats by extension ------------------------------------------------------------------
def test_the_extension_names_the_format(tmp_path, capsys):
    np.save(tmp_path / "s.npy", _mag())
    for name, fmt in (("x.flac", "FLAC"), ("x.ogg", "OGG"), ("x.aiff", "AIFF"), ("x.WAV", "WAV")):
        code, out, err = run(capsys, "invert", tmp_path / "s.npy", "-o", tmp_path / name, "-n", "1", "-q", "--json")
        assert code == 0, err
        rec = json.loads(out.splitlines()[0])
        assert sf.info(str(tmp_path / name)).format == fmt
        audio, _ = sf.read(str(tmp_path / name), dtype="float32")
        # the reported figures are of what a reader decodes (lossy OGG included)
        code, ev, _ = run(capsys, "eval", tmp_path / name, "--target", tmp_path / "s.npy", "--json", "-q")
        assert code == 0 and abs(json.loads(ev.splitlines()[0])["sc"] - rec["sc"]) < 0.01
    for name in ("x.npy", "x.mp4", "x.txt"):
        code, _, err = run(capsys, "invert", tmp_path / "s.npy", "-o", tmp_path / name, "-n", "1", "-q")
        assert code == 2 and len(_errors(err)) == 1 and "audio format" in err, err
        assert not (tmp_path / name).exists()


def test_a_flac_output_never_changes_the_level_silently(tmp_path, capsys):
    np.save(tmp_path / "s.npy", _mag(scale=40.0))  # its inversion peaks above full scale
    code, _, err = run(capsys, "invert", tmp_path / "s.npy", "-o", tmp_path / "x.flac", "-n", "1", "-q")
    assert code == 2 and "FLAC" in err and "--normalize peak" in err and not (tmp_path / "x.flac").exists(), err
    code, _, err = run(capsys, "invert", tmp_path / "s.npy", "-o", tmp_path / "x.flac", "-n", "1", "-q",
                       "--normalize", "peak")
    assert code == 0 and sf.info(str(tmp_path / "x.flac")).format == "FLAC"
    code, _, err = run(capsys, "invert", tmp_path / "s.npy", "-o", tmp_path / "y.flac", "-n", "1", "-q",
                       "--subtype", "FLOAT")
    assert code == 2 and "float" in err


# --- 10. messages with hostile names ----------------------------------------------------------
def test_control_characters_in_names_cannot_forge_lines(tmp_path, capsys):
    evil = tmp_path / "a\nerror: forged\x1b[31m.npy"
    evil.write_bytes(b"not an array")
    code, _, err = run(capsys, "invert", evil, "-o", tmp_path / "x.wav", "-q")
    assert code == 2 and len(err.splitlines()) == 1 and "\x1b" not in err and "\\n" in err, err


@pytest.mark.skipif(sys.platform != "linux", reason="needs a file system that takes any bytes")
def test_undecodable_names_give_valid_json(tmp_path):
    name = os.fsencode(str(tmp_path)) + b"/caf\xe9.npy"
    np.save(name.decode("utf-8", "surrogateescape"), _mag())
    p = run_process("invert", name.decode("utf-8", "surrogateescape"), "-O", tmp_path / "o", "-n", "1", "-q", "--json")
    assert p.returncode == 0, p.stderr
    for line in p.stdout.decode("utf-8").splitlines():  # strict UTF-8, and no lone surrogates
        rec = json.loads(line)
        text = json.dumps(rec, ensure_ascii=False)
        text.encode("utf-8")  # raises on a lone surrogate
    assert "caf\\xe9" in json.loads(p.stdout.decode().splitlines()[0])["input"]


# --- follow-ups the property test found ------------------------------------------------------
@pytest.mark.parametrize("mode", ["reflect", "circular", "replicate", "constant"])
def test_inputs_shorter_than_the_pad_work_in_every_pad_mode(tmp_path, capsys, mode):
    import torch

    from specinv_cli.config import STFTConfig
    from specinv_cli.dsp.stft import STFT

    st = STFT(STFTConfig(n_fft=16, hop_length=4, pad_mode=mode))
    x = torch.randn(2, 5, dtype=torch.float64)
    padded = st._pad(x)
    assert padded.shape == (2, 5 + 16)
    if mode == "circular":  # the periodic extension, however many times it wraps
        idx = torch.arange(-8, 5 + 8) % 5
        assert torch.equal(padded, x[:, idx])
    sf.write(str(tmp_path / "one.wav"), np.array([0.25]), 8000)
    code, _, err = run(capsys, "stft", tmp_path / "one.wav", "--pad-mode", mode, "--sr", "8000", "-O", tmp_path / "s", "-q")
    assert code == 0, err
    assert np.all(np.isfinite(np.load(tmp_path / "s" / "one.npy")))


def test_a_filterbank_larger_than_its_bins_is_refused_before_allocating(tmp_path, capsys):
    sf.write(str(tmp_path / "a.wav"), np.zeros(2048), 22050)
    for n in (514, 2 ** 31):
        code, _, err = run(capsys, "stft", tmp_path / "a.wav", "--n-mels", str(n), "-O", tmp_path / "s", "-q")
        assert code == 2 and len(_errors(err)) == 1 and "--n-mels" in err and "513 frequency bins" in err, err
    assert not (tmp_path / "s").exists() or not os.listdir(tmp_path / "s")


def test_a_failed_batch_ends_in_one_record_per_item_and_one_line_per_input(tmp_path, capsys, monkeypatch):
    import specinv_cli.api as api

    np.save(tmp_path / "a.npy", _mag(frames=10))
    np.save(tmp_path / "b.npy", _mag(frames=12, items=2))

    def boom(*args, **kwargs):
        raise ValueError("the device went away")

    monkeypatch.setattr(api, "invert", boom)
    code, out, err = run(capsys, "invert", tmp_path / "a.npy", tmp_path / "b.npy", "--batch-size", "3", "-m", "fgla",
                         "-n", "1", "-O", tmp_path / "o", "--json", "-q")
    recs = [json.loads(ln) for ln in out.splitlines()][:-1]
    assert code == 2, err
    assert sorted((Path(r["input"]).name, r["item"]) for r in recs) == [("a.npy", None), ("b.npy", 0), ("b.npy", 1)]
    assert all(r["status"] == "error" and "the device went away" in r["error"] for r in recs)
    assert len(_errors(err)) == 2  # one line per input
    assert not (tmp_path / "o").exists() or not os.listdir(tmp_path / "o")
