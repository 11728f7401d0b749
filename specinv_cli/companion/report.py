"""A self-contained static listening page for a folder of reconstructions. No click here.

Run folder layout (what :func:`scan_run` reads)::

    RUN_DIR/
      reference/<stem>.wav        optional: the original recordings
      target/<stem>.npy|.npz|.pt  optional: the spectrograms that were inverted
      <method>/<stem>.wav         one folder per method (any other folder holding audio files)

``<method>/<stem>_NNN.wav`` matches item NNN of a batched ``target/<stem>.npy`` (``invert``'s
naming). Without targets, each reference's spectrogram (with the same settings) is the target.

The page embeds everything (audio as base64 ``data:`` URIs, or relative links with ``link``;
spectrogram PNGs; CSS and the JavaScript of the sortable table inline): it loads no network
resource and can be mailed or archived as one file.

Example
-------
>>> # build_report("runs/exp1", load_preset("default", explicit=False), "report.html")
"""
from __future__ import annotations

import base64
import html
import math
import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path


from ..io.spectrogram import InputError
from .suite import selected

__all__ = ["ReportItem", "NothingScored", "scan_run", "evaluate_item", "build_report", "render_html"]

REFERENCE_DIR, TARGET_DIR = "reference", "target"


@dataclass
class ReportItem:
    """One row of the page: an item ``stem`` with its reference, target and each method's output."""

    stem: str
    reference: Path | None = None
    target: tuple | None = None          # (path, item index or None)
    outputs: dict = field(default_factory=dict)   # method -> Path
    metrics: dict = field(default_factory=dict)   # method -> {name: value}
    images: dict = field(default_factory=dict)    # "reference"/"target"/method -> PNG bytes
    notes: list = field(default_factory=list)
    #: comparisons refused (:class:`~specinv_cli.companion.analysis.ComparisonError`): one message each
    errors: list = field(default_factory=list)
    domain: str = "linear"


class NothingScored(InputError):
    """Every comparison of a run folder was refused: ``errors`` holds each message (the page is
    not written)."""

    def __init__(self, errors: list):
        self.errors = list(errors)
        more = f" (and {len(errors) - 1} more refused)" if len(errors) > 1 else ""
        super().__init__(None, f"{errors[0]}{more}")


def scan_run(run_dir, targets=None, references=None, methods=None):
    """``(methods, items)`` of a run folder (see the module docstring).

    ``targets``/``references`` override ``RUN_DIR/target`` and ``RUN_DIR/reference``; ``methods``
    (names of subfolders) chooses and orders the methods (default: every other subfolder holding
    audio, sorted). Raises :class:`InputError` when the folder holds no method folder.
    """
    from .analysis import audio_suffixes, index_by_stem, match_stem, spectrogram_suffixes

    run = Path(run_dir)
    if not os.path.exists(run):  # (Path.exists raises on a name too long)
        raise InputError(str(run_dir), "no such folder")
    if not os.path.isdir(run):
        raise InputError(str(run_dir), "is not a folder; give the run folder holding one subfolder per method")
    aud = audio_suffixes()
    tdir = Path(targets) if targets else run / TARGET_DIR
    rdir = Path(references) if references else run / REFERENCE_DIR
    for given, d in ((targets, tdir), (references, rdir)):
        if given and not os.path.isdir(d):
            raise InputError(str(given), "no such folder")
    special = {p.resolve() for p in (tdir, rdir) if os.path.isdir(p)}
    found = [p for p in sorted(run.iterdir()) if p.is_dir() and not p.name.startswith(".")
             and p.resolve() not in special and index_by_stem(p, aud)]
    if methods:
        by_name = {p.name: p for p in found}
        missing = [m for m in methods if m not in by_name]
        if missing:
            raise InputError(str(run_dir), f"no method folder {', '.join(map(repr, missing))} with audio; "
                                           f"found: {', '.join(by_name) or 'none'}")
        found = [by_name[m] for m in methods]
    if not found:
        raise InputError(str(run_dir), "holds no method folder with audio files (expected RUN_DIR/<method>/<stem>.wav)")
    ttable = index_by_stem(tdir, spectrogram_suffixes()) if os.path.isdir(tdir) else {}
    rtable = index_by_stem(rdir, aud) if os.path.isdir(rdir) else {}
    items: dict[str, ReportItem] = {}
    for mdir in found:
        for stem, path in index_by_stem(mdir, aud).items():
            it = items.setdefault(stem, ReportItem(stem))
            it.outputs[mdir.name] = path
    for stem, it in items.items():
        it.target = match_stem(stem, ttable)
        r = match_stem(stem, rtable)
        it.reference = r[0] if r else None
    return [p.name for p in found], [items[k] for k in sorted(items)]


