#!/usr/bin/env python
"""One call over many files vs a shell loop of one call per file, and a batch with bad files.

1. ``--pieces`` (200) spectrograms cut from ../shared/corpus clips (1-3 s pieces, seeded), saved
   as .npy; then, in the same run:
   - ``specinv invert DIR -O out --batch-size 16`` (one process),
   - ``specinv invert DIR -O out --batch-size 1`` (one process, no cross-file batching),
   - ``specinv invert DIR -O out`` (the default: on the CPU, batches of one length only),
   and the same three on as many fixed 2 s segments (plain batches),
   - ``for f in DIR/*.npy; do specinv invert "$f" -o out/...; done`` (a process per file),
   all with the default method and iterations. Reports wall times and their ratios, and checks
   that every output exists with the right length.
2. The same folder plus three bad files (NaN, a pickle, a truncated file): exit code, the
   messages, and the JSON lines.

    python benchmarks/batch.py [--pieces 200] [--loop-sample 0] [--out benchmarks/results]

``--loop-sample K`` times the loop on K files only and scales up (0 = all files).
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("SPECINV_CORPUS", ROOT.parent / "shared" / "corpus"))
SPECINV = [sys.executable, "-m", "specinv_cli"]


def make_pieces(folder: Path, n: int, seed: int = 0, seconds: float | None = None) -> list[Path]:
    import torch

    rng = np.random.default_rng(seed)
    clips = [sf.read(str(p), dtype="float32")[0] for p in sorted(CORPUS.glob("*.wav"))]
    win = torch.hann_window(1024)
    paths = []
    for i in range(n):
        x = clips[i % len(clips)]
        sr = 22050
        dur = int((seconds or rng.uniform(1.0, 3.0)) * sr)
        start = int(rng.integers(0, max(1, len(x) - dur)))
        piece = torch.from_numpy(np.ascontiguousarray(x[start:start + dur]))
        mag = torch.stft(piece, 1024, 256, window=win, center=True, return_complex=True).abs().numpy()
        p = folder / f"piece_{i:03d}.npy"
        np.save(p, mag)
        paths.append(p)
    return paths


def timed(cmd, **kw) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, cwd=str(ROOT), **kw)
    return time.perf_counter() - t, proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pieces", type=int, default=200)
    ap.add_argument("--loop-sample", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--sizes", default="16,4,2,1,default",
                    help="comma-separated --batch-size values to time ('default': the flag left out)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each size (the median is reported)")
    a = ap.parse_args()
    if not {"16", "1", "default"} <= set(a.sizes.split(",")):
        ap.error("--sizes must include 16, 1 and default (the table quotes them)")
    work = Path(tempfile.mkdtemp(prefix="specinv-batch-"))
    try:
        src = work / "in"
        src.mkdir()
        paths = make_pieces(src, a.pieces)
        frames = [np.load(p, mmap_mode="r").shape[-1] for p in paths]
        res = {"date": str(date.today()), "machine": f"{platform.machine()}, {os.cpu_count()} CPU threads",
               "pieces": len(paths), "seconds_of_audio": round(sum((t - 1) * 256 for t in frames) / 22050, 1)}
        # warm the numba cache once so no contender pays PGHI's first compilation
        subprocess.run(SPECINV + ["invert", str(paths[0]), "-o", str(work / "warm.wav"), "-q"], cwd=str(ROOT))

        # fixed-length segments (what `specinv stft` of fixed segments gives): plain batches
        fixed = work / "fixed"
        fixed.mkdir()
        fixed_paths = make_pieces(fixed, a.pieces, seed=1, seconds=2.0)
        sizes = [None if v == "default" else int(v) for v in a.sizes.split(",")]
        for label, folder, ps in (("", src, paths), ("fixed_", fixed, fixed_paths)):
            fr = [np.load(p, mmap_mode="r").shape[-1] for p in ps]
            times: dict[str, list[float]] = {}
            # the sizes alternate within each repeat, so a drift of the machine's speed
            # reaches them all alike
            for _ in range(a.repeats):
                for bs in sizes:
                    name = "default" if bs is None else str(bs)
                    out = work / f"{label}batch{name}"
                    shutil.rmtree(out, ignore_errors=True)
                    flag = [] if bs is None else ["--batch-size", str(bs)]
                    t, proc = timed(SPECINV + ["invert", str(folder), "-O", str(out), *flag, "-q", "--json"])
                    assert proc.returncode == 0, proc.stderr.decode()
                    wavs = sorted(out.glob("*.wav"))
                    assert len(wavs) == len(ps)
                    for p, f in zip(ps, fr):
                        assert sf.info(str(out / (p.stem + ".wav"))).frames == (f - 1) * 256
                    times.setdefault(name, []).append(round(t, 2))
                    print(f"{label or 'pieces '}one call, --batch-size {name}: {t:.1f} s", flush=True)
            for name, ts in times.items():
                res[f"{label}one_call_batch{name}_s"] = round(float(np.median(ts)), 2)
                res[f"{label}one_call_batch{name}_runs"] = ts

        loop_paths = paths if a.loop_sample <= 0 else paths[: a.loop_sample]
        out = work / "loop"
        out.mkdir()
        script = "set -e\nfor f in \"$@\"; do " + " ".join(SPECINV) + \
            " invert \"$f\" -o \"" + str(out) + "/$(basename \"$f\" .npy).wav\" -q; done\n"
        t, proc = timed(["bash", "-c", script, "loop", *map(str, loop_paths)])
        assert proc.returncode == 0, proc.stderr.decode()
        assert len(list(out.glob("*.wav"))) == len(loop_paths)
        loop = t * len(paths) / len(loop_paths)
        res["shell_loop_s"] = round(loop, 2)
        res["shell_loop_files_timed"] = len(loop_paths)
        res["ratio_batch16_vs_loop"] = round(res["one_call_batch16_s"] / loop, 4)
        res["ratio_batch1_vs_loop"] = round(res["one_call_batch1_s"] / loop, 4)
        print(f"shell loop: {loop:.1f} s ({len(loop_paths)} files timed)", flush=True)

        # three bad files among the good ones
        bad = work / "mixed"
        shutil.copytree(src, bad)
        np.save(bad / "bad_nan.npy", np.full((513, 50), np.nan, np.float32))
        with open(bad / "bad_pickle.npy", "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": (1,)})
            pickle.dump(np.array([{"x": 1}], dtype=object), f)
        (bad / "bad_truncated.npy").write_bytes((src / "piece_000.npy").read_bytes()[:5000])
        outb = work / "mixed_out"
        t, proc = timed(SPECINV + ["invert", str(bad), "-O", str(outb), "--json", "-n", "20"])
        lines = [json.loads(ln) for ln in proc.stdout.decode().splitlines()]
        errs = [ln for ln in proc.stderr.decode().splitlines() if ln.startswith("error")]
        res["bad_files"] = {"exit_code": proc.returncode, "outputs": len(list(outb.glob("*.wav"))),
                            "good_inputs": len(paths), "json_lines": len(lines),
                            "json_errors": [r for r in lines if r.get("status") == "error"],
                            "stderr_errors": errs, "summary": lines[-1]}
        print(json.dumps(res["bad_files"], indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "batch.json").write_text(json.dumps(res, indent=1) + "\n")
    names = ["default" if v == "default" else v for v in a.sizes.split(",")]
    md = [f"# One call vs a shell loop ({res['date']}, {res['machine']})", "",
          f"{res['pieces']} spectrograms ({res['seconds_of_audio']} s of audio, 1-3 s pieces of the corpus clips), "
          "default method and iterations.", "",
          "| run | wall s | / shell loop |", "|---|---|---|",
          *[f"| one call, {'default (CPU: one at a time)' if n == 'default' else '--batch-size ' + n} | "
            f"{res[f'one_call_batch{n}_s']} | {round(res[f'one_call_batch{n}_s'] / res['shell_loop_s'], 4)} |"
            for n in names],
          f"| shell loop, one call per file | {res['shell_loop_s']} | 1 |", "",
          "The same count of fixed 2 s segments (plain batches):", "",
          "| run | wall s | / --batch-size 1 |", "|---|---|---|",
          *[f"| one call, {'default' if n == 'default' else '--batch-size ' + n} | {res[f'fixed_one_call_batch{n}_s']} | "
            f"**{round(res[f'fixed_one_call_batch{n}_s'] / res['fixed_one_call_batch1_s'], 2)}** |" for n in names], "",
          f"Each figure is the median of {a.repeats} runs, the sizes alternating within each repeat "
          "(every run in batch.json).", "",
          f"Shell loop timed on {res['shell_loop_files_timed']} files" +
          ("" if res['shell_loop_files_timed'] == res['pieces'] else " and scaled to all") + ".", "",
          "## Three bad files among the good ones", "",
          f"exit code {res['bad_files']['exit_code']}; {res['bad_files']['outputs']} of {res['bad_files']['good_inputs']} "
          f"good outputs written; {res['bad_files']['json_lines']} JSON lines (one per input + summary).", "",
          "```", *res["bad_files"]["stderr_errors"], "```", ""]
    (Path(a.out) / "batch.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
