#!/usr/bin/env python
"""L-BFGS memory (``history_size``) against quality and time, on every corpus clip.

Each iteration of the closed-form L-BFGS reads its history twice (``W g`` and the direction as a
combination of its rows), so the history's size is memory traffic per iteration. This measures
what it buys: for each clip, the linear magnitude (default framing, first 6 s) and the HiFi-GAN
mel (its preset) are inverted by ``-m lbfgs`` (100 iterations, PGHI start) with several history
sizes; the score is the SC of the output's magnitude (or mel) against the target, the time that of
``invert`` in this process, all in one run.

    python benchmarks/lbfgs_history.py [--iters 100] [--sizes 3,5,10] [--threads 2]

Writes ``benchmarks/results/lbfgs_history.md`` / ``.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = Path(os.environ.get("SPECINV_CORPUS", ROOT.parent / "shared" / "corpus"))

from specinv_cli import invert  # noqa: E402
from specinv_cli.companion.bench import machine_info  # noqa: E402
from specinv_cli.config import STFTConfig, load_preset  # noqa: E402
from specinv_cli.dsp.mel import MelTransform, encode  # noqa: E402
from specinv_cli.dsp.metrics import sc  # noqa: E402
from specinv_cli.dsp.stft import STFT  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--sizes", default="3,5,10")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import librosa

    sizes = [int(v) for v in args.sizes.split(",")]
    lin_cfg, mel_cfg = STFTConfig(), load_preset("hifigan-22k")
    lin, mel_stft, op = STFT(lin_cfg), STFT(mel_cfg), MelTransform(mel_cfg)
    rows: dict[str, dict[int, dict[str, list]]] = {"linear": {}, "mel hifigan-22k": {}}
    clips = sorted(CORPUS.glob("*.wav"))
    for clip in clips:
        y, sr = sf.read(str(clip), dtype="float32")
        if y.ndim > 1:
            y = y.mean(axis=1)
        x = torch.from_numpy(y[:6 * sr].copy())
        mag = lin.forward(x).abs()
        ym = librosa.resample(y, orig_sr=sr, target_sr=mel_cfg.sample_rate) if sr != mel_cfg.sample_rate else y
        xm = torch.from_numpy(np.ascontiguousarray(ym, dtype=np.float32))
        mel = op(mel_stft.forward(xm).abs())
        feats, length = encode(mel, mel_cfg), mel_stft.default_length(mel.shape[-1])
        for h in sizes:
            r = invert(mag, config=lin_cfg, method="lbfgs", n_iter=args.iters, length=x.numel(), device="cpu",
                       history_size=h)
            est = lin.forward(r.audio.float()).abs()[..., :mag.shape[-1]]
            d = rows["linear"].setdefault(h, {"sc": [], "s": []})
            d["sc"].append(float(sc(est.double(), mag.double()))), d["s"].append(r.seconds)
            r = invert(feats, config=mel_cfg, method="lbfgs", n_iter=args.iters, length=length, device="cpu",
                       history_size=h)
            m = op(mel_stft.forward(r.audio.float()).abs())
            n = min(m.shape[-1], mel.shape[-1])
            d = rows["mel hifigan-22k"].setdefault(h, {"sc": [], "s": []})
            d["sc"].append(float(sc(m[..., :n].double(), mel[..., :n].double()))), d["s"].append(r.seconds)
        print(clip.stem, file=sys.stderr)
    info = machine_info(args.threads)
    lines = [f"# L-BFGS history size ({info['date']}, {info['cpu']}, {info['arch']}, {args.threads} CPU threads, "
             f"torch {torch.__version__})", "",
             f"`-m lbfgs`, {args.iters} iterations from PGHI, {len(clips)} corpus clips (linear: first 6 s, default "
             "framing; mel: the hifigan-22k preset). Time: `invert` in one process, summed over the clips; the "
             "ratio is against the largest history in this run.", "",
             "| input | history_size | median SC dB | mean SC dB | worst SC dB | seconds | time ratio |",
             "|---|---|---|---|---|---|---|"]
    for kind, per in rows.items():
        ref = sum(per[max(sizes)]["s"])
        for h in sizes:
            v = per[h]
            lines.append(f"| {kind} | {h} | {statistics.median(v['sc']):.2f} | {statistics.mean(v['sc']):.2f} | "
                         f"{max(v['sc']):.2f} | {sum(v['s']):.2f} | {sum(v['s']) / ref:.2f} |")
    out = Path(args.out)
    (out / "lbfgs_history.md").write_text("\n".join(lines) + "\n")
    (out / "lbfgs_history.json").write_text(json.dumps({"machine": info, "iters": args.iters, "clips": [c.stem for c in clips],
                                                        "rows": {k: {str(h): v for h, v in per.items()} for k, per in rows.items()}},
                                                       indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
