"""``specinv compare``: two runs, the same items, every metric, with confidence intervals."""
from __future__ import annotations

import math

import click

from .common import (CONTEXT, Run, common_flags, compare_options, comparison, interrupted, metric_groups, print_table,
                     read_options, run_config, setting_files)
from .flags import cli_words, settings_options


@click.command("compare", context_settings=CONTEXT, short_help="Paired comparison of two runs: differences, CIs, tests.")
@click.argument("run_a", type=click.Path())
@click.argument("run_b", type=click.Path())
@click.option("-r", "--reference", type=click.Path(), help="Folder of the original recordings, matched by name: the reference-based metrics (LSD, MCD, PESQ, STOI, ViSQOL, F0), and the target when --target is not given.")
@click.option("-t", "--target", type=click.Path(), help="Folder of the spectrograms the outputs were made from, matched by name: SC/SNR/SER [the reference's spectrogram].")
@click.option("--metrics", metavar="G,G,...", help="Metric groups: spectral, lsd, mcd, pesq, stoi, visqol, visqol-audio, dnsmos, f0 [all installed].")
@click.option("--no-perceptual", is_flag=True, help="Skip the model-based metrics (PESQ, STOI, ViSQOL, DNSMOS, F0).")
@click.option("--scale-invariant", is_flag=True, help="SC/SER after the least-squares gain between output and target (as 'eval --scale-invariant').")
@click.option("--labels", metavar="A,B", help="Names of the two runs in the table [the folder names].")
@click.option("--level", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True, help="Confidence level of the intervals; a difference is significant when the Wilcoxon test's p < 1 - level.")
@click.option("--resamples", type=click.IntRange(min=100), default=10000, show_default=True, help="Bootstrap resamples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap (the same seed gives the same intervals).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write a PNG of the per-item differences (needs matplotlib).")
@compare_options
@read_options
@settings_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per item (both runs' metrics), then one with the comparison, on stdout.")
@common_flags
def compare(run_a, run_b, reference, target, metrics, no_perceptual, scale_invariant, labels, level, resamples, seed,
            plot_path, truncate, resample, channel, mixdown, key, input_kind, as_json, quiet, debug, config_name, **flags):
    """Compare two runs item by item: is B better than A, and by more than noise?

    RUN_A and RUN_B are folders of outputs (<stem>.wav); items are matched by name (an item in
    one run only is listed and left out). Each pair is scored like 'specinv eval' and 'specinv
    report' score (same target, same reference, same checks). Per metric: the mean of both runs,
    the mean and median difference B - A with bootstrap confidence intervals (BCa), the paired
    Wilcoxon signed-rank and sign tests, and which run is significantly better. The table goes to
    stdout; --json for scripts; --plot for a picture of every item's difference.

    \b
    Examples:
      specinv compare runs/fgla runs/dm --reference corpus/
      specinv compare runs/a runs/b -r refs/ -t mels/ --config hifigan-22k --json > cmp.jsonl
      specinv compare runs/a runs/b -r refs/ --metrics pesq,stoi,f0 --plot diffs.png
    """
    run = Run(quiet, as_json)
    run.need_stdout("--json" if as_json else "the comparison table")
    cfg = run_config(run, config_name, flags)
    options = comparison(run, truncate, resample, channel, mixdown)
    from ..companion.compare import NothingCompared, compare_runs
    from ..errors import OutputError
    from ..io.spectrogram import InputError

    groups = metric_groups(run, metrics)
    names = None
    if labels:
        names = [w.strip() for w in labels.split(",")]
        if len(names) != 2 or not all(names) or names[0] == names[1]:
            run.usage(f"--labels takes two different names separated by a comma, got {labels!r}")
    if plot_path:
        from ..companion.plot import MissingMatplotlib, require_matplotlib

        try:
            require_matplotlib()
        except MissingMatplotlib as e:
            run.usage(str(e))
        run.check_writes([plot_path], setting_files(cfg, config_name))
    try:
        with run.rep.counter(_count(run_a, run_b), "comparing") as step:
            c = compare_runs(run_a, run_b, cfg, targets=target, references=reference, labels=names, metrics=groups,
                             perceptual=not no_perceptual, scale_invariant=scale_invariant, options=options, key=key,
                             input_kind=input_kind, level=level, n_resamples=resamples, seed=seed,
                             progress=lambda i, n, stem: step(i, stem))
    except NothingCompared as e:
        if debug:
            raise
        for msg in e.errors[1:]:
            run.rep.error(cli_words(msg))
        run.usage(str(e))
    except InputError as e:
        if debug:
            raise
        run.usage(str(e))
    except KeyboardInterrupt:
        interrupted(run)
    la, lb = c.labels
    for lab in c.labels:
        if c.only[lab]:
            more = f" (and {len(c.only[lab]) - 5} more)" if len(c.only[lab]) > 5 else ""
            run.rep.warning(f"{len(c.only[lab])} item(s) only in {lab}, left out: {', '.join(c.only[lab][:5])}{more}")
    for msg in c.errors:
        run.error(msg.split(": ", 1)[0], msg)
    seen = set()
    for n in c.notes:
        key_ = n.split(": ", 1)[-1] if "left out" in n else n
        if key_ not in seen:
            seen.add(key_)
            run.rep.info(f"note: {cli_words(key_) if 'left out' in n else cli_words(n)}")
    run.ok = len(c.items)
    for stem in c.items:
        run.emit({"item": stem, "status": "ok", la: _rounded(c.rows[la][stem]), lb: _rounded(c.rows[lb][stem])})
    if as_json:
        run.emit({"comparison": {"labels": [la, lb], "items": len(c.items), "only": c.only, "level": level,
                                 "resamples": resamples, "seed": seed, "domain": c.domain,
                                 "scale_invariant": bool(scale_invariant), "difference": f"{lb} - {la}",
                                 "metrics": {k: r.to_dict() for k, r in c.results.items()}}})
    else:
        _table(c, level)
    if plot_path:
        from ..companion.plot import paired_differences_png

        try:
            paired_differences_png(plot_path, c.results, c.differences(), labels=(la, lb),
                                   title=f"{lb} - {la}, {len(c.items)} items")
        except OutputError as e:
            run.usage(str(e))
        run.rep.info(f"wrote {plot_path}")
    run.finish()


def _count(run_a, run_b) -> int:
    from ..companion.compare import match_runs
    from ..io.spectrogram import InputError

    try:
        return len(match_runs(run_a, run_b)[0])
    except InputError:
        return 0


def _rounded(d: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else None) for k, v in d.items()}


