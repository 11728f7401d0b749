#!/usr/bin/env python
"""Speed, measured in one run and reported as ratios.

1. Per-iteration time of each iterative method vs the FFT floor (batched rfft + irfft of the
   framed signal: same sizes, dtype and thread count).
2. Wall time of 100 iterations vs ``librosa.griffinlim`` and ``torchaudio.transforms.GriffinLim``
   (momentum 0.99; torchaudio through ``$SPECINV_TORCHAUDIO_PYTHON`` when it cannot be imported
   here), and the time the default method needs to reach the SC those reach at 100 iterations.
3. Start-up: ``specinv --help`` and a minimal ``specinv invert`` vs ``python -c "import torch"``.
4. CUDA throughput (seconds of audio per second, FGLA 100 iterations, batch 1/16/64) when a GPU
   is present; skipped otherwise.

    python benchmarks/speed.py [--threads 2] [--clips 3] [--quick]

Writes ``benchmarks/results/speed.md`` / ``.json``. ``specinv bench`` runs the quick version.
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
sys.path.insert(0, str(ROOT))
CORPUS = Path(os.environ.get("SPECINV_CORPUS", ROOT.parent / "shared" / "corpus"))

from specinv_cli import invert  # noqa: E402
from specinv_cli.algorithms.base import Monitor  # noqa: E402
from specinv_cli.algorithms.registry import DEFAULT_INIT, DEFAULT_METHOD, REGISTRY  # noqa: E402
from specinv_cli.config import STFTConfig  # noqa: E402
from specinv_cli.dsp import STFT  # noqa: E402
from specinv_cli.metrics import sc  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from methods import magnitude, sc_db, torchaudio_runner  # noqa: E402


def best_of(fn, repeat=5):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def fft_floor(n_frames: int, n_fft: int = 1024, dtype=torch.float32) -> float:
    frames = torch.randn(n_frames, n_fft, dtype=dtype)
    return best_of(lambda: torch.fft.irfft(torch.fft.rfft(frames, dim=-1), n=n_fft, dim=-1), 20)


def per_iteration(method: str, mag: torch.Tensor, op: STFT, init: torch.Tensor) -> float:
    fn = REGISTRY[method].load()
    opts = REGISTRY[method].defaults()
    run = lambda n: fn(mag, op, n_iter=n, init=init, monitor=Monitor(), **opts)  # noqa: E731
    run(2)
    return (best_of(lambda: run(40), 3) - best_of(lambda: run(20), 3)) / 20


def startup(cmd: list[str], repeat=5) -> float:
    return best_of(lambda: subprocess.run(cmd, capture_output=True), repeat)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clips", type=int, default=0, help="number of corpus clips for (2) (0: all)")
    ap.add_argument("--quick", action="store_true", help="(1) and (2) on one clip, no start-up or CUDA")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    clips = sorted(CORPUS.glob("*.wav"))
    if not clips:
        print(f"no corpus at {CORPUS}", file=sys.stderr)
        return 2
    if args.quick:
        clips = [c for c in clips if "guitar_em9" in c.name] or clips[:1]
    elif args.clips:
        clips = clips[: args.clips]
    report: dict = {"date": str(date.today()), "machine": platform.machine(), "threads": args.threads,
                    "torch": torch.__version__}
    lines = [f"# Speed ({report['date']}, {platform.machine()}, {args.threads} CPU threads, torch {torch.__version__})", ""]

    # (1) per-iteration time vs the FFT floor, on a 10 s clip
    x, _ = sf.read(str(clips[0]), dtype="float32")
    mag = magnitude(x)
    op = STFT(STFTConfig())
    init = mag * torch.polar(torch.ones_like(mag), torch.rand(mag.shape, generator=torch.Generator().manual_seed(0)) * 6.2832)
    floor = fft_floor(mag.shape[-1])
    stft_pair = best_of(lambda: op.forward(op.inverse(init, len(x))), 20)
    rows = []
    for name, m in REGISTRY.items():
        if not m.iterative or name == "rtisi-la":
            continue
        t = per_iteration(name, mag, op, init)
        rows.append((name, t, t / floor))
    report["per_iteration"] = {"clip": clips[0].stem, "frames": mag.shape[-1], "fft_floor_ms": floor * 1e3,
                               "stft_istft_ms": stft_pair * 1e3,
                               "methods": {n: {"ms": t * 1e3, "x_floor": r} for n, t, r in rows}}
    lines += [f"## Per-iteration time vs the FFT floor ({clips[0].stem}, {mag.shape[-1]} frames, n_fft 1024)", "",
              f"FFT floor (batched rfft + irfft of the frames): {floor * 1e3:.2f} ms; our STFT+ISTFT pair: "
              f"{stft_pair * 1e3:.2f} ms ({stft_pair / floor:.2f}x).", "",
              "| method | ms / iteration | x FFT floor |", "|---|---|---|"]
    lines += [f"| {n} | {t * 1e3:.2f} | {r:.2f} |" for n, t, r in rows]

    # (2) 100 iterations vs librosa / torchaudio, and time to reach their SC
    import librosa

    ta = torchaudio_runner()
    per_clip = []
    for clip in clips:
        x, _ = sf.read(str(clip), dtype="float32")
        mag = magnitude(x)
        rec = {"clip": clip.stem}
        fg = invert(mag, method="fgla", init="random", n_iter=100, length=len(x), device="cpu")
        fg_t = best_of(lambda: invert(mag, method="fgla", init="random", n_iter=100, length=len(x), device="cpu"), 3)
        rec.update(fgla_s=fg_t, fgla_sc=float(fg.metrics["sc"]))
        lib_t = best_of(lambda: librosa.griffinlim(mag.numpy(), n_iter=100, hop_length=256, n_fft=1024,
                                                   momentum=0.99, length=len(x), random_state=0), 2)
        yl = librosa.griffinlim(mag.numpy(), n_iter=100, hop_length=256, n_fft=1024, momentum=0.99,
                                length=len(x), random_state=0)
        rec.update(librosa_s=lib_t, librosa_sc=sc_db(yl, mag))
        if ta is not None:
            ts, yt = [], None
            for _ in range(2):
                yt, secs, _ = ta(mag, len(x), 100, args.threads)
                ts.append(secs)
            rec.update(torchaudio_s=min(ts), torchaudio_sc=sc_db(yt, mag))
        # the default method: iterations needed to reach the torchaudio (else librosa) SC
        goal = rec.get("torchaudio_sc", rec["librosa_sc"])
        hist = invert(mag, n_iter=100, length=len(x), device="cpu", eval_every=1, callback=lambda p: None).history
        need = next((h["iteration"] for h in hist if h["sc"] <= goal), None)
        if need is not None:
            rec["default_iters_to_goal"] = need
            rec["default_s_to_goal"] = best_of(lambda: invert(mag, n_iter=need, length=len(x), device="cpu"), 3)
        per_clip.append(rec)
        print(json.dumps(rec), flush=True)
    report["vs_references"] = per_clip
    med = lambda k: statistics.median(r[k] for r in per_clip if k in r)  # noqa: E731
    lines += ["", f"## 100 iterations vs librosa and torchaudio ({len(per_clip)} corpus clips, medians)", "",
              "| | seconds | SC dB |", "|---|---|---|",
              f"| specinv fgla (random init) | {med('fgla_s'):.3f} | {med('fgla_sc'):.2f} |",
              f"| librosa.griffinlim | {med('librosa_s'):.3f} | {med('librosa_sc'):.2f} |"]
    ratios = [f"FGLA / librosa time: **{statistics.median(r['fgla_s'] / r['librosa_s'] for r in per_clip):.2f}x**"]
    if any("torchaudio_s" in r for r in per_clip):
        lines.append(f"| torchaudio GriffinLim | {med('torchaudio_s'):.3f} | {med('torchaudio_sc'):.2f} |")
        ratios.append(f"FGLA / torchaudio time: **{statistics.median(r['fgla_s'] / r['torchaudio_s'] for r in per_clip):.2f}x**")
        got = [r for r in per_clip if "default_s_to_goal" in r]
        if got:
            ratios.append(f"{DEFAULT_METHOD} from {DEFAULT_INIT} reaches torchaudio's 100-iteration SC in "
                          f"{statistics.median(r['default_iters_to_goal'] for r in got):.0f} iterations, "
                          f"**{statistics.median(r['default_s_to_goal'] / r['torchaudio_s'] for r in got):.2f}x** "
                          f"torchaudio's time (median; {len(got)}/{len(per_clip)} clips reached it)")
    lines += [""] + [f"- {r}" for r in ratios]

    if not args.quick:
        # (3) start-up
        py = sys.executable
        imp = startup([py, "-c", "import torch"])
        hlp = startup([py, "-m", "specinv_cli", "--help"])
        with tempfile.TemporaryDirectory() as tmp:
            np.save(Path(tmp) / "m.npy", np.ones((513, 4), np.float32))
            inv = startup([py, "-m", "specinv_cli", "invert", str(Path(tmp) / "m.npy"), "-m", "gla", "-n", "0",
                           "-o", str(Path(tmp) / "o.wav"), "-q"])
        report["startup"] = {"import_torch_s": imp, "help_s": hlp, "invert_s": inv}
        lines += ["", "## Start-up (min of 5)", "", "| command | seconds | x `import torch` |", "|---|---|---|",
                  f"| python -c 'import torch' | {imp:.3f} | 1.00 |",
                  f"| specinv --help | {hlp:.3f} | {hlp / imp:.2f} |",
                  f"| specinv invert (tiny input, 0 iterations) | {inv:.3f} | {inv / imp:.2f} |"]
        # (4) CUDA
        if torch.cuda.is_available():
            lines += ["", "## CUDA throughput (FGLA, 100 iterations, 10 s items)", "", "| batch | audio s / s |", "|---|---|"]
            x, _ = sf.read(str(clips[0]), dtype="float32")
            mag = magnitude(x).cuda()
            for b in (1, 16, 64):
                batch = mag.expand(b, *mag.shape).contiguous()
                invert(batch, method="fgla", init="random", n_iter=5, device="cuda")
                t = best_of(lambda: invert(batch, method="fgla", init="random", n_iter=100, device="cuda"), 3)
                lines.append(f"| {b} | {b * len(x) / 22050 / t:.1f} |")
        else:
            lines += ["", "## CUDA throughput", "", "skipped: no CUDA device here."]
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "speed_quick" if args.quick else "speed"
    (out / f"{name}.md").write_text(text)
    (out / f"{name}.json").write_text(json.dumps(report, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
