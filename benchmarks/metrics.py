#!/usr/bin/env python
"""Every metric of ``specinv eval`` on the corpus, for the default method vs FGLA vs librosa's
Griffin-Lim (100 iterations each), with the paired comparisons, and the cost of each metric.

1. Each corpus clip (22.05 kHz) -> ``|STFT|`` with the default settings (n_fft 1024, hop 256,
   Hann) -> three run folders: ``dm`` (specinv's default), ``fgla`` (specinv), ``librosa``
   (``librosa.griffinlim``, its defaults: momentum 0.99, random start), 100 iterations each; the
   clips are the reference folder.
2. Every output scored with every metric (:func:`specinv_cli.companion.report.evaluate_item`,
   what ``eval``/``compare``/``report`` use); the median and mean per method; the default
   against each of the others paired per item (:func:`specinv_cli.companion.stats.compare_table`:
   mean difference, 95% BCa interval, Wilcoxon).
3. The cost of each metric group: one pass over the ``dm`` outputs per group, wall time over
   audio seconds (one process, ``--threads`` torch threads; the first call of each group, which
   loads its model, is timed apart).
4. ``specinv compare`` on two of the run folders, its table and JSON kept as they are.

    python benchmarks/metrics.py [--iters 100] [--threads 2] [--out benchmarks/results] [--keep DIR]

Writes ``metrics.md`` / ``metrics.json`` (and ``metrics_compare.txt`` / ``.jsonl``).
"""
from __future__ import annotations

import argparse
import json
import os
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
sys.path.insert(0, str(ROOT))
CORPUS = Path(os.environ.get("SPECINV_CORPUS", ROOT.parent / "shared" / "corpus"))
SR = 22050


def make_runs(work: Path, iters: int) -> dict:
    import librosa
    import torch

    from specinv_cli import invert

    ref = work / "reference"
    runs = {m: work / m for m in ("dm", "fgla", "librosa")}
    for d in (ref, *runs.values()):
        d.mkdir(parents=True)
    times = {m: 0.0 for m in runs}
    seconds = 0.0
    win = torch.hann_window(1024, dtype=torch.float64)
    for p in sorted(CORPUS.glob("*.wav")):
        x, sr = sf.read(str(p), dtype="float64")
        assert sr == SR, p
        seconds += len(x) / sr
        shutil.copy(p, ref / p.name)
        mag = torch.stft(torch.from_numpy(x), 1024, 256, window=win, center=True, return_complex=True).abs()
        for m in ("dm", "fgla"):
            t = time.perf_counter()
            y = invert(mag.float(), method=m, n_iter=iters, length=len(x)).audio.numpy()
            times[m] += time.perf_counter() - t
            sf.write(runs[m] / p.name, y, SR, subtype="FLOAT")
        t = time.perf_counter()
        y = librosa.griffinlim(mag.numpy(), n_iter=iters, hop_length=256, win_length=1024, n_fft=1024,
                               window="hann", center=True, length=len(x), random_state=0)
        times["librosa"] += time.perf_counter() - t
        sf.write(runs["librosa"] / p.name, y, SR, subtype="FLOAT")
    return {"reference": ref, "runs": runs, "invert_s": times, "audio_s": seconds}


def score(runs: dict, ref: Path, cfg) -> dict:
    """method -> {stem: metrics}, every group."""
    from specinv_cli.companion.report import ReportItem, evaluate_item

    rows = {m: {} for m in runs}
    notes = set()
    for p in sorted(ref.glob("*.wav")):
        it = ReportItem(p.stem, reference=p, outputs={m: d / p.name for m, d in runs.items()})
        evaluate_item(it, cfg, list(runs), images=False)
        for m in runs:
            rows[m][p.stem] = it.metrics[m]
        notes.update(it.notes)
    return rows, sorted(notes)


def costs(run: Path, ref: Path, cfg) -> dict:
    """group -> {"first_s", "per_audio_s"}: seconds per audio second after the first item."""
    from specinv_cli.companion.analysis import evaluate, read_audio
    from specinv_cli.companion.suite import GROUPS

    files = sorted(ref.glob("*.wav"))
    pairs = [(read_audio(run / p.name), read_audio(p)) for p in files]
    out = {}
    for g in GROUPS:
        (a0, sr0), (r0, rr0) = pairs[0]
        t = time.perf_counter()
        evaluate(a0, sr0, None if g != "spectral" else _target(r0, rr0, cfg), cfg, reference=r0, reference_rate=rr0,
                 metrics=[g])
        first = time.perf_counter() - t
        secs, total = 0.0, 0.0
        for (a, sr), (r, rr) in pairs[1:]:
            tgt = _target(r, rr, cfg) if g == "spectral" else None
            t = time.perf_counter()
            evaluate(a, sr, tgt, cfg, reference=r, reference_rate=rr, metrics=[g])
            total += time.perf_counter() - t
            secs += a.shape[-1] / sr
        out[g] = {"first_s": round(first, 3), "per_audio_s": round(total / secs, 4)}
        print(f"cost {g}: {out[g]}", flush=True)
    return out


