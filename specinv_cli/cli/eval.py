"""``specinv eval``: score reconstructions against their targets (and references)."""
from __future__ import annotations

import os
from pathlib import Path

import click

from .common import (CONTEXT, Run, audio_inputs, common_flags, compare_options, comparison, fmt_number, interrupted,
                     metric_groups, print_table, read_options, run_config)
from .flags import cli_words, settings_options


@click.command("eval", context_settings=CONTEXT, short_help="Score reconstructions: SC, LSD, MCD, PESQ, STOI, ViSQOL, DNSMOS, F0.")
@click.argument("outputs", nargs=-1, type=click.Path())
@click.option("-t", "--target", required=True, type=click.Path(), help="The spectrogram the output was made from (.npy/.npz/.pt), or a folder of them matched by name (<stem>.npy for <stem>.wav; <stem>_NNN.wav is item NNN of a batch).")
@click.option("-r", "--reference", type=click.Path(), help="The original recording (or a folder, matched by name): adds LSD and MCD, and PESQ, STOI, ViSQOL and the F0 metrics when the [eval] extra is installed.")
@click.option("--item", type=click.IntRange(min=0), help="Item of a batched target to compare with [from the output name <stem>_NNN].")
@read_options
@settings_options
@click.option("--scale-invariant", is_flag=True, help="SC/SER after the least-squares gain between output and target (reported as 'gain'); default: as written.")
@compare_options
@click.option("--metrics", metavar="G,G,...", help="Metric groups: spectral, lsd, mcd, pesq, stoi, visqol, visqol-audio, dnsmos, f0 [all installed].")
@click.option("--no-perceptual", is_flag=True, help="Skip the model-based metrics (PESQ, STOI, ViSQOL, DNSMOS, F0) even when installed.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per output on stdout, then a summary line (median, mean).")
@common_flags
def eval_(outputs, target, reference, item, key, input_kind, scale_invariant, truncate, resample, channel, mixdown,
          metrics, no_perceptual, as_json, quiet, debug, config_name, **flags):
    """Score reconstructions: SC/SNR/SER against the target, the rest against the original.

    \b
    Metrics (groups for --metrics; the model-based ones need the [eval] extra):
      spectral  SC, SNR, SER against the target spectrogram
      lsd, mcd  log-spectral distance, mel-cepstral distortion    (vs the reference)
      pesq      wide-band PESQ at 16 kHz                          (vs the reference)
      stoi      STOI                                              (vs the reference)
      visqol    ViSQOL v3 speech mode, 16 kHz; visqol-audio: audio mode, 48 kHz
      f0        F0 RMSE (cents), periodicity error, V/UV F1 (torchcrepe, vs the reference)
      dnsmos    DNSMOS OVRL/SIG/BAK and P.808 MOS: no reference needed

    SC/SNR/SER are computed in the target's domain with the same settings as 'invert' (mel SC for
    mel features), on the WAV as written: SC is scale-sensitive, so an output that 'invert'
    peak-normalised (its peak exceeded full scale) scores worse; --scale-invariant removes the gain.
    With folders, outputs are matched to targets and references by name and a table with the
    median and mean is printed (stdout; with --json one line per output and a summary line).

    A comparison that cannot be right is refused (one error line, exit 2, or 1 when others were
    scored): a length more than one window from what the target's frames imply (or from the
    reference's), a sample rate other than the settings', more than one channel. --truncate,
    --resample, --channel N and --mixdown do it deliberately, with a note.

    \b
    Examples:
      specinv eval out.wav --target mag.npy --reference speech.wav
      specinv eval wavs/ --target specs/ --reference corpus/ --json > scores.jsonl
      specinv eval out.wav --target mel.npy --config hifigan-22k     # mel SC
    """
    run = Run(quiet, as_json)
    if not outputs:
        run.usage("no output given; pass WAV files or folders to score")
    run.need_stdout("--json" if as_json else "the score table")
    cfg = run_config(run, config_name, flags)
    options = comparison(run, truncate, resample, channel, mixdown)
    groups = metric_groups(run, metrics)
    from ..companion.analysis import audio_suffixes, index_by_stem, spectrogram_suffixes, summarize

    def table_for(arg, suffixes, what):
        p = Path(arg)
        if os.path.isdir(arg):
            return index_by_stem(p, suffixes), True
        if not os.path.exists(arg):
            run.usage(f"{arg}: no such {what} file or folder")
        return {p.stem: p}, False

    ttable, tdir = table_for(target, spectrogram_suffixes(), "target")
    rtable, rdir = table_for(reference, audio_suffixes(), "reference") if reference else ({}, False)
    files = audio_inputs(run, outputs)
    rows = []
    notes_seen = set()
    try:
        with run.rep.counter(len(files), "scoring") as step:
            _score(run, files, ttable, tdir, rtable, rdir, target, reference, item, cfg, key, input_kind, scale_invariant,
                   groups, no_perceptual, options, debug, rows, notes_seen, step)
    except KeyboardInterrupt:
        interrupted(run)
    summ = summarize(rows)
    if as_json:
        run.emit({"summary": {"items": run.ok, "failed": run.failed,
                              **{k: {m: round(v, 4) for m, v in d.items()} for k, d in summ.items() if k != "count"}}})
    elif rows:
        _eval_table(rows, summ)
    run.finish()


