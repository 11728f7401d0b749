"""``specinv stream``: frames piped in from another process, audio out as it is produced.

The audio is held bit for bit to what :class:`~specinv_cli.streaming.StreamingInverter` gives
in this process for the same frames; the stream's bytes are parsed (header fields, the
"unknown length" sizes) and read back with soundfile (and sox, where installed). Nothing here
waits on time: processes are synchronised by what they print and write, with a generous
overall deadline as a net only.
"""
from __future__ import annotations

import io
import shutil
import signal
import struct
import subprocess
import sys
import threading
import wave

import numpy as np
import pytest
import soundfile as sf
import torch

from clihelp import ROOT, run
from conftest import load_clip, reference_magnitude
from specinv_cli.io.stream import UNKNOWN_SIZE, FrameReader, WavStreamWriter, wav_stream_header
from specinv_cli.streaming import DEFAULT_STREAM_METHOD, STREAM_METHODS, StreamingInverter

HOP, SR = 256, 22050
CHUNKS = (1, 7, 3)  # frames per write, in turn: uneven, a single frame among them
DEADLINE = 300  # seconds: a net for a hung process, never a synchronisation

#: The producer: frames of a saved magnitude [F, T] on stdout in chunks of CHUNKS frames, flushed
#: after each write; raw float32 chunks go out in two writes cut inside a frame.
PRODUCER = r"""
import io, sys
import numpy as np
mag, fmt, sizes = np.load(sys.argv[1]), sys.argv[2], [int(s) for s in sys.argv[3].split(",")]
out = sys.stdout.buffer
i = j = 0
while i < mag.shape[1]:
    chunk = mag[:, i:i + sizes[j % len(sizes)]]
    i, j = i + chunk.shape[1], j + 1
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, chunk)
        out.write(buf.getvalue())
    else:
        data = np.ascontiguousarray(chunk.T).astype("<f4").tobytes()
        cut = len(data) // 2 + 1
        out.write(data[:cut])
        out.flush()
        out.write(data[cut:])
    out.flush()
"""


@pytest.fixture(scope="module")
def mag(corpus):
    return reference_magnitude(load_clip("speech_female_hts2a", seconds=1.5)).numpy()  # [513, 130]


