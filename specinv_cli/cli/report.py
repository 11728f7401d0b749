"""``specinv report``: an HTML listening page for a run folder."""
from __future__ import annotations

import os
from pathlib import Path

import click

from .common import (CONTEXT, Run, common_flags, compare_options, comparison, interrupted, metric_groups, read_options,
                     run_config, setting_files)
from .flags import cli_words, settings_options


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
@compare_options
@click.option("--metrics", metavar="G,G,...", help="Metric groups: spectral, lsd, mcd, pesq, stoi, visqol, visqol-audio, dnsmos, f0 [all installed].")
@click.option("--no-perceptual", is_flag=True, help="Skip the model-based metrics (PESQ, STOI, ViSQOL, DNSMOS, F0) even when installed.")
@click.option("--baseline", metavar="METHOD", help="With several methods: the one every other is compared with, item by item [the first].")
@click.option("--level", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True, help="Confidence level of the paired comparison.")
@click.option("--resamples", type=click.IntRange(min=100), default=10000, show_default=True, help="Bootstrap resamples of the paired comparison.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@read_options
@settings_options
@click.option("--json", "as_json", is_flag=True, help="Print the per-method summary as JSON on stdout.")
@common_flags
def report(run_dir, output, targets, references, methods, link, title, no_images, scale_invariant, truncate, resample,
           channel, mixdown, metrics, no_perceptual, baseline, level, resamples, seed, key, input_kind, as_json, quiet, debug,
           config_name, **flags):
    """Write a self-contained HTML listening page for a folder of reconstructions.

    \b
    RUN_DIR layout:
      RUN_DIR/reference/<stem>.wav        optional: the original recordings
      RUN_DIR/target/<stem>.npy           optional: the spectrograms inverted (.npz/.pt too)
      RUN_DIR/<method>/<stem>.wav         one folder per method
    Per item: a player for the reference and for each method, spectrograms, metrics; on top a
    sortable table (SC/SNR/SER against the target, or the reference's spectrogram when there is
    no target; LSD, MCD, PESQ, STOI, ViSQOL, F0 against the reference; DNSMOS), and which SC it
    shows (as written, or --scale-invariant). With several methods, a paired comparison of each
    against --baseline (mean difference, bootstrap CI, Wilcoxon test). The protocol (settings,
    metrics, statistics, versions) is stated at the top, so the page can go into a paper's
    supplementary material as it is. Audio and images are embedded (base64): the page loads
    nothing from the network.

    Each output is compared as 'eval' compares it: a length the target's frames (or the
    reference) do not explain, another sample rate or several channels are refused (an error
    line each, noted on the page; exit 1, or 2 and no page when nothing could be scored) unless
    --truncate, --resample, --channel N or --mixdown says so.

    \b
    Examples:
      specinv report runs/exp1 -o report.html
      specinv report runs/exp1 -o report.html -m fgla,dm --link --config hifigan-22k
    """
    run = Run(quiet, as_json)
    cfg = run_config(run, config_name, flags)
    options = comparison(run, truncate, resample, channel, mixdown)
    from ..errors import OutputError
    from ..companion.plot import MissingMatplotlib
    from ..companion.report import NothingScored, build_report
    from ..io.spectrogram import InputError

    groups = metric_groups(run, metrics)
    names = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    reads = [p for d in (run_dir, targets, references) if d and os.path.isdir(d)
             for pattern in ("*", "*/*") for p in Path(d).glob(pattern) if p.is_file()]
    run.check_writes([output], reads + setting_files(cfg, config_name))
    try:
        info = build_report(run_dir, cfg, output, targets=targets, references=references, methods=names, link=link,
                            title=title, perceptual=not no_perceptual, metrics=groups, images=not no_images, key=key,
                            baseline=baseline, level=level, n_resamples=resamples, seed=seed,
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
        interrupted(run)
    for msg in info["errors"]:
        run.error(msg.split(": ", 1)[0], msg)
    run.ok = info["scored"]
    run.rep.info(f"wrote {output}: {info['items']} item(s), methods {', '.join(info['methods'])}, "
                 f"{info['bytes'] / 1e6:.1f} MB; SC {'scale-invariant' if scale_invariant else 'as written'}")
    run.emit({"output": str(output), "items": info["items"], "methods": info["methods"],
              "scale_invariant": bool(scale_invariant), "scored": info["scored"], "failed": len(info["errors"]),
              "summary": {m: {k: {n: round(v, 4) for n, v in d.items()} for k, d in s.items()}
                          for m, s in info["summary"].items()},
              "paired": info["paired"], "protocol": info["protocol"]})
    run.finish()
