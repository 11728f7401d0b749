#!/usr/bin/env python
"""Every registered method through the real CLI on every corpus clip.

Saves the reference STFT magnitude of each clip of ../shared/corpus as .npy, then for each
method runs one ``specinv invert *.npy -m METHOD -O DIR --json`` and checks that every clip gave
a WAV of the right length ((T - 1) * hop samples at 22050 Hz) with a finite SC.

    python benchmarks/cli_methods.py [--iters 100]

Writes ``benchmarks/results/cli_methods.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = Path(os.environ.get("SPECINV_CORPUS", ROOT.parent / "shared" / "corpus"))

from specinv_cli.algorithms.registry import REGISTRY  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    clips = sorted(CORPUS.glob("*.wav"))
    rows, ok_all = [], True
    with tempfile.TemporaryDirectory() as tmp:
        frames = {}
        for c in clips:
            x, _ = sf.read(str(c), dtype="float32")
            mag = torch.stft(torch.from_numpy(x), 1024, 256, window=torch.hann_window(1024),
                             return_complex=True).abs()
            np.save(Path(tmp) / f"{c.stem}.npy", mag.numpy())
            frames[c.stem] = mag.shape[-1]
        for name in REGISTRY:
            out = Path(tmp) / name
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, "-m", "specinv_cli", "invert", *sorted(map(str, Path(tmp).glob("*.npy"))),
                                "-m", name, "--iters", str(args.iters), "-O", str(out), "--json", "--device", "cpu"],
                               capture_output=True, text=True)
            wall = time.perf_counter() - t0
            recs = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
            items = [r for r in recs if r.get("status") == "ok"]
            good = 0
            for r in items:
                stem = Path(r["input"]).stem
                y, sr = sf.read(r["output"])
                if sr == 22050 and len(y) == (frames[stem] - 1) * 256 and np.isfinite(r["sc"]) and np.all(np.isfinite(y)):
                    good += 1
            ok = p.returncode == 0 and good == len(clips)
            ok_all &= ok
            rows.append((name, p.returncode, good, statistics.median(r["sc"] for r in items) if items else float("nan"), wall))
            print(name, p.returncode, good, flush=True)
    lines = [f"# Every method through the CLI on the {len(clips)} corpus clips ({args.iters} iterations)", "",
             f"{date.today()} · one `specinv invert *.npy -m NAME -O DIR --json` call per method (default init "
             "pghi), reference STFT magnitudes. 'WAVs ok': files of exactly (T-1)*256 samples at 22050 Hz with "
             "finite samples and SC.", "",
             "| method | exit code | WAVs ok | median SC dB | wall s (12 clips, one call) |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {rc} | {g}/{len(clips)} | {sc:.2f} | {w:.1f} |" for n, rc, g, sc, w in rows]
    text = "\n".join(lines) + "\n"
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "cli_methods.md").write_text(text)
    print(text)
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