def _table(c, level):
    """The comparison as a table on stdout: one row per metric."""
    from rich.table import Table
    from rich.text import Text

    from ..companion.suite import METRICS
    from ..util.text import printable

    la, lb = c.labels
    t = Table(show_edge=False, box=None, pad_edge=False,
              title=Text(f"{printable(lb)} - {printable(la)} over {len(c.items)} items; "
                         f"{round(level * 100, 1):g}% bootstrap CIs; * significant (Wilcoxon p < {1 - level:.3g})"),
              title_justify="left")
    for col, just in (("metric", "left"), ("n", "right"), (printable(la), "right"), (printable(lb), "right"),
                      ("mean diff", "right"), ("CI", "right"), ("median diff", "right"), ("p Wilcoxon", "right"),
                      ("p sign", "right"), ("better", "left")):
        t.add_column(col, justify=just)
    for k, r in c.results.items():
        m = METRICS.get(k)
        label = (f"{'mel ' if c.domain == 'mel' and k in ('sc', 'snr', 'ser') else ''}{m.label}"
                 f"{' ' + m.unit if m.unit else ''} {'↑' if m.higher_is_better else '↓'}") if m else k
        d = 3 if k in ("pesq", "stoi", "visqol", "visqol_audio", "vuv_f1", "periodicity") or k.startswith("dnsmos") else 2
        f = (lambda v: "" if v is None or not math.isfinite(v) else f"{v:.{d}f}")
        better = "" if r.better is None else (f"{printable(lb if r.better == 'b' else la)} *")
        t.add_row(label, str(r.n), f(r.mean_a), f(r.mean_b), f(r.mean_diff), f"[{f(r.ci[0])}, {f(r.ci[1])}]",
                  f(r.median_diff), _p(r.p_wilcoxon), _p(r.p_sign), better)
    print_table(t)


def _p(p):
    if p is None or not math.isfinite(p):
        return ""
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"
