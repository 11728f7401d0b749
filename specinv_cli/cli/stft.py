"""``specinv stft``: spectrograms from audio, as ``invert`` reads them."""
from __future__ import annotations

import os
import time
from pathlib import Path

import click

from .common import CONTEXT, Run, audio_inputs, common_flags, interrupted, run_config, setting_files
from .flags import SETTINGS, settings_options


@click.command(context_settings=CONTEXT, short_help="Make spectrograms from audio, as 'invert' reads them.")
@click.argument("inputs", nargs=-1, type=click.Path())
@click.option("-O", "--output-dir", required=True, type=click.Path(file_okay=False), help="Folder for the spectrograms (<stem>.npy or .pt); created if missing.")
@settings_options
@click.option("--mel/--linear", "mel", default=None, help="Mel features (encoded as the preset says: compression, normalisation) or a linear spectrogram [mel with a mel preset or --n-mels, else linear].")
@click.option("--kind", type=click.Choice(["magnitude", "power", "db", "log"]), default="magnitude", show_default=True, help="Linear spectrograms: |X|, |X|^2, 20log10|X| or ln|X| (read back with 'invert --input-kind KIND').")
@click.option("--format", "fmt", type=click.Choice(["npy", "pt"]), default="npy", show_default=True, help="File format: numpy .npy or a torch tensor .pt.")
@click.option("--channel", type=click.IntRange(min=0), help="Take this channel (0-based) of multichannel files instead of the mono mix-down.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per output on stdout, then a summary line.")
@common_flags
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
    run = Run(quiet, as_json)
    if not inputs:
        run.usage("no input given; pass audio files or folders")
    cfg = run_config(run, config_name, flags)
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
    files = audio_inputs(run, inputs)
    if as_json:
        run.need_stdout("--json")
    from ..companion.analysis import analyze, load_audio, save_array
    from ..errors import OutputError
    from ..io.write import check_destination
    from ..io.spectrogram import InputError

    reads = [str(f) for f in files] + setting_files(cfg, config_name)

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
        interrupted(run)
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
