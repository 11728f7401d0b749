#!/usr/bin/env python
"""Every method x init on the corpus at a fixed iteration count, beside librosa and torchaudio.

For each clip of ../shared/corpus (reference STFT: n_fft 1024, hop 256, periodic Hann, centred,
reflect) the target is the STFT magnitude; each configuration inverts it with ``specinv.invert``
and is scored by the spectral convergence (dB) of the output's magnitude. In the same run:
``librosa.griffinlim(n_iter, momentum=0.99)`` and, when torchaudio can be imported (here or by
the interpreter in ``$SPECINV_TORCHAUDIO_PYTHON``), ``torchaudio.transforms.GriffinLim(n_iter,
momentum=0.99)``. All on the CPU with the same thread count.

    python benchmarks/methods.py [--iters 100] [--threads 2] [--methods fgla,dm] [--inits random,pghi]

Writes ``benchmarks/results/methods_<iters>.md`` / ``.json`` and prints the table; the best
median SC among specinv's configurations is marked (it is the project default).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
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
N_FFT, HOP = 1024, 256

from specinv_cli import invert  # noqa: E402
from specinv_cli.algorithms.registry import REGISTRY  # noqa: E402

TORCHAUDIO_SNIPPET = r"""
import sys, time, json, numpy as np, torch, torchaudio
torch.set_num_threads(int(sys.argv[2]))
mag = torch.from_numpy(np.load(sys.argv[1]))
gl = torchaudio.transforms.GriffinLim(n_fft=1024, hop_length=256, win_length=1024, power=1.0,
                                      n_iter=int(sys.argv[3]), momentum=0.99, length=int(sys.argv[4]))
torch.manual_seed(0)
t0 = time.perf_counter(); y = gl(mag); dt = time.perf_counter() - t0
np.save(sys.argv[1] + ".out.npy", y.numpy())
print(json.dumps({"seconds": dt, "version": torchaudio.__version__}))
"""


def magnitude(x: np.ndarray) -> torch.Tensor:
    return torch.stft(torch.from_numpy(np.asarray(x, dtype=np.float32)), N_FFT, HOP,
                      window=torch.hann_window(N_FFT), center=True, pad_mode="reflect",
                      return_complex=True).abs()


def sc_db(audio, target: torch.Tensor) -> float:
    est = magnitude(audio).double()
    n = min(est.shape[-1], target.shape[-1])
    t = target[..., :n].double()
    return float(20 * torch.log10((est[..., :n] - t).norm() / t.norm()))


def torchaudio_runner():
    """A callable (mag, length, iters, threads) -> (audio, seconds, version), or None."""
    try:
        import torchaudio  # noqa: F401

        python = sys.executable
    except Exception:
        python = os.environ.get("SPECINV_TORCHAUDIO_PYTHON")
        if not python or not Path(python).exists():
            return None
    import tempfile

    def run(mag, length, iters, threads):
        with tempfile.NamedTemporaryFile(suffix=".npy", delete=False) as f:
            np.save(f.name, mag.numpy())
        p = subprocess.run([python, "-c", TORCHAUDIO_SNIPPET, f.name, str(threads), str(iters), str(length)],
                           capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
        if p.returncode != 0:
            raise RuntimeError(p.stderr[-500:])
        info = json.loads(p.stdout.strip().splitlines()[-1])
        y = np.load(f.name + ".out.npy")
        os.unlink(f.name)
        os.unlink(f.name + ".out.npy")
        return y, info["seconds"], info["version"]

    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", default=",".join(REGISTRY))
    ap.add_argument("--inits", default="random,zero,spsi,pghi")
    ap.add_argument("--clips", default="", help="comma-separated substrings to select clips")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clips = sorted(CORPUS.glob("*.wav"))
    if args.clips:
        clips = [c for c in clips if any(s in c.name for s in args.clips.split(","))]
    if not clips:
        print(f"no corpus clips at {CORPUS}", file=sys.stderr)
        return 2
    methods = args.methods.split(",")
    inits = args.inits.split(",")
    configs = []
    for m in methods:
        if REGISTRY[m].iterative:
            configs += [(m, i) for i in inits]
        else:
            configs.append((m, "-"))
    ta = torchaudio_runner()
    results: dict[str, dict[str, list]] = {}
    ta_version = None

    def add(name, clip, sc, secs):
        results.setdefault(name, {"sc": [], "s": [], "clips": []})
        results[name]["sc"].append(sc)
        results[name]["s"].append(secs)
        results[name]["clips"].append(clip)

    for clip in clips:
        x, sr = sf.read(str(clip), dtype="float32")
        mag = magnitude(x)
        for m, init in configs:
            r = invert(mag, method=m, n_iter=args.iters, init=init if init != "-" else "random",
                       length=len(x), device="cpu")
            add(f"{m} [{init}]" if init != "-" else m, clip.stem, sc_db(r.audio.numpy(), mag), r.seconds)
        import librosa

        t0 = time.perf_counter()
        yl = librosa.griffinlim(mag.numpy(), n_iter=args.iters, hop_length=HOP, win_length=N_FFT, n_fft=N_FFT,
                                window="hann", center=True, momentum=0.99, length=len(x), random_state=0)
        add("librosa.griffinlim", clip.stem, sc_db(yl, mag), time.perf_counter() - t0)
        if ta is not None:
            yt, secs, ta_version = ta(mag, len(x), args.iters, args.threads)
            add("torchaudio GriffinLim", clip.stem, sc_db(yt, mag), secs)
        print(clip.stem, "done", flush=True)

    rows = sorted(((k, statistics.median(v["sc"]), statistics.mean(v["sc"]), statistics.median(v["s"]))
                   for k, v in results.items()), key=lambda r: r[1])
    ours = [r for r in rows if not r[0].startswith(("librosa", "torchaudio"))]
    best = ours[0][0]
    refs = [r for r in rows if r[0].startswith(("librosa", "torchaudio"))]
    lines = [f"# Methods x inits at {args.iters} iterations on the corpus ({len(clips)} clips)", "",
             f"{date.today()} · {platform.machine()} · {args.threads} CPU threads · torch {torch.__version__}"
             f" · torchaudio {ta_version or 'not installable here'} · reference STFT n_fft {N_FFT}, hop {HOP}, "
             "periodic Hann, centred, reflect. SC = spectral convergence of the output (dB, lower is better);"
             " seconds per clip (median) of the inversion alone.", "",
             "| method [init] | median SC dB | mean SC dB | median s/clip |", "|---|---|---|---|"]
    for name, med, mean, secs in rows:
        tag = " **(best)**" if name == best else ""
        lines.append(f"| {name}{tag} | {med:.2f} | {mean:.2f} | {secs:.3f} |")
    if refs:
        best_ref = min(r[1] for r in refs)
        lines += ["", f"Best specinv configuration: **{best}**, median {ours[0][1]:.2f} dB, "
                      f"{best_ref - ours[0][1]:.2f} dB better than the best reference ({best_ref:.2f} dB)."]
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"methods_{args.iters}.md").write_text(text)
    (out / f"methods_{args.iters}.json").write_text(json.dumps(results, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
