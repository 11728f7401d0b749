"""Pictures: spectrograms (target, reconstruction, difference) and convergence curves, as PNG.

matplotlib is an optional extra (``pip install 'specinv-cli[plot]'``); it is imported inside the
functions and used without pyplot (a ``Figure`` on the Agg canvas: no global state, no display).
Axes read in seconds and Hz; mel spectrograms keep their band spacing, labelled in Hz.

Example
-------
>>> import numpy as np, tempfile, os
>>> from specinv_cli.config import STFTConfig
>>> from specinv_cli.companion.analysis import analyze
>>> from specinv_cli.io.spectrogram import interpret
>>> cfg = STFTConfig()
>>> x = np.random.default_rng(0).standard_normal(22050).astype(np.float32) * 0.1
>>> path = os.path.join(tempfile.mkdtemp(), "spec.png")
>>> info = spectrogram_png(path, interpret(analyze(x, cfg)), cfg, [("same", x, 22050)])
>>> info["panels"], open(path, "rb").read(4) == b"\\x89PNG"
(3, True)
"""
from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io.spectrogram import InputError

__all__ = ["MissingMatplotlib", "require_matplotlib", "Curve", "to_db", "display_spectrogram",
           "spectrogram_png", "spectrogram_thumbnail", "convergence_png", "load_history", "run_convergence",
           "paired_differences_png"]


#: PNG text chunks: matplotlib's default names its web site; the report must hold no URL at all.
_PNG_META = {"Software": None}


class MissingMatplotlib(RuntimeError):
    """matplotlib is not installed (the ``plot`` extra)."""


def require_matplotlib():
    import os

    # Figures are drawn on the Agg canvas: the display backend is never used, and an invalid
    # MPLBACKEND would stop the import itself.
    backend = os.environ.pop("MPLBACKEND", None)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingMatplotlib("plots need matplotlib: pip install 'specinv-cli[plot]'") from None
    except Exception as e:  # a broken matplotlibrc or environment: the user's to fix
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise MissingMatplotlib(f"matplotlib cannot be imported ({type(e).__name__}: {first})") from None
    finally:
        if backend is not None:
            os.environ["MPLBACKEND"] = backend


@dataclass
class Curve:
    """One line of a convergence plot: ``values[i]`` of the metric after ``iterations[i]``."""

    label: str
    iterations: list
    values: list
    metric: str = "sc"
    domain: str = "linear"
    #: non-iterative methods: one value, drawn as a horizontal line
    flat: bool = False
    extra: dict = field(default_factory=dict)


# --- spectrogram values -------------------------------------------------------------------
def to_db(x, power: float = 1.0, ref: float | None = None, top_db: float = 80.0) -> np.ndarray:
    """``(20 / power) log10(x / ref)`` floored at ``-top_db`` (``ref`` default: ``max(x)``).

    ``power`` is what ``x`` is of the amplitude: 1 for magnitudes, 2 for powers (a power mel)."""
    x = np.asarray(x, dtype=np.float64)
    ref = float(ref if ref is not None else x.max())
    ref = ref if ref > 0 else 1.0
    floor = ref * 10 ** (-top_db * power / 20)
    return (20.0 / power) * np.log10(np.maximum(x, floor) / ref)


