"""Companion commands (``stft``, ``eval``, ``plot``, ``report``): click only, no DSP here.

The work is in :mod:`specinv_cli.analysis` (audio -> spectrogram, metrics), :mod:`specinv_cli.plot`
and :mod:`specinv_cli.report`. numpy/torch/librosa/matplotlib are imported inside the commands so
that ``specinv --help`` stays fast. Errors follow ``invert``: one ``error: <file>: <problem>`` line
on stderr; exit 0 all done, 1 some items failed, 2 bad usage or nothing done, 130 interrupted. The
library words its messages with parameter names in backticks (```truncate```); they are shown
here as flags (``--truncate``, :func:`~specinv_cli.options.cli_words`).

Comparisons (``eval``, ``plot -a``, ``report``) refuse what cannot be right (a length the
target's framing does not explain, another sample rate, several channels: see
:func:`specinv_cli.analysis.check_comparison`) unless a flag asks for it deliberately:
``--truncate``, ``--resample``, ``--channel N``, ``--mixdown``.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from .options import SETTING_DESTS, SETTINGS, cli_words, settings_options

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

def _read_options(f):
    f = click.option("--key", help="Array name in a .npz, or key in a .pt dict.")(f)
    f = click.option("--input-kind", type=click.Choice(["magnitude", "power", "db", "log", "complex"]),
                     default="magnitude", show_default=True,
                     help="What the spectrogram files hold (as 'invert --input-kind').")(f)
    return f


def _compare_options(f):
    """The deliberate choices of a comparison (analysis.CompareOptions); refused without them."""
    f = click.option("--mixdown", is_flag=True, help="Average the channels of multichannel audio (noted) instead of refusing it.")(f)
    f = click.option("--channel", type=click.IntRange(min=0), metavar="N", help="Take channel N (0-based) of multichannel audio instead of refusing it (mono files are used as they are).")(f)
    f = click.option("--resample", is_flag=True, help="Resample audio whose sample rate is not the settings' (--sr, --config) to it (soxr; noted) instead of refusing it.")(f)
    f = click.option("--truncate", is_flag=True, help="Cut or zero-pad audio whose length is more than one window from what the target's frames imply to the target's length (against a reference: both to the shorter), noted, instead of refusing it.")(f)
    return f


def _compare(run: "_Run", truncate, resample, channel, mixdown):
    from .analysis import CompareOptions

    if channel is not None and mixdown:
        run.usage("--channel and --mixdown exclude each other: take one channel or mix them down")
    return CompareOptions(truncate=truncate, resample=resample, channel=channel, mixdown=mixdown)


def _common(f):
    f = click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")(f)
    f = click.option("-q", "--quiet", is_flag=True, help="No progress or info on stderr (errors and warnings still shown).")(f)
    return f


class _Run:
    """Counts items, prints ``--json`` lines and errors, and turns the counts into the exit code."""

    def __init__(self, quiet: bool, as_json: bool = False):
        from .progress import Reporter

        self.rep = Reporter(quiet=quiet)
        self.as_json = as_json
        self.ok = 0
        self.failed = 0
        from .cli import load_torch

        load_torch(self.usage)

    def usage(self, message: str):
        self.rep.error(cli_words(message))
        sys.exit(EXIT_USAGE)

    def error(self, name, message: str, **rec):
        self.failed += 1
        message = cli_words(message)
        self.rep.error(message)
        self.emit({"input": str(name), "status": "error", "error": message, **rec})

    def emit(self, rec: dict):
        if self.as_json:
            from .stdio import emit_json

            emit_json(rec)

    def need_stdout(self, what: str):
        """Refuse before any work a command whose results go to a closed stdout."""
        from .cli import require_stdout

        require_stdout(self.usage, what)

    def check_writes(self, writes, reads):
        """Every output against every file read (by identity) and each other, before any work;
        ``--json`` and an output on standard output exclude each other."""
        from .io import OutputError, check_outputs, is_stdout

        try:
            check_outputs([str(w) for w in writes], [str(r) for r in reads])
        except OutputError as e:
            self.usage(str(e))
        if self.as_json:
            for w in writes:
                if is_stdout(w):
                    self.usage(f"{w} is standard output, which --json also uses; write the file elsewhere")
            self.need_stdout("--json")

    def finish(self):
        if self.failed:
            sys.exit(EXIT_PARTIAL if self.ok else EXIT_USAGE)


def _config(run: _Run, config_name, flags: dict):
    from .cli import _build_config

    try:
        return _build_config(config_name, {k: flags.get(k) for k in SETTING_DESTS})
    except ValueError as e:
        run.usage(str(e))


def _setting_files(cfg, config_name) -> list:
    """The files the settings were read from (a preset file, a stats file): never written."""
    return [str(p) for p in (config_name, getattr(cfg, "stats", None)) if p and os.path.isfile(str(p))]


def _interrupted(run: _Run):
    from .cli import ignore_signals
    from .io import cleanup_temporaries

    ignore_signals()
    cleanup_temporaries()
    run.rep.error("interrupted; temporary files removed, finished outputs kept")
    sys.exit(EXIT_INTERRUPTED)


def _audio_inputs(run: _Run, inputs) -> list:
    """Files as given; folders -> their audio files (sorted, not recursive); missing -> errors later."""
    from .analysis import is_audio_file

    out = []
    for arg in inputs:
        p = Path(arg)
        if os.path.isdir(arg):  # (Path.is_dir raises on a name too long)
            found = sorted(q for q in p.iterdir() if q.is_file() and not q.name.startswith(".") and is_audio_file(q))
            if not found:
                run.error(arg, f"{arg}: folder holds no audio files")
            out += found
        else:
            out.append(p)
    seen, unique = set(), []
    for p in out:  # the same file twice is processed once (as invert does)
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _fmt(v, digits=2):
    return "" if v is None else f"{v:.{digits}f}"


# --- stft -----------------------------------------------------------------------------------
@click.command(context_settings=CONTEXT, short_help="Make spectrograms from audio, as 'invert' reads them.")
@click.argument("inputs", nargs=-1, type=click.Path())
@click.option("-O", "--output-dir", required=True, type=click.Path(file_okay=False), help="Folder for the spectrograms (<stem>.npy or .pt); created if missing.")
@settings_options
@click.option("--mel/--linear", "mel", default=None, help="Mel features (encoded as the preset says: compression, normalisation) or a linear spectrogram [mel with a mel preset or --n-mels, else linear].")
@click.option("--kind", type=click.Choice(["magnitude", "power", "db", "log"]), default="magnitude", show_default=True, help="Linear spectrograms: |X|, |X|^2, 20log10|X| or ln|X| (read back with 'invert --input-kind KIND').")
@click.option("--format", "fmt", type=click.Choice(["npy", "pt"]), default="npy", show_default=True, help="File format: numpy .npy or a torch tensor .pt.")
@click.option("--channel", type=click.IntRange(min=0), help="Take this channel (0-based) of multichannel files instead of the mono mix-down.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per output on stdout, then a summary line.")
@_common
def stft(inputs, output_dir, mel, kind, fmt, channel, as_json, quiet, debug, config_name, **flags):
    """Make spectrograms from audio, in the conventions 'invert' reads back.

    Reads any format soundfile reads (WAV, FLAC, OGG, MP3...), mixes down to mono (or --channel),
    resamples to the preset's rate (soxr) and writes DIR/<stem>.npy: the STFT magnitude [F, T]
    (or --kind), or with a mel preset the model's mel features, in the preset's layout.
    'specinv invert' with the same settings flags (and --input-kind KIND) inverts it.

    \b
    Examples:
      specinv stft speech.wav -O specs/ && specinv invert specs/speech.npy -o out.wav
      specinv stft corpus/ -O mels/ --config hifigan-22k      # HiFi-GAN log-mels [80, T]
      specinv stft a.flac -O specs/ --kind db                 # then: invert --input-kind db
    """
    run = _Run(quiet, as_json)
    if not inputs:
        run.usage("no input given; pass audio files or folders")
    cfg = _config(run, config_name, flags)
    use_mel = cfg.is_mel if mel is None else mel
    if use_mel and not cfg.is_mel:
        run.usage("--mel needs mel settings: a mel preset (--config hifigan-22k, see 'specinv configs') or --n-mels N")
    if use_mel and kind != "magnitude":
        run.usage(f"--kind {kind} is for linear spectrograms; mel features are encoded as the preset says "
                  f"(--compression, --normalization)")
    if use_mel and cfg.normalization == "meanvar" and cfg.stats is None:
        run.usage("these settings use mean/variance normalisation: give the stats file with --stats")
    od = Path(output_dir)
    if not os.path.exists(od):
        try:
            od.mkdir(parents=True)
        except OSError as e:
            run.usage(f"{output_dir}: cannot create output folder ({e.strerror or e})")
    files = _audio_inputs(run, inputs)
    if as_json:
        run.need_stdout("--json")
    from .analysis import analyze, load_audio, save_array
    from .io import OutputError, check_destination
    from .spectrogram import InputError

    reads = [str(f) for f in files] + _setting_files(cfg, config_name)

    taken: dict[str, str] = {}
    t_start = time.perf_counter()
    try:
        for path in files:
            name = str(path)
            dest = od / f"{path.stem}.{fmt}"
            if str(dest) in taken:
                run.error(name, f"{name}: its output {dest} is also the output of {taken[str(dest)]}; rename one of them")
                continue
            t0 = time.perf_counter()
            try:
                check_destination(dest, reads)
                audio, sr = load_audio(path, cfg.sample_rate, channel)
                spec = analyze(audio, cfg, mel=use_mel, kind=kind, source=name)
                save_array(dest, spec)
            except (InputError, OutputError) as e:
                if debug:
                    raise
                run.error(name, str(e))
                continue
            except ValueError as e:
                if debug:
                    raise
                run.error(name, f"{name}: {e}")
                continue
            taken[str(dest)] = name
            run.ok += 1
            rec = {"input": name, "output": str(dest), "status": "ok", "domain": "mel" if use_mel else "linear",
                   "kind": "mel" if use_mel else kind, "shape": list(spec.shape), "layout": cfg.layout,
                   "sample_rate": sr, "samples": int(audio.shape[-1]), "seconds": round(time.perf_counter() - t0, 4)}
            run.emit(rec)
            run.rep.info(f"{name} -> {dest}: {'mel features' if use_mel else kind} {list(spec.shape)}")
    except KeyboardInterrupt:
        _interrupted(run)
    if run.ok:
        back = _invert_flags(config_name, flags, kind, use_mel, cfg)
        run.rep.info(f"read back with: specinv invert {od / ('<stem>.' + fmt)}{' ' + back if back else ''} -o out.wav")
    if as_json:
        run.emit({"summary": {"outputs": run.ok, "failed_inputs": run.failed, "inputs": len(files),
                              "seconds": round(time.perf_counter() - t_start, 4),
                              "invert_flags": _invert_flags(config_name, flags, kind, use_mel, cfg)}})
    run.finish()


def _invert_flags(config_name, flags, kind, use_mel, cfg) -> str:
    """The ``invert`` flags that read these files back: the settings given here, and the kind."""
    import shlex

    parts = []
    if config_name:
        parts += ["--config", config_name]
    for flag, dest, _ in SETTINGS:
        v = flags.get(dest)
        if v is None or dest == "config_name":
            continue
        if "/" in flag:
            on, off = flag.split("/")
            parts.append(on if v else off)
        else:
            parts += [flag, f"{v:g}" if isinstance(v, float) else str(v)]
    if cfg.is_mel and not use_mel:
        pass  # a linear spectrogram under mel settings: invert tells it from its bin count
    if kind != "magnitude" and not use_mel:
        parts += ["--input-kind", kind]
    return " ".join(shlex.quote(p) for p in parts)


# --- eval -----------------------------------------------------------------------------------
@click.command("eval", context_settings=CONTEXT, short_help="Score reconstructions: SC/SNR/SER, LSD, PESQ, STOI.")
@click.argument("outputs", nargs=-1, type=click.Path())
@click.option("-t", "--target", required=True, type=click.Path(), help="The spectrogram the output was made from (.npy/.npz/.pt), or a folder of them matched by name (<stem>.npy for <stem>.wav; <stem>_NNN.wav is item NNN of a batch).")
@click.option("-r", "--reference", type=click.Path(), help="The original recording (or a folder, matched by name): adds LSD, and PESQ/STOI when 'pesq'/'pystoi' are installed.")
@click.option("--item", type=click.IntRange(min=0), help="Item of a batched target to compare with [from the output name <stem>_NNN].")
@_read_options
@settings_options
@click.option("--scale-invariant", is_flag=True, help="SC/SER after the least-squares gain between output and target (reported as 'gain'); default: as written.")
@_compare_options
@click.option("--no-perceptual", is_flag=True, help="Skip PESQ and STOI even when installed.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per output on stdout, then a summary line (median, mean).")
@_common
def eval_(outputs, target, reference, item, key, input_kind, scale_invariant, truncate, resample, channel, mixdown,
          no_perceptual, as_json, quiet, debug, config_name, **flags):
    """Score reconstructions: SC/SNR/SER against the target, LSD/PESQ/STOI against the original.

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
    run = _Run(quiet, as_json)
    if not outputs:
        run.usage("no output given; pass WAV files or folders to score")
    run.need_stdout("--json" if as_json else "the score table")
    cfg = _config(run, config_name, flags)
    options = _compare(run, truncate, resample, channel, mixdown)
    from .analysis import (audio_suffixes, evaluate, index_by_stem, load_target, match_stem, read_audio,
                           spectrogram_suffixes, summarize)
    from .spectrogram import InputError

    def table_for(arg, suffixes, what):
        p = Path(arg)
        if os.path.isdir(arg):
            return index_by_stem(p, suffixes), True
        if not os.path.exists(arg):
            run.usage(f"{arg}: no such {what} file or folder")
        return {p.stem: p}, False

    ttable, tdir = table_for(target, spectrogram_suffixes(), "target")
    rtable, rdir = table_for(reference, audio_suffixes(), "reference") if reference else ({}, False)
    files = _audio_inputs(run, outputs)
    rows = []
    notes_seen = set()
    try:
        for path in files:
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
                    run.rep.warning(f"{name}: no reference named {path.stem} in {reference}; LSD/PESQ/STOI left out")
            try:
                tgt, tcfg = load_target(t_path, cfg, item=t_item, key=key, input_kind=input_kind)
                audio, sr = read_audio(path)
                ref, rsr = read_audio(r_path) if r_path is not None else (None, None)
                ev = evaluate(audio, sr, tgt, tcfg, reference=ref, reference_rate=rsr,
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
    except KeyboardInterrupt:
        _interrupted(run)
    summ = summarize(rows)
    if as_json:
        run.emit({"summary": {"items": run.ok, "failed": run.failed,
                              **{k: {m: round(v, 4) for m, v in d.items()} for k, d in summ.items() if k != "count"}}})
    elif rows:
        _eval_table(rows, summ)
    run.finish()


def _eval_table(rows, summ):
    """The results as a table on stdout (eval's output is its result), with median and mean."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from .analysis import METRIC_INFO
    from .text import printable

    names = [k for k in METRIC_INFO if any(k in r for r in rows)]
    if any("gain" in r for r in rows):
        names.append("gain")
    doms = {r["domain"] for r in rows}
    dom = "mel " if doms == {"mel"} else ""
    con = Console(file=sys.stdout, highlight=False, soft_wrap=False,
                  width=None if sys.stdout.isatty() else 200)
    t = Table(show_edge=False, box=None, pad_edge=False)
    t.add_column("output", overflow="fold")
    for k in names:
        label, unit, higher = METRIC_INFO.get(k, (k, "", True))
        pre = dom if k in ("sc", "snr", "ser") else ""
        t.add_column(f"{pre}{label}" + (f" {unit}" if unit else ""), justify="right")
    digits = {"pesq": 3, "stoi": 3, "gain": 4}
    for r in rows:
        t.add_row(Text(printable(r["output"])), *[_fmt(r.get(k), digits.get(k, 2)) for k in names])
    if len(rows) > 1:
        t.add_section()
        for stat in ("median", "mean"):
            t.add_row(f"{stat} of {len(rows)}", *[_fmt(summ[stat].get(k), digits.get(k, 2)) for k in names])
    con.print(t)


# --- plot -----------------------------------------------------------------------------------
@click.command(context_settings=CONTEXT, short_help="Draw spectrograms or convergence curves as a PNG.")
@click.argument("spec", required=False, type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="PNG to write.")
@click.option("-a", "--audio", "audios", multiple=True, type=click.Path(), help="A reconstruction to compare with SPEC (repeatable): its spectrogram and the difference are drawn.")
@click.option("--convergence", is_flag=True, help="Plot the metric against iteration instead: for each -m method run on SPEC, and each --history file.")
@click.option("-m", "--method", "methods", multiple=True, metavar="NAME", help="With --convergence: a method to run on SPEC (repeatable) [fgla and the default].")
@click.option("--history", "histories", multiple=True, type=click.Path(), metavar="FILE.json", help="With --convergence: curves saved by 'invert --history FILE.json' (repeatable).")
@click.option("--metric", type=click.Choice(["sc", "snr", "ser"]), default="sc", show_default=True, help="Metric of the convergence curves.")
@click.option("-n", "--iters", "n_iter", type=click.IntRange(min=1), default=100, show_default=True, help="Iterations of the methods run with --convergence.")
@click.option("--eval-every", type=click.IntRange(min=1), default=5, show_default=True, help="Iterations between points of the convergence curves.")
@click.option("--init", type=click.Choice(["random", "zero", "spsi", "pghi"]), default="pghi", show_default=True, help="Initial phase of the methods run with --convergence.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random initial phase.")
@click.option("--item", type=click.IntRange(min=0), help="Item of a batched SPEC [0 when it holds one].")
@_read_options
@settings_options
@_compare_options
@click.option("--top-db", type=click.FloatRange(min=1), default=80.0, show_default=True, help="Dynamic range of the spectrogram panels in dB.")
@click.option("--title", help="Title of the figure.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object describing the figure on stdout.")
@_common
def plot(spec, output, audios, convergence, methods, histories, metric, n_iter, eval_every, init, seed, item, key,
         input_kind, truncate, resample, channel, mixdown, top_db, title, as_json, quiet, debug, config_name, **flags):
    """Draw spectrograms (target, reconstruction, difference) or convergence curves as a PNG.

    SPEC is a spectrogram file (read as 'invert' reads it, same flags) or an audio file (its
    spectrogram with these settings). Axes in seconds and Hz; needs matplotlib
    (pip install 'specinv-cli[plot]'). Each --audio is compared as 'eval' compares: a length the
    target's frames do not explain, another sample rate or several channels (in it or in an
    audio SPEC) are refused unless --truncate, --resample, --channel N or --mixdown says so.

    \b
    Examples:
      specinv plot mag.npy --audio out.wav -o compare.png
      specinv plot speech.wav -a fgla/speech.wav -a dm/speech.wav -o compare.png
      specinv plot mag.npy --convergence -m fgla -m dm -m gla -o curves.png
      specinv plot --convergence --history fgla.json --history dm.json -o curves.png
    """
    run = _Run(quiet, as_json)
    from .plot import MissingMatplotlib, require_matplotlib

    try:
        require_matplotlib()
    except MissingMatplotlib as e:
        run.usage(str(e))
    cfg = _config(run, config_name, flags)
    options = _compare(run, truncate, resample, channel, mixdown)
    if convergence and audios:
        run.usage("--audio draws spectrograms; --convergence draws curves: use one of them")
    if not convergence and (methods or histories):
        run.usage("-m/--method and --history go with --convergence")
    if spec is None and not (convergence and histories):
        run.usage("no spectrogram given; pass SPEC (a spectrogram or audio file)" +
                  (" or --history FILE.json" if convergence else ""))
    run.check_writes([output], [p for p in (spec, *audios, *histories) if p] + _setting_files(cfg, config_name))
    from .analysis import analyze, check_comparison, is_audio_file, load_audio, load_target, read_audio
    from .io import OutputError
    from .spectrogram import InputError, interpret

    spec_notes = []

    def the_target(compared=False):
        if is_audio_file(spec):
            if compared:  # the recording the --audio files are compared with: the comparison's rules
                chk = check_comparison(*read_audio(spec), cfg, options=options, source=spec, role=str(spec))
                audio = chk.audio
                spec_notes.extend(cli_words(n) for n in chk.notes)
            else:  # a spectrogram of it, as 'specinv stft' makes it
                audio, _ = load_audio(spec, cfg.sample_rate)
            tgt = interpret(analyze(audio, cfg, source=spec), "magnitude", cfg.layout, spec, n_mels=cfg.n_mels)
            return tgt, cfg.with_bins(tgt.mag.shape[-2], spec)
        return load_target(spec, cfg, item=item, key=key, input_kind=input_kind)

    try:
        if convergence:
            from .algorithms.registry import DEFAULT_METHOD, get_method
            from .plot import convergence_png, load_history, run_convergence

            curves = []
            for h in histories:
                curves += load_history(h)
            if spec is not None:
                names = list(dict.fromkeys(methods)) or (["fgla", DEFAULT_METHOD] if not histories else [])
                for n in names:
                    try:
                        get_method(n)
                    except ValueError as e:
                        run.usage(str(e))
                tgt, tcfg = the_target()
                for n in names:
                    run.rep.info(f"running {n} on {spec} ({n_iter} iterations)")
                curves += run_convergence(tgt, tcfg, names, n_iter=n_iter, eval_every=eval_every, init=init,
                                          seed=seed, device="cpu", source=spec)
            if len({(c.label, c.extra.get('file')) for c in curves}) < len(curves) or any(c.extra.get("input") for c in curves):
                _label_curves(curves)
            info = convergence_png(output, curves, metric, title=title)
            rec = {"output": str(output), "kind": "convergence", "metric": metric, "curves": info["curves"],
                   "final": {k: round(v, 4) for k, v in info["final"].items()}}
        else:
            from .plot import spectrogram_png

            tgt, tcfg = the_target(compared=bool(audios))
            outs = []
            labels = _audio_labels([Path(a) for a in audios])
            for a, label in zip(audios, labels):
                audio, sr = read_audio(a)
                outs.append((label, audio, sr, str(a)))
            info = spectrogram_png(output, tgt, tcfg, outs, title=title or Path(spec).name, top_db=top_db,
                                   options=options, target_source=str(spec))
            rec = {"output": str(output), "kind": "spectrogram", "panels": info["panels"],
                   "sc": {o[0]: round(s, 4) for o, s in zip(outs, info["sc"])}}
            adjusted = {o[0]: a for o, a in zip(outs, info["adjusted"]) if a}
            notes = spec_notes + [cli_words(n) for n in info["notes"]]
            if adjusted:
                rec["adjusted"] = adjusted
            if notes:
                rec["notes"] = notes
                for n in notes:
                    run.rep.info(f"note: {n}")
    except (InputError, OutputError) as e:
        if debug:
            raise
        run.usage(str(e) if getattr(e, "source", True) else f"{spec}: {e}")
    except KeyboardInterrupt:
        _interrupted(run)
    run.rep.info(f"wrote {output}")
    run.emit(rec)


def _audio_labels(paths) -> list:
    """File stems, or parent folder names (method folders) when the stems are not distinct."""
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    parents = [p.parent.name or p.stem for p in paths]
    return parents if len(set(parents)) == len(parents) else [str(p) for p in paths]


def _label_curves(curves):
    """Make history curves distinguishable: method (input stem[item]) when several inputs appear."""
    inputs = {(c.extra.get("input"), c.extra.get("item")) for c in curves if c.extra.get("input")}
    for c in curves:
        src = c.extra.get("input")
        if src and len(inputs) > 1:
            it = c.extra.get("item")
            c.label = f"{c.label} ({Path(src).stem}{'' if it is None else f'[{it}]'})"
    seen = {}
    for c in curves:
        seen[c.label] = seen.get(c.label, 0) + 1
    if any(v > 1 for v in seen.values()):
        for c in curves:
            if seen[c.label] > 1 and c.extra.get("file"):
                c.label = f"{c.label} [{Path(c.extra['file']).stem}]"


# --- report ---------------------------------------------------------------------------------
@click.command(context_settings=CONTEXT, short_help="Write an HTML listening page for a run folder.")
@click.argument("run_dir", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="HTML page to write.")
@click.option("--targets", type=click.Path(), help="Folder of target spectrograms [RUN_DIR/target].")
@click.option("--references", type=click.Path(), help="Folder of original recordings [RUN_DIR/reference].")
@click.option("-m", "--methods", metavar="A,B,...", help="Method folders to show, in this order [every folder with audio].")
@click.option("--link", is_flag=True, help="Link the audio by relative paths instead of embedding it (smaller page; keep the folders beside it).")
@click.option("--title", help="Page title [specinv report: RUN_DIR].")
@click.option("--no-images", is_flag=True, help="No spectrogram images (no matplotlib needed).")
@click.option("--scale-invariant", is_flag=True, help="SC/SER after the least-squares gain between each output and its target (as 'eval --scale-invariant'); default: as written. The page says which.")
@_compare_options
@click.option("--no-perceptual", is_flag=True, help="Skip PESQ and STOI even when installed.")
@_read_options
@settings_options
@click.option("--json", "as_json", is_flag=True, help="Print the per-method summary as JSON on stdout.")
@_common
def report(run_dir, output, targets, references, methods, link, title, no_images, scale_invariant, truncate, resample,
           channel, mixdown, no_perceptual, key, input_kind, as_json, quiet, debug, config_name, **flags):
    """Write a self-contained HTML listening page for a folder of reconstructions.

    \b
    RUN_DIR layout:
      RUN_DIR/reference/<stem>.wav        optional: the original recordings
      RUN_DIR/target/<stem>.npy           optional: the spectrograms inverted (.npz/.pt too)
      RUN_DIR/<method>/<stem>.wav         one folder per method
    Per item: a player for the reference and for each method, spectrograms, metrics; on top a
    sortable table (SC/SNR/SER against the target, or the reference's spectrogram when there is
    no target; LSD, PESQ, STOI against the reference), and which SC it shows (as written, or
    --scale-invariant). Audio and images are embedded (base64): the page loads nothing from the
    network.

    Each output is compared as 'eval' compares it: a length the target's frames (or the
    reference) do not explain, another sample rate or several channels are refused (an error
    line each, noted on the page; exit 1, or 2 and no page when nothing could be scored) unless
    --truncate, --resample, --channel N or --mixdown says so.

    \b
    Examples:
      specinv report runs/exp1 -o report.html
      specinv report runs/exp1 -o report.html -m fgla,dm --link --config hifigan-22k
    """
    run = _Run(quiet, as_json)
    cfg = _config(run, config_name, flags)
    options = _compare(run, truncate, resample, channel, mixdown)
    from .io import OutputError
    from .plot import MissingMatplotlib
    from .report import NothingScored, build_report
    from .spectrogram import InputError

    names = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    reads = [p for d in (run_dir, targets, references) if d and os.path.isdir(d)
             for pattern in ("*", "*/*") for p in Path(d).glob(pattern) if p.is_file()]
    run.check_writes([output], reads + _setting_files(cfg, config_name))
    try:
        info = build_report(run_dir, cfg, output, targets=targets, references=references, methods=names, link=link,
                            title=title, perceptual=not no_perceptual, images=not no_images, key=key,
                            input_kind=input_kind, scale_invariant=scale_invariant, options=options,
                            words=cli_words, progress=lambda i, n, stem: run.rep.info(f"[{i + 1}/{n}] {stem}"))
    except MissingMatplotlib as e:
        run.usage(f"{e} (or use --no-images)")
    except NothingScored as e:  # every comparison refused: each said, no page
        if debug:
            raise
        for msg in e.errors:
            run.error(msg.split(": ", 1)[0], msg)
        run.finish()
    except (InputError, OutputError) as e:
        if debug:
            raise
        run.usage(str(e))
    except KeyboardInterrupt:
        _interrupted(run)
    for msg in info["errors"]:
        run.error(msg.split(": ", 1)[0], msg)
    run.ok = info["scored"]
    run.rep.info(f"wrote {output}: {info['items']} item(s), methods {', '.join(info['methods'])}, "
                 f"{info['bytes'] / 1e6:.1f} MB; SC {'scale-invariant' if scale_invariant else 'as written'}")
    run.emit({"output": str(output), "items": info["items"], "methods": info["methods"],
              "scale_invariant": bool(scale_invariant), "scored": info["scored"], "failed": len(info["errors"]),
              "summary": {m: {k: {n: round(v, 4) for n, v in d.items()} for k, d in s.items()}
                          for m, s in info["summary"].items()}})
    run.finish()


def register(cli) -> None:
    """Add the companion commands to the ``specinv`` group."""
    for cmd in (stft, eval_, plot, report):
        cli.add_command(cmd)
