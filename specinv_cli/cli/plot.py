"""``specinv plot``: spectrograms, differences or convergence curves as a PNG."""
from __future__ import annotations

from pathlib import Path

import click

from .common import CONTEXT, Run, common_flags, compare_options, comparison, interrupted, read_options, run_config, setting_files
from .flags import cli_words, settings_options


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
@read_options
@settings_options
@compare_options
@click.option("--top-db", type=click.FloatRange(min=1), default=80.0, show_default=True, help="Dynamic range of the spectrogram panels in dB.")
@click.option("--title", help="Title of the figure.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object describing the figure on stdout.")
@common_flags
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
    run = Run(quiet, as_json)
    from ..companion.plot import MissingMatplotlib, require_matplotlib

    try:
        require_matplotlib()
    except MissingMatplotlib as e:
        run.usage(str(e))
    cfg = run_config(run, config_name, flags)
    options = comparison(run, truncate, resample, channel, mixdown)
    if convergence and audios:
        run.usage("--audio draws spectrograms; --convergence draws curves: use one of them")
    if not convergence and (methods or histories):
        run.usage("-m/--method and --history go with --convergence")
    if spec is None and not (convergence and histories):
        run.usage("no spectrogram given; pass SPEC (a spectrogram or audio file)" +
                  (" or --history FILE.json" if convergence else ""))
    run.check_writes([output], [p for p in (spec, *audios, *histories) if p] + setting_files(cfg, config_name))
    from ..companion.analysis import analyze, check_comparison, is_audio_file, load_audio, load_target, read_audio
    from ..errors import OutputError
    from ..io.spectrogram import InputError, interpret

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
            from ..algorithms.registry import DEFAULT_METHOD, get_method
            from ..companion.plot import convergence_png, load_history, run_convergence

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
            from ..companion.plot import spectrogram_png

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
        interrupted(run)
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