def display_spectrogram(target, cfg):
    """``(values [F, T] >= 0, power, domain)``: the target's linear magnitude, or its decoded mel."""
    import torch

    if target.mel_features:
        from ..dsp.mel import decode

        return decode(target.mag.to(torch.float64), cfg).numpy(), float(cfg.mel_power), "mel"
    return target.mag.to(torch.float64)[: cfg.n_fft // 2 + 1].numpy(), 1.0, "linear"


def estimate_of(audio, cfg, n_frames, domain):
    """The output's spectrogram in the target's domain, ``n_frames`` frames. ``audio`` is what
    :func:`~specinv_cli.companion.analysis.check_comparison` passed: ``[L]`` at the settings' rate."""
    import torch

    from ..api import spectrogram_of
    from ..dsp.stft import STFT

    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    est = spectrogram_of(torch.from_numpy(audio.astype(np.float64)), STFT(cfg, dtype=torch.float64), n_frames)
    if domain == "mel":
        from ..dsp.mel import MelTransform

        est = MelTransform(cfg, dtype=torch.float64)(est)
    return est.numpy()


def _freq_axis(cfg, domain, n_rows):
    """Centre frequency in Hz of each row."""
    if domain == "mel":
        from ..dsp.mel import mel_frequencies

        return mel_frequencies(cfg.n_mels + 2, cfg.fmin, cfg.effective_fmax, cfg.mel_scale).numpy()[1:-1]
    return np.arange(n_rows) * cfg.sample_rate / cfg.n_fft


def _draw(fig, ax, values, cfg, domain, title, *, cmap="magma", vmin=None, vmax=None, unit="dB"):
    """One spectrogram panel with time in seconds and frequency in Hz."""
    n_rows, n_frames = values.shape
    hop_s = cfg.hop_length / cfg.sample_rate
    # frame t covers its hop around the time of its centre (t * hop, or t * hop + hop / 2 when the
    # frames are not centred but padded by (n_fft - hop) / 2 as HiFi-GAN does)
    t0 = 0.0 if cfg.center else (cfg.n_fft / 2 - cfg.pad) / cfg.sample_rate
    extent_t = (t0 - hop_s / 2, t0 + (n_frames - 0.5) * hop_s)
    freqs = _freq_axis(cfg, domain, n_rows)
    if domain == "mel":
        im = ax.imshow(values, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                       extent=(*extent_t, -0.5, n_rows - 0.5), interpolation="nearest")
        # mel bands keep their spacing; ticks at round frequencies, placed by interpolation
        ticks = [f for f in (0, 100, 250, 500, 1000, 2000, 4000, 8000, 16000) if freqs[0] <= f <= freqs[-1]]
        ax.set_yticks(np.interp(ticks, freqs, np.arange(n_rows)))
        ax.set_yticklabels([f"{f:g}" if f < 1000 else f"{f / 1000:g}k" for f in ticks])
        ax.set_ylabel("Hz (mel scale)")
    else:
        df = cfg.sample_rate / cfg.n_fft
        im = ax.imshow(values, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                       extent=(*extent_t, -df / 2, freqs[-1] + df / 2), interpolation="nearest")
        ax.set_ylabel("Hz")
        from matplotlib.ticker import EngFormatter

        ax.yaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_xlabel("time (s)")
    ax.set_title(title, fontsize=10, loc="left")
    cb = fig.colorbar(im, ax=ax, pad=0.01, fraction=0.04)
    cb.set_label(unit)
    return im


def _figure(width, height, dpi=100):
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, dpi=None):
    from .analysis import atomic_write

    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata=_PNG_META)