def evaluate_item(it: ReportItem, cfg, methods, *, perceptual=True, metrics=None, images=True, key=None,
                  input_kind="magnitude", scale_invariant=False, options=None):
    """Fill ``it.metrics`` (method -> {name: value}) and ``it.images`` for the outputs ``methods``
    of one item (``metrics``/``perceptual``: the metric groups, as
    :func:`~specinv_cli.companion.analysis.evaluate`). Without a target or a reference, only the
    metrics that need neither (DNSMOS). Every comparison goes through
    :func:`~specinv_cli.companion.analysis.check_comparison` (in :func:`~specinv_cli.companion.analysis.evaluate`); a
    refused one is an error (``it.errors``, and a note on the page); an unreadable output or
    target costs its metrics (a note), not the page."""
    from .analysis import ComparisonError, analyze, check_comparison, evaluate, load_target, read_audio
    from ..io.spectrogram import interpret

    def refused(e):
        it.errors.append(str(e))
        it.notes.append(f"refused: {e}")

    ref_raw = None  # (audio [C, L], rate) as read
    if it.reference is not None:
        try:
            ref_raw = read_audio(it.reference)
        except InputError as e:  # a bad reference costs its metrics, not the page
            it.notes.append(f"reference left out: {e}")
            it.reference = None
    target, tcfg = None, cfg
    if it.target is not None:
        try:
            target, tcfg = load_target(it.target[0], cfg, item=it.target[1], key=key, input_kind=input_kind)
        except InputError as e:
            it.notes.append(f"target left out: {e}")
            it.target = None
    if target is None and ref_raw is not None:
        # the reference's spectrogram is the target: the reference passes the same channel/rate rules
        try:
            chk = check_comparison(ref_raw[0], ref_raw[1], cfg, options=options, source=str(it.reference),
                                   role="reference")
        except ComparisonError as e:
            refused(e)
            ref_raw = None
        else:
            target = interpret(analyze(chk.audio, cfg), "magnitude", cfg.layout, str(it.reference), n_mels=cfg.n_mels)
            tcfg = cfg.with_bins(target.mag.shape[-2], str(it.reference))
            it.notes.append("target: the reference's spectrogram")
            it.notes += chk.notes
    if target is not None:
        it.domain = "mel" if target.mel_features else "linear"
    loaded = {}  # method -> (audio [C, L], rate, compared audio or None), read once for metrics and images
    for m in methods:
        path = it.outputs.get(m)
        if path is None:
            continue
        try:
            audio, sr = read_audio(path)
        except InputError as e:
            it.notes.append(f"{m}: {e}")
            continue
        loaded[m] = (audio, sr, None)
        try:
            ev = evaluate(audio, sr, target, tcfg, reference=ref_raw[0] if ref_raw else None,
                          reference_rate=ref_raw[1] if ref_raw else None, scale_invariant=scale_invariant,
                          perceptual=perceptual, metrics=metrics, options=options, source=str(path),
                          target_source=(str(it.target[0]) if it.target else str(it.reference)) if target is not None else None,
                          reference_source=str(it.reference) if ref_raw else None)
        except ComparisonError as e:
            refused(e)
            continue
        except InputError as e:
            it.notes.append(f"{m}: {e}")
            continue
        if ev.metrics:  # nothing computable (no target, no reference, no non-intrusive metric) is not a score
            it.metrics[m] = ev.metrics
        loaded[m] = (audio, sr, ev.audio if target is not None else None)
        it.notes += [f"{m}: {n}" for n in ev.notes if "left out" not in n or m == methods[0]]
    if images:
        it.images = _images(it, target, tcfg, methods, loaded)


