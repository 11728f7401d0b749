#!/usr/bin/env python
"""examples/Makefile's two idioms timed on the same inputs: the per-file pattern rule with -j1
and -j2, and the batch rule (one process for every stale input).

Inputs: ``--files`` pieces of 1-3 s cut from the corpus clips, as linear magnitudes (the
reference STFT), inverted with the default method and ``--iters`` iterations. Each variant starts
from an empty output folder; the figure is the wall time per file. Run it on a quiet machine.

    python benchmarks/makefile.py [--files 12] [--iters 100]

Writes ``benchmarks/results/makefile.md`` / ``.json``.
"""
from __future__ import annotations

import argparse
import json
import os
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
sys.path.insert(0, str(ROOT))
CORPUS = Path(os.environ.get("SPECINV_CORPUS", ROOT.parent / "shared" / "corpus"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=12)
    ap.add_argument("--iters", type=int, default=100)
    args = ap.parse_args()
    import torch

    from specinv_cli.companion.bench import cpu_name
    from specinv_cli.config import STFTConfig
    from specinv_cli.dsp.stft import STFT

    work = Path(tempfile.mkdtemp(prefix="specinv-make-"))
    specs = work / "specs"
    specs.mkdir()
    clips = sorted(p for p in CORPUS.iterdir() if p.suffix in (".wav", ".flac"))
    rng = np.random.default_rng(0)
    stft = STFT(STFTConfig())
    for i in range(args.files):
        audio, sr = sf.read(str(clips[i % len(clips)]), dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        n = int(sr * rng.uniform(1.0, 3.0))
        start = int(rng.integers(0, max(1, len(audio) - n)))
        mag = stft.forward(torch.from_numpy(audio[start:start + n].copy())[None]).abs()[0]
        np.save(specs / f"p{i:03d}.npy", mag.numpy())
    specinv = shutil.which("specinv") or f"{sys.executable} -m specinv_cli"
    base = ["make", "-s", "-C", str(ROOT / "examples"), f"SPECS={specs}", f"SPECINV={specinv}",
            f"FLAGS=-n {args.iters}"]
    rows = {}
    for name, extra in (("pattern rule, make -j1", ["-j1", "all"]), ("pattern rule, make -j2", ["-j2", "all"]),
                        ("batch rule ($?), one process", ["batch"])):
        out = work / "wavs"
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        subprocess.run([*base, f"WAVS={out}", *extra], check=True, capture_output=True)
        rows[name] = (time.perf_counter() - t) / args.files
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    torch_s = time.perf_counter() - t
    shutil.rmtree(work)
    head = (f"# examples/Makefile: cost per file\n\n{date.today()} · {cpu_name()} · {os.cpu_count()} CPUs · "
            f"torch {torch.__version__} · {args.files} pieces of 1-3 s, default method, {args.iters} iterations; "
            f"`python -c 'import torch'` takes {torch_s:.2f} s here.\n\n")
    table = "| idiom | s / file | x batch |\n|---|---|---|\n"
    b = rows["batch rule ($?), one process"]
    table += "".join(f"| {k} | {v:.2f} | {v / b:.2f} |\n" for k, v in rows.items())
    res = ROOT / "benchmarks" / "results"
    (res / "makefile.md").write_text(head + table)
    (res / "makefile.json").write_text(json.dumps({"date": str(date.today()), "cpu": cpu_name(), "files": args.files,
                                                   "iters": args.iters, "seconds_per_file": rows,
                                                   "import_torch_s": torch_s}, indent=1) + "\n")
    print(head + table)


if __name__ == "__main__":
    main()