def spectrogram_png(path, target, cfg, outputs=(), *, title: str | None = None, top_db: float = 80.0,
                    diff_range: float = 20.0, dpi: int = 100, options=None, target_source: str | None = None) -> dict:
    """Write a PNG: the target spectrogram, then for each output its spectrogram and the difference.

    Parameters
    ----------
    target : :class:`~specinv_cli.io.spectrogram.Target` of one item ``[F, T]`` (linear or mel features).
    cfg : the settings the target was made with (``with_bins`` is applied here).
    outputs : ``(label, audio [L] or [C, L], sample_rate[, source])`` reconstructions; each gives
        two panels: its spectrogram in the target's domain, and ``dB(output) - dB(target)`` clipped
        to ``+-diff_range`` (both relative to the target's peak, so level errors show). Each goes
        through :func:`~specinv_cli.companion.analysis.check_comparison` first (``source``, default the
        label, names it in the messages): a length the target's frames do not explain, another
        sample rate or several channels are refused unless ``options``
        (:class:`~specinv_cli.companion.analysis.CompareOptions`) asks for them deliberately.
    top_db : dynamic range shown.

    Returns ``{"panels": n, "sc": [SC of each output in dB], "notes": [what was done
    deliberately], "adjusted": [Checked.adjusted of each output]}``. Nothing is written when an
    output is refused.
    """
    from .analysis import check_comparison
    from ..dsp.metrics import sc
    import torch

    cfg = cfg.with_bins(target.mag.shape[-2], target_source or "target")
    ref, power, domain = display_spectrogram(target, cfg)
    n_frames = ref.shape[-1]
    checked = []  # every output is checked before anything is drawn
    for out in outputs:
        label, audio, sr = out[:3]
        src = out[3] if len(out) > 3 else label
        checked.append((label, check_comparison(audio, sr, cfg, n_frames=n_frames, options=options, source=src,
                                                target_source=target_source)))
    peak = float(ref.max()) or 1.0
    ref_db = to_db(ref, power, peak, top_db)
    n = 1 + 2 * len(outputs)
    fig = _figure(10, 2.6 * n, dpi)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    what = "mel spectrogram" if domain == "mel" else "magnitude"
    _draw(fig, axes[0], ref_db, cfg, domain, f"target {what}" + (f": {title}" if title else ""),
          vmin=-top_db, vmax=0)
    scs = []
    for k, (label, chk) in enumerate(checked):
        est = estimate_of(chk.audio, cfg, n_frames, domain)
        s = float(sc(torch.from_numpy(est), torch.from_numpy(ref)))
        scs.append(s)
        est_db = to_db(est, power, peak, top_db)
        _draw(fig, axes[1 + 2 * k], est_db, cfg, domain, f"{label}: reconstruction (SC {s:.1f} dB)",
              vmin=-top_db, vmax=0)
        _draw(fig, axes[2 + 2 * k], np.clip(est_db - ref_db, -diff_range, diff_range), cfg, domain,
              f"{label}: difference, reconstruction - target", cmap="RdBu_r", vmin=-diff_range,
              vmax=diff_range, unit="dB difference")
    for ax in axes[:-1]:
        ax.set_xlabel("")
    _save(fig, path)
    return {"panels": n, "sc": scs, "notes": [f"{label}: {nt}" for label, chk in checked for nt in chk.notes],
            "adjusted": [chk.adjusted for _, chk in checked]}


def spectrogram_thumbnail(values, cfg, domain, power=1.0, *, peak=None, title="", top_db=80.0,
                          size=(6.0, 2.2), dpi=80) -> bytes:
    """PNG bytes of one spectrogram panel (``values`` linear magnitude or mel ``[F, T]``), for reports."""
    fig = _figure(*size, dpi)
    ax = fig.subplots()
    _draw(fig, ax, to_db(values, power, peak, top_db), cfg, domain, title, vmin=-top_db, vmax=0)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata=_PNG_META)
    return buf.getvalue()


