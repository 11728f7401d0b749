#!/usr/bin/env python
"""The companion commands' must-show figures, through the real CLI on every corpus clip.

1. Round trip exactly as a user types it: ``specinv stft CLIPS -O spec`` -> ``specinv invert
   spec -O default`` (all defaults: dm from PGHI, 100 iterations, PCM_16, peak-normalised only
   when the peak exceeds full scale) -> ``specinv eval default -t spec``: SC per clip as written,
   and with ``--scale-invariant`` (the level change of the peak policy removed).
2. The "fair comparison" table: ``invert -m fgla`` vs the default (``dm`` from ``pghi``), both
   written as FLOAT without peak normalisation (so SC measures the algorithm, not a level
   change), then ``specinv eval --reference`` (SC/SNR/SER, LSD, PESQ/STOI when installed).
3. The pictures for docs/: ``specinv plot`` on the CC0 clip music_guitar_em9 (target vs DM,
   difference; convergence of gla/fgla/dm/pghi), and a ``specinv report`` page for three methods
   (fgla, pghi, dm) on the two CC0 clips, screenshot by headless chromium when installed.

    python benchmarks/companion.py [--out benchmarks/results] [--docs docs] [--keep WORKDIR]

Writes ``companion_roundtrip.md|json``, ``companion_eval.md|json`` under ``--out``; PNGs under ``--docs``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("SPECINV_CORPUS", ROOT.parent / "shared" / "corpus"))
CC0 = ("music_guitar_em9", "music_tabla_loop")


def specinv(*args, json_out=False) -> list[dict]:
    cmd = [sys.executable, "-m", "specinv_cli", *map(str, args)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip()] if json_out else []


def by_stem(records) -> dict:
    return {Path(r["output"]).stem: r for r in records if r.get("status") == "ok"}


def fmt(v, d=2):
    return "" if v is None else f"{v:.{d}f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--docs", default=str(ROOT / "docs"))
    ap.add_argument("--keep", help="work folder to keep (default: a temporary one, removed)")
    args = ap.parse_args()
    clips = sorted(CORPUS.glob("*.wav"))
    if not clips:
        raise SystemExit(f"no corpus at {CORPUS}")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="specinv-companion-"))
    work.mkdir(parents=True, exist_ok=True)
    out, docs = Path(args.out), Path(args.docs)
    out.mkdir(parents=True, exist_ok=True)
    docs.mkdir(parents=True, exist_ok=True)
    env = {"date": str(date.today()), "machine": platform.machine(), "python": platform.python_version(),
           "cpus": os.cpu_count()}
    t0 = time.perf_counter()

    # 1. round trip with every default
    spec, dflt = work / "spec", work / "default"
    specinv("stft", *clips, "-O", spec, "-q")
    specinv("invert", spec, "-O", dflt, "-q")
    as_written = by_stem(specinv("eval", dflt, "-t", spec, "--json", "--no-perceptual", json_out=True))
    si = by_stem(specinv("eval", dflt, "-t", spec, "--json", "--no-perceptual", "--scale-invariant", json_out=True))
    rows = [{"clip": c.stem, "sc": as_written[c.stem]["sc"], "sc_scale_invariant": si[c.stem]["sc"],
             "gain": si[c.stem]["gain"]} for c in clips]
    med = {k: statistics.median(r[k] for r in rows) for k in ("sc", "sc_scale_invariant")}
    lines = ["# Round trip: `specinv stft x.wav -O d && specinv invert d/x.npy -O out` (defaults) -> `specinv eval`",
             "", f"{env['date']}, {env['machine']}, {env['cpus']} CPUs, Python {env['python']}; dm from PGHI, "
             "100 iterations, PCM_16, default peak policy. SC as written, and after the least-squares gain "
             "(`--scale-invariant`; `gain` undoes invert's peak normalisation when the peak exceeded 1).", "",
             "| clip | SC dB (as written) | SC dB (scale-invariant) | gain |", "|---|---|---|---|"]
    lines += [f"| {r['clip']} | {fmt(r['sc'])} | {fmt(r['sc_scale_invariant'])} | {fmt(r['gain'], 4)} |" for r in rows]
    lines.append(f"| **median** | **{fmt(med['sc'])}** | **{fmt(med['sc_scale_invariant'])}** | |")
    (out / "companion_roundtrip.md").write_text("\n".join(lines) + "\n")
    (out / "companion_roundtrip.json").write_text(json.dumps({"env": env, "rows": rows, "median": med}, indent=1))
    print("\n".join(lines))

    # 2. FGLA vs the default, FLOAT WAVs without peak normalisation, with the references
    evals = {}
    names = {"fgla": ["-m", "fgla"], "dm": []}
    for label, extra in names.items():
        folder = work / label
        specinv("invert", spec, "-O", folder, *extra, "--subtype", "FLOAT", "--normalize", "none", "-q")
        recs = specinv("eval", folder, "-t", spec, "-r", CORPUS, "--json", json_out=True)
        evals[label] = {"items": by_stem(recs), "summary": recs[-1]["summary"]}
    metrics = [k for k in ("sc", "snr", "ser", "lsd", "pesq", "stoi") if k in evals["dm"]["summary"]["median"]]
    heads = {"sc": "SC dB ↓", "snr": "SNR dB ↑", "ser": "SER dB ↑", "lsd": "LSD dB ↓", "pesq": "PESQ ↑", "stoi": "STOI ↑"}
    d = {"pesq": 3, "stoi": 3}
    label_of = {"fgla": "FGLA (`-m fgla`, from PGHI)", "dm": "PGHI + DM (default)"}
    lines = ["# `specinv eval`: FGLA vs the default on the 12 corpus clips", "",
             f"{env['date']}, {env['machine']}, {env['cpus']} CPUs; 100 iterations each, reference STFT "
             "(1024/256, Hann, centred), WAVs as FLOAT without peak normalisation; SC/SNR/SER against the "
             "input magnitude, LSD/PESQ (wide-band, 16 kHz)/STOI against the original recording.", "",
             "| method | " + " | ".join(f"median {heads[k]}" for k in metrics) + " |",
             "|---|" + "---|" * len(metrics)]
    for label in names:
        s = evals[label]["summary"]
        lines.append(f"| {label_of[label]} | " + " | ".join(fmt(s["median"][k], d.get(k, 2)) for k in metrics) + " |")
    lines += ["", "| method | " + " | ".join(f"mean {heads[k]}" for k in metrics) + " |", "|---|" + "---|" * len(metrics)]
    for label in names:
        s = evals[label]["summary"]
        lines.append(f"| {label_of[label]} | " + " | ".join(fmt(s["mean"][k], d.get(k, 2)) for k in metrics) + " |")
    lines += ["", "Per clip:", "", "| clip | " + " | ".join(f"{m} {heads[k].split()[0]}" for m in names for k in ("sc", "lsd", "pesq") if k in metrics) + " |",
              "|---|" + "---|" * sum(1 for _ in names for k in ("sc", "lsd", "pesq") if k in metrics)]
    for c in clips:
        cells = [fmt(evals[m]["items"][c.stem].get(k), d.get(k, 2)) for m in names for k in ("sc", "lsd", "pesq") if k in metrics]
        lines.append(f"| {c.stem} | " + " | ".join(cells) + " |")
    (out / "companion_eval.md").write_text("\n".join(lines) + "\n")
    (out / "companion_eval.json").write_text(json.dumps({"env": env, **{k: v for k, v in evals.items()}}, indent=1))
    print("\n".join(lines))

    # 3. pictures on the CC0 clips
    g = "music_guitar_em9"
    specinv("plot", spec / f"{g}.npy", "-a", work / "dm" / f"{g}.wav", "-o", docs / "plot_guitar_em9.png",
            "--title", f"{g} (CC0): PGHI + DM, 100 iterations", "-q")
    specinv("plot", spec / f"{g}.npy", "--convergence", "-m", "gla", "-m", "fgla", "-m", "dm", "-m", "pghi",
            "-o", docs / "convergence_guitar_em9.png", "--title", f"SC vs iteration, {g} (CC0)", "-q")
    rep = work / "run"
    for sub in ("reference", "target", "fgla", "pghi", "dm"):
        (rep / sub).mkdir(parents=True, exist_ok=True)
    for c in CC0:
        shutil.copy(CORPUS / f"{c}.wav", rep / "reference")
        shutil.copy(spec / f"{c}.npy", rep / "target")
        for m in ("fgla", "dm"):
            shutil.copy(work / m / f"{c}.wav", rep / m)
    specinv("invert", rep / "target", "-m", "pghi", "-O", rep / "pghi", "--subtype", "FLOAT", "--normalize", "none", "-q")
    page = work / "report.html"
    specinv("report", rep, "-o", page, "-m", "fgla,pghi,dm", "--title", "specinv report: 3 methods on 2 CC0 clips", "-q")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
                        f"--user-data-dir={work / 'profile'}", "--window-size=1800,1560",
                        f"--screenshot={docs / 'report.png'}", page.as_uri()], capture_output=True, timeout=180, check=True)
    else:
        print("chromium not installed: no screenshot", file=sys.stderr)
    print(f"done in {time.perf_counter() - t0:.0f} s; work folder {work}", file=sys.stderr)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
