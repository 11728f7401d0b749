"""``specinv bench``: the short speed benchmark on the user's machine (click only).

The measurements are in :mod:`specinv_cli.companion.bench`; torch and librosa are imported when the
command runs, so ``specinv --help`` stays fast.
"""
from __future__ import annotations

import json
import sys

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
EXIT_OK, EXIT_USAGE = 0, 2


def _table(report: dict) -> list:
    """rich Tables for a :func:`specinv_cli.companion.bench.run_bench` report."""
    from rich.table import Table

    m = report["machine"]
    pi = report["per_iteration"]
    fused = (report.get("fgla_breakdown_ms") or {}).get("fused_kernels")
    kernels = "" if fused is None else (", numba kernels" if fused else ", torch ops")
    t1 = Table(title=f"Per-iteration time vs the FFT floor ({report['frames']} frames, n_fft {report['n_fft']}, "
                     f"{report['device']}, {report['precision']}, {m['threads']} threads{kernels})")
    t1.add_column("method")
    t1.add_column("ms / iteration", justify="right")
    t1.add_column("x FFT floor", justify="right")
    t1.add_column("x strided floor", justify="right")
    fl, st = pi["fft_floor_ms"], pi["fft_floor_strided_ms"]
    t1.add_row("FFT floor (rfft + irfft)", f"{fl:.3f}", "1.00", f"{fl / st:.2f}")
    t1.add_row("same, rfft reading frames in place", f"{st:.3f}", f"{st / fl:.2f}", "1.00")
    t1.add_row("STFT + ISTFT pair", f"{pi['stft_istft_ms']:.3f}", f"{pi['stft_istft_x_floor']:.2f}", "")
    for name, r in pi["methods"].items():
        t1.add_row(name, f"{r['ms']:.3f}", f"{r['x_floor']:.2f}", f"{r['x_strided_floor']:.2f}")
    tables = [t1]
    bd = report.get("fgla_breakdown_ms")
    if bd:
        t2 = Table(title="Where an FGLA iteration goes")
        t2.add_column("step")
        t2.add_column("ms", justify="right")
        t2.add_column("x FFT floor", justify="right")
        floor = bd["fft_floor"]
        for k, v in bd.items():
            if k in ("fft_floor", "fast_path", "fused_kernels"):
                continue
            t2.add_row(k, f"{v:.3f}", f"{v / floor:.2f}")
        tables.append(t2)
    vr = report.get("vs_references")
    if vr:
        t3 = Table(title=f"{vr['n_iter']} iterations vs the references ({vr['seconds_of_audio']:.1f} s of audio)")
        t3.add_column("")
        t3.add_column("seconds", justify="right")
        t3.add_column("SC dB", justify="right")
        t3.add_column("x specinv fgla time", justify="right")
        me = vr["specinv_fgla"]
        t3.add_row("specinv fgla (random init)", f"{me['seconds']:.3f}", f"{me['sc']:.2f}", "1.00")
        for name in ("librosa", "torchaudio"):
            if name in vr:
                r = vr[name]
                t3.add_row(f"{name} GriffinLim", f"{r['seconds']:.3f}", f"{r['sc']:.2f}",
                           f"{r['seconds'] / me['seconds']:.2f}")
        goal = vr.get("goal")
        if goal:
            for key in ("default", "fgla"):
                got = vr.get(f"{key}_to_goal")
                label = f"{key} to {goal['reference']}'s SC"
                if got is None:
                    t3.add_row(label, "not reached", "", "")
                else:
                    t3.add_row(f"{got['method']} from {got['init']} to {goal['reference']}'s SC "
                               f"({got['iterations']} it.)", f"{got['seconds']:.3f}", f"{got['sc']:.2f}",
                               f"{got['seconds'] / me['seconds']:.2f}")
        tables.append(t3)
    return tables


@click.command("bench", context_settings=CONTEXT)
@click.option("-n", "--iters", type=click.IntRange(min=1), default=100, show_default=True,
              help="Iterations for the comparison with librosa / torchaudio.")
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True,
              help="CPU threads for torch (the same for every contender; librosa's FFT is single-threaded).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--precision", type=click.Choice(["single", "double"]), default="single", show_default=True,
              help="Floating-point precision of the per-iteration timings.")
@click.option("-m", "--methods", default=None, metavar="A,B", help="Iterative methods to time [all].")
@click.option("--quick", is_flag=True, help="Fewer repeats and iterations (rougher figures, a few seconds).")
@click.option("--no-references", is_flag=True, help="Skip the librosa / torchaudio comparison.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of tables.")
def bench(iters, threads, device, precision, methods, quick, no_references, as_json):
    """Time the iterative methods on the bundled example: per iteration against the FFT floor
    (batched rfft + irfft of the same frames), where an FGLA iteration goes, and ITERS
    iterations against librosa's and (when importable) torchaudio's GriffinLim.

    \b
    Examples:
      specinv bench
      specinv bench --quick --json
      specinv bench --threads 4 -m fgla,dm
    """
    from ..algorithms.registry import REGISTRY

    names = None
    if methods:
        names = [s.strip() for s in methods.split(",") if s.strip()]
        bad = [n for n in names if n not in REGISTRY or not REGISTRY[n].iterative]
        if bad:
            click.echo(f"error: --methods: not an iterative method: {', '.join(bad)}", err=True)
            sys.exit(EXIT_USAGE)
    from ..companion import bench as _bench
    from ..api import resolve_device

    try:
        resolve_device(device)
    except (ValueError, RuntimeError) as e:
        click.echo(f"error: --device: {e}", err=True)
        sys.exit(EXIT_USAGE)
    report = _bench.run_bench(iters=iters, threads=threads, device=device, methods=names, quick=quick,
                              references=not no_references, precision=precision)
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    from rich.console import Console

    console = Console()
    for t in _table(report):
        console.print(t)
    m = report["machine"]
    vr = report.get("vs_references") or {}
    for name in ("librosa", "torchaudio"):
        if f"fgla_over_{name}" in vr:
            console.print(f"FGLA time / {name}: {vr[f'fgla_over_{name}']:.2f}x")
    goal = vr.get("goal")
    got = vr.get("default_to_goal")
    if goal and got:
        ref = goal["reference"]
        console.print(f"default method ({got['method']} from {got['init']}) reaches {ref}'s "
                      f"{vr['n_iter']}-iteration SC in {got[f'over_{ref}']:.2f}x {ref}'s time")
    console.print(f"{m['date']} · {m['cpu']} · {m['threads']} threads · torch {m['torch']}")