# --- convergence --------------------------------------------------------------------------
def load_history(path) -> list[Curve]:
    """Curves from an ``invert --history FILE.json`` file.

    Format: ``{"items": [{"input", "item", "output", "method", "domain", "history":
    [{"iteration": 10, "sc": -20.1, "snr": ..., "ser": ...}, ...]}, ...]}`` (one curve per item).
    Raises :class:`InputError` naming the file when it is not such a file.
    """
    name = str(path)
    p = Path(path)
    if not os.path.isfile(p):
        raise InputError(name, "no such file" if not os.path.exists(p) else "is not a file")
    from ..util.limits import check_bytes

    # parsed JSON takes tens of times its text in Python objects
    check_bytes(name, 40 * p.stat().st_size, None, "reading this history file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(name, f"cannot read: {getattr(e, 'strerror', None) or e}") from None
    except json.JSONDecodeError as e:
        raise InputError(name, f"not valid JSON ({e})") from None
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise InputError(name, 'not a history file: expected {"items": [...]} as written by specinv invert --history')
    curves = []
    for k, it in enumerate(items):
        hist = it.get("history") if isinstance(it, dict) else None
        if not isinstance(hist, list):
            raise InputError(name, f"item {k} has no 'history' list")
        pts = [h for h in hist if isinstance(h, dict) and "iteration" in h]
        label = str(it.get("method") or "?")
        src = it.get("input")
        curves.append(Curve(label, [int(h["iteration"]) for h in pts], pts, domain=str(it.get("domain") or "linear"),
                            extra={"input": src, "item": it.get("item"), "file": name}))
    if not curves:
        raise InputError(name, "holds no items")
    return curves


def select_metric(curves: list[Curve], metric: str, source: str | None = None) -> list[Curve]:
    """Curves whose ``values`` are the points' ``metric`` (points without it dropped)."""
    out = []
    for c in curves:
        pts = c.values
        if pts and isinstance(pts[0], dict):
            keep = [(i, h[metric]) for i, h in zip(c.iterations, pts) if isinstance(h.get(metric), (int, float))]
            if pts and not keep:
                raise InputError(source or c.extra.get("file"), f"its history has no {metric!r} values")
            c = Curve(c.label, [i for i, _ in keep], [float(v) for _, v in keep], metric, c.domain, c.flat, c.extra)
        out.append(c)
    return out


def run_convergence(target, cfg, methods, *, n_iter=100, eval_every=5, init="pghi", seed=0, device="cpu",
                    source=None) -> list[Curve]:
    """Invert ``target`` (one item) with each of ``methods`` and record SC/SNR/SER every
    ``eval_every`` iterations (:func:`specinv_cli.api.invert`'s ``history``, where each value is a
    list over the batch); the last point is the metric of the audio returned. Non-iterative
    methods give a flat curve at their final value."""
    from ..algorithms.registry import get_method
    from ..api import invert

    curves = []
    for name in methods:
        m = get_method(name)
        res = invert(target, method=name, config=cfg, n_iter=n_iter, init=init, seed=seed, device=device,
                     eval_every=eval_every, callback=lambda p: None, source=source)
        label = f"{name} [{init}]" if m.iterative else name
        final = {k: float(v.reshape(-1)[0]) for k, v in res.metrics.items()}
        if m.iterative and res.history:
            pts = [{"iteration": h["iteration"], **{k: (v[0] if isinstance(v, list) else v)
                                                   for k, v in h.items() if k != "iteration"}}
                   for h in res.history]
            # the last point is the returned audio's own metric (what `invert` and `eval` report),
            # which can differ slightly from the algorithm's last internal estimate
            if pts and pts[-1]["iteration"] == res.iterations:
                pts.pop()
            pts.append({"iteration": res.iterations, **final})
            curves.append(Curve(label, [p["iteration"] for p in pts], pts, domain=res.domain, extra={"final": final}))
        else:
            curves.append(Curve(label, [0], [{"iteration": 0, **final}], domain=res.domain, flat=True,
                                extra={"final": final}))
    return curves


def convergence_png(path, curves: list[Curve], metric: str = "sc", *, title: str | None = None, dpi: int = 100) -> dict:
    """Write a PNG of ``metric`` (dB) against iteration, one line per curve (after
    :func:`select_metric`). Flat curves (non-iterative methods) are dashed horizontal lines."""
    from .analysis import METRIC_INFO

    curves = select_metric(curves, metric)
    fig = _figure(8, 4.5, dpi)
    ax = fig.subplots()
    last = max([max(c.iterations) for c in curves if c.iterations and not c.flat] or [1])
    for k, c in enumerate(curves):
        if not c.values:
            continue
        color = f"C{k % 10}"
        if c.flat:
            ax.axhline(c.values[-1], linestyle="--", linewidth=1.2, color=color,
                       label=f"{c.label} ({c.values[-1]:.1f})")
        else:
            ax.plot(c.iterations, c.values, marker="o", markersize=2.5, linewidth=1.4, color=color,
                    label=f"{c.label} ({c.values[-1]:.1f})")
    lab, unit, higher = METRIC_INFO.get(metric, (metric.upper(), "dB", False))
    domains = {c.domain for c in curves}
    dom = "mel " if domains == {"mel"} else ""
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"{dom}{lab} ({unit}), {'higher' if higher else 'lower'} is better")
    ax.set_xlim(0, last)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title or f"{dom}{lab} vs iteration", fontsize=10, loc="left")
    _save(fig, path)
    return {"curves": len(curves), "final": {c.label: (c.values[-1] if c.values else math.nan) for c in curves}}