def _images(it, target, cfg, methods, loaded):
    from .plot import estimate_of, display_spectrogram, spectrogram_thumbnail

    out = {}
    if target is not None:
        ref, power, domain = display_spectrogram(target, cfg)
        peak = float(ref.max()) or 1.0
        label = "reference" if it.reference is not None and it.target is None else "target"
        out[label] = spectrogram_thumbnail(ref, cfg, domain, power, peak=peak, title=label)
        n_frames = ref.shape[-1]
    for m in methods:
        if m not in loaded:  # missing or unreadable (noted with the metrics)
            continue
        audio, sr, compared = loaded[m]
        try:
            if target is not None:
                if compared is None:  # refused or not scored: no picture that would pass for a comparison
                    continue
                est = estimate_of(compared, cfg, n_frames, domain)
                out[m] = spectrogram_thumbnail(est, cfg, domain, power, peak=peak, title=m)
            else:  # nothing to compare with: the output's own spectrogram, as 'specinv stft' makes it
                lin = cfg.replace(n_mels=None) if cfg.is_mel else cfg
                from .analysis import magnitude_of, resample

                mono = audio.mean(axis=0) if audio.shape[0] > 1 else audio[0]
                name = str(it.outputs[m])
                mag = magnitude_of(resample(mono, sr, cfg.sample_rate, source=name), lin, name).numpy()
                out[m] = spectrogram_thumbnail(mag, lin, "linear", 1.0, title=m)
        except (InputError, ValueError):
            pass
    return out


def build_report(run_dir, cfg, out_path, *, targets=None, references=None, methods=None, link=False,
                 title=None, perceptual=True, metrics=None, images=True, key=None, input_kind="magnitude",
                 progress=None, scale_invariant=False, options=None, words=None, baseline=None, level=0.95,
                 n_resamples=10000, seed=0) -> dict:
    """Evaluate every output of a run folder and write the listening page to ``out_path``
    (atomically). ``progress(i, n, stem)`` is called before each item.

    ``scale_invariant``: SC/SER after the least-squares gain (as ``evaluate``), said on the page;
    ``options``: :class:`~specinv_cli.companion.analysis.CompareOptions` for the comparisons, which
    :func:`~specinv_cli.companion.analysis.check_comparison` refuses otherwise (length, rate, channels);
    ``words``: how the page words the parameters the messages name in backticks (the CLI passes
    :func:`~specinv_cli.cli.flags.cli_words`; default: as they are).

    Returns ``{"items": n, "methods": [...], "summary": {method: summarize(...)}, "scored": n,
    "errors": [refused comparisons, one message each], "scale_invariant": bool, "bytes": n}``.
    Raises :class:`NothingScored` (nothing written) when comparisons were refused and none was
    made."""
    from .analysis import atomic_write, summarize

    if images:
        from .plot import require_matplotlib

        require_matplotlib()
    names, items = scan_run(run_dir, targets, references, methods)
    if baseline is not None and baseline not in names:  # before the work, not after it
        raise InputError(str(run_dir), f"baseline {baseline!r} is not one of the methods ({', '.join(names)})")
    for i, it in enumerate(items):
        if progress is not None:
            progress(i, len(items), it.stem)
        evaluate_item(it, cfg, names, perceptual=perceptual, metrics=metrics, images=images, key=key,
                      input_kind=input_kind, scale_invariant=scale_invariant, options=options)
    errors = list(dict.fromkeys(e for it in items for e in it.errors))
    scored = sum(len(it.metrics) for it in items)
    if errors and not scored:
        raise NothingScored(errors)
    summary = {m: summarize([it.metrics[m] for it in items if m in it.metrics]) for m in names}
    paired = paired_against(items, names, baseline, level=level, n_resamples=n_resamples, seed=seed)
    groups = selected(metrics, perceptual)
    proto = protocol(cfg, groups, scale_invariant=scale_invariant, level=level, n_resamples=n_resamples, seed=seed,
                     baseline=paired["baseline"] if paired else None)
    if words is not None:
        for it in items:
            it.notes = [words(n) for n in it.notes]
    page = render_html(items, names, summary, cfg, out_dir=Path(out_path).resolve().parent, link=link,
                       title=title or f"specinv report: {Path(run_dir).resolve().name}",
                       scale_invariant=scale_invariant, words=words, paired=paired, protocol=proto)
    with atomic_write(out_path) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return {"items": len(items), "methods": names, "summary": summary, "scored": scored, "errors": errors,
            "scale_invariant": bool(scale_invariant), "bytes": len(page.encode("utf-8")),
            "paired": {"baseline": paired["baseline"],
                       "methods": {m: {k: r.to_dict() for k, r in res.items()} for m, res in paired["results"].items()}}
            if paired else None, "protocol": proto}


