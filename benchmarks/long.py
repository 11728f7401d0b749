#!/usr/bin/env python
"""Hour-long input: peak memory, SC and time through the CLI; seams against unblocked inversion.

1. Builds ``--minutes`` (60) of audio by tiling the ../shared/corpus clips, writes its reference
   magnitude (n_fft 1024, hop 256) as one float32 .npy [513, T] (computed in chunks), then runs
   ``/usr/bin/time -v specinv invert long.npy -o long.wav --json`` with the defaults (blocks of
   2048 frames, overlap 128) and reports peak RSS, wall time and the SC of the whole output
   (computed by the CLI against the input, in chunks). ``--short`` minutes (6) are run the same
   way to show time is linear in length.
2. Seams: a ``--seam-seconds`` (120) excerpt inverted whole (``--block-frames 0``) and in blocks,
   SC of each.

    python benchmarks/long.py [--minutes 60] [--short 6] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("SPECINV_CORPUS", ROOT.parent / "shared" / "corpus"))
SR, N_FFT, HOP = 22050, 1024, 256


def tiled(seconds: float) -> np.ndarray:
    clips = [sf.read(str(p), dtype="float32")[0] for p in sorted(CORPUS.glob("*.wav"))]
    n = int(seconds * SR)
    out = np.empty(n, np.float32)
    i = k = 0
    while i < n:
        c = clips[k % len(clips)]
        m = min(len(c), n - i)
        out[i:i + m] = c[:m]
        i, k = i + m, k + 1
    return out


def write_magnitude(audio: np.ndarray, path: Path, chunk: int = 8192) -> int:
    """|STFT| of ``audio`` (torch.stft conventions: centred, reflect) written chunk by chunk."""
    import torch

    T = 1 + len(audio) // HOP
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(N_FFT // 2 + 1, T))
    win = torch.hann_window(N_FFT)
    p = N_FFT // 2
    padded = np.pad(audio, (p, p), mode="reflect")
    for a in range(0, T, chunk):
        b = min(a + chunk, T)
        seg = torch.from_numpy(padded[a * HOP:(b - 1) * HOP + N_FFT].copy())
        mm[:, a:b] = torch.stft(seg, N_FFT, HOP, window=win, center=False, return_complex=True).abs().numpy()
    mm.flush()
    del mm
    return T


def run_cli(npy: Path, wav: Path, *extra) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "specinv_cli", "invert", str(npy), "-o", str(wav),
           "--json", "-q", *extra]
    proc = subprocess.run(cmd, capture_output=True, cwd=str(ROOT))
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    rec = json.loads(proc.stdout.decode().splitlines()[0])
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)[1]) * 1024
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", err)[1]
    secs = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall.split(":"))))
    return {"peak_rss_bytes": rss, "peak_rss_gib": round(rss / 2 ** 30, 3), "wall_s": round(secs, 1),
            "sc": rec["sc"], "snr": rec["snr"], "blocks": rec.get("blocks"), "samples": rec["samples"],
            "invert_s": rec["seconds"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--short", type=float, default=6)
    ap.add_argument("--seam-seconds", type=float, default=120)
    ap.add_argument("--iters", type=int, default=100, help="iterations for the short and long runs")
    ap.add_argument("--skip-seam", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    a = ap.parse_args()
    res = {"date": str(date.today()), "machine": f"{platform.machine()}, {os.cpu_count()} CPU threads"}
    with tempfile.TemporaryDirectory(prefix="specinv-long-") as tmp:
        tmp = Path(tmp)
        # seams: whole vs blocks on an excerpt where both fit
        x = tiled(a.seam_seconds if not a.skip_seam else 1)
        write_magnitude(x, tmp / "seam.npy")
        if a.skip_seam:
            res["seam"] = json.loads((Path(a.out) / "long.json").read_text())["seam"]
        else:
            whole = run_cli(tmp / "seam.npy", tmp / "seam_whole.wav", "--block-frames", "0", "--subtype", "FLOAT",
                            "--normalize", "none")
            blocked = run_cli(tmp / "seam.npy", tmp / "seam_blocks.wav", "--subtype", "FLOAT", "--normalize", "none")
            res["seam"] = {"seconds": a.seam_seconds, "whole": whole, "blocks": blocked,
                           "sc_cost_db": round(blocked["sc"] - whole["sc"], 3)}
            (Path(a.out) / "long.json").write_text(json.dumps({"seam": res["seam"]}, indent=1) + "\n")
        print(json.dumps(res["seam"]), flush=True)
        for key, minutes in (("short", a.short), ("long", a.minutes)):
            x = tiled(minutes * 60)
            frames = write_magnitude(x, tmp / f"{key}.npy")
            del x
            r = run_cli(tmp / f"{key}.npy", tmp / f"{key}.wav", "-n", str(a.iters))
            r.update(iters=a.iters, minutes=minutes, frames=frames, npy_bytes=(tmp / f"{key}.npy").stat().st_size)
            res[key] = r
            print(key, json.dumps(r), flush=True)
            (tmp / f"{key}.wav").unlink()
            (tmp / f"{key}.npy").unlink()
    res["time_ratio_long_vs_short"] = round(res["long"]["wall_s"] / res["short"]["wall_s"], 2)
    res["length_ratio"] = round(a.minutes / a.short, 2)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "long.json").write_text(json.dumps(res, indent=1) + "\n")
    L, S, sm = res["long"], res["short"], res["seam"]
    md = [f"# Long inputs ({res['date']}, {res['machine']})", "",
          "Defaults: blocks of 2048 frames, overlap 128, two passes (the second shifted by half a block and "
          "started from the stitched phase), dm from PGHI; N iterations per block in pass 1 and N/2 in pass 2 "
          f"(N = {L['iters']} for the timed runs below, 100 for the seam comparison).", "",
          "| input | frames | .npy | peak RSS | wall | SC (whole output) |", "|---|---|---|---|---|---|",
          f"| {S['minutes']:g} min | {S['frames']} | {S['npy_bytes'] / 2**20:.0f} MiB | {S['peak_rss_gib']} GiB | "
          f"{S['wall_s']} s | {S['sc']} dB |",
          f"| {L['minutes']:g} min | {L['frames']} | {L['npy_bytes'] / 2**20:.0f} MiB | **{L['peak_rss_gib']} GiB** | "
          f"{L['wall_s']} s | **{L['sc']} dB** |", "",
          f"Time ratio {res['time_ratio_long_vs_short']} for a length ratio {res['length_ratio']}.", "",
          f"Seams ({sm['seconds']:g} s excerpt): whole {sm['whole']['sc']} dB ({sm['whole']['peak_rss_gib']} GiB, "
          f"{sm['whole']['wall_s']} s), blocks {sm['blocks']['sc']} dB ({sm['blocks']['peak_rss_gib']} GiB, "
          f"{sm['blocks']['wall_s']} s): cost {sm['sc_cost_db']} dB.", ""]
    (Path(a.out) / "long.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
