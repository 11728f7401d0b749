"""Hostile inputs (issue 14): property-based tests (hypothesis) of ``invert``, ``stft`` and ``eval``
that draw option combinations (hostile sizes, rates, presets, method options, output targets)
and small hostile files (arrays with zero dims, 0-d, batches, NaN/inf/huge/tiny values, odd
dtypes; audio at 1 Hz, with 0 or 1 samples, stereo, NaN, non-audio renamed .wav), and check for
every example:

- exit code 0, 1 or 2 (never 3 = internal error, never 130 or a signal);
- no ``Traceback``, no ``internal error``, no Python object repr (``<... object at 0x...>``) and
  no terminal control characters on stderr;
- exit 0 wrote what was asked, exit 1 wrote something and named the failures, exit 2 wrote no
  output; every ``--json`` line parses;
- every file in the working folder after the run either existed before, unchanged (inputs,
  configs, stats, decoys: sha256 before/after), or is a complete output: a WAV/FLAC (content
  matching its suffix) that soundfile reads, with samples, all finite, at the settings' rate; a
  .npy that ``np.load(allow_pickle=False)`` reads; a .pt of one plain tensor; JSON that parses.
  No ``.specinv-tmp-*`` file is left;
- bounded resources: each CLI call runs in-process under a hard wall limit (SIGALRM raising an
  exception the CLI does not catch: a hang guard, not a speed assertion) and an address-space
  limit (RLIMIT_AS, ``ulimit -v``) a few GiB above the process's size: the CLI reads that limit
  (``limits.host_memory``) and must refuse what does not fit; a size it does not refuse fails
  as an allocation error (exit 3) instead of eating the machine. Most invert examples pass a
  small ``--max-memory`` so that hostile sizes must be refused by the estimate; those without
  it draw only sizes that are safe to allocate.

Options, files and output targets each get their own hostility rate (0-50 %, drawn per
example; see :class:`Pick`), so that one hostile aspect is also tried with the others sane.

Each example runs in a fresh temporary folder that is the working directory of the call, with
relative paths, so the failing command line that hypothesis prints (``note``) can be replayed
in an empty folder. 80 examples per test by default; ``-m slow`` runs 1000 per test.
``SPECINV_HOSTILE_LOG=FILE`` appends each call's exit code, time, command and last stderr line
to FILE (to review what the examples reach).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import resource
import shlex
import signal
import socket
import stat
import struct
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, Phase, event, given, note, settings
from hypothesis import strategies as st

from clihelp import run
from specinv_cli.algorithms.registry import REGISTRY
from specinv_cli.config import list_presets, load_preset

N_DEFAULT, N_SLOW = 80, 1000
COMMON = dict(deadline=timedelta(seconds=60), suppress_health_check=list(HealthCheck), derandomize=False,
              print_blob=True, phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink])
#: Hard wall limit of one CLI call (a hang guard: tiny inputs take milliseconds).
CALL_LIMIT_S = 30
#: Address space a call may take beyond what the process already maps (RLIMIT_AS, as ``ulimit
#: -v``: the CLI reads that limit and must refuse, not crash on, what does not fit under it).
MEM_HEADROOM = 3 * 2 ** 30

METHODS = list(REGISTRY)
PRESETS = list_presets()
PRESET_SR = {p: load_preset(p).sample_rate for p in PRESETS}
HUGE = [2 ** 31, 2 ** 40]
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 (but \t \n), DEL, C1
AUDIO_FORMATS = {".wav": {"WAV", "WAVEX", "RF64"}, ".flac": {"FLAC"}, ".ogg": {"OGG"}, ".aiff": {"AIFF"},
                 ".aif": {"AIFF"}, ".au": {"AU"}, ".caf": {"CAF"}, ".w64": {"W64"}}


class Hang(BaseException):
    """Raised by SIGALRM inside a CLI call that ran past CALL_LIMIT_S (the CLI catches only
    Exception and KeyboardInterrupt, so it reaches the test)."""


# --- running a call and checking its effects -----------------------------------------------

def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def call(capsysbinary, folder: Path, args: list[str]):
    """``specinv ARGS`` in ``folder`` (the working directory): (rc, stdout bytes, stderr str)."""
    note("repro: cd <folder> && specinv " + shlex.join(args))

    def on_alarm(signum, frame):
        raise Hang(f"ran past {CALL_LIMIT_S} s")

    old_cwd = os.getcwd()
    old_alarm = signal.signal(signal.SIGALRM, on_alarm)
    old_as = resource.getrlimit(resource.RLIMIT_AS)
    old_term = signal.getsignal(signal.SIGTERM)
    os.chdir(folder)
    t0 = time.monotonic()
    try:
        resource.setrlimit(resource.RLIMIT_AS, (_vm_size() + MEM_HEADROOM, old_as[1]))
        signal.setitimer(signal.ITIMER_REAL, CALL_LIMIT_S)
        try:
            rc, out, err = run(capsysbinary, *args)
        except Hang:
            capsysbinary.readouterr()
            pytest.fail(f"hang guard: specinv {shlex.join(args)} ran past {CALL_LIMIT_S} s")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_alarm)
        resource.setrlimit(resource.RLIMIT_AS, old_as)
        signal.signal(signal.SIGTERM, old_term)
        os.chdir(old_cwd)
    elapsed = time.monotonic() - t0
    err = err.decode("utf-8", "replace")
    note(f"exit {rc} after {elapsed:.2f} s; stderr:\n{err}")
    if os.environ.get("SPECINV_HOSTILE_LOG"):  # collect the outcomes for review
        last = (err.strip().splitlines() or [""])[-1]
        with open(os.environ["SPECINV_HOSTILE_LOG"], "a", encoding="utf-8") as f:
            f.write(f"{rc}\t{elapsed:.2f}\t{shlex.join(args)!r}\t{last!r}\n")
    event(f"exit {rc}")
    return rc, out, err


def snapshot(folder: Path) -> dict:
    """{relative path: (kind, detail)} of everything in folder: ('file', sha256), ('dir', None),
    ('link', target), ('fifo' | 'chr' | 'sock', None) -- special files are never opened."""
    snap = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(root) / name
            rel = str(p.relative_to(folder))
            mode = os.lstat(p).st_mode
            if stat.S_ISLNK(mode):
                snap[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(mode):
                snap[rel] = ("dir", None)
            elif stat.S_ISFIFO(mode):
                snap[rel] = ("fifo", None)
            elif stat.S_ISCHR(mode):
                snap[rel] = ("chr", None)
            elif stat.S_ISSOCK(mode):
                snap[rel] = ("sock", None)
            else:
                snap[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
    return snap


class Fifo:
    """A FIFO with a thread at its other end: ``reader`` collects what the CLI writes into it,
    ``writer`` feeds it ``data`` (an input given as a named pipe, like ``<(...)``)."""

    live: list = []  # every FIFO not yet released (see release_fifos)

    def __init__(self, path: Path, role: str, data: bytes = b""):
        os.mkfifo(path)
        Fifo.live.append(self)
        self.path, self.role, self.data, self.got, self.error = path, role, data, b"", None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            if self.role == "reader":
                with open(self.path, "rb") as f:
                    self.got = f.read()
            else:
                with open(self.path, "wb") as f:
                    f.write(self.data)
        except OSError as e:
            self.error = e

    def finish(self):
        """Release the thread when the CLI did not open (or did not finish) the other end."""
        for _ in range(50):
            if not self.thread.is_alive():
                break
            try:
                fd = os.open(self.path, (os.O_WRONLY if self.role == "reader" else os.O_RDONLY) | os.O_NONBLOCK)
                os.close(fd)
            except OSError:
                pass
            self.thread.join(0.1)
        return self


def release_fifos():
    """Finish every FIFO's thread (also when an example ended before its call, e.g. a
    hypothesis overrun), before its folder is removed."""
    while Fifo.live:
        Fifo.live.pop().finish()


def fifoize(folder: Path, name: str) -> Fifo:
    """Turn the file ``name`` into a FIFO that a thread feeds with its former bytes."""
    data = (folder / name).read_bytes()
    (folder / name).unlink()
    note(f"{name!r} is a FIFO fed with those {len(data)} bytes")
    return Fifo(folder / name, "writer", data)


def check_audio_bytes(data: bytes, where: str, sr: int | None, suffix: str = ".wav"):
    try:
        info = sf.info(io.BytesIO(data))
        audio, rate = sf.read(io.BytesIO(data), dtype="float64", always_2d=True)
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"{where}: not readable as audio ({type(e).__name__}: {e})")
    want = AUDIO_FORMATS.get(suffix.lower(), {"WAV", "WAVEX", "RF64"})  # no suffix: the CLI writes WAV
    assert info.format in want, f"{where}: holds {info.format} data, its name says {suffix or 'WAV'}"
    assert audio.size > 0, f"{where}: holds no samples"
    assert np.all(np.isfinite(audio)), f"{where}: non-finite samples"
    if sr is not None:
        assert rate == sr, f"{where}: sample rate {rate}, the settings say {sr}"
    if info.format in ("WAV", "WAVEX") and data[:4] == b"RIFF":
        size = struct.unpack("<I", data[4:8])[0] + 8
        assert size == len(data), f"{where}: RIFF size {size} but {len(data)} bytes (truncated or concatenated)"


def check_output_file(p: Path, rel: str, sr: int | None, kinds: set[str], json_paths=()):
    """A new (or rewritten) file must be a complete output of one of ``kinds`` (``json_paths``:
    files asked for as JSON whatever their suffix, e.g. ``--history``)."""
    suffix = p.suffix.lower()
    if suffix == ".json" or rel in json_paths:
        assert "json" in kinds, f"{rel}: unexpected JSON file"
        try:
            json.loads(p.read_text(encoding="utf-8"))
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"{rel}: not valid JSON ({e})")
    elif suffix == ".npy":
        assert "npy" in kinds, f"{rel}: a .npy file this command does not write"
        try:
            a = np.load(p, allow_pickle=False)
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"{rel}: np.load(allow_pickle=False) fails ({type(e).__name__}: {e})")
        assert isinstance(a, np.ndarray) and a.dtype.kind in "fc", f"{rel}: not a float array ({type(a)})"
    elif suffix == ".pt":
        assert "pt" in kinds, f"{rel}: a .pt file this command does not write"
        try:
            t = torch.load(p, weights_only=True)
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"{rel}: torch.load(weights_only=True) fails ({type(e).__name__}: {e})")
        assert isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()), f"{rel}: not a float tensor"
    else:
        assert "audio" in kinds, f"{rel}: unexpected file {p.name!r}"
        check_audio_bytes(p.read_bytes(), rel, sr, suffix)


def check_effects(folder: Path, before: dict, kinds: set[str], sr: int | None = None, json_paths=(),
                  replaceable=()) -> list[str]:
    """Inputs unchanged, no temporaries, every new file a complete output; returns the new files.
    ``replaceable``: files that were there before but are the command's own destinations and not
    read by it (an earlier output, say); one may be replaced, by a complete output only."""
    after = snapshot(folder)
    tmps = [r for r in after if ".specinv-tmp-" in r]
    assert not tmps, f"temporary files left: {tmps}"
    for rel, (kind, val) in before.items():
        if kind == "link" or (kind == "file" and rel in replaceable and after.get(rel, (None,))[0] == "file"):
            continue  # a link may be replaced by an output (its target is checked as itself), so may a destination
        if kind in ("fifo", "chr", "sock"):
            assert after.get(rel, (None,))[0] == kind, f"special file {rel!r} ({kind}) was replaced: {after.get(rel)}"
            continue
        assert rel in after, f"input {rel!r} was removed"
        assert after[rel] == (kind, val), f"input {rel!r} was modified ({before[rel]} -> {after[rel]})"
    new = []
    for rel, (kind, val) in after.items():
        if rel in before and before[rel] == (kind, val):
            continue
        if kind == "dir":
            continue
        p = folder / rel
        if kind in ("link", "fifo", "chr", "sock"):
            pytest.fail(f"{rel}: a {kind} was created")
        check_output_file(p, rel, sr, kinds, json_paths)
        new.append(rel)
    return new


def check_stderr(rc: int, err: str):
    assert rc in (0, 1, 2), f"exit code {rc}: {err[-2000:]}"
    assert "Traceback" not in err, err
    assert "internal error" not in err, err
    assert not re.search(r"<[\w.]+ object at 0x[0-9a-f]+>", err), f"a Python object's repr on stderr: {err}"
    bad = CONTROL.findall(err)
    assert not bad, f"raw control characters {bad!r} on stderr: {err!r}"
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    if rc:
        assert errors, f"exit {rc} without an error line: {err}"
    else:
        assert not errors, f"exit 0 with error lines: {err}"


def check_json_stdout(out: bytes, rc: int) -> list[dict]:
    text = out.decode("utf-8")
    assert not CONTROL.findall(text.replace("\n", "")), f"control characters on stdout: {text!r}"
    recs = []
    for ln in text.splitlines():
        try:
            recs.append(json.loads(ln))
        except json.JSONDecodeError:
            pytest.fail(f"--json line is not JSON: {ln!r}")
    if rc in (0, 1):
        assert recs and "summary" in recs[-1], f"--json without a summary line: {text!r}"
    return recs


# --- drawing: sane values, and with probability p hostile ones ------------------------------

class Pick:
    """Draws option values: from ``sane``, or with probability ``p`` % from ``hostile``. Both
    shrink towards leaving an option out and towards its first sane value, so that a failure
    shrinks to a short command line."""

    def __init__(self, draw, p: int):
        self.draw, self.p = draw, p

    def val(self, label, sane, hostile=()):
        if hostile and self.draw(st.integers(0, 99), label=f"hostile {label}") >= 100 - self.p:
            return self.draw(st.sampled_from(list(hostile)), label=label)
        return self.draw(st.sampled_from(list(sane)), label=label)

    def opt(self, label, sane, hostile=(), use=2):
        """None (left out) or a value; given in about ``use`` examples of 8."""
        if self.draw(st.integers(0, 7), label=f"use {label}") < 8 - use:
            return None
        return self.val(label, sane, hostile)

    def flag(self, a: list, name, sane, hostile=(), use=2):
        v = self.opt(name, sane, hostile, use)
        if v is not None:
            a += [name, str(v)]
        return v


def hostility(draw, what: str) -> Pick:
    """A Pick for one aspect (options, files, outputs), each hostile at its own rate, so that a
    hostile output target is also tried with otherwise sane options and files."""
    return Pick(draw, draw(st.sampled_from([0, 3, 10, 25, 50]), label=f"hostility % of {what}"))


# --- hostile files ---------------------------------------------------------------------------

def array_spec(pk: Pick, label: str, bins=33):
    """(format, shape, dtype, values, seed) of a small spectrogram file, often hostile."""
    fmt = pk.val(f"{label} format", [".npy", ".npz", ".pt"])
    n_bins = pk.val(f"{label} bins", [bins], [1, 2, 3, 17, 80, 513])
    frames = pk.val(f"{label} frames", [4, 2, 3, 5, 9], [0, 1])
    kind = pk.val(f"{label} shape", ["ft", "ft", "batch"], ["tf", "zero", "0d", "1d", "4d", "ri"])
    n_batch = pk.val(f"{label} batch", [2, 1, 3])
    shape = {"ft": (n_bins, frames), "tf": (frames, n_bins), "0d": (), "1d": (n_bins,),
             "4d": (1, 2, n_bins, frames), "ri": (n_bins, frames, 2), "batch": (n_batch, n_bins, frames),
             "zero": pk.val(f"{label} zero shape", [(0, n_bins), (n_bins, 0), (0, n_bins, 4), (2, 0, 4), (0,)])}[kind]
    dtype = pk.val(f"{label} dtype", ["float32", "float64"],
                   ["float16", "int16", "int64", "uint8", "bool", "complex64", "complex128"])
    special = pk.val(f"{label} values", ["none"],
                     ["nan", "allnan", "inf", "-inf", "neg", "huge", "max", "tiny", "denormal", "zero", "silence"])
    seed = pk.draw(st.integers(0, 2 ** 16), label=f"{label} seed")
    return fmt, shape, dtype, special, seed


def array_values(shape, special, seed):
    rng = np.random.default_rng(seed)
    x = np.abs(rng.standard_normal(shape)) * 3 if shape else np.asarray(abs(rng.standard_normal()) * 3)
    x = np.asarray(x, dtype=np.float64)
    if x.size and special not in ("none", "silence", "allnan"):
        idx = tuple(int(rng.integers(0, s)) for s in x.shape)
        x[idx] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "neg": -1.0, "huge": 1e30, "max": 1.7e308,
                  "tiny": 1e-30, "denormal": 5e-324, "zero": 0.0}[special]
    if special == "silence":
        x[...] = 0
    if special == "allnan":
        x[...] = np.nan
    return x


def write_array(path: Path, spec) -> None:
    fmt, shape, dtype, special, seed = spec
    x = array_values(shape, special, seed)
    with np.errstate(all="ignore"):
        a = x.astype(dtype)
    if fmt == ".npy":
        with open(path, "wb") as f:
            np.save(f, a)
    elif fmt == ".npz":
        with open(path, "wb") as f:
            np.savez(f, spec=a)
    else:
        with open(path, "wb") as f:
            torch.save(torch.from_numpy(np.ascontiguousarray(a)), f)
    note(f"file {path.name!r}: {fmt} shape {shape} {dtype} values {special} seed {seed}")


NAMES = ["with space", "ünï", "ctl\x1bname", "nl\nname", "tab\tname", "cr\rname", "-dash", "bell\x07", "b"]


def audio_spec(pk: Pick, label: str):
    """(kind, name, suffix, rate, samples, channels, content, subtype, seed) of an audio file."""
    kind = pk.val(f"{label} kind", ["audio"], ["garbage", "empty", "truncated", "npy_renamed", "text"])
    name = pk.val(f"{label} name", ["a"], NAMES)
    suffix = pk.val(f"{label} suffix", [".wav", ".flac"], [".npy", ".WAV", ".pt"])
    rate = pk.val(f"{label} rate", [8000, 22050, 16000, 48000], [1, 2, 24000])
    n = pk.draw(st.integers(200, 3000), label=f"{label} samples") if pk.val(f"{label} short", [False], [True]) is False \
        else pk.draw(st.sampled_from([0, 1, 2, 3, 15]), label=f"{label} few samples")
    channels = pk.val(f"{label} channels", [1], [2, 3])
    content = pk.val(f"{label} content", ["noise"], ["silence", "nan", "inf", "clip", "dc", "tiny"])
    subtype = pk.val(f"{label} subtype", ["PCM_16", "FLOAT"], ["DOUBLE", "PCM_24", "PCM_U8"])
    seed = pk.draw(st.integers(0, 2 ** 16), label=f"{label} seed")
    return kind, name, suffix, rate, n, channels, content, subtype, seed


def write_audio(folder: Path, spec) -> str:
    """Writes the file, returns its name (relative to ``folder``)."""
    kind, name, suffix, rate, n, channels, content, subtype, seed = spec
    fname = name + suffix
    if (folder / fname).exists():
        fname = name + "_2" + suffix
    path = folder / fname
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.5, 0.5, (n, channels))
    if content == "silence":
        x[:] = 0
    elif content == "dc":
        x[:] = 0.25
    elif content == "tiny":
        x *= 1e-30
    elif content == "clip":
        x *= 10
    elif content in ("nan", "inf"):
        if x.size:
            x[int(rng.integers(0, n))] = np.nan if content == "nan" else np.inf
        subtype = subtype if subtype in ("FLOAT", "DOUBLE") else "FLOAT"
    fmt = "FLAC" if suffix == ".flac" and subtype in ("PCM_16", "PCM_24") else "WAV"
    if kind == "audio":
        buf = io.BytesIO()
        try:
            sf.write(buf, x, rate, subtype=subtype, format=fmt)
        except Exception:  # noqa: BLE001  (e.g. FLAC at 1 Hz): WAV instead
            buf = io.BytesIO()
            fmt = "WAV"
            sf.write(buf, x, rate, subtype=subtype, format=fmt)
        data = buf.getvalue()
    elif kind == "garbage":
        data = rng.integers(0, 256, 200, dtype=np.uint8).tobytes()
    elif kind == "empty":
        data = b""
    elif kind == "truncated":
        buf = io.BytesIO()
        sf.write(buf, rng.uniform(-0.5, 0.5, 400), rate, format="WAV", subtype="PCM_16")
        data = buf.getvalue()[: int(rng.integers(1, 60))]
    elif kind == "npy_renamed":
        buf = io.BytesIO()
        np.save(buf, np.ones((33, 4), np.float32))
        data = buf.getvalue()
    else:
        data = b"RIFF this is not a wave file\n" * 3
    path.write_bytes(data)
    what = f"{fmt} {rate} Hz {n}x{channels} {content} {subtype}" if kind == "audio" else kind
    note(f"file {fname!r}: {what} seed {seed}")
    return fname


def write_toml(path: Path, pk: Pick) -> int:
    """A preset file, often hostile; returns its sample rate."""
    kind = pk.val("toml kind", ["stft", "mel"], ["garbage", "unknown_key", "wrong_type", "stats_escape"])
    sr = pk.val("toml sr", [22050, 8000], [1, 2 ** 31])
    n_fft = pk.val("toml n_fft", [64], [3, 2, 1, 0, 2 ** 40])
    hop = pk.val("toml hop", [16], [1, 0, 100, 2 ** 40])
    body = {
        "stft": f"[stft]\nn_fft = {n_fft}\nhop_length = {hop}\nsample_rate = {sr}\n",
        "mel": f"[stft]\nn_fft = {n_fft}\nhop_length = {hop}\nsample_rate = {sr}\n[mel]\nn_mels = 8\n"
               f"fmax = {sr / 2}\ncompression = \"ln\"\nclamp = 1e-5\n",
        "garbage": "[stft\nn_fft = = 3\n\x00\x01",
        "unknown_key": "[stft]\nn_fft = 64\nfoo = 1\n",
        "wrong_type": "[stft]\nn_fft = \"sixty-four\"\nhop_length = 16.5\n",
        "stats_escape": "[stft]\nn_fft = 64\nhop_length = 16\n[mel]\nn_mels = 8\nnormalization = \"meanvar\"\n"
                        "stats = \"../../../../etc/passwd\"\n",
    }[kind]
    path.write_text(body, encoding="utf-8")
    note(f"file {path.name}: {body!r}")
    return sr


# --- option strategies ------------------------------------------------------------------------

def settings_flags(pk: Pick, folder: Path, bounded: bool, hop_use=6, nfft_use=1):
    """STFT/mel settings flags (shared by the three commands) and the sample rate they imply."""
    a: list[str] = []
    sr = None
    config = pk.opt("--config", PRESETS, ["my.toml", "nope-preset", ""], use=1)
    if config == "my.toml":
        sr = write_toml(folder / "my.toml", pk)
    elif config in PRESET_SR:
        sr = PRESET_SR[config]
    if config is not None:
        a += ["--config", config]
    huge = HUGE if bounded else []
    n_mels = pk.flag(a, "--n-mels", [80], [1, 2, 8, 33, 2 ** 31], use=1)
    # a preset's or a mel's window is 1024 or more: a hop of 8 would be slow, not hostile
    big = n_mels is not None or (config in PRESETS and load_preset(config).n_fft >= 512)
    pk.flag(a, "--n-fft", [1024] if big else [64] if nfft_use < 4 else [64, 128, 256],
            [0, 1, 2, 3, 7, 63, 65, 1024] + huge, use=nfft_use)
    pk.flag(a, "--hop-length", [256, 128] if big else [16, 8, 32], [0, 1, 3, 17, 100] + huge, use=hop_use)
    pk.flag(a, "--win-length", [1024, 512] if big else [64, 48], [1, 3, 63, 65, 128] + huge, use=1)
    rate = pk.flag(a, "--sr", [8000, 22050, 16000], [0, 1, 2, 2 ** 31, 2 ** 40, -1], use=2)
    if rate is not None:
        sr = rate
    pk.flag(a, "--window", ["hann", "hamming", "blackman"], ["gaussian", "kaiser", "bogus", "", "rectangular"], use=1)
    center = pk.opt("center", ["--center"], ["--no-center"], use=1)
    if center:
        a.append(center)
    pk.flag(a, "--pad-mode", ["reflect"], ["constant", "replicate", "circular"], use=1)
    pk.flag(a, "--layout", ["ft"], ["tf"], use=1)
    pk.flag(a, "--fmin", ["0"], ["100", "8000", "1e9", "nan", "inf", "-1"], use=1)
    pk.flag(a, "--fmax", ["4000", "8000"], ["1e-9", "1", "1e12", "inf", "nan", "0"], use=1)
    pk.flag(a, "--compression", ["ln"], ["none", "log10", "db", "log1p"], use=1)
    pk.flag(a, "--clamp", ["1e-5"], ["1e-300", "1e308", "nan", "inf"], use=1)
    pk.flag(a, "--mel-power", ["1"], ["2", "1e-9", "1e9", "nan"], use=1)
    pk.flag(a, "--normalization", ["none"], ["meanvar", "symmetric"], use=1)
    stats = pk.opt("--stats", ["ok"], ["zero_std", "nan", "wrong_keys", "missing"], use=1)
    if stats is not None:
        p = folder / "stats.npz"
        bands = pk.val("stats bands", [80], [8, 1])
        if stats != "missing":
            with open(p, "wb") as f:
                if stats == "wrong_keys":
                    np.savez(f, foo=np.ones(bands))
                else:
                    std = np.zeros(bands) if stats == "zero_std" else np.ones(bands)
                    mean = np.full(bands, np.nan) if stats == "nan" else np.zeros(bands)
                    np.savez(f, mean=mean, std=std)
        a += ["--stats", "stats.npz"]
    return a, sr


def bins_for(flags: list[str]) -> int:
    """The bin count a spectrogram made with these settings has (33 = n_fft 64 unless a preset says)."""
    if "--n-mels" in flags and int(flags[flags.index("--n-mels") + 1]) <= 513:
        return int(flags[flags.index("--n-mels") + 1])  # a mel spectrogram of that many bands
    name = flags[flags.index("--config") + 1] if "--config" in flags else None
    if name not in PRESETS:
        return 33
    cfg = load_preset(name)
    return cfg.n_mels if cfg.is_mel else cfg.n_fft // 2 + 1


def method_flags(pk: Pick, method: str | None):
    """Options of the chosen method, with hostile values (rarely another method's option)."""
    a: list[str] = []
    opts = list(REGISTRY[method].options) if method in REGISTRY else []
    if pk.val("foreign options", [False], [True]):
        opts = list({o.flag: o for m in REGISTRY.values() for o in m.options}.values())
    for o in opts:
        if o.type is bool:
            v = pk.opt(o.flag, [o.flag, "--no-" + o.flag[2:]], use=2)
            if v:
                a.append(v)
            continue
        sane = [str(o.default)] + [str(c) for c in (o.choices or ())]
        if o.type is int:
            hostile = ["-2", "0", "1", "2", "3", str(2 ** 40), str(-2 ** 40), "x"]
        elif o.type is float:
            hostile = ["0", "0.5", "1", "1.5", "5", "-1", "nan", "inf", "-inf", "1e308"]
        else:
            hostile = ["bogus", ""]
        pk.flag(a, o.flag, sane, hostile, use=2)
    if pk.val("--momentum", [False], [False] * 5 + [True]):
        a += ["--momentum", "0.9"]  # no such option (issue 14 names it): a usage error
    return a


# --- invert ---------------------------------------------------------------------------------

def _decoy(folder: Path):
    (folder / "existing").mkdir()
    (folder / "existing" / "keep.txt").write_text("a decoy that must survive\n")


def _invert(capsysbinary, data):
    with tempfile.TemporaryDirectory(prefix="specinv-hostile-") as d:
        try:
            _invert_in(capsysbinary, data, Path(d))
        finally:
            release_fifos()


OUT_SANE = ["-o wav", "-O new", "-o -", "none"]
OUT_HOSTILE = ["-o flac", "-o nosuffix", "-o npy", "-o missing/", "-O nested", "-O existing", "-O input", "-o input",
               "-o fifo", "-o chardev", "-o socket", "-o dangling",
               "-o existing", "-o link", "-o toml", "-o stats"]


def _invert_in(capsysbinary, data, folder: Path):
    pk, fk, ok = (hostility(data.draw, w) for w in ("options", "files", "outputs"))
    # most examples are bounded by a small --max-memory: hostile sizes must then be refused by
    # the estimate; the others draw only sizes that are safe to allocate
    max_memory = pk.val("--max-memory", ["256M", "256M", "256M", "64M", None], ["1K", "0", "none"])
    bounded = max_memory in ("256M", "64M", "1K", "0")
    flags, sr = settings_flags(pk, folder, bounded)
    n_inputs = fk.val("inputs", [1], [2, 3])
    inputs = []
    for i in range(n_inputs):
        spec = array_spec(fk, f"array {i}", bins_for(flags))
        stem = fk.val(f"stem {i}", ["x"], ["x", "y", "with space", "ctl\x1bx", "nl\nx", "ünï"])
        name = stem + spec[0]
        if name in inputs:
            name = f"{stem}{i}{spec[0]}"
        write_array(folder / name, spec)
        inputs.append(name)
    streams = []
    if fk.val("input FIFO", [False], [False, True]):  # the first input as a named pipe (read once)
        streams.append(fifoize(folder, inputs[0]))
    _decoy(folder)

    a = ["invert", *inputs]
    method = Pick(pk.draw, min(pk.p, 5)).val("-m", METHODS + [None], ["nope", ""])
    if method is not None:
        a += ["-m", method]
    a += ["-n", str(pk.draw(st.integers(0, 3), label="-n"))]
    pk.flag(a, "--init", ["random", "zero", "spsi", "pghi"], use=4)
    a += flags
    a += method_flags(pk, method)
    pk.flag(a, "--tol", ["0", "1e-3"], ["1", "1e308", "nan", "inf", "-1"], use=1)
    pk.flag(a, "--length", [100, 3000], [1, 2, 3] + (HUGE if bounded else []), use=2)
    block = pk.flag(a, "--block-frames", [2048, 0, 4, 6], [1, 2, 3], use=2)
    pk.flag(a, "--block-overlap", [0, 2], [1, 3, 128], use=8 if block in (4, 6) else 2)  # the default 128 > 6
    pk.flag(a, "--batch-size", [1, 2, 3], [2 ** 40, 0], use=2)
    pk.flag(a, "--input-kind", ["magnitude", "power", "db", "log"], ["complex"], use=2)
    pk.flag(a, "--subtype", ["auto", "PCM_16", "PCM_24", "FLOAT"], use=2)
    pk.flag(a, "--normalize", ["none", "peak"], use=2)
    pk.flag(a, "--precision", ["single", "double"], use=1)
    pk.flag(a, "--eval-every", [1, 10], [2 ** 40], use=1)
    # more than -n (refused for iterative methods); not 2**40: after a non-iterative method
    # --refine N asks for N L-BFGS steps, as --nnls-iters N asks for N NNLS steps -- a long run
    # asked for, not a hang
    pk.flag(a, "--refine", [0], [1, 3, 200], use=1)
    pk.flag(a, "--nnls-iters", [0, 1, 5], [300], use=1)
    if max_memory is not None:
        a += ["--max-memory", max_memory]
    a += ["--device", "cpu"]

    if n_inputs > 1:  # -o with several inputs is refused: mostly -O
        target = ok.val("output", ["-O new", "none"], ["-o wav"] + OUT_HOSTILE)
    else:
        target = ok.val("output", OUT_SANE, OUT_HOSTILE)
    out_path = out_dir = None
    if target == "-o toml" and not (folder / "my.toml").exists():
        (folder / "my.toml").write_text("[stft]\nn_fft = 64\nhop_length = 16\n")  # a config the call reads
        a += ["--config", "my.toml"]
    if target == "-o stats" and not (folder / "stats.npz").exists():
        target = "-o input"
    if target.startswith("-o"):
        out_path = {"-o wav": "out.wav", "-o flac": "out.flac", "-o nosuffix": "out", "-o npy": "out.npy",
                    "-o missing/": "missing/out.wav", "-o -": "-", "-o input": inputs[0], "-o existing": "existing",
                    "-o link": "link.wav", "-o toml": "my.toml", "-o stats": "stats.npz"}.get(target, "out.wav")
        if target == "-o link":
            os.symlink(inputs[0], folder / "link.wav")
        a += ["-o", out_path]
    sock = reader = None
    if target == "-o fifo":  # a named pipe read by a thread: written through, never replaced
        out_path = a[-1] = "fifo.wav"
        reader = Fifo(folder / out_path, "reader")
        streams.append(reader)
    elif target == "-o chardev":  # a /dev/null twin inside the folder (root only)
        out_path = a[-1] = "null.wav"
        try:
            os.mknod(folder / out_path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        except OSError:
            out_path = a[-1] = "out.wav"
    elif target == "-o socket":  # refused: an output never replaces a socket
        out_path = a[-1] = "sock.wav"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(folder / out_path))
    elif target == "-o dangling":  # a link to a file not there yet
        out_path = a[-1] = "dangling.wav"
        os.symlink("dangling_target.wav", folder / out_path)
    elif target.startswith("-O"):
        out_dir = {"-O new": "wavs", "-O nested": "a/b/c", "-O existing": "existing", "-O input": inputs[0]}[target]
        a += ["-O", out_dir]
    history = ok.opt("--history", ["h.json"], ["existing", "missing/h.json", "input", "out"], use=2)
    if history is not None:
        history = {"input": inputs[0], "out": out_path or "h.json"}.get(history, history)
        a += ["--history", history]
    as_json = pk.val("--json", [False] if out_path == "-" else [False, True], [True])  # -o - --json: refused
    if as_json:
        a.append("--json")
    if pk.val("-q", [True, True, True, False]):
        a.append("-q")
    if pk.val("--skip-existing", [False], [True]):
        a.append("--skip-existing")

    before = snapshot(folder)
    try:
        rc, out, err = call(capsysbinary, folder, a)
    finally:
        for f in streams:
            f.finish()
        if sock is not None:
            sock.close()
    check_stderr(rc, err)
    expected_sr = sr if sr is not None else 22050
    if reader is not None:  # what came through the FIFO: one complete WAV, or nothing when refused
        note(f"{len(reader.got)} bytes came through {out_path}")
        if reader.got or rc == 0 and not any(Path(r).name.startswith("fifo_") for r in snapshot(folder)):
            check_audio_bytes(reader.got, out_path, expected_sr)
        if rc == 2:
            assert not reader.got, f"exit 2 but {len(reader.got)} bytes written into {out_path}"
    hist_rel = str(Path(history)) if history else None
    new = check_effects(folder, before, {"audio", "json"} if history else {"audio"}, expected_sr,
                        json_paths={hist_rel} if history else ())
    audio_new = [r for r in new if r != hist_rel]

    stdout_audio = out_path == "-"
    if stdout_audio and out:
        check_audio_bytes(out, "stdout", expected_sr)
    if as_json and not stdout_audio:
        recs = check_json_stdout(out, rc)
        for r in recs:
            if r.get("status") == "ok" and r.get("output") not in (None, "-"):
                o = folder / r["output"]  # a file, or the FIFO / character device it went through
                assert o.exists() and not o.is_dir(), f"--json names {r['output']!r}, which does not exist"
    streamed = before.get(str(out_path), (None,))[0] in ("fifo", "chr")  # written through, no new file
    if rc == 0:
        if stdout_audio:
            assert out, "exit 0 with -o - but nothing on stdout"
        elif not streamed:
            assert audio_new, "exit 0 but no output written"
            for w in audio_new:
                where = Path(w).parent
                if out_dir:
                    assert where == Path(out_dir) or Path(out_dir) in where.parents, f"{w} is outside -O {out_dir}"
                elif out_path:
                    assert where == Path(out_path).parent and Path(w).name.startswith(Path(out_path).stem), \
                        f"{w} is not -o {out_path} (or its numbered items)"
        if history:
            h = json.loads((folder / history).read_text(encoding="utf-8"))
            assert isinstance(h, dict) and "items" in h, f"history {history}: {h!r}"
    elif rc == 1:
        assert audio_new or (stdout_audio and out) or streamed, "exit 1 (partial) but no output written"
    else:
        assert not audio_new, f"exit 2 (nothing done) but wrote {audio_new}"
        assert not (stdout_audio and out), "exit 2 but audio on stdout"


# --- stft -----------------------------------------------------------------------------------

def _stft(capsysbinary, data):
    with tempfile.TemporaryDirectory(prefix="specinv-hostile-") as d:
        try:
            _stft_in(capsysbinary, data, Path(d))
        finally:
            release_fifos()


def _stft_in(capsysbinary, data, folder: Path):
    pk, fk, ok = (hostility(data.draw, w) for w in ("options", "files", "outputs"))
    n_inputs = fk.val("inputs", [1], [2, 3])
    names = [write_audio(folder, audio_spec(fk, f"audio {i}")) for i in range(n_inputs)]
    _decoy(folder)
    inputs = list(names)
    in_folder = []
    if fk.val("folder input", [False], [True]):  # a folder of audio files as an input
        (folder / "in").mkdir()
        for i in range(pk.draw(st.integers(0, 2), label="folder files")):
            in_folder.append(write_audio(folder / "in", audio_spec(fk, f"folder audio {i}")))
        (folder / "in" / ".hidden.wav").write_bytes(b"not audio")
        inputs.append("in")
    if fk.val("missing input", [False], [False, True]):
        inputs.append("missing.wav")
    streams = [fifoize(folder, names[0])] if fk.val("input FIFO", [False], [False, True]) else []

    a = ["stft", *inputs]
    flags, _ = settings_flags(pk, folder, bounded=True, hop_use=4, nfft_use=5)
    a += flags
    mel = pk.opt("mel", ["--linear"], ["--mel"], use=2)
    if mel:
        a.append(mel)
    pk.flag(a, "--kind", ["magnitude", "power", "db", "log"], use=2)
    fmt = pk.val("--format", ["npy", "pt"])
    a += ["--format", fmt]
    pk.flag(a, "--channel", ["0"], ["1", "2", str(2 ** 40)], use=1)
    out_dir = ok.val("-O", ["specs", "."], ["existing", "a/b/c", names[0], "in"])
    a += ["-O", out_dir]
    as_json = pk.val("--json", [False, True])
    if as_json:
        a.append("--json")
    if pk.val("-q", [True, True, True, False]):
        a.append("-q")

    before = snapshot(folder)
    try:
        rc, out, err = call(capsysbinary, folder, a)
    finally:
        for f in streams:
            f.finish()
    check_stderr(rc, err)
    # what stft reads: the files named, and a folder's files with an audio suffix (of those drawn here,
    # .wav and .flac in any case: the documented scan); any other file at one of its destinations is
    # not an input, so an output may replace it
    read = {str(Path(n)) for n in names} | {f"in/{n}" for n in in_folder if Path(n).suffix.lower() in (".wav", ".flac")}
    dests = {str(Path(out_dir) / f"{Path(n).stem}.{fmt}") for n in [*names, *in_folder]}
    new = check_effects(folder, before, {fmt}, replaceable=dests - read)
    if as_json:
        recs = check_json_stdout(out, rc)
        for r in recs:
            if r.get("status") == "ok":
                assert (folder / r["output"]).is_file(), f"--json names {r['output']!r}, which does not exist"
    if rc == 0:
        for name in names:
            dest = Path(out_dir) / f"{Path(name).stem}.{fmt}"
            assert (folder / dest).is_file() and str(dest) in new, f"exit 0 but {dest} was not written"
    elif rc == 1:
        assert new, "exit 1 (partial) but nothing written"
    else:
        assert not new, f"exit 2 (nothing done) but wrote {new}"


# --- eval -----------------------------------------------------------------------------------

def _eval(capsysbinary, data):
    with tempfile.TemporaryDirectory(prefix="specinv-hostile-") as d:
        try:
            _eval_in(capsysbinary, data, Path(d))
        finally:
            release_fifos()


def _plausible_wav(folder: Path, name: str, sr: int, n: int, seed: int) -> str:
    """A noise WAV of the length the target implies (so that the comparison itself proceeds)."""
    rng = np.random.default_rng(seed)
    sf.write(str(folder / name), rng.uniform(-0.3, 0.3, max(n, 1)), sr, subtype="FLOAT")
    note(f"file {name}: noise at {sr} Hz, {max(n, 1)} samples")
    return name


def _eval_in(capsysbinary, data, folder: Path):
    pk, fk = (hostility(data.draw, w) for w in ("options", "files"))
    flags, sr = settings_flags(pk, folder, bounded=True, hop_use=8)
    tspec = array_spec(fk, "target", bins_for(flags))
    target = f"t{tspec[0]}"
    write_array(folder / target, tspec)
    rate = sr if sr is not None and 1 <= sr <= 192000 else 22050
    hop = int(flags[flags.index("--hop-length") + 1]) if "--hop-length" in flags else 256
    frames = tspec[1][-1] if tspec[1] else 1
    n_plaus = max(1, min((frames - 1) * min(hop, 4096), 20000))
    batched = len(tspec[1]) == 3 and tspec[1][0] > 1
    outputs = []
    for i in range(pk.val("outputs", [1], [2])):
        if fk.val(f"output {i}", ["plausible"], ["hostile"]) == "plausible":
            outputs.append(_plausible_wav(folder, f"t_{i:03d}.wav" if batched else f"out{i}.wav", rate, n_plaus, i))
        else:
            outputs.append(write_audio(folder, audio_spec(fk, f"output {i}")))
    _decoy(folder)
    a = ["eval", *outputs]
    tgt = fk.val("-t", ["file"], ["folder", "missing", "an output", "existing"])
    if tgt == "folder":
        (folder / "tdir").mkdir()
        write_array(folder / "tdir" / f"{Path(outputs[0]).stem}{tspec[0]}", tspec)
        target = "tdir"
    elif tgt == "missing":
        target = "nope.npy"
    elif tgt == "an output":
        target = outputs[0]
    elif tgt == "existing":
        target = "existing"
    a += ["-t", target]
    ref = fk.val("-r", ["none", "plausible"], ["hostile", "same as output", "folder"])
    if ref == "plausible":
        a += ["-r", _plausible_wav(folder, "ref.wav", rate, n_plaus, 99)]
    elif ref == "hostile":
        a += ["-r", write_audio(folder, audio_spec(Pick(fk.draw, 60), "reference"))]
    elif ref == "same as output":
        a += ["-r", outputs[0]]
    elif ref == "folder":
        a += ["-r", "existing"]
    a += flags
    pk.flag(a, "--item", ["0"], ["1", "2", str(2 ** 40)], use=1)
    pk.flag(a, "--input-kind", ["magnitude", "power", "db", "log"], ["complex"], use=2)
    if tspec[0] == ".npz":
        pk.flag(a, "--key", ["spec"], ["nope", ""], use=1)
    elif pk.val("--key for a .npy/.pt", [False], [True]):  # refused: only hostile
        a += ["--key", "spec"]
    for flag in ("--scale-invariant", "--truncate", "--resample"):
        if pk.opt(flag, [True], use=2):
            a.append(flag)
    if pk.val("--mixdown", [False], [True]):
        a.append("--mixdown")
    pk.flag(a, "--channel", ["0"], ["1", "5", str(2 ** 40)], use=1)
    if pk.val("perceptual", [False, False, False, True]) is False:
        a.append("--no-perceptual")
    as_json = pk.val("--json", [False, True])
    if as_json:
        a.append("--json")
    if pk.val("-q", [True, True, True, False]):
        a.append("-q")

    reused = outputs[0] in a[a.index("-t"):]  # also the target or the reference: a pipe is read once
    streams = [fifoize(folder, outputs[0])] if not reused and fk.val("output FIFO", [False], [False, True]) else []
    before = snapshot(folder)
    try:
        rc, out, err = call(capsysbinary, folder, a)
    finally:
        for f in streams:
            f.finish()
    check_stderr(rc, err)
    new = check_effects(folder, before, set())  # eval writes no files
    assert not new, f"eval wrote {new}"
    if as_json:
        recs = check_json_stdout(out, rc)
        if rc == 0:
            assert [r for r in recs if r.get("status") == "ok"], "exit 0 but no scored output in --json"
    elif rc == 0:
        text = out.decode("utf-8")
        assert text.strip(), "exit 0 but nothing on stdout"
        assert not CONTROL.findall(text.replace("\n", "")), f"control characters on stdout: {text!r}"


# --- the tests --------------------------------------------------------------------------------

# one test per command, so that a failure names it; hypothesis keeps a database per test
COMMANDS = pytest.mark.parametrize("command", ["invert", "stft", "eval"])
_CHECKS = {"invert": _invert, "stft": _stft, "eval": _eval}


@COMMANDS
@settings(max_examples=N_DEFAULT, **COMMON)
@given(data=st.data())
def test_hostile(capsysbinary, command, data):
    _CHECKS[command](capsysbinary, data)


@pytest.mark.slow
@COMMANDS
@settings(max_examples=N_SLOW, **COMMON)
@given(data=st.data())
def test_hostile_many(capsysbinary, command, data):
    _CHECKS[command](capsysbinary, data)