def paired_against(items, methods, baseline=None, *, level=0.95, n_resamples=10000, seed=0):
    """Each method against ``baseline`` (default: the first), per metric, over the items scored for
    both (:func:`~specinv_cli.companion.stats.compare_table`): ``{"baseline": name, "results":
    {method: {metric: PairedResult}}}``, or ``None`` with fewer than two methods. Raises
    :class:`InputError` for a ``baseline`` that is not one of ``methods``."""
    from .stats import compare_table
    from .suite import METRICS

    if len(methods) < 2:
        return None
    base = methods[0] if baseline is None else baseline
    if base not in methods:
        raise InputError(None, f"baseline {base!r} is not one of the methods ({', '.join(methods)})")
    rows = {m: {it.stem: it.metrics[m] for it in items if m in it.metrics} for m in methods}
    directions = {k: METRICS[k].higher_is_better for k in METRICS if any(k in r for d in rows.values() for r in d.values())}
    return {"baseline": base, "results": {m: compare_table(rows[base], rows[m], directions, level=level,
                                                           n_resamples=n_resamples, seed=seed)
                                          for m in methods if m != base}}


def protocol(cfg, groups, *, scale_invariant=False, level=0.95, n_resamples=10000, seed=0, baseline=None) -> dict:
    """What a page (or a paper's supplementary material) must state: the settings, the metrics with
    their direction, reference and gain behaviour, the statistics, and every version involved."""
    import platform
    from datetime import datetime, timezone
    from importlib import metadata

    from .._version import __version__
    from .perceptual import versions
    from .suite import protocol_lines

    vers = {"specinv": __version__, "python": platform.python_version()}
    for pkg in ("torch", "numpy", "scipy", "librosa", "soxr"):
        try:
            vers[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            vers[pkg] = None
    vers.update(versions())
    settings = {k: v for k, v in cfg.to_dict().items() if v is not None}
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "versions": vers, "settings": settings,
            "scale_invariant": bool(scale_invariant), "metric_groups": list(groups),
            "metrics": protocol_lines(groups, scale_invariant=scale_invariant),
            "statistics": (f"paired over the items scored for both methods: mean and median of the difference "
                           f"(method - {baseline or 'baseline'}) with {round(level * 100, 1):g}% BCa bootstrap intervals "
                           f"({n_resamples} resamples, seed {seed}); two-sided Wilcoxon signed-rank and sign tests; "
                           f"significant when the Wilcoxon p < {1 - level:.3g} (not corrected for the number of metrics)")}


# --- HTML ---------------------------------------------------------------------------------
_CSS = """
:root{--fg:#1d1d1f;--mut:#666;--bd:#d8d8de;--bg:#fafafa;--acc:#2457c5}
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg);
background:var(--bg);margin:0;padding:20px 28px}h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;
border-top:1px solid var(--bd);padding-top:16px}.mut{color:var(--mut)}table{border-collapse:collapse;background:#fff;
margin:8px 0}th,td{border:1px solid var(--bd);padding:4px 9px;text-align:right;white-space:nowrap}
th{background:#f0f1f5;cursor:pointer;user-select:none}th:first-child,td:first-child,th.txt,td.txt{text-align:left}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.best{font-weight:700;color:var(--acc)}.grid{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid var(--bd);border-radius:6px;padding:8px;width:420px}
.card h3{font-size:14px;margin:0 0 6px;display:flex;justify-content:space-between}.card img{width:100%;display:block}
audio{width:100%;margin:4px 0}.m{font-size:12px;color:var(--mut)}.dur{font-size:12px;color:var(--mut);font-weight:400}
.notes{font-size:12px;color:var(--mut);margin:4px 0 0 0}
"""