def _score(run, files, ttable, tdir, rtable, rdir, target, reference, item, cfg, key, input_kind, scale_invariant,
           groups, no_perceptual, options, debug, rows, notes_seen, step):
    from ..companion.analysis import evaluate, load_target, match_stem, read_audio
    from ..io.spectrogram import InputError

    for i, path in enumerate(files):
        step(i, path.name)
        name = str(path)
        m = match_stem(path.stem, ttable)
        if m is None:
            if tdir:
                run.error(name, f"{name}: no target named {path.stem}.npy (or .npz/.pt) in {target}")
                continue
            m = (next(iter(ttable.values())), None)
        t_path, t_item = m
        if item is not None:
            t_item = item
        r_path = None
        if reference:
            rm = match_stem(path.stem, rtable)
            r_path = rm[0] if rm else (None if rdir else next(iter(rtable.values())))
            if r_path is None:
                run.rep.warning(f"{name}: no reference named {path.stem} in {reference}; the reference-based metrics left out")
        try:
            tgt, tcfg = load_target(t_path, cfg, item=t_item, key=key, input_kind=input_kind)
            audio, sr = read_audio(path)
            ref, rsr = read_audio(r_path) if r_path is not None else (None, None)
            ev = evaluate(audio, sr, tgt, tcfg, reference=ref, reference_rate=rsr, metrics=groups,
                          scale_invariant=scale_invariant, perceptual=not no_perceptual, options=options,
                          source=name, target_source=str(t_path),
                          reference_source=str(r_path) if r_path is not None else None)
        except InputError as e:
            if debug:
                raise
            run.error(name, str(e) if e.source else f"{name}: {e}")
            continue
        run.ok += 1
        notes = [cli_words(n) for n in ev.notes]
        for n in notes:
            key_ = n.split(":")[0] if "left out" in n else n
            if key_ not in notes_seen:
                notes_seen.add(key_)
                run.rep.info(f"note: {n}" if "left out" in n else f"note: {name}: {n}")
        rec = {"output": name, "target": str(t_path), "item": t_item,
               "reference": str(r_path) if r_path else None, "status": "ok", "domain": ev.domain,
               **{k: round(v, 4) for k, v in ev.metrics.items()}}
        if ev.adjusted:
            rec["adjusted"] = ev.adjusted
        if notes:
            rec["notes"] = notes
        rows.append(rec)
        run.emit(rec)


def _eval_table(rows, summ):
    """The results as a table on stdout (eval's output is its result), with median and mean."""
    from rich.table import Table
    from rich.text import Text

    from ..companion.analysis import METRIC_INFO
    from ..util.text import printable

    names = [k for k in METRIC_INFO if any(k in r for r in rows)]
    if any("gain" in r for r in rows):
        names.append("gain")
    doms = {r["domain"] for r in rows}
    dom = "mel " if doms == {"mel"} else ""
    t = Table(show_edge=False, box=None, pad_edge=False)
    t.add_column("output", overflow="fold")
    for k in names:
        label, unit, higher = METRIC_INFO.get(k, (k, "", True))
        pre = dom if k in ("sc", "snr", "ser") else ""
        t.add_column(f"{pre}{label}" + (f" {unit}" if unit else ""), justify="right")
    digits = {"pesq": 3, "stoi": 3, "gain": 4, "visqol": 3, "visqol_audio": 3, "dnsmos": 3, "dnsmos_sig": 3,
              "dnsmos_bak": 3, "dnsmos_p808": 3, "periodicity": 3, "vuv_f1": 3, "f0_rmse": 1}
    for r in rows:
        t.add_row(Text(printable(r["output"])), *[fmt_number(r.get(k), digits.get(k, 2)) for k in names])
    if len(rows) > 1:
        t.add_section()
        for stat in ("median", "mean"):
            t.add_row(f"{stat} of {len(rows)}", *[fmt_number(summ[stat].get(k), digits.get(k, 2)) for k in names])
    print_table(t)
