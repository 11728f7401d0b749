"""Issue 13's check: with default options, the SC reported in ``--json`` is the SC of the WAV as
written, and the default loses nothing against ``--subtype FLOAT --normalize none``.

For every clip of ../shared/corpus: its spectrogram (``specinv stft``, default settings), then
``specinv invert`` on the folder with the defaults and with ``--subtype FLOAT --normalize none``;
each written WAV is read back and scored against the spectrogram, as any reader would.
Writes benchmarks/results/level.md and level.json.

    python benchmarks/level.py [--iters 100]
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
RESULTS = ROOT / "benchmarks" / "results"


def specinv(*args) -> str:
    out = subprocess.run([sys.executable, "-m", "specinv_cli", *map(str, args)], capture_output=True, text=True,
                         cwd=str(ROOT))
    if out.returncode != 0:
        raise SystemExit(f"specinv {' '.join(map(str, args))} failed ({out.returncode}):\n{out.stderr}")
    return out.stdout


def file_sc(wav: Path, target: np.ndarray) -> float:
    from specinv_cli.batch.blocks import streaming_metrics
    from specinv_cli.config import STFTConfig

    audio, _ = sf.read(str(wav), dtype="float32")
    cfg = STFTConfig().with_bins(target.shape[-2])
    return streaming_metrics(audio, torch.as_tensor(target), cfg)["sc"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=100)
    args = ap.parse_args()
    clips = sorted(CORPUS.glob("*.wav"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        specinv("stft", *clips, "-O", tmp / "specs", "-q")
        runs = {"default": [], "float": ["--subtype", "FLOAT", "--normalize", "none"]}
        recs = {}
        for name, extra in runs.items():
            out = specinv("invert", tmp / "specs", "-O", tmp / name, "-n", args.iters, "--json", "-q", *extra)
            recs[name] = {Path(r["output"]).stem: r for r in map(json.loads, out.splitlines()) if "output" in r}
        for clip in clips:
            stem = clip.stem
            target = np.load(tmp / "specs" / f"{stem}.npy")
            d, f = recs["default"][stem], recs["float"][stem]
            rows.append(dict(clip=stem, peak=d["peak"], subtype=d["subtype"], sc_reported=d["sc"],
                             sc_file=round(file_sc(tmp / "default" / f"{stem}.wav", target), 4),
                             sc_float_reported=f["sc"],
                             sc_float_file=round(file_sc(tmp / "float" / f"{stem}.wav", target), 4)))
    med = {k: statistics.median(r[k] for r in rows) for k in ("sc_reported", "sc_file", "sc_float_file")}
    worst = max(abs(r["sc_reported"] - r["sc_file"]) for r in rows)
    from specinv_cli.companion.bench import cpu_name

    machine = f"{cpu_name()}, torch {torch.__version__}"
    stamp = datetime.date.today().isoformat()
    lines = [f"# Level-faithful output ({stamp}, {machine}, {args.iters} iterations, default method)", "",
             "SC of each WAV as written (read back) against its spectrogram, and the SC `--json` reported.", "",
             "| clip | peak | subtype written | SC reported | SC of the file | FLOAT/none: SC of the file |",
             "|---|---:|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['clip']} | {r['peak']:.3f} | {r['subtype']} | {r['sc_reported']:.2f} | {r['sc_file']:.2f} "
                     f"| {r['sc_float_file']:.2f} |")
    lines += ["", f"Median: reported {med['sc_reported']:.2f} dB, file {med['sc_file']:.2f} dB, "
                  f"`--subtype FLOAT --normalize none` file {med['sc_float_file']:.2f} dB. "
                  f"Largest |reported - file|: {worst:.3f} dB."]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "level.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "level.json").write_text(json.dumps({"date": stamp, "machine": machine, "iters": args.iters,
                                                    "rows": rows, "median": med, "worst_gap": worst}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