_JS = r"""
(function(){
  // sortable tables: click a header; numbers sort numerically, empty cells last
  document.querySelectorAll('table.sortable').forEach(function(t){
    t.querySelectorAll('th').forEach(function(th,col){
      th.addEventListener('click',function(){
        var asc=th.getAttribute('aria-sort')!=='ascending';
        t.querySelectorAll('th').forEach(function(h){h.removeAttribute('aria-sort')});
        th.setAttribute('aria-sort',asc?'ascending':'descending');
        var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows);
        rows.sort(function(a,b){
          var x=a.cells[col].getAttribute('data-v'),y=b.cells[col].getAttribute('data-v');
          if(x===null||x==='')return 1; if(y===null||y==='')return -1;
          var nx=parseFloat(x),ny=parseFloat(y),r;
          r=(!isNaN(nx)&&!isNaN(ny))?nx-ny:String(x).localeCompare(String(y));
          return asc?r:-r;});
        rows.forEach(function(r){body.appendChild(r)});
      });
    });
  });
  // each player shows its duration once the audio has loaded (and records it for tests)
  document.querySelectorAll('audio').forEach(function(a){
    function done(){a.setAttribute('data-duration',String(a.duration));
      var s=document.getElementById(a.id+'-dur'); if(s&&isFinite(a.duration))s.textContent=a.duration.toFixed(2)+' s';}
    function fail(){a.setAttribute('data-error','1');var s=document.getElementById(a.id+'-dur');if(s)s.textContent='(cannot load)';}
    a.addEventListener('loadedmetadata',done); a.addEventListener('error',fail);
    if(a.readyState>=1)done();
  });
})();
"""


_THREE_DIGITS = ("pesq", "stoi", "visqol", "visqol_audio", "dnsmos", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808",
                 "periodicity", "vuv_f1")


def _fmt(name, v):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return f"{v:.3f}" if name in _THREE_DIGITS else f"{v:.1f}" if name == "f0_rmse" else f"{v:.2f}"


def _protocol_html(proto: dict) -> str:
    """The protocol block: settings, metrics, statistics, versions (as text a paper can quote)."""
    e = html.escape
    vers = ", ".join(f"{k} {v}" for k, v in proto["versions"].items() if v)
    missing = [k for k, v in proto["versions"].items() if not v]
    sett = ", ".join(f"{k} {v}" for k, v in proto["settings"].items())
    items = [f"<li><b>Settings</b>: {e(sett)}.</li>",
             f"<li><b>SC</b>: {'scale-invariant (after the least-squares gain)' if proto['scale_invariant'] else 'as written (scale-sensitive)'}.</li>",
             "<li><b>Metrics</b>:<ul>" + "".join(f"<li>{e(m)}</li>" for m in proto["metrics"]) + "</ul></li>",
             f"<li><b>Statistics</b>: {e(proto['statistics'])}.</li>",
             f"<li><b>Versions</b>: {e(vers)}{e('; not installed: ' + ', '.join(missing)) if missing else ''}.</li>",
             f"<li><b>Date</b>: {e(proto['date'])}.</li>"]
    return '<h2>Protocol</h2><ul id="protocol" class="mut">' + "".join(items) + "</ul>"


