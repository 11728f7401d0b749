#!/usr/bin/env python
"""Mel inversion on the corpus with a preset, beside librosa.feature.inverse.mel_to_audio.

For each clip (resampled to the preset's rate when needed) the mel features are computed the way
the preset's front-end does (its framing, filterbank and compression, through specinv's own
operators, which tests/test_mel.py checks against re-implementations of each front-end), then
inverted by several specinv configurations and by ``librosa.feature.inverse.mel_to_audio``
(``n_iter`` Griffin-Lim iterations, ``power=1``/``2`` as the preset, the same filterbank and
framing). The score is the mel-domain spectral convergence (dB) of each output: the preset's mel
of the output against the target mel, in the linear (decoded) mel domain.

    python benchmarks/mel.py --preset tacotron2 [--iters 100] [--threads 2]

Writes ``benchmarks/results/mel_<preset>.md`` / ``.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
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
from specinv_cli.config import load_preset  # noqa: E402
from specinv_cli.dsp.stft import STFT  # noqa: E402
from specinv_cli.dsp.mel import MelTransform, encode  # noqa: E402
from specinv_cli.dsp.metrics import sc  # noqa: E402

CONFIGS = {  # name -> invert() keyword arguments (n_iter added)
    "lbfgs [pghi] (direct; the default)": dict(),
    "dm [pghi], refine 50": dict(method="dm", init="pghi"),
    "dm [pghi], refine 30": dict(method="dm", init="pghi", refine=30),
    "dm [pghi], refine 0 (NNLS cascade)": dict(method="dm", init="pghi", refine=0),
    "fgla [pghi], refine 50": dict(method="fgla", init="pghi", refine=50),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tacotron2")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--configs", default="", help="comma-separated subset of config names (substring match)")
    ap.add_argument("--clips", default="")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import librosa

    cfg = load_preset(args.preset)
    stft = STFT(cfg)
    op = MelTransform(cfg)
    configs = {k: v for k, v in CONFIGS.items()
               if not args.configs or any(s in k for s in args.configs.split(","))}
    clips = sorted(CORPUS.glob("*.wav"))
    if args.clips:
        clips = [c for c in clips if any(s in c.name for s in args.clips.split(","))]
    results: dict[str, dict[str, list]] = {}

    def mel_sc(audio: np.ndarray, target_mel: torch.Tensor) -> float:
        m = op(stft.forward(torch.from_numpy(np.asarray(audio, dtype=np.float32))).abs())
        n = min(m.shape[-1], target_mel.shape[-1])
        return float(sc(m[..., :n].double(), target_mel[..., :n].double()))

    def add(name, clip, value, secs):
        r = results.setdefault(name, {"sc": [], "s": [], "clips": []})
        r["sc"].append(value)
        r["s"].append(secs)
        r["clips"].append(clip)

    for clip in clips:
        y, sr = sf.read(str(clip), dtype="float32")
        if sr != cfg.sample_rate:
            y = librosa.resample(y, orig_sr=sr, target_sr=cfg.sample_rate).astype(np.float32)
        x = torch.from_numpy(y)
        mel = op(stft.forward(x).abs())                      # linear mel, [n_mels, T]
        feats = encode(mel, cfg)                             # what the model would store
        length = stft.default_length(mel.shape[-1])
        for name, kw in configs.items():
            r = invert(feats, config=cfg, n_iter=args.iters, length=length, device="cpu", **kw)
            add(name, clip.stem, mel_sc(r.audio.numpy(), mel), r.seconds)
        # librosa: same filterbank and framing; HiFi-GAN framing = center=False on the padded signal
        np.random.seed(0)  # librosa's Griffin-Lim draws its random phase from numpy's global state
        t0 = time.perf_counter()
        yl = librosa.feature.inverse.mel_to_audio(
            mel.numpy(), sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
            win_length=cfg.effective_win_length, window="hann", center=cfg.center, pad_mode=cfg.pad_mode,
            power=cfg.mel_power, n_iter=args.iters, fmin=cfg.fmin, fmax=cfg.effective_fmax,
            htk=cfg.mel_scale == "htk", norm="slaney" if cfg.mel_norm == "slaney" else None,
            length=length if cfg.center else None)
        secs = time.perf_counter() - t0
        if not cfg.center:
            yl = yl[cfg.pad: cfg.pad + length]
        add("librosa mel_to_audio", clip.stem, mel_sc(yl, mel), secs)
        print(clip.stem, {k: round(v["sc"][-1], 2) for k, v in results.items()}, flush=True)

    rows = sorted(((k, statistics.median(v["sc"]), statistics.mean(v["sc"]), statistics.median(v["s"]))
                   for k, v in results.items()), key=lambda r: r[1])
    lines = [f"# Mel inversion, preset `{args.preset}`, {args.iters} iterations, {len(clips)} corpus clips", "",
             f"{date.today()} · {platform.machine()} · {args.threads} CPU threads · torch {torch.__version__} · "
             f"librosa {librosa.__version__}. Mel SC: spectral convergence (dB) of the output's mel against the "
             "target mel (linear mel domain). 'refine N': the last N of the iterations are L-BFGS steps on the "
             "waveform against the mel; the NNLS mel->linear step (100 FISTA iterations) is included in the time.",
             "", "| configuration | median mel SC dB | mean mel SC dB | median s/clip |", "|---|---|---|---|"]
    lines += [f"| {k} | {med:.2f} | {mean:.2f} | {secs:.3f} |" for k, med, mean, secs in rows]
    clips_tbl = ["", "Per clip (mel SC dB):", "", "| clip | " + " | ".join(r[0] for r in rows) + " |",
                 "|---" * (len(rows) + 1) + "|"]
    for i, c in enumerate(clips):
        clips_tbl.append(f"| {c.stem} | " + " | ".join(f"{results[r[0]]['sc'][i]:.2f}" for r in rows) + " |")
    text = "\n".join(lines + clips_tbl) + "\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"mel_{args.preset}.md").write_text(text)
    (out / f"mel_{args.preset}.json").write_text(json.dumps(results, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