def _target(r, rr, cfg):
    from specinv_cli.companion.analysis import analyze
    from specinv_cli.io.spectrogram import interpret

    return interpret(analyze(r[0], cfg), "magnitude", cfg.layout, "reference", n_mels=cfg.n_mels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--keep", help="keep the run folders here")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    from specinv_cli.companion.perceptual import versions
    from specinv_cli.companion.stats import compare_table
    from specinv_cli.companion.suite import METRICS
    from specinv_cli.config import load_preset

    cfg = load_preset("default", explicit=False)
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="specinv-metrics-"))
    if a.keep and work.exists():
        shutil.rmtree(work)
    try:
        made = make_runs(work, a.iters)
        print(f"inverted: {made['invert_s']}", flush=True)
        t = time.perf_counter()
        rows, notes = score(made["runs"], made["reference"], cfg)
        score_s = time.perf_counter() - t
        print(f"scored in {score_s:.1f} s", flush=True)
        present = [k for k in METRICS if any(k in r for d in rows.values() for r in d.values())]
        directions = {k: METRICS[k].higher_is_better for k in present}
        paired = {m: compare_table(rows["dm"], rows[m], directions) for m in ("fgla", "librosa")}
        cost = costs(made["runs"]["dm"], made["reference"], cfg)
        # the CLI on two run folders, as a user runs it
        cmd = [sys.executable, "-m", "specinv_cli", "compare", str(made["runs"]["fgla"]), str(made["runs"]["dm"]),
               "-r", str(made["reference"])]
        txt = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
        js = subprocess.run(cmd + ["--json"], capture_output=True, text=True, cwd=str(ROOT))
        assert txt.returncode == 0 and js.returncode == 0, txt.stderr + js.stderr
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)

    res = {"date": str(date.today()), "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads",
           "threads": a.threads, "iters": a.iters, "clips": len(rows["dm"]), "audio_s": round(made["audio_s"], 1),
           "invert_s": {k: round(v, 2) for k, v in made["invert_s"].items()}, "score_s": round(score_s, 1),
           "versions": versions(), "rows": rows, "notes": notes,
           "summary": {m: {"median": {k: float(np.median([r[k] for r in d.values() if k in r])) for k in present},
                           "mean": {k: float(np.mean([r[k] for r in d.values() if k in r])) for k in present}}
                       for m, d in rows.items()},
           "paired_vs_dm": {m: {k: r.to_dict() for k, r in res_.items()} for m, res_ in paired.items()},
           "cost": cost}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / "metrics_compare.txt").write_text("$ specinv compare runs/fgla runs/dm -r corpus/\n" + txt.stdout)
    (out / "metrics_compare.jsonl").write_text(js.stdout)

    def fmt(k, v):
        return "" if v is None else (f"{v:.3f}" if abs(v) < 10 and k not in ("sc", "snr", "ser", "lsd", "mcd") else f"{v:.2f}")

    md = [f"# Every metric on the corpus: default (dm) vs FGLA vs librosa Griffin-Lim ({res['date']}, {res['machine']})", "",
          f"{res['clips']} corpus clips ({res['audio_s']} s at 22.05 kHz), linear |STFT| (n_fft 1024, hop 256, Hann), "
          f"{a.iters} iterations each; SC/SNR/SER against that target (as written), the rest against the clip. "
          f"Median over clips (mean in metrics.json). Inversion time: dm {res['invert_s']['dm']} s, "
          f"fgla {res['invert_s']['fgla']} s, librosa {res['invert_s']['librosa']} s in all.", "",
          "| metric | dm (default) | fgla | librosa GL | dm - fgla [95% CI] | p | dm - librosa [95% CI] | p |",
          "|---|---|---|---|---|---|---|---|"]
    for k in present:
        m = METRICS[k]
        cells = [fmt(k, res["summary"][x]["median"][k]) for x in ("dm", "fgla", "librosa")]
        comp = []
        for x in ("fgla", "librosa"):
            r = paired[x][k]
            # stored as other - dm; shown as dm - other
            d, lo, hi = -r.mean_diff, -r.ci[1], -r.ci[0]
            star = ""
            if r.significant:
                star = " **dm better**" if r.better == "a" else f" **{x} better**"
            comp += [f"{fmt(k, d)} [{fmt(k, lo)}, {fmt(k, hi)}]{star}", f"{r.p_wilcoxon:.2g}"]
        md.append(f"| {m.label}{' ' + m.unit if m.unit else ''} {'↑' if m.higher_is_better else '↓'} | "
                  + " | ".join(cells + comp) + " |")
    md += ["", "Differences are means over clips of the per-clip difference; BCa bootstrap (10000 resamples, seed 0); "
           "p: two-sided Wilcoxon signed-rank; **bold**: significant at p < 0.05 (12 pairs; not corrected for "
           "the number of metrics).", "",
           "## Cost of each metric (one process, %d torch threads)" % a.threads, "",
           "| group | metrics | s per audio second | first call s (loads the model) |", "|---|---|---|---|"]
    from specinv_cli.companion.suite import GROUPS

    for g, c in cost.items():
        md.append(f"| {g} | {', '.join(m.label for m in GROUPS[g])} | {c['per_audio_s']} | {c['first_s']} |")
    md += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in res["versions"].items()), "",
           "## `specinv compare runs/fgla runs/dm -r corpus/`", "", "```", txt.stdout.rstrip(), "```", "",
           "(the JSON of the same call: metrics_compare.jsonl)", ""]
    if notes:
        md += ["Notes from the scoring:", ""] + [f"- {n}" for n in notes] + [""]
    (out / "metrics.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