def _paired_html(paired: dict, dom: str) -> str:
    """One table: each method against the baseline, per metric."""
    from .suite import METRICS

    e = html.escape
    base = paired["baseline"]
    rows = []
    for m, res in paired["results"].items():
        for k, r in res.items():
            info = METRICS[k]
            lab = f"{dom if k in ('sc', 'snr', 'ser') else ''}{info.label}{' (' + info.unit + ')' if info.unit else ''}"
            sig = r.better is not None
            who = "" if not sig else (m if r.better == "b" else base)
            p = "" if r.p_wilcoxon is None or not math.isfinite(r.p_wilcoxon) else f"{r.p_wilcoxon:.2g}"
            rows.append(f'<tr><td class="txt" data-v="{e(m)}">{e(m)}</td><td class="txt" data-v="{e(lab)}">{e(lab)} '
                        f'{"&uarr;" if info.higher_is_better else "&darr;"}</td><td data-v="{r.n}">{r.n}</td>'
                        f'<td data-v="{r.mean_diff}">{_fmt(k, r.mean_diff)}</td>'
                        f'<td>[{_fmt(k, r.ci[0])}, {_fmt(k, r.ci[1])}]</td><td data-v="{r.median_diff}">{_fmt(k, r.median_diff)}</td>'
                        f'<td data-v="{r.p_wilcoxon}">{p}</td><td class="txt{" best" if sig else ""}" data-v="{e(who)}">'
                        f'{e(who) + " *" if sig else "no significant difference"}</td></tr>')
    level = next((r.level for res in paired["results"].values() for r in res.values()), 0.95)
    return (f'<h2>Paired comparison against {e(base)}</h2><p class="mut">Difference = method - {e(base)} over the items '
            f'scored for both; {round(level * 100, 1):g}% bootstrap interval of the mean difference; * significant '
            f'(Wilcoxon signed-rank p &lt; {1 - level:.3g}).</p><table class="sortable" id="paired"><thead><tr>'
            '<th class="txt">method</th><th class="txt">metric</th><th>n</th><th>mean diff</th><th>CI</th>'
            '<th>median diff</th><th>p</th><th class="txt">better</th></tr></thead><tbody>' + "".join(rows) +
            "</tbody></table>")


def _audio_src(path: Path, out_dir: Path, link: bool) -> str:
    if link:
        rel = os.path.relpath(Path(path).resolve(), out_dir)
        return urllib.parse.quote(rel.replace(os.sep, "/"))
    mime = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".mp3": "audio/mpeg",
            ".opus": "audio/ogg", ".oga": "audio/ogg"}.get(Path(path).suffix.lower(), "audio/wav")
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


#: What the page says on top about the SC it shows (``scale_invariant`` True / False).
SC_MODE = {
    True: "SC shown: scale-invariant, after the least-squares gain between each output's spectrogram and "
          "its target (`scale_invariant`); a level error does not count.",
    False: "SC shown: of each file as written (scale-sensitive: an output with the wrong level, e.g. one "
           "that invert peak-normalised, scores worse; `scale_invariant` removes the gain).",
}