def paired_differences_png(path, results: dict, diffs: dict, *, labels=("A", "B"), title: str | None = None,
                           dpi: int = 100) -> dict:
    """Write a PNG of the per-item differences ``B - A``, one small panel per metric of ``results``.

    ``results``: metric -> :class:`~specinv_cli.companion.stats.PairedResult`; ``diffs``: metric ->
    {item: B - A} (non-finite values left out). In each panel the items are dots sorted by their
    difference, coloured by the run they favour; the line at 0; the mean difference with its
    interval as a band, in the better run's colour and filled when the difference is significant
    (grey otherwise); the metric's direction as "B better" / "A better" on the side of 0 where each
    run wins. With fewer than 2 pairs the panel says so and has no band.

    Returns ``{"path": str, "metrics": [metric of each panel], "significant": [those significant]}``.
    """
    from .suite import METRICS

    names = list(results)
    if not names:
        raise ValueError("no metric to plot")
    if len(labels) != 2:
        raise ValueError(f"labels must be two names (A, B), got {labels!r}")
    la, lb = (str(v) for v in labels)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig = _figure(3.6 * cols, 2.7 * rows + 0.35, dpi)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    # the run each colour stands for, as in a legend: A blue, B orange
    run_color = {"a": "C0", "b": "C1"}
    for ax, k in zip(axes, names):
        r = results[k]
        m = METRICS.get(k)
        higher = bool(r.higher_is_better)
        v = np.asarray([x for x in (diffs.get(k) or {}).values()
                        if isinstance(x, (int, float, np.number)) and math.isfinite(x)], dtype=np.float64)
        v.sort()
        b_wins = v > 0 if higher else v < 0
        dot = np.where(v == 0, "0.55", np.where(b_wins, run_color["b"], run_color["a"]))
        ax.axhline(0, color="0.3", linewidth=0.8, zorder=1)
        sig = bool(r.significant) and r.better in run_color
        band = run_color[r.better] if sig else "0.6"
        if r.n >= 2 and all(math.isfinite(c) for c in r.ci):
            ax.axhspan(r.ci[0], r.ci[1], color=band, alpha=0.3 if sig else 0.15, linewidth=0, zorder=0)
            ax.axhline(r.mean_diff, color=band if sig else "0.35", linewidth=1.4, zorder=2)
        if v.size:
            ax.scatter(np.arange(1, v.size + 1), v, s=12 if v.size <= 100 else 4, c=list(dot), zorder=3,
                       linewidths=0)
            ax.set_xlim(0.3, v.size + 0.7)
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if r.n < 2:
            ax.text(0.5, 0.5, f"n = {r.n}: too few pairs for an interval", transform=ax.transAxes,
                    ha="center", va="center", fontsize=8, color="0.3")
        # which side of 0 each run wins on
        up, down = (lb, la) if higher else (la, lb)
        kw = dict(transform=ax.transAxes, fontsize=7, ha="right", color="0.25")
        ax.text(0.98, 0.97, f"\u2191 {up} better", va="top", **kw)
        ax.text(0.98, 0.03, f"\u2193 {down} better", va="bottom", **kw)
        if v.size:      # keep 0 in view, so the direction reads at a glance
            lo, hi = min(0.0, v[0], r.ci[0] if r.n >= 2 else 0.0), max(0.0, v[-1], r.ci[1] if r.n >= 2 else 0.0)
            pad = 0.12 * (hi - lo) if hi > lo else 1.0
            ax.set_ylim(lo - pad, hi + pad)
        label = (f"{m.label}{' ' + m.unit if m.unit else ''}" if m else k) + (" \u2191" if higher else " \u2193")
        verdict = f"{lb if r.better == 'b' else la} better *" if sig else "no significant difference"
        p = f", p={r.p_wilcoxon:.2g}" if math.isfinite(r.p_wilcoxon) else ""
        ax.set_title(f"{label}: {verdict}\nn={r.n}{p}", fontsize=8, loc="left",
                     fontweight="bold" if sig else "normal")
        ax.set_xlabel("items, sorted by difference", fontsize=7)
        ax.set_ylabel(f"{lb} - {la}", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.25)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    fig.suptitle(title or f"{lb} - {la} per item (band: mean difference and its interval)", fontsize=10)
    _save(fig, path)
    return {"path": str(path), "metrics": names, "significant": [k for k in names if results[k].significant]}
