"""Property-based tests (hypothesis) of the loaders and the settings through the CLI: every
generated input either gives a valid, finite WAV with exit code 0, or exit code 2 with one
``error:`` line on stderr, nothing written and no temporary left -- never an uncaught exception
(exit 3). A few hundred examples in the default run, a few thousand with ``-m slow``.

Spectrograms are tiny (33 bins = n_fft 64, a few frames) and the CLI runs in-process, so one
example takes a few milliseconds.
"""
import io
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from clihelp import run

FAST = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)
N_DEFAULT, N_SLOW = 200, 2000  # per test: 3 tests -> 600 by default, 6000 slow

NP_DTYPES = ["float32", "float64", "float16", "int16", "uint8", "int64", "bool", "complex64", "complex128",
             ">f4", "<U3", "datetime64[s]", "object"]
TORCH_ONLY = ["bfloat16", "complex32", "float8_e4m3fn", "sparse", "requires_grad", "list", "dict2", "str"]
METHODS = ["fgla", "gla", "dm", "agla", "admm", "rtisi-la", "spsi", "pghi", "lbfgs"]


class Plant:
    """Unpickling this would create a file (it must never happen)."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def _values(rng, shape, special):
    x = np.asarray(np.abs(rng.standard_normal(shape)) * 3)
    if x.size and special not in ("none", "silence"):
        idx = tuple(rng.integers(0, s) for s in shape)
        x[idx] = {"nan": np.nan, "inf": np.inf, "neg": -1.0, "huge": 1e30, "tiny": 1e-30, "zero": 0.0}[special]
    if special == "silence":
        x[...] = 0
    return x


def _encode(fmt, x, dtype, marker):
    """Bytes of a file of format ``fmt`` holding ``x`` as ``dtype`` (or a special payload)."""
    buf = io.BytesIO()
    if dtype == "object":
        arr = np.empty(2, dtype=object)
        arr[0] = Plant(marker)
        obj_t = {"spec": torch.ones(33, 4), "payload": Plant(marker)}
        if fmt == ".npy":
            np.save(buf, arr, allow_pickle=True)
        elif fmt == ".npz":
            np.savez(buf, a=arr)
        else:
            torch.save(obj_t, buf)
        return buf.getvalue()
    if fmt in (".npy", ".npz"):
        try:
            a = x.astype(dtype)
        except (TypeError, ValueError):
            a = x.astype("float32")
        if fmt == ".npy":
            np.save(buf, a)
        else:
            (np.savez_compressed if a.size % 2 else np.savez)(buf, spec=a)
        return buf.getvalue()
    t = torch.from_numpy(np.ascontiguousarray(x.astype("float32")))
    if dtype == "sparse":
        obj = t.to_sparse()
    elif dtype == "requires_grad":
        obj = t.clone().requires_grad_(True)
    elif dtype == "list":
        obj = [t]
    elif dtype == "dict2":
        obj = {"a": t, "b": t}
    elif dtype == "str":
        obj = "not a tensor"
    elif dtype in ("<U3", "datetime64[s]", ">f4"):
        obj = t
    elif dtype == "bool":
        obj = t > 1
    else:
        obj = t.to(getattr(torch, dtype))
    torch.save(obj, buf)
    return buf.getvalue()


def _corrupt(data: bytes, how, rng) -> bytes:
    if how == "none" or not data:
        return data
    b = bytearray(data)
    if how == "truncate":
        return bytes(b[: int(rng.integers(0, len(b)))])
    if how == "flip":
        for _ in range(int(rng.integers(1, 8))):
            i = int(rng.integers(0, len(b)))
            b[i] ^= 1 << int(rng.integers(0, 8))
        return bytes(b)
    if how == "header":  # overwrite bytes near the start (magic, header, zip entries)
        i = int(rng.integers(0, min(len(b), 128)))
        b[i:i + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
        return bytes(b)
    return bytes(b) + rng.integers(0, 256, 64, dtype=np.uint8).tobytes()  # trailing garbage


def check(capsys, folder: Path, path: Path, args, marker: Path):
    out = folder / "out.wav"
    rc, _, err = run(capsys, "invert", path, *args, "-o", out, "-q")
    assert not marker.exists(), "a pickle was executed"
    assert "Traceback" not in err and "internal error" not in err, err
    # 1: a batch some of whose items failed as items (each named x.npy[i]), the others written
    assert rc in (0, 1, 2), (rc, err)
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".specinv-tmp-")]
    assert not leftovers
    event(f"exit {rc}")
    if os.environ.get("SPECINV_FUZZ_LOG") and rc:  # collect the messages for review
        with open(os.environ["SPECINV_FUZZ_LOG"], "a") as f:
            f.write(err.strip().splitlines()[-1].replace(str(folder), "") + "\n")
    wavs = sorted(folder.glob("out*.wav"))  # out.wav, or out_000.wav... for a batch
    if rc in (0, 1):
        assert wavs
        for w in wavs:
            audio, sr = sf.read(str(w), dtype="float32")
            assert audio.size > 0 and np.all(np.isfinite(audio))
            w.unlink()
        errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert bool(errors) == (rc == 1), err
        assert all(re.match(r"error: .*\[\d+\]: ", e) for e in errors), err
    else:
        errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
        # one line for the input, or one per item when each item of a batch failed on its own
        assert len(errors) == 1 or all(re.match(r"error: .*\[\d+\]: ", e) for e in errors), err
        assert not wavs
    return rc


@st.composite
def settings_args(draw, n_bins):
    """CLI settings: method, iterations, layout, kind, STFT options, output options."""
    a = ["-m", draw(st.sampled_from(METHODS)), "-n", str(draw(st.integers(0, 3)))]
    a += ["--init", draw(st.sampled_from(["random", "zero", "spsi", "pghi"]))]
    stft = []
    if draw(st.integers(0, 4)) == 0:
        stft += ["--n-fft", str(draw(st.sampled_from([64, 64, 32, 2, 1024, max(2, 2 * (n_bins - 1))])))]
    if draw(st.integers(0, 4)) == 0:
        stft += ["--win-length", str(draw(st.integers(32, 64) | st.integers(1, 80)))]
    if stft or draw(st.booleans()):  # an explicit n_fft with the default hop 256 is refused
        stft += ["--hop-length", str(draw(st.integers(1, 16) | st.integers(1, 16) | st.integers(1, 80)))]
    a += stft
    if draw(st.integers(0, 3)) == 0:
        a += ["--window", draw(st.sampled_from(["hann", "hamming", "blackman", "rectangular", "gaussian", "kaiser"]))]
    if draw(st.integers(0, 3)) == 0:
        a += [draw(st.sampled_from(["--center", "--no-center"]))]
    if draw(st.integers(0, 3)) == 0:
        a += ["--input-kind", draw(st.sampled_from(["magnitude", "power", "db", "log", "complex"]))]
    if draw(st.integers(0, 4)) == 0:
        a += ["--length", str(draw(st.integers(1, 3000)))]
    if draw(st.integers(0, 4)) == 0:
        a += ["--config", draw(st.sampled_from(["tacotron2", "hifigan-22k", "librosa", "default"]))]
    if draw(st.integers(0, 4)) == 0:
        a += ["--n-mels", str(draw(st.sampled_from([n_bins, 8, 80])))]
    if draw(st.integers(0, 5)) == 0:
        a += ["--max-memory", draw(st.sampled_from(["1K", "100M", "none"]))]
    a += ["--normalize", draw(st.sampled_from(["peak", "none"]))] if draw(st.booleans()) else []
    a += ["--subtype", draw(st.sampled_from(["PCM_16", "PCM_24", "FLOAT"]))]
    a += ["--precision", draw(st.sampled_from(["single", "double"]))]
    return a


def _synthetic(capsys, data, valid=False):
    """``valid``: well-formed arrays only (float/int dtypes, 33 bins, a few frames), so that the
    random settings, not the file, decide the outcome."""
    fmt = data.draw(st.sampled_from([".npy", ".npz", ".pt"]), label="format")
    dtypes = ["float32", "float64", "float16", "int16"] if valid else (
        ["float32"] * 8 + NP_DTYPES + (TORCH_ONLY if fmt == ".pt" else []))
    dtype = data.draw(st.sampled_from(dtypes), label="dtype")
    n_bins = data.draw(st.sampled_from([33] if valid else [33] * 6 + [17, 2, 1, 0, 8]), label="bins")
    frames = data.draw(st.integers(2, 9) if valid else st.sampled_from([0, 1, 2]) | st.integers(3, 9)
                       | st.integers(3, 9), label="frames")
    lead = data.draw(st.lists(st.integers(1, 2), max_size=2), label="batch")
    ndim_cut = 0 if valid else data.draw(st.sampled_from([0] * 9 + [1, 2, 3]), label="ndim_cut")
    shape = tuple(lead) + (n_bins, frames)
    if data.draw(st.integers(0, 5), label="tf") == 0:
        shape = tuple(lead) + (frames, n_bins)
    shape = {0: shape, 1: shape[-2:], 2: shape[-1:], 3: ()}[ndim_cut]
    special = data.draw(st.sampled_from(["none", "huge", "tiny", "zero", "silence"] if valid else
                                        ["none"] * 6 + ["nan", "inf", "neg", "huge", "tiny", "zero", "silence"]))
    corruption = "none" if valid else data.draw(st.sampled_from(["none"] * 12 + ["truncate", "flip", "header", "append"]),
                                                label="corrupt")
    seed = data.draw(st.integers(0, 2 ** 16), label="seed")
    args = data.draw(settings_args(n_bins), label="args")
    if data.draw(st.integers(0, 5), label="layout_tf") == 0:
        args += ["--layout", "tf"]
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        marker = folder / "PWNED"
        raw = _encode(fmt, _values(rng, shape, special), dtype, str(marker))
        path = folder / f"x{fmt}"
        path.write_bytes(_corrupt(raw, corruption, rng))
        return check(capsys, folder, path, args, marker)


def _corpus_excerpt():
    from conftest import corpus_files, load_clip

    files = corpus_files()
    if files:
        audio = load_clip(files[0], 0.05, 1.0)
    else:
        audio = np.sin(np.arange(1100) * 0.3).astype(np.float32)
    x = torch.from_numpy(audio)
    return torch.stft(x, 64, 16, window=torch.hann_window(64), return_complex=True).abs().numpy()


REAL = _corpus_excerpt()  # [33, ~70] magnitude of 50 ms of a corpus recording


def _real(capsys, data):
    fmt = data.draw(st.sampled_from([".npy", ".npz", ".pt"]), label="format")
    seed = data.draw(st.integers(0, 2 ** 16), label="seed")
    corruption = data.draw(st.sampled_from(["truncate", "flip", "flip", "header", "append", "none"]), label="corrupt")
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        marker = folder / "PWNED"
        raw = _encode(fmt, REAL[:, :12], "float32", str(marker))
        path = folder / f"r{fmt}"
        path.write_bytes(_corrupt(raw, corruption, rng))
        return check(capsys, folder, path, ["-m", "fgla", "-n", "2", "--hop-length", "16"], marker)


@settings(max_examples=N_DEFAULT, **FAST)
@given(data=st.data())
def test_synthetic_inputs_and_settings(capsys, data):
    _synthetic(capsys, data)


@settings(max_examples=N_DEFAULT, **FAST)
@given(data=st.data())
def test_corrupted_real_files(capsys, data):
    _real(capsys, data)


@settings(max_examples=N_DEFAULT, **FAST)
@given(data=st.data())
def test_valid_inputs_random_settings(capsys, data):
    _synthetic(capsys, data, valid=True)


@pytest.mark.slow
@settings(max_examples=N_SLOW, **FAST)
@given(data=st.data())
def test_synthetic_inputs_and_settings_many(capsys, data):
    _synthetic(capsys, data)


@pytest.mark.slow
@settings(max_examples=N_SLOW, **FAST)
@given(data=st.data())
def test_valid_inputs_random_settings_many(capsys, data):
    _synthetic(capsys, data, valid=True)


@pytest.mark.slow
@settings(max_examples=N_SLOW, **FAST)
@given(data=st.data())
def test_corrupted_real_files_many(capsys, data):
    _real(capsys, data)
