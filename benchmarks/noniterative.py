#!/usr/bin/env python
"""The non-iterative methods against 10 FGLA iterations: time and quality on the corpus.

The issue asks that PGHI and SPSI each take well under the time of 10 FGLA iterations. For each
clip of ../shared/corpus (reference STFT: n_fft 1024, hop 256, periodic Hann, centred, reflect)
this times ``pghi_phase``, ``spsi_phase`` and ``fgla(mag, n_iter=10)`` on the whole clip at each
thread count (``torch.set_num_threads``, the same for all three; the three are interleaved and
the minimum over ``--reps`` runs is kept, since the machine may be shared), and prints the
ratios to FGLA. Then the quality: the median spectral convergence (dB) of PGHI alone, SPSI alone
and FGLA with 100 iterations from PGHI's phase.

    python benchmarks/noniterative.py [--threads 1,2] [--reps 7] [--no-quality]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = Path(os.environ.get("SPECINV_CORPUS", ROOT.parent / "shared" / "corpus"))
N_FFT, HOP = 1024, 256

from specinv_cli import invert  # noqa: E402
from specinv_cli.algorithms.gla import fgla  # noqa: E402
from specinv_cli.algorithms.pghi import pghi_phase  # noqa: E402
from specinv_cli.algorithms.spsi import spsi_phase  # noqa: E402
from specinv_cli.config import STFTConfig  # noqa: E402
from specinv_cli.dsp.stft import STFT  # noqa: E402


def load(path: Path) -> np.ndarray:
    x, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(x.mean(axis=1))


def magnitude(x: np.ndarray) -> torch.Tensor:
    return torch.stft(torch.from_numpy(x), N_FFT, HOP, window=torch.hann_window(N_FFT), center=True,
                      pad_mode="reflect", return_complex=True).abs()


def sc_db(audio: torch.Tensor, target: torch.Tensor) -> float:
    est = magnitude(audio.detach().cpu().float().numpy()).double()
    n = min(est.shape[-1], target.shape[-1])
    t = target[..., :n].double()
    return float(20 * torch.log10((est[..., :n] - t).norm() / t.norm()))


def timings(mag: torch.Tensor, op: STFT, length: int, reps: int) -> dict[str, float]:
    runs = {"pghi": lambda: pghi_phase(mag, op), "spsi": lambda: spsi_phase(mag, op),
            "fgla10": lambda: fgla(mag, op, n_iter=10, length=length)}
    best = {k: float("inf") for k in runs}
    for _ in range(reps):  # interleaved, so that a busy spell hits all three alike
        for k, f in runs.items():
            t0 = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--no-quality", action="store_true")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    files = sorted(CORPUS.glob("*.wav"))
    if not files:
        sys.exit(f"no corpus at {CORPUS}")
    op = STFT(STFTConfig(n_fft=N_FFT, hop_length=HOP))
    clips = [(f.stem, load(f)) for f in files]
    mags = [magnitude(x) for _, x in clips]
    pghi_phase(mags[0][:, :20], op)  # compile / load the numba kernel outside the timings
    spsi_phase(mags[0][:, :20], op)

    ratios = {n: {"pghi": [], "spsi": []} for n in threads}
    head = "clip".ljust(42) + "".join(
        f"| {n}t pghi ms  spsi ms  fgla10 ms  pghi/f  spsi/f " for n in threads)
    print(head)
    for (name, x), mag in zip(clips, mags):
        row = name[:41].ljust(42)
        for n in threads:
            torch.set_num_threads(n)
            t = timings(mag, op, len(x), args.reps)
            rp, rs = t["pghi"] / t["fgla10"], t["spsi"] / t["fgla10"]
            ratios[n]["pghi"].append(rp)
            ratios[n]["spsi"].append(rs)
            row += (f"| {1e3 * t['pghi']:10.1f} {1e3 * t['spsi']:8.1f} {1e3 * t['fgla10']:10.1f}"
                    f" {rp:7.2f} {rs:7.2f} ")
        print(row, flush=True)
    row = "median ratio".ljust(42)
    for n in threads:
        row += (f"| {'':10} {'':8} {'':10} {statistics.median(ratios[n]['pghi']):7.2f}"
                f" {statistics.median(ratios[n]['spsi']):7.2f} ")
    print(row)
    row = "max ratio".ljust(42)
    for n in threads:
        row += (f"| {'':10} {'':8} {'':10} {max(ratios[n]['pghi']):7.2f}"
                f" {max(ratios[n]['spsi']):7.2f} ")
    print(row)

    if args.no_quality:
        return
    torch.set_num_threads(threads[-1])
    scs = {"pghi": [], "spsi": [], "fgla100+pghi": []}
    for (name, x), mag in zip(clips, mags):
        for key, kw in (("pghi", dict(method="pghi")), ("spsi", dict(method="spsi")),
                        ("fgla100+pghi", dict(method="fgla", init="pghi", n_iter=100))):
            r = invert(mag, length=len(x), device="cpu", **kw)
            scs[key].append(sc_db(r.audio, mag))
        print(f"{name[:41].ljust(42)}" + "".join(f" {k} {v[-1]:7.2f}" for k, v in scs.items()),
              flush=True)
    print("median SC (dB):" + "".join(f"  {k} {statistics.median(v):.2f}" for k, v in scs.items()))


if __name__ == "__main__":
    main()
