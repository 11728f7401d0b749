#!/usr/bin/env python
"""Speed, measured in one run and reported as ratios.

1. Per-iteration time of each iterative method vs the FFT floor (batched rfft + irfft of the
   framed signal: same sizes, dtype and thread count), and where an FGLA iteration goes.
2. Wall time of 100 iterations vs ``librosa.griffinlim`` and ``torchaudio.transforms.GriffinLim``
   (momentum 0.99, random start; torchaudio through ``$SPECINV_TORCHAUDIO_PYTHON`` when it cannot
   be imported here) on every corpus clip, and the time the default method (``dm`` from ``pghi``,
   the PGHI start included) and FGLA need to reach the SC those reach at 100 iterations.
3. Start-up: ``specinv --help`` and ``specinv invert --example -n 1`` vs ``python -c "import torch"``
   (medians of several runs).
4. CUDA throughput (seconds of audio per second, FGLA 100 iterations, batch 1/16/64) when a GPU
   is present; skipped otherwise.

All torch work runs with ``torch.set_num_threads(--threads)`` (torchaudio's subprocess too);
librosa's FFT (numpy) is single-threaded whatever the setting.

    python benchmarks/speed.py [--threads 2] [--clips N] [--quick]

Writes ``benchmarks/results/speed.md`` / ``.json`` (``speed_quick.*`` with ``--quick``: (1) and
(2) on one clip, no start-up or CUDA). ``specinv bench`` runs the short version of (1)-(2).
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
from pathlib import Path

import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = Path(os.environ.get("SPECINV_CORPUS", ROOT.parent / "shared" / "corpus"))

from specinv_cli.companion import bench  # noqa: E402
from specinv_cli.util.allocator import retain_freed_memory  # noqa: E402
from specinv_cli import invert  # noqa: E402
from specinv_cli.algorithms.registry import DEFAULT_INIT, DEFAULT_METHOD  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from methods import magnitude, torchaudio_runner  # noqa: E402


def startup(cmds: dict[str, list[str]], repeat: int = 9) -> dict[str, dict[str, float]]:
    """Wall time of each command, the commands interleaved in every round (a slow spell of the
    machine then hits all of them alike); median and minimum over the rounds. specinv's modules
    are byte-compiled first, as pip does when it installs a package (an editable install, or
    ``PYTHONDONTWRITEBYTECODE`` set, would otherwise compile them again at every start)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "specinv_cli")], capture_output=True)
    ts: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(repeat):
        for k, cmd in cmds.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True, cwd=str(ROOT))
            ts[k].append(time.perf_counter() - t0)
    return {k: {"median": statistics.median(v), "min": min(v)} for k, v in ts.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clips", type=int, default=0, help="number of corpus clips for (2) (0: all)")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="(1) and (2) on one clip, no start-up or CUDA")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    retained = retain_freed_memory()  # as the CLI does: an FFT's time then does not depend on malloc's history
    clips = sorted(CORPUS.glob("*.wav"))
    if not clips:
        print(f"no corpus at {CORPUS}", file=sys.stderr)
        return 2
    first = next((c for c in clips if "guitar_em9" in c.name), clips[0])
    if args.quick:
        clips = [first]
    elif args.clips:
        clips = clips[: args.clips]
    info = bench.machine_info(args.threads)
    report: dict = {"machine": info, "malloc_retains_freed_memory": retained}
    lines = [f"# Speed ({info['date']}, {info['cpu']}, {info['arch']}, {args.threads} CPU threads, "
             f"torch {info['torch']})", "",
             "Every figure is a ratio measured in this run. Per-iteration times are the minimum gap "
             "between successive iterations (the cost on a quiet machine; medians in the JSON). "
             f"glibc keeps freed memory for reuse (`specinv_cli.util.allocator`): {'yes' if retained else 'no'}.", ""]

    # (1) per-iteration time vs the FFT floor, and the FGLA breakdown, on a 10 s clip
    x, _ = sf.read(str(first), dtype="float32")
    mag = magnitude(x)
    r1 = bench.run_bench(mag, threads=args.threads, device="cpu", references=False, quick=args.quick)
    report["per_iteration"] = {"clip": first.stem, **r1["per_iteration"]}
    report["fgla_breakdown_ms"] = r1["fgla_breakdown_ms"]
    pi = r1["per_iteration"]
    lines += [f"## 1. Per-iteration time vs the FFT floor ({first.stem}, {r1['frames']} frames, n_fft 1024, hop 256, float32)", "",
              f"FFT floor (batched rfft + irfft of the frames): {pi['fft_floor_ms']:.3f} ms; the same FFTs with "
              f"the rfft reading the frames in place from a signal (overlapping strides, as the fused CPU path "
              f"does): {pi['fft_floor_strided_ms']:.3f} ms (the strided floor); our STFT+ISTFT pair: "
              f"{pi['stft_istft_ms']:.3f} ms ({pi['stft_istft_x_floor']:.2f}x).", "",
              "| method | ms / iteration | x FFT floor | x strided floor |", "|---|---|---|---|"]
    lines += [f"| {n} | {r['ms']:.3f} | {r['x_floor']:.2f} | {r['x_strided_floor']:.2f} |"
              for n, r in pi["methods"].items()]
    bd = r1["fgla_breakdown_ms"]
    lines += ["", "### Where an FGLA iteration goes (each step timed alone)", "",
              "| step | ms | x FFT floor |", "|---|---|---|"]
    lines += [f"| {k} | {v:.3f} | {v / bd['fft_floor']:.2f} |" for k, v in bd.items()
              if k not in ("fft_floor", "fast_path", "fused_kernels")]

    # (2) 100 iterations vs librosa / torchaudio, and the time to reach their SC
    ta = torchaudio_runner()
    per_clip = []
    for clip in clips:
        x, _ = sf.read(str(clip), dtype="float32")
        rec = bench.vs_references(magnitude(x), len(x), n_iter=args.iters, threads=args.threads,
                                  torchaudio_runner=ta, repeat=2 if args.quick else 3)
        rec["clip"] = clip.stem
        per_clip.append(rec)
        print(json.dumps({k: v for k, v in rec.items()}, default=str), flush=True)
    report["vs_references"] = per_clip

    def med(path):
        vals = []
        for r in per_clip:
            v = r
            for k in path:
                v = v.get(k) if isinstance(v, dict) else None
            if v is not None:
                vals.append(v)
        return statistics.median(vals) if vals else None

    lines += ["", f"## 2. {args.iters} iterations vs librosa and torchaudio ({len(per_clip)} corpus clips, medians)", "",
              "| | seconds | SC dB |", "|---|---|---|",
              f"| specinv fgla (random init) | {med(['specinv_fgla', 'seconds']):.3f} | {med(['specinv_fgla', 'sc']):.2f} |"]
    ratios = []
    for name in ("librosa", "torchaudio"):
        if med([name, "seconds"]) is not None:
            lines.append(f"| {name} GriffinLim | {med([name, 'seconds']):.3f} | {med([name, 'sc']):.2f} |")
            ratios.append(f"FGLA / {name} time: **{med([f'fgla_over_{name}']):.2f}x** (median of per-clip ratios)")
    if not any("torchaudio" in r for r in per_clip):
        ratios.append("torchaudio: not importable here and no `$SPECINV_TORCHAUDIO_PYTHON`; skipped")
    for key, label in (("default", f"{DEFAULT_METHOD} from {DEFAULT_INIT} (default, init included)"),
                       ("fgla", "fgla from random")):
        got = [r for r in per_clip if r.get(f"{key}_to_goal")]
        if got:
            ref = got[0]["goal"]["reference"]
            its = statistics.median(r[f"{key}_to_goal"]["iterations"] for r in got)
            rat = statistics.median(r[f"{key}_to_goal"][f"over_{ref}"] for r in got)
            ratios.append(f"{label} reaches {ref}'s {args.iters}-iteration SC in {its:.0f} iterations, "
                          f"**{rat:.2f}x** {ref}'s time (median; {len(got)}/{len(per_clip)} clips reached it)")
    lines += [""] + [f"- {r}" for r in ratios]
    lines += ["", "librosa runs numpy's FFT, single-threaded whatever the thread count."]

    if not args.quick:
        # (3) start-up
        py = sys.executable
        with tempfile.TemporaryDirectory() as tmp:
            st = startup({"import_torch": [py, "-c", "import torch"], "help": [py, "-m", "specinv_cli", "--help"],
                          "invert_example_1_iter": [py, "-m", "specinv_cli", "invert", "--example", "-n", "1",
                                                    "-o", str(Path(tmp) / "x.wav"), "-q"]})
        imp, hlp, inv = st["import_torch"], st["help"], st["invert_example_1_iter"]
        report["startup_s"] = st
        lines += ["", "## 3. Start-up (median of 9 rounds, the three commands in turn; specinv byte-compiled as pip installs it)",
                  "", "| command | seconds | x `import torch` |", "|---|---|---|",
                  f"| python -c 'import torch' | {imp['median']:.3f} | 1.00 |",
                  f"| specinv --help | {hlp['median']:.3f} | {hlp['median'] / imp['median']:.2f} |",
                  f"| specinv invert --example -n 1 | {inv['median']:.3f} | {inv['median'] / imp['median']:.2f} |"]
        # (4) CUDA
        if torch.cuda.is_available():
            lines += ["", f"## 4. CUDA throughput ({torch.cuda.get_device_name(0)}, FGLA, {args.iters} iterations, "
                          f"{len(x) / 22050:.1f} s items)", "", "| batch | audio s / s |", "|---|---|"]
            cuda = {}
            x, _ = sf.read(str(first), dtype="float32")
            m = magnitude(x).cuda()
            for b in (1, 16, 64):
                batch = m.expand(b, *m.shape).contiguous()
                invert(batch, method="fgla", init="random", n_iter=5, device="cuda")

                def run():
                    invert(batch, method="fgla", init="random", n_iter=args.iters, device="cuda")
                    torch.cuda.synchronize()
                ts = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    run()
                    ts.append(time.perf_counter() - t0)
                cuda[b] = b * len(x) / 22050 / min(ts)
                lines.append(f"| {b} | {cuda[b]:.1f} |")
            report["cuda_audio_s_per_s"] = cuda
        else:
            report["cuda_audio_s_per_s"] = "skipped: no CUDA"
            lines += ["", "## 4. CUDA throughput", "", "skipped: no CUDA"]
            print("CUDA throughput skipped: no CUDA", flush=True)
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "speed_quick" if args.quick else "speed"
    (out / f"{name}.md").write_text(text)
    (out / f"{name}.json").write_text(json.dumps(report, indent=1, default=str))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
