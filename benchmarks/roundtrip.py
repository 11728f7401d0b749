#!/usr/bin/env python
"""Round trip on every corpus clip through the real CLI, beside librosa.griffinlim.

For each clip of ../shared/corpus: reference STFT magnitude (n_fft 1024, hop 256, periodic Hann,
centred, reflect) saved as .npy -> ``specinv invert -m METHOD --iters N --length L`` -> WAV ->
SC of the WAV's magnitude against the input. librosa.griffinlim(n_iter=N, momentum=0.99) runs
on the same magnitudes in the same run. The WAVs are written as FLOAT without peak normalisation:
a new phase changes the crest factor, and the default policy (scale to a 0.99 peak when the
peak exceeds 1) would turn a level change into an SC penalty (e.g. 0.87x = -17.6 dB SC on
speech_02, whose reconstruction peaks at 1.14).

    python benchmarks/roundtrip.py [--method fgla] [--iters 100] [--out benchmarks/results]

Writes ``roundtrip_<method>.md`` and ``.json`` under ``--out`` and prints the table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
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
CORPUS = Path(os.environ.get("SPECINV_CORPUS", ROOT.parent / "shared" / "corpus"))
N_FFT, HOP = 1024, 256


def magnitude(x: np.ndarray) -> torch.Tensor:
    return torch.stft(torch.from_numpy(x), N_FFT, HOP, window=torch.hann_window(N_FFT), center=True,
                      pad_mode="reflect", return_complex=True).abs()


def sc_db(audio: np.ndarray, target: torch.Tensor) -> float:
    est = magnitude(np.asarray(audio, dtype=np.float32))
    n = min(est.shape[-1], target.shape[-1])
    e, t = est[..., :n].double(), target[..., :n].double()
    return float(20 * torch.log10((e - t).norm() / t.norm()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="fgla")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-librosa", action="store_true")
    ap.add_argument("--extra", default="", help="extra CLI arguments, e.g. '--init pghi'")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clips = sorted(CORPUS.glob("*.wav"))
    if not clips:
        print(f"no corpus at {CORPUS}", file=sys.stderr)
        return 2
    rows = []
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            x, sr = sf.read(str(clip), dtype="float32")
            mag = magnitude(x)
            npy = Path(tmp) / f"{clip.stem}.npy"
            wav = Path(tmp) / f"{clip.stem}.wav"
            np.save(npy, mag.numpy())
            cmd = [sys.executable, "-m", "specinv_cli", "invert", str(npy), "-m", args.method, "--iters",
                   str(args.iters), "--length", str(len(x)), "--sr", str(sr), "-o", str(wav), "--json",
                   "--device", "cpu", "--subtype", "FLOAT", "--normalize", "none", *args.extra.split()]
            t0 = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True, env=env)
            wall = time.perf_counter() - t0
            if p.returncode != 0:
                print(p.stderr, file=sys.stderr)
                return 1
            rec = json.loads(p.stdout.splitlines()[0])
            y, _ = sf.read(str(wav), dtype="float32")
            row = {"clip": clip.stem, "seconds_audio": round(len(x) / sr, 2), "samples": len(x),
                   "wav_samples": len(y), "length_ok": len(y) == len(x), "sc": round(sc_db(y, mag), 2),
                   "compute_s": rec["seconds"], "cli_wall_s": round(wall, 2)}
            if not args.no_librosa:
                import librosa

                t0 = time.perf_counter()
                yl = librosa.griffinlim(mag.numpy(), n_iter=args.iters, hop_length=HOP, win_length=N_FFT,
                                        n_fft=N_FFT, window="hann", center=True, momentum=0.99,
                                        length=len(x), random_state=0)
                row["librosa_s"] = round(time.perf_counter() - t0, 3)
                row["librosa_sc"] = round(sc_db(yl, mag), 2)
            rows.append(row)
            print(json.dumps(row), flush=True)

    med = lambda k: round(statistics.median(r[k] for r in rows), 2)  # noqa: E731
    title = f"specinv {args.method} {args.extra} x{args.iters} vs librosa.griffinlim(n_iter={args.iters}, momentum=0.99)"
    lines = [f"# Round trip: {title}", "",
             f"{date.today()} · {platform.machine()} · {args.threads} threads · torch {torch.__version__} · "
             f"reference STFT n_fft {N_FFT}, hop {HOP}, Hann, centred, reflect", "",
             "| clip | s | length ok | specinv SC dB | specinv s | librosa SC dB | librosa s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['clip']} | {r['seconds_audio']} | {r['length_ok']} | {r['sc']} | {r['compute_s']} | "
                     f"{r.get('librosa_sc', '-')} | {r.get('librosa_s', '-')} |")
    lines.append(f"| **median** | | {all(r['length_ok'] for r in rows)} | **{med('sc')}** | {med('compute_s')} | "
                 f"**{med('librosa_sc') if not args.no_librosa else '-'}** | {med('librosa_s') if not args.no_librosa else '-'} |")
    speech = [r for r in rows if r["clip"].startswith("speech")]
    lines += ["", f"Speech clips: worst SC {max(r['sc'] for r in speech)} dB (bound: -25 dB)."]
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = args.method + args.extra.replace(" ", "").replace("--", "_")
    (out / f"roundtrip_{tag}.md").write_text(text)
    (out / f"roundtrip_{tag}.json").write_text(json.dumps(rows, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