def render_html(items, methods, summary, cfg, *, out_dir, link=False, title="specinv report",
                scale_invariant=False, words=None, paired=None, protocol=None) -> str:
    """The page as a string (see :func:`build_report`)."""
    from .._version import __version__
    from .analysis import METRIC_INFO

    e = html.escape
    present = [k for k in METRIC_INFO if any(k in md for it in items for md in it.metrics.values())]
    domains = {it.domain for it in items if it.metrics}
    dom = "mel " if domains == {"mel"} else ""
    heads = "".join(
        f'<th title="{"higher" if METRIC_INFO[k][2] else "lower"} is better">'
        f'{dom if k in ("sc", "snr", "ser") else ""}{METRIC_INFO[k][0]}'
        f'{" (" + METRIC_INFO[k][1] + ")" if METRIC_INFO[k][1] else ""} {"&uarr;" if METRIC_INFO[k][2] else "&darr;"}</th>'
        for k in present)
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{e(title)}</h1>",
           f'<p id="sc-mode" data-scale-invariant="{str(bool(scale_invariant)).lower()}">'
           f"<b>{e((words or str)(SC_MODE[bool(scale_invariant)]))}</b></p>",
           f'<p class="mut">{len(items)} item(s), {len(methods)} method(s): {e(", ".join(methods))}. '
           f"Settings: n_fft {cfg.n_fft}, hop {cfg.hop_length}, {cfg.sample_rate} Hz"
           f"{', ' + str(cfg.n_mels) + ' mels' if cfg.is_mel else ''}. "
           f"SC/SNR/SER against the target spectrogram ({dom or 'linear '}domain); LSD, MCD, PESQ, STOI, ViSQOL and the "
           f"F0 metrics against the reference recording; DNSMOS needs none. Made by specinv {e(__version__)}. Click a column header to sort.</p>"]
    if protocol:
        out.append(_protocol_html(protocol))
    # summary per method
    if present:
        out.append('<h2>Summary (median over items)</h2><table class="sortable" id="summary"><thead><tr>'
                   f'<th class="txt">method</th><th>items</th>{heads}</tr></thead><tbody>')
        best = {}
        for k in present:
            vals = [(summary[m]["median"].get(k), m) for m in methods if summary[m]["median"].get(k) is not None]
            if vals:
                best[k] = (max if METRIC_INFO[k][2] else min)(vals)[1]
        for m in methods:
            med = summary[m]["median"]
            n = max(summary[m]["count"].values(), default=0)
            cells = "".join(f'<td data-v="{med.get(k, "")}"{" class=best" if best.get(k) == m else ""}>'
                            f'{_fmt(k, med.get(k))}</td>' for k in present)
            out.append(f'<tr><td class="txt" data-v="{e(m)}">{e(m)}</td><td data-v="{n}">{n}</td>{cells}</tr>')
        out.append("</tbody></table>")
        if paired:
            out.append(_paired_html(paired, dom))
        # every item x method
        out.append('<h2>All results</h2><table class="sortable" id="metrics"><thead><tr><th class="txt">item</th>'
                   f'<th class="txt">method</th>{heads}</tr></thead><tbody>')
        for it in items:
            for m in methods:
                md = it.metrics.get(m)
                if md is None:
                    continue
                cells = "".join(f'<td data-v="{md.get(k, "")}">{_fmt(k, md.get(k))}</td>' for k in present)
                out.append(f'<tr><td class="txt" data-v="{e(it.stem)}"><a href="#item-{e(it.stem)}">{e(it.stem)}</a></td>'
                           f'<td class="txt" data-v="{e(m)}">{e(m)}</td>{cells}</tr>')
        out.append("</tbody></table>")
    # per item: players and spectrograms
    n_audio = 0
    for it in items:
        out.append(f'<h2 id="item-{e(it.stem)}">{e(it.stem)}</h2><div class="grid">')
        cards = []
        if it.reference is not None:
            cards.append(("reference", it.reference, None))
        elif "target" in it.images:
            cards.append(("target", None, None))
        cards += [(m, it.outputs[m], it.metrics.get(m)) for m in methods if m in it.outputs]
        for label, path, md in cards:
            img_key = label if label in it.images else ("target" if label == "reference" and "target" in it.images else None)
            parts = [f'<div class="card"><h3>{e(label)}']
            aid = None
            if path is not None:
                n_audio += 1
                aid = f"a{n_audio}"
                parts.append(f'<span class="dur" id="{aid}-dur"></span>')
            parts.append("</h3>")
            if path is not None:
                parts.append(f'<audio id="{aid}" controls preload="metadata" src="{_audio_src(path, out_dir, link)}"></audio>')
            if img_key:
                parts.append(_img(it.images[img_key], f"{label} spectrogram"))
            if md:
                parts.append('<div class="m">' + " &middot; ".join(
                    f"{METRIC_INFO[k][0]} {_fmt(k, md[k])}{(' ' + METRIC_INFO[k][1]) if METRIC_INFO[k][1] else ''}"
                    for k in present if k in md) + "</div>")
            parts.append("</div>")
            cards_html = "".join(parts)
            out.append(cards_html)
        out.append("</div>")
        notes = [n for n in dict.fromkeys(it.notes)]
        if notes:
            out.append('<p class="notes">' + "<br>".join(e(n) for n in notes) + "</p>")
    out.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(out)
