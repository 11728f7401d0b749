#!/usr/bin/env python
"""What glibc's malloc thresholds cost an FFT and an inversion, and what retain_freed_memory saves.

Each case runs in fresh processes (malloc's state depends on the process's history), half of them
after ``specinv_cli.util.allocator.retain_freed_memory()``, the two kinds in turn:

1. ``irfft(rfft(x))`` of ``[R, 1024]`` frames after the same warm-up sequence of smaller sizes:
   microseconds per frame (median of 30 calls) and page faults per call;
2. whole inversions through the Python API: FGLA and L-BFGS on the torch path (``SPECINV_JIT=0``)
   on a 10 s clip, and DM with the numba kernels on a batch of 16 two-second segments, 100
   iterations: seconds (best of 2 runs) and page faults per run.

    python benchmarks/allocator.py [--procs 3] [--threads 2] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("SPECINV_CORPUS", ROOT.parent / "shared" / "corpus"))

FFT_CHILD = r"""
import json, resource, statistics, sys, time, torch
torch.set_num_threads(int(sys.argv[2]))
if sys.argv[1] == "1":
    from specinv_cli.util.allocator import retain_freed_memory
    assert retain_freed_memory()
out = {}
for R in (173, 346, 692, 1384, 2768):
    x = torch.randn(R, 1024)
    for _ in range(3):
        torch.fft.irfft(torch.fft.rfft(x), n=1024)
    ts = []
    m0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(30):
        t = time.perf_counter()
        torch.fft.irfft(torch.fft.rfft(x), n=1024)
        ts.append(time.perf_counter() - t)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - m0) / 30
    out[R] = {"us_per_frame": statistics.median(ts) / R * 1e6, "faults_per_call": faults}
print(json.dumps(out))
"""

INVERT_CHILD = r"""
import json, resource, sys, time
import numpy as np, soundfile as sf, torch
torch.set_num_threads(int(sys.argv[2]))
if sys.argv[1] == "1":
    from specinv_cli.util.allocator import retain_freed_memory
    assert retain_freed_memory()
from specinv_cli import STFTConfig, invert
from specinv_cli.dsp import STFT
case, clip = sys.argv[3], sys.argv[4]
x, sr = sf.read(clip, dtype="float32")
x = x.mean(1) if x.ndim > 1 else x
cfg = STFTConfig(n_fft=1024, hop_length=256)
if case == "dm_batch16":
    seg = 2 * sr
    x = np.tile(x, 1 + 16 * seg // len(x))
    x = torch.from_numpy(np.ascontiguousarray(x[:16 * seg])).reshape(16, seg)
else:
    x = torch.from_numpy(np.ascontiguousarray(x[:10 * sr]))
mag = STFT(cfg).forward(x).abs()
method = case.split("_")[0]
invert(mag, config=cfg, method=method, n_iter=5, device="cpu")  # kernels, plans
best, faults = 1e9, 0
for _ in range(2):
    m0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = time.perf_counter()
    invert(mag, config=cfg, method=method, n_iter=100, device="cpu")
    best = min(best, time.perf_counter() - t)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - m0
print(json.dumps({"s": best, "faults": faults}))
"""

CASES = {"fgla_torch": {"SPECINV_JIT": "0"}, "lbfgs_torch": {"SPECINV_JIT": "0"}, "dm_batch16": {}}


def child(code: str, args: list[str], env: dict[str, str]) -> dict:
    e = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    e.pop("SPECINV_MALLOC", None)
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=e, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--procs", type=int, default=3, help="processes per case and setting")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    clip = next(iter(sorted(CORPUS.glob("*guitar_em9*.wav"))), None) or next(iter(sorted(CORPUS.glob("*.wav"))), None)
    if clip is None:
        print(f"no corpus at {CORPUS}", file=sys.stderr)
        return 2
    t = str(args.threads)
    fft = {"0": [], "1": []}
    inv = {c: {"0": [], "1": []} for c in CASES}
    for _ in range(args.procs):
        for mode in ("0", "1"):
            fft[mode].append(child(FFT_CHILD, [mode, t], {}))
            for c, env in CASES.items():
                inv[c][mode].append(child(INVERT_CHILD, [mode, t, c, str(clip)], env))
    label = {"0": "glibc defaults", "1": "retain_freed_memory()"}
    lines = [f"# glibc's malloc thresholds and retain_freed_memory ({date.today()}, {platform.machine()}, "
             f"{args.threads} threads, {args.procs} fresh processes per setting)", "",
             "## 1. `irfft(rfft(x))` of `[R, 1024]` float32 frames (median over processes)", "",
             "| R | " + " | ".join(f"{label[m]}: us/frame, faults/call" for m in "01") + " | speed-up |",
             "|---|---|---|---|"]
    rows = {}
    for R in fft["0"][0]:
        cell = {m: (statistics.median(p[R]["us_per_frame"] for p in fft[m]),
                    statistics.median(p[R]["faults_per_call"] for p in fft[m])) for m in "01"}
        rows[R] = cell
        lines.append(f"| {R} | " + " | ".join(f"{cell[m][0]:.2f}, {cell[m][1]:.0f}" for m in "01")
                     + f" | {cell['0'][0] / cell['1'][0]:.2f}x |")
    lines += ["", f"## 2. Inversions, 100 iterations ({clip.stem}; median over processes of the best of 2 runs)", "",
              "| case | " + " | ".join(f"{label[m]}: s, faults/run" for m in "01") + " | speed-up |", "|---|---|---|---|"]
    inv_rows = {}
    for c in CASES:
        cell = {m: (statistics.median(p["s"] for p in inv[c][m]), statistics.median(p["faults"] for p in inv[c][m]))
                for m in "01"}
        inv_rows[c] = cell
        lines.append(f"| {c} | " + " | ".join(f"{cell[m][0]:.3f}, {cell[m][1]:.0f}" for m in "01")
                     + f" | {cell['0'][0] / cell['1'][0]:.2f}x |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "allocator.md").write_text("\n".join(lines) + "\n")
    (out / "allocator.json").write_text(json.dumps({"fft": fft, "invert": inv}, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
