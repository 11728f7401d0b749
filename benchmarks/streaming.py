#!/usr/bin/env python
"""Streaming inversion: latency, quality against offline methods, real-time factor, memory.

1. Algorithmic latency (ms at the settings' rate) of each streaming method and look-ahead:
   ``n_fft + (look_ahead - 1) hop`` samples (see :mod:`specinv_cli.streaming`).
2. Quality on every corpus clip (whole clips, default framing: n_fft 1024, hop 256 at 22.05 kHz):
   RTISI-LA, RTPGHI and the online FGLA / DM / RAAR at look-ahead 1, 3, 5 and 7 with ``--iters``
   updates per frame, against the offline methods with as many iterations (FGLA and DM from
   PGHI, and PGHI alone): median SC of the output's |STFT| and median PESQ (wide band, 16 kHz;
   the ``[eval]`` extra), and the paired gain of the default over RTISI-LA at each look-ahead.
   The real-time factor (audio seconds per compute second, one CPU thread) of each, in the same
   run; and RTISI-LA with 16, 24 and 32 updates at look-ahead 3 and 5, for the gain at equal
   wall time.
3. Memory over a long stream (``--hour`` seconds of audio, default one hour): the default method
   fed the corpus' frames in a loop in uneven chunks; the process's resident set size sampled
   along the way (start, peak, end).
4. Through ``specinv stream``: a producer writes the frames of a clip at real-time pace (one
   frame per hop) into the command's stdin; the delay from each frame written to the audio it
   makes final leaving stdout (median, 95th percentile), beside the algorithmic latency.

    python benchmarks/streaming.py [--iters 8] [--hour 3600] [--clips N] [--no-pipe]

Writes ``benchmarks/results/streaming.md`` / ``.json``. Run it on a quiet machine: (2)-(4) time.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = Path(os.environ.get("SPECINV_CORPUS", ROOT.parent / "shared" / "corpus"))

from specinv_cli import invert  # noqa: E402
from specinv_cli.companion.bench import machine_info  # noqa: E402
from specinv_cli.config import STFTConfig  # noqa: E402
from specinv_cli.dsp.metrics import sc  # noqa: E402
from specinv_cli.dsp.stft import STFT  # noqa: E402
from specinv_cli.streaming import DEFAULT_STREAM_METHOD, STREAM_METHODS, StreamingInverter  # noqa: E402
from specinv_cli.util.allocator import retain_freed_memory  # noqa: E402

LOOK_AHEADS = (1, 3, 5, 7)
#: RTISI-LA with more updates per frame, for the comparison at equal wall time (look-ahead, updates)
EQUAL_TIME = tuple((la, n) for la in (3, 5) for n in (16, 24, 32))


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def run_stream(mag: torch.Tensor, method: str, la: int, n_iter: int, chunk: int = 16):
    inv = StreamingInverter("default", method=method, look_ahead=la, n_iter=n_iter)
    t0 = time.perf_counter()
    outs = [inv.push(mag[:, i:i + chunk]) for i in range(0, mag.shape[-1], chunk)]
    outs.append(inv.flush())
    return torch.cat(outs), time.perf_counter() - t0


def configs(n_iter: int):
    out = []
    for la in LOOK_AHEADS:
        for m in ("rtisi-la", "fgla", "dm", "raar"):
            out.append((m, la, n_iter))
    out += [("rtpghi", 0, 0), ("rtpghi", 1, 0)]
    out += [("rtisi-la", la, n) for la, n in EQUAL_TIME if n != n_iter]
    return out


def quality(clips, n_iter: int, pesq_ok: bool):
    from specinv_cli.companion.perceptual import pesq_wb

    op = STFT(STFTConfig())
    cf = configs(n_iter)
    offline = [("offline fgla from pghi", dict(method="fgla", init="pghi", n_iter=n_iter)),
               ("offline dm from pghi", dict(method="dm", init="pghi", n_iter=n_iter)),
               ("offline pghi", dict(method="pghi"))]
    # the offline methods once untimed: loading (or compiling) their kernels is not their speed
    x0 = sf.read(str(clips[0]), dtype="float32")[0]
    warm = op.forward(torch.from_numpy(x0 if x0.ndim == 1 else x0.mean(axis=1))).abs()
    for _, kw in offline:
        invert(warm, device="cpu", **kw)
    rows = {c: {"sc": [], "pesq": [], "seconds": 0.0} for c in cf}
    rows.update({name: {"sc": [], "pesq": [], "seconds": 0.0} for name, _ in offline})
    audio_s = 0.0
    for clip in clips:
        x, sr = sf.read(str(clip), dtype="float32")
        if x.ndim > 1:
            x = x.mean(axis=1)
        xt = torch.from_numpy(x)
        mag = op.forward(xt).abs()
        T = mag.shape[-1]
        audio_s += len(x) / sr
        ref = x[: (T - 1) * 256]

        def score(key, y, dt):
            rows[key]["sc"].append(float(sc(op.forward(y).abs()[:, :T], mag)))
            if pesq_ok:
                rows[key]["pesq"].append(float(pesq_wb(y.numpy()[: len(ref)], ref, sr)))
            rows[key]["seconds"] += dt

        for c in cf:
            y, dt = run_stream(mag, *c)
            score(c, y, dt)
        for name, kw in offline:
            t0 = time.perf_counter()
            r = invert(mag, device="cpu", length=(T - 1) * 256, **kw)
            score(name, r.audio, time.perf_counter() - t0)
        print(f"  {clip.stem}: " + ", ".join(f"{k[0]}/{k[1]} {rows[k]['sc'][-1]:.1f}" for k in cf[:8]), file=sys.stderr)
    return rows, audio_s


def long_stream(seconds: float, clips) -> dict:
    op = STFT(STFTConfig())
    mags = []
    for clip in clips:
        x, _ = sf.read(str(clip), dtype="float32")
        mags.append(op.forward(torch.from_numpy(x if x.ndim == 1 else x.mean(axis=1))).abs())
    frames_needed = int(seconds * 22050 / 256)
    inv = StreamingInverter("default")
    rng = np.random.default_rng(0)
    done, k, samples = 0, 0, []
    t0 = time.perf_counter()
    out = 0
    while done < frames_needed:
        m = mags[k % len(mags)]
        k += 1
        i = 0
        while i < m.shape[-1] and done < frames_needed:
            n = int(rng.integers(1, 17))
            chunk = m[:, i:i + n]
            out += inv.push(chunk).shape[-1]
            i += chunk.shape[-1]
            done += chunk.shape[-1]
            if len(samples) == 0 or done // 8600 > samples[-1][0] // 8600:
                samples.append((done, rss_bytes()))
    out += inv.flush().shape[-1]
    dt = time.perf_counter() - t0
    samples.append((done, rss_bytes()))
    first = next((r for f, r in samples if f >= 860), samples[0][1])  # after 10 s of stream
    return {"audio_seconds": done * 256 / 22050, "samples_out": out, "compute_seconds": dt,
            "rtf": done * 256 / 22050 / dt, "rss_after_10s": first, "rss_peak": max(r for _, r in samples),
            "rss_end": samples[-1][1], "rss_samples": samples}


def pipe_delay(clip: Path, la: int | None = None) -> dict:
    """Frames of ``clip`` written at real-time pace into ``specinv stream`` (raw float32); the
    time each frame's final samples appear on stdout, minus the time the frame was written."""
    op = STFT(STFTConfig())
    x, _ = sf.read(str(clip), dtype="float32")
    mag = op.forward(torch.from_numpy(x if x.ndim == 1 else x.mean(axis=1))).abs()
    T = mag.shape[-1]
    frames = np.ascontiguousarray(mag.numpy().T.astype("<f4"))  # [T, F]: frame after frame
    look = STREAM_METHODS[DEFAULT_STREAM_METHOD][0] if la is None else la
    cmd = [sys.executable, "-m", "specinv_cli", "stream", "--raw", "--subtype", "FLOAT", "--look-ahead", str(look)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    hop_s = 256 / 22050
    written = [0.0] * T
    arrived: list[tuple[float, int]] = []

    def reader():
        got = 0
        while True:
            b = p.stdout.read1(65536) if hasattr(p.stdout, "read1") else p.stdout.read(4096)
            if not b:
                break
            got += len(b)
            arrived.append((time.perf_counter(), got // 4))

    th = threading.Thread(target=reader)
    th.start()
    # the command's start-up (torch, the kernels) is not the stream's delay: its start line on
    # stderr says it is ready for frames
    start_line = p.stderr.readline().decode(errors="replace").strip()
    start = time.perf_counter()
    for n in range(T):
        target = start + n * hop_s
        now = time.perf_counter()
        if target > now:
            time.sleep(target - now)  # the producer's real-time pace
        p.stdin.write(frames[n].tobytes())
        p.stdin.flush()
        written[n] = time.perf_counter()
    p.stdin.close()
    th.join()
    p.wait()
    delays = []
    pad = 512
    k = 0
    for n in range(T):
        need = (n - look + 1) * 256 - pad  # samples final once frame n is in
        if need <= 0 or n < 2:
            continue
        while k < len(arrived) and arrived[k][1] < need:
            k += 1
        if k < len(arrived):
            delays.append(arrived[k][0] - written[n])
    delays.sort()
    p.stderr.read()
    return {"clip": clip.stem, "frames": T, "look_ahead": look, "rc": p.returncode, "start_line": start_line,
            "median_ms": 1000 * statistics.median(delays) if delays else None,
            "p95_ms": 1000 * delays[int(0.95 * (len(delays) - 1))] if delays else None,
            "max_ms": 1000 * delays[-1] if delays else None}


def mel_streams(clips, preset: str = "hifigan-22k") -> dict:
    """The default method on a mel preset's features of every clip: the streamed audio's mel SC
    against the clip's mel, and the real-time factor (mel -> linear included)."""
    from specinv_cli.config import load_preset
    from specinv_cli.dsp.mel import MelTransform, encode
    from specinv_cli import streaming

    cfg = load_preset(preset)
    op, mt = STFT(cfg), MelTransform(cfg)
    rows = {}
    for iters in (streaming.MEL_NNLS_ITERS, 100):
        saved, streaming.MEL_NNLS_ITERS = streaming.MEL_NNLS_ITERS, iters
        scs, spent, audio = [], 0.0, 0.0
        try:
            for clip in clips:
                x, sr = sf.read(str(clip), dtype="float32")
                x = torch.from_numpy(x if x.ndim == 1 else x.mean(axis=1))
                mel = mt(op.forward(x).abs())
                feats = encode(mel, cfg)
                inv = StreamingInverter(cfg)
                t0 = time.perf_counter()
                y = torch.cat([inv.push(feats[:, i:i + 16]) for i in range(0, feats.shape[-1], 16)] + [inv.flush()])
                spent += time.perf_counter() - t0
                audio += len(x) / sr
                scs.append(float(sc(mt(op.forward(y).abs())[:, :mel.shape[-1]], mel)))
        finally:
            streaming.MEL_NNLS_ITERS = saved
        rows[iters] = {"mel_sc_median": statistics.median(scs), "rtf": audio / spent, "per_clip": scs}
    return {"preset": preset, "rows": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=8, help="updates per frame (streaming) = offline iterations")
    ap.add_argument("--hour", type=float, default=3600.0, help="seconds of audio in the memory test (0: skip)")
    ap.add_argument("--clips", type=int, default=0, help="corpus clips in (2) (0: all)")
    ap.add_argument("--no-pipe", action="store_true")
    ap.add_argument("--mel", action="store_true", help="only the mel streams (writes streaming_mel.md)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    retain_freed_memory()
    clips = sorted(CORPUS.glob("*.wav"))
    if not clips:
        print(f"no corpus at {CORPUS}", file=sys.stderr)
        return 2
    sel = clips[: args.clips] if args.clips else clips
    pesq_ok = importlib.util.find_spec("pesq") is not None
    info = machine_info(1)
    if args.mel:
        res = mel_streams(clips)
        lines = [f"# Streaming mel features ({info['date']}, {info['cpu']}, {info['arch']}, 1 CPU thread, "
                 f"torch {info['torch']})", "",
                 f"The default streaming method (`{DEFAULT_STREAM_METHOD}`, look-ahead "
                 f"{STREAM_METHODS[DEFAULT_STREAM_METHOD][0]}) on the {res['preset']} preset's features of the "
                 f"{len(clips)} corpus clips, pushed 16 frames at a time; each frame's mel -> linear magnitudes by "
                 "non-negative least squares on its own. Mel SC: the streamed audio's mel against the clip's.", "",
                 "| NNLS iterations per frame | median mel SC dB | RTF (1 thread) |", "|---|---|---|"]
        lines += [f"| {k} | {v['mel_sc_median']:.2f} | {v['rtf']:.1f} |" for k, v in res["rows"].items()]
        out = Path(args.out)
        (out / "streaming_mel.md").write_text("\n".join(lines) + "\n")
        (out / "streaming_mel.json").write_text(json.dumps({"machine": info, **res}, indent=1, default=str))
        print("\n".join(lines))
        return 0
    report = {"machine": info, "iters": args.iters, "default": DEFAULT_STREAM_METHOD}
    lines = [f"# Streaming ({info['date']}, {info['cpu']}, {info['arch']}, 1 CPU thread, torch {info['torch']})", "",
             "n_fft 1024, hop 256, periodic Hann, centred frames, 22.05 kHz. Default streaming method: "
             f"`{DEFAULT_STREAM_METHOD}` (look-ahead {STREAM_METHODS[DEFAULT_STREAM_METHOD][0]}, "
             f"{STREAM_METHODS[DEFAULT_STREAM_METHOD][1]} updates per frame).", ""]

    # (1) latency
    lines += ["## 1. Algorithmic latency", "", "`n_fft + (look_ahead - 1) hop` samples: from the last input sample the "
              "newest frame needs to the samples it makes final.", "",
              "| look-ahead (frames) | samples | ms |", "|---|---|---|"]
    lat = {}
    for la in (0, 1, 2, 3, 5, 7):
        ms = StreamingInverter.latency_for("default", "fgla", la)
        lat[la] = ms
        lines.append(f"| {la} | {1024 + (la - 1) * 256} | {ms:.1f} |")
    lines += ["", "Every method has the latency of its look-ahead: rtpghi takes 0 or 1; the online methods "
              "take any (of 2 or more, RTPGHI's start takes one).", ""]
    report["latency_ms"] = lat

    # (2) quality and real-time factor
    rows, audio_s = quality(sel, args.iters, pesq_ok)
    med = {str(k): {"sc": statistics.median(v["sc"]), "pesq": statistics.median(v["pesq"]) if v["pesq"] else None,
                    "rtf": audio_s / v["seconds"] if v["seconds"] else None, "sc_per_clip": v["sc"],
                    "pesq_per_clip": v["pesq"]} for k, v in rows.items()}
    report["quality"] = med
    lines += [f"## 2. Quality on {len(sel)} corpus clips ({audio_s:.1f} s), {args.iters} updates per frame", "",
              "Medians over clips; RTF: audio seconds per compute second on one thread (push in chunks of 16 "
              "frames, flush included).", "",
              "| method | look-ahead | latency ms | SC dB | PESQ | RTF |", "|---|---|---|---|---|---|"]
    for k, v in rows.items():
        m = med[str(k)]
        if isinstance(k, tuple):
            name, la = k[0] + (" (default)" if k[0] == DEFAULT_STREAM_METHOD else ""), k[1]
            if k[2] not in (args.iters, 0):
                name += f" ({k[2]} updates)"
            lms = f"{lat.get(la, StreamingInverter.latency_for('default', 'fgla', la)):.1f}"
        else:
            name, la, lms = k, "whole", "-"
        pq = f"{m['pesq']:.3f}" if m["pesq"] is not None else "-"
        lines.append(f"| {name} | {la} | {lms} | {m['sc']:.2f} | {pq} | {m['rtf']:.1f} |")
    lines += ["", "Gain of the default over RTISI-LA at the same look-ahead and updates per frame "
              "(RTISI-LA SC minus the default's, dB; median of the per-clip gains, and the gain of the medians):", ""]
    gains = {}
    for la in LOOK_AHEADS:
        a, b = rows[("rtisi-la", la, args.iters)]["sc"], rows[(DEFAULT_STREAM_METHOD, la, args.iters)]["sc"]
        per = [x - y for x, y in zip(a, b)]
        gains[la] = {"median_of_gains": statistics.median(per), "gain_of_medians": statistics.median(a) - statistics.median(b),
                     "worst": min(per), "per_clip": per}
        lines.append(f"- look-ahead {la} ({lat.get(la, 0):.1f} ms): {gains[la]['median_of_gains']:+.2f} dB "
                     f"(medians {gains[la]['gain_of_medians']:+.2f} dB; worst clip {gains[la]['worst']:+.2f} dB)")
    report["gain_over_rtisi"] = gains
    lines.append("")
    # the same at equal wall time: RTISI-LA given as much time per frame as the default (more updates)
    lines += ["Gain of the default over RTISI-LA at the same look-ahead and equal wall time: RTISI-LA with more "
              "updates per frame, against the rows that bracket the default's real-time factor (gain of the "
              "medians, dB):", ""]
    eq = {}
    for la in sorted({la for la, _ in EQUAL_TIME}):
        d = med[str((DEFAULT_STREAM_METHOD, la, args.iters))]
        ns = sorted({args.iters} | {n for l2, n in EQUAL_TIME if l2 == la})
        cand = [(n, med[str(("rtisi-la", la, n))]) for n in ns]
        faster = [(n, m) for n, m in cand if m["rtf"] >= d["rtf"]]  # RTISI-LA no slower than the default
        slower = [(n, m) for n, m in cand if m["rtf"] < d["rtf"]]
        parts = []
        for tag, pick in (("no slower", faster[-1] if faster else None), ("slower", slower[0] if slower else None)):
            if pick is not None:
                n, m = pick
                parts.append(f"{m['sc'] - d['sc']:+.2f} dB against {n} updates ({tag}: RTF {m['rtf']:.1f}, "
                             f"SC {m['sc']:.2f})")
        eq[la] = {"default_rtf": d["rtf"], "rows": {n: {"sc": m["sc"], "rtf": m["rtf"]} for n, m in cand}}
        lines.append(f"- look-ahead {la} ({lat.get(la, 0):.1f} ms), the default at RTF {d['rtf']:.1f}: "
                     + "; ".join(parts))
    report["equal_time"] = eq
    lines.append("")

    # (3) memory over a long stream
    if args.hour > 0:
        mem = long_stream(args.hour, clips)
        report["long_stream"] = mem
        mib = 2 ** 20
        lines += [f"## 3. A {mem['audio_seconds'] / 60:.0f}-minute stream (default method, chunks of 1-16 frames)", "",
                  f"Resident set: {mem['rss_after_10s'] / mib:.1f} MiB after 10 s of stream, peak "
                  f"{mem['rss_peak'] / mib:.1f} MiB, {mem['rss_end'] / mib:.1f} MiB at the end; "
                  f"RTF {mem['rtf']:.1f} ({mem['compute_seconds']:.0f} s of compute).", ""]

    # (4) through the pipe
    if not args.no_pipe:
        first = next((c for c in clips if "speech_03" in c.name), clips[0])
        pd = pipe_delay(first)
        report["pipe"] = pd
        lines += ["## 4. Through `specinv stream` (producer at real-time pace, raw float32 in, raw float out)", "",
                  f"{pd['clip']}, {pd['frames']} frames, look-ahead {pd['look_ahead']} "
                  f"(algorithmic latency {lat.get(pd['look_ahead'], 0):.1f} ms): from a frame written to the pipe to "
                  f"the samples it makes final read from stdout: median {pd['median_ms']:.2f} ms, 95th percentile "
                  f"{pd['p95_ms']:.2f} ms, max {pd['max_ms']:.2f} ms (exit code {pd['rc']}). End to end, a sample "
                  f"leaves about the algorithmic latency plus this after the input sample it needs.", ""]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "streaming.md").write_text("\n".join(lines) + "\n")
    (out / "streaming.json").write_text(json.dumps(report, indent=1, default=str))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