@pytest.fixture(scope="module")
def mag_file(mag, tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "mag.npy"
    np.save(path, mag)
    return path


def streamed(mag, method=None, *, flush=True, **kw):
    """What the library gives in this process: push(all frames) (+ flush)."""
    inv = StreamingInverter("default", method=method, **kw)
    parts = [inv.push(torch.from_numpy(np.ascontiguousarray(mag)))]
    if flush:
        parts.append(inv.flush())
    return torch.cat(parts).numpy()


def _foreground():
    # a job started with '&' by a non-interactive shell inherits SIGINT ignored (see test_signals)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def specinv(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "specinv_cli", "stream", *map(str, args)], cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_foreground, **kw)


def pipeline(mag_file, fmt, *args, chunks=CHUNKS, stdout=None):
    """producer | specinv stream ARGS: (return code, stdout bytes, stderr text)."""
    prod = subprocess.Popen([sys.executable, "-c", PRODUCER, str(mag_file), fmt, ",".join(map(str, chunks))],
                            stdout=subprocess.PIPE)
    proc = subprocess.Popen([sys.executable, "-m", "specinv_cli", "stream", *map(str, args)], cwd=str(ROOT),
                            stdin=prod.stdout, stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE)
    prod.stdout.close()  # the stream holds the pipe's only reading end
    try:
        out, err = proc.communicate(timeout=DEADLINE)
        assert prod.wait(timeout=DEADLINE) == 0
    finally:
        for p in (proc, prod):
            if p.poll() is None:
                p.kill()
                p.wait()
    return proc.returncode, out, err.decode()


def parse_wav(data: bytes):
    """(format tag, channels, rate, bits, RIFF size, data size, samples) of a WAV stream."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE" and data[12:16] == b"fmt ", data[:16]
    fmt_len = struct.unpack("<I", data[16:20])[0]
    tag, channels, rate, byte_rate, align, bits = struct.unpack("<HHIIHH", data[20:36])
    assert byte_rate == rate * align and align == channels * bits // 8
    if tag == 3:
        assert fmt_len == 18 and data[36:38] == b"\x00\x00"  # cbSize 0
    pos = 20 + fmt_len
    assert data[pos:pos + 4] == b"data"
    body = data[pos + 8:]
    dtype = {(3, 32): "<f4", (1, 16): "<i2"}.get((tag, bits))
    if dtype is not None:
        assert len(body) % (bits // 8) == 0  # whole samples only
        samples = np.frombuffer(body, dtype=dtype)
    else:
        assert (tag, bits) == (1, 24) and len(body) % 3 == 0
        b = np.frombuffer(body, np.uint8).reshape(-1, 3)
        samples = (b[:, 0].astype(np.int32) | b[:, 1].astype(np.int32) << 8 | b[:, 2].astype(np.int8).astype(np.int32) << 16)
    return tag, channels, rate, bits, struct.unpack("<I", data[4:8])[0], struct.unpack("<I", data[pos + 4:pos + 8])[0], samples


def soundfile_read(data: bytes, tmp_path):
    path = tmp_path / "read.wav"
    path.write_bytes(data)
    audio, sr = sf.read(str(path), dtype="float32", always_2d=False)
    return audio, sr, sf.info(str(path)).subtype


# --- 1, 2: the audio ---------------------------------------------------------------------------
def test_npy_chunks_from_a_producer_give_the_librarys_audio_bit_for_bit(mag, mag_file, tmp_path):
    code, out, err = pipeline(mag_file, "npy")
    assert code == 0, err
    tag, channels, rate, bits, riff, size, samples = parse_wav(out)
    assert (tag, channels, rate, bits) == (3, 1, SR, 32)  # IEEE float, mono, the preset's rate
    assert riff == size == UNKNOWN_SIZE  # a pipe: "length unknown", as ffmpeg writes
    ref = streamed(mag)
    assert samples.shape == ((mag.shape[1] - 1) * HOP,) == ref.shape
    assert np.array_equal(samples, ref)  # bit for bit
    assert np.abs(ref).max() > 0.01
    audio, sr, subtype = soundfile_read(out, tmp_path)
    assert sr == SR and subtype == "FLOAT" and np.array_equal(audio, ref)
    lines = err.splitlines()  # one start line, one summary line
    assert len(lines) == 2 and "Traceback" not in err, err
    inv = StreamingInverter("default")
    assert f"method {DEFAULT_STREAM_METHOD}, look-ahead {inv.look_ahead} frames," in lines[0], lines[0]
    assert f"{inv.latency_ms:.1f} ms ({inv.latency_samples} samples)" in lines[0]
    assert f"{mag.shape[1]} frame(s) in" in lines[1] and f"({len(ref)} samples)" in lines[1]
    assert "real-time factor" in lines[1]


def test_raw_frames_cut_inside_frames_give_the_same_audio_and_raw_output_is_the_wavs_data(mag, mag_file, tmp_path):
    ref = streamed(mag)
    code, out, err = pipeline(mag_file, "raw", "-q", "--raw", chunks=(3, 1, 7))
    assert code == 0 and err == "", err
    assert np.array_equal(np.frombuffer(out, "<f4"), ref)  # headerless: the WAV's data, bit for bit
    # PCM_16 to a regular file: the true sizes written at the end, an ordinary WAV (also for wave)
    with open(tmp_path / "out.wav", "wb") as f:
        code, _, err = pipeline(mag_file, "raw", "--subtype", "PCM_16", "--bins", 513, stdout=f)
    assert code == 0, err
    data = (tmp_path / "out.wav").read_bytes()
    tag, channels, rate, bits, riff, size, q = parse_wav(data)
    assert (tag, channels, rate, bits) == (1, 1, SR, 16) and size == 2 * len(ref) and riff == 36 + size
    assert np.array_equal(q, np.clip(np.rint(ref * 32768), -32768, 32767).astype(np.int16))
    with wave.open(str(tmp_path / "out.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, SR, len(ref))
        assert w.readframes(len(ref)) == q.tobytes()


def test_pcm_clipping_is_counted_once_at_the_end(mag, tmp_path):
    loud = np.ascontiguousarray(mag[:, :40] * 8)  # beyond full scale
    np.save(tmp_path / "loud.npy", loud)
    ref = streamed(loud, "rtpghi")
    over = int(np.count_nonzero(np.rint(ref * 2 ** 23) > 2 ** 23 - 1) + np.count_nonzero(np.rint(ref * 2 ** 23) < -2 ** 23))
    assert over > 0
    code, out, err = pipeline(tmp_path / "loud.npy", "npy", "-m", "rtpghi", "--subtype", "PCM_24", "-q")
    assert code == 0, err
    tag, _, _, bits, riff, size, q = parse_wav(out)
    assert (tag, bits, riff, size) == (1, 24, UNKNOWN_SIZE, UNKNOWN_SIZE)
    assert np.array_equal(q, np.clip(np.rint(ref * 2 ** 23), -2 ** 23, 2 ** 23 - 1).astype(np.int32))
    assert err.splitlines() == [f"warning: {over} sample(s) beyond full scale were clipped to fit PCM_24 (peak "
                                f"{np.abs(ref).max():.4g}); --subtype FLOAT keeps any level"]
    audio, _, subtype = soundfile_read(out, tmp_path)
    assert subtype == "PCM_24" and np.array_equal(audio, q / np.float32(2 ** 23))


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
def test_sox_reads_the_stream_from_a_pipe(mag, tmp_path):
    np.save(tmp_path / "m.npy", mag[:, :30])
    code, out, err = pipeline(tmp_path / "m.npy", "npy", "-m", "rtpghi", "-q")
    assert code == 0, err
    got = subprocess.run(["sox", "-t", "wav", "-", "-t", "f32", "-"], input=out, capture_output=True, timeout=60)
    assert got.returncode == 0, got.stderr
    ref = streamed(mag[:, :30], "rtpghi")
    back = np.frombuffer(got.stdout, "<f4")  # through sox's 32-bit integer samples
    assert back.shape == ref.shape and np.abs(back - ref).max() < 1e-7


# --- 3: bad input ------------------------------------------------------------------------------
def _npy(a, **kw) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, **kw)
    return buf.getvalue()


def _bad_inputs(mag):
    good = mag[:, :9]
    nan = mag[:, 9:12].copy()
    nan[100, 1] = np.nan
    nan0 = mag[:, :12].copy()
    nan0[100, 0] = np.nan  # raw frames: the first read, however the pipe cuts it, holds frame 0
    return {  # name: (bytes, frames before the bad part, what the message says)
        "pickle": (_npy(good) + _npy(np.array([{"x": 1}], dtype=object), allow_pickle=True), 9, "Python objects"),
        "wrong-F": (_npy(good) + _npy(mag[:80, 9:12]), 9, "80 bins per frame, but the settings take 513"),
        "nan": (_npy(good) + _npy(nan), 9, "<stdin> (frames 9-11): contains 1 NaN"),
        "truncated": (_npy(good) + _npy(mag[:, 9:12])[:-10], 9, "truncated chunk 1 (after frame 8)"),
        "garbage": (_npy(good) + b"\x00garbage" * 40, 9, "does not start with the .npy magic"),
        "raw-nan": (np.ascontiguousarray(nan0.T).astype("<f4").tobytes(), 0, "contains 1 NaN"),
        "text": (b"not a spectrogram\n" * 100, 0, "it looks like a text file"),
    }


@pytest.mark.parametrize("case", ["pickle", "wrong-F", "nan", "truncated", "garbage", "raw-nan", "text"])
def test_bad_input_is_one_line_exit_2_and_a_valid_wav_prefix(mag, tmp_path, case):
    data, good, words = _bad_inputs(mag)[case]
    proc = specinv("-m", "rtpghi", "-q", stdin=subprocess.PIPE)
    out, err = proc.communicate(data, timeout=DEADLINE)
    err = err.decode()
    assert proc.returncode == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: <stdin>") and words in lines[0], err
    tag, _, rate, _, riff, size, samples = parse_wav(out)  # the header, whole samples: a valid prefix
    assert (tag, rate, riff, size) == (3, SR, UNKNOWN_SIZE, UNKNOWN_SIZE)
    # nothing but the audio final before the bad part (raw frames: the chunk holding it is refused whole)
    expected = streamed(mag[:, :good], "rtpghi", flush=False) if good else np.zeros(0, np.float32)
    assert np.array_equal(samples, expected)
    if good:
        assert len(samples) > 0
    audio, sr, _ = soundfile_read(out, tmp_path)
    assert sr == SR and np.array_equal(audio, expected)


# --- 4: signals --------------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_the_producer_is_silent_ends_with_the_audio_of_the_frames_read(mag, sig):
    frames = np.ascontiguousarray(mag[:, :12])
    final = streamed(frames, "rtpghi", flush=False)  # what is final before the end of the stream
    whole = streamed(frames, "rtpghi")
    assert 0 < len(final) < len(whole) == 11 * HOP
    proc = specinv("-m", "rtpghi", stdin=subprocess.PIPE)
    killer = threading.Timer(DEADLINE, proc.kill)  # a net: the process never hangs the suite
    killer.start()
    try:
        start = proc.stderr.readline().decode()  # printed before the first read: the handlers are in
        assert start.startswith("stream: method rtpghi, look-ahead 1 frame,"), start
        proc.stdin.write(_npy(frames))
        proc.stdin.flush()  # and the pipe stays open, with nothing more coming
        head = proc.stdout.read(46 + 4 * len(final))  # every final sample came out before the end
        assert np.array_equal(np.frombuffer(head[46:], "<f4"), final)
        proc.send_signal(sig)
        rest = proc.stdout.read()
        err = proc.stderr.read().decode()
        code = proc.wait()
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
    assert code == 130, err
    assert "Traceback" not in err and err.startswith("error: interrupted: stopped after 12 frame(s); their audio was written"), err
    out = head + rest
    tag, _, _, _, _, _, samples = parse_wav(out)
    assert tag == 3 and np.array_equal(samples, whole)  # the frames read, finished to their end


# --- 5: latency --------------------------------------------------------------------------------
@pytest.mark.parametrize("ms", [60.0, 100.0])
def test_latency_picks_the_largest_look_ahead_that_fits(mag, ms):
    la = StreamingInverter.look_ahead_for(ms, "default")
    inv = StreamingInverter("default", look_ahead=la)
    assert inv.latency_ms <= ms < StreamingInverter("default", look_ahead=la + 1).latency_ms
    proc = specinv("--latency", ms, "--bins", 513, stdin=subprocess.PIPE)
    out, err = proc.communicate(np.ascontiguousarray(mag[:, :5].T).astype("<f4").tobytes(), timeout=DEADLINE)
    err = err.decode()
    assert proc.returncode == 0, err
    assert f"look-ahead {la} frames, algorithmic latency {inv.latency_ms:.1f} ms ({inv.latency_samples} samples)" \
        in err.splitlines()[0], err
    assert np.array_equal(parse_wav(out)[-1], streamed(mag[:, :5], look_ahead=la))


def test_latency_and_look_ahead_exclude_each_other(capsys):
    code, out, err = run(capsys, "stream", "--latency", "50", "--look-ahead", "2")
    assert code == 2 and out == ""
    assert err.splitlines() == ["error: --latency and --look-ahead exclude each other: give the delay in "
                                "milliseconds or in frames"]


def test_a_latency_no_look_ahead_fits_is_a_usage_error():
    proc = specinv("--latency", "5", stdin=subprocess.DEVNULL)
    out, err = proc.communicate(timeout=DEADLINE)
    err = err.decode()
    assert proc.returncode == 2 and out == b"" and "Traceback" not in err
    assert err.startswith(f"error: --latency 5: no look-ahead of {DEFAULT_STREAM_METHOD} fits 5 ms"), err


# --- 6: help -----------------------------------------------------------------------------------
def test_help_lists_the_options_and_the_librarys_methods(capsys):
    code, out, _ = run(capsys, "stream", "--help")
    assert code == 0
    for flag in ("--config", "--bins", "--input-kind", "--method", "--look-ahead", "--latency", "--iters",
                 "--threads", "--raw", "--subtype", "--quiet", "--layout"):
        assert flag in out, flag
    from specinv_cli.cli import stream as cmd

    from specinv_cli.io.stream import STREAM_SUBTYPES

    assert set(cmd._METHODS) == set(STREAM_METHODS) and cmd._SUBTYPES == STREAM_SUBTYPES
    assert cmd._DEFAULT == (DEFAULT_STREAM_METHOD, *STREAM_METHODS[DEFAULT_STREAM_METHOD][:2])
    assert all(name in out for name in STREAM_METHODS)
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "stream" in out
    probe = ("import sys\nfrom specinv_cli.cli import main\ntry:\n    main(['stream', '--help'])\n"
             "except SystemExit:\n    pass\nprint('torch' in sys.modules, 'numpy' in sys.modules, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, cwd=str(ROOT), timeout=DEADLINE)
    assert r.returncode == 0 and r.stderr.decode().split() == ["False", "False"], r.stderr  # --help stays light


# --- the I/O pieces on their own -----------------------------------------------------------------
class _Trickle:
    """A stream that gives at most ``n`` bytes per read, as a pipe does with a slow writer."""

    def __init__(self, data: bytes, n: int):
        self.f, self.n = io.BytesIO(data), n

    def read(self, k):
        return self.f.read(min(k, self.n))


def test_frame_reader_buffers_split_frames_and_honours_layout_and_fortran_order(mag):
    x = np.ascontiguousarray(mag[:, :11])
    raw = FrameReader(_Trickle(np.ascontiguousarray(x.T).astype("<f4").tobytes(), 7), 513)
    parts = list(raw)
    assert raw.format == "raw" and raw.frames == 11 and all(p.shape[0] == 513 for p in parts)
    assert np.array_equal(np.concatenate(parts, 1), x)
    chunks = (_npy(x[:, :2]) + _npy(x[:, 2:2]) + _npy(np.asfortranarray(x[:, 2:6]).astype(">f8"))
              + _npy(x[:, 6]) + _npy(x[None, :, 7:]))
    npy = FrameReader(_Trickle(chunks, 5), 513)
    parts = list(npy)
    assert npy.format == "npy" and npy.chunks == 5 and [p.shape[1] for p in parts] == [2, 4, 1, 4]
    assert parts[1].dtype == np.float64 and parts[1].flags.c_contiguous
    assert np.array_equal(np.concatenate(parts, 1), x)
    tf = FrameReader(io.BytesIO(_npy(x.T)), 513, layout="tf")
    assert np.array_equal(np.concatenate(list(tf), 1), x)


def test_a_chunk_header_claiming_more_than_memory_is_refused_before_allocating():
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (513, 1000000000000), }"
    header += " " * (127 - 10 - len(header)) + "\n"
    data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()
    with pytest.raises(ValueError, match=r"<stdin>: loading chunk 0 \(shape \(513, 1000000000000\) float32\) "
                                         r"would need about [\d.]+ PiB, more than the available memory"):
        list(FrameReader(io.BytesIO(data), 513))
    with pytest.raises(ValueError, match="more than the limit"):
        list(FrameReader(io.BytesIO(_npy(np.ones((513, 4), np.float32))), 513, max_bytes=1000))


def test_wav_stream_writer_writes_the_header_once_and_its_sizes_where_it_can():
    class Pipe(io.BytesIO):
        def seekable(self):
            return False

    x = np.linspace(-0.5, 0.5, 101, dtype=np.float32)
    for f, known in ((Pipe(), False), (io.BytesIO(), True)):
        w = WavStreamWriter(f, 16000, "FLOAT")
        w.start()
        w.write(x[:0])
        w.write(x[:60])
        w.write(x[60:])
        w.close()
        data = f.getvalue()
        assert data[:46] == wav_stream_header(16000, "FLOAT", data_bytes=4 * 101 if known else None)
        assert np.array_equal(np.frombuffer(data[46:], "<f4"), x) and w.samples == 101
    assert len(wav_stream_header(8000, "PCM_24")) == 44
    f = Pipe()  # Python's wave reads a PCM stream of unknown length to its end
    w = WavStreamWriter(f, 8000, "PCM_16")
    w.write(x)
    w.close()
    with wave.open(io.BytesIO(f.getvalue())) as r:
        assert (r.getnchannels(), r.getsampwidth(), r.getframerate()) == (1, 2, 8000)
        assert np.array_equal(np.frombuffer(r.readframes(10 ** 6), "<i2"), np.rint(x * 32768).astype(np.int16))
