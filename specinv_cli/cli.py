"""The ``specinv`` command line: parse, call the library, render. No DSP here.

Exit codes: 0 success; 1 some items failed while others were written; 2 bad usage or no usable
input (one line on stderr naming the file and the reason); 3 internal error (a bug: please
report it; ``--debug`` shows the traceback); 130 interrupted (SIGINT/SIGTERM;
temporary files removed, finished outputs kept).
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import click

from ._version import __version__
from .algorithms.registry import DEFAULT_INIT, DEFAULT_MEL_METHOD, DEFAULT_METHOD, INITS, REGISTRY, all_options, get_method

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Failure(Exception):
    """An item-level failure with its user-facing one-line message."""


def _method_option_decorators():
    """One click option per distinct method option in the registry (default None = method's)."""
    decos = []
    for name, opt in sorted(all_options().items()):
        users = [m.name for m in REGISTRY.values() if any(o.name == name for o in m.options)]
        defaults = {m.name: o.default for m in REGISTRY.values() for o in m.options if o.name == name}
        shown = ", ".join(f"{k} {v}" for k, v in defaults.items())
        help_ = f"{opt.help} [{'; '.join(users)}; default: {shown}]"
        if opt.type is bool:
            decos.append(click.option(f"{opt.flag}/--no-{opt.flag[2:]}", name, default=None, help=help_))
        else:
            decos.append(click.option(opt.flag, name, type=opt.type, default=None, help=help_,
                                      metavar=opt.type.__name__.upper()))
    return decos


def _apply(decos):
    def wrap(f):
        for d in reversed(decos):
            f = d(f)
        return f
    return wrap


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="specinv")
def cli():
    """specinv: turn spectrograms back into audio.

    \b
    Examples:
      specinv invert mag.npy -m fgla -o out.wav
      specinv invert --example -o example.wav
      specinv invert mels/*.npy -O wavs/ --json
    """


# --- invert ---------------------------------------------------------------------------------
@cli.command(context_settings=CONTEXT)
@click.argument("inputs", nargs=-1, type=click.Path(dir_okay=True, allow_dash=True, readable=False))
@click.option("-o", "--output", type=click.Path(allow_dash=True), help="Output WAV ('-' = stdout). A batched input writes OUTPUT_000.wav, ...")
@click.option("-O", "--output-dir", type=click.Path(file_okay=False), help="Folder for outputs, named after the inputs (<stem>.wav, <stem>_000.wav for batches).")
@click.option("--example", is_flag=True, help="Invert the bundled example spectrogram (CC0 guitar chord).")
@click.option("-m", "--method", default=None, metavar="NAME", help=f"Algorithm: {', '.join(REGISTRY)} (see 'specinv methods') [{DEFAULT_METHOD}; mel input: {DEFAULT_MEL_METHOD}].")
@click.option("-n", "--iters", "n_iter", type=click.IntRange(min=0), default=100, show_default=True, help="Iterations of iterative methods.")
@click.option("--init", type=click.Choice(INITS), default=DEFAULT_INIT, show_default=True, help="Initial phase (a complex input's phase overrides it).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random initial phase.")
@click.option("--tol", type=click.FloatRange(min=0), default=0.0, show_default=True, help="Stop when the spectral loss changes by less than this fraction between evaluations (0 = run all iterations).")
@click.option("--config", "config_name", metavar="NAME|FILE.toml", help="STFT preset from configs/ (see 'specinv configs') or a TOML file.")
@click.option("--n-fft", type=click.IntRange(min=2), help="FFT size (default: inferred from the number of bins).")
@click.option("--hop-length", type=click.IntRange(min=1), help="Hop between frames in samples [256].")
@click.option("--win-length", type=click.IntRange(min=1), help="Window length [n_fft].")
@click.option("--window", help="Window: hann, hamming, blackman, bartlett, rectangular, gaussian [hann].")
@click.option("--center/--no-center", default=None, help="Frames centred on t*hop (signal padded by n_fft/2) [center].")
@click.option("--pad-mode", type=click.Choice(["reflect", "constant", "replicate", "circular"]), help="Padding for centred frames [reflect].")
@click.option("--sr", "sample_rate", type=click.IntRange(min=1), help="Sample rate of the output in Hz [22050].")
@click.option("--input-kind", type=click.Choice(["magnitude", "power", "db", "log", "complex"]), default="magnitude", show_default=True, help="What the input holds: |X|, |X|^2, 20log10|X|, ln|X|, or complex X (also real [..., F, T, 2]).")
@click.option("--layout", type=click.Choice(["ft", "tf"]), default=None, help="Axis order of the last two dims: ft = [..., F, T], tf = [..., T, F] [the preset's, else ft].")
@click.option("--n-mels", type=click.IntRange(min=1), help="Mel bands: inputs with this many bins are mel spectrograms [preset's].")
@click.option("--fmin", type=click.FloatRange(min=0), help="Lowest mel frequency in Hz [0].")
@click.option("--fmax", type=click.FloatRange(min=0, min_open=True), help="Highest mel frequency in Hz [sr/2].")
@click.option("--mel-scale", type=click.Choice(["slaney", "htk"]), help="Mel scale [slaney].")
@click.option("--mel-norm", type=click.Choice(["slaney", "none"]), help="Mel filter normalisation [slaney].")
@click.option("--mel-power", type=click.FloatRange(min=0, min_open=True), help="Mel of |X|**p: 1 magnitude, 2 power [1].")
@click.option("--compression", type=click.Choice(["none", "ln", "log10", "db", "log1p"]), help="Log compression of the mel features [preset's, else none].")
@click.option("--clamp", type=click.FloatRange(min=0, min_open=True), help="Floor applied before the log (e.g. 1e-5 for ln(clamp(x, 1e-5))).")
@click.option("--normalization", type=click.Choice(["none", "meanvar", "symmetric"]), help="Normalisation after compression [preset's, else none].")
@click.option("--stats", type=click.Path(dir_okay=False), help="Mean/std stats (.npz; ESPnet feats_stats.npz) for meanvar normalisation.")
@click.option("--refine", type=click.IntRange(min=0), default=None, help="L-BFGS iterations on the waveform against the input (the mel for mel input), taken from --iters [mel input: 50; linear: 0].")
@click.option("--nnls-iters", type=click.IntRange(min=0), default=100, show_default=True, help="Iterations of the mel -> linear non-negative least squares.")
@click.option("--key", help="Array name in a .npz, or key in a .pt dict.")
@click.option("--length", type=click.IntRange(min=1), help="Output length in samples [(T-1)*hop for centred frames].")
@click.option("--subtype", type=click.Choice(["PCM_16", "PCM_24", "FLOAT"]), default="PCM_16", show_default=True, help="WAV sample format.")
@click.option("--normalize", type=click.Choice(["peak", "none"]), default=None, help="peak: scale to a 0.99 peak; none: write as is. Default: scale only if the peak exceeds 1, with a warning.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N (auto = cuda when available).")
@click.option("--precision", type=click.Choice(["single", "double"]), default="single", show_default=True, help="float32/complex64 or float64/complex128.")
@click.option("--metric", type=click.Choice(["sc", "snr", "ser"]), default="sc", show_default=True, help="Metric shown in the progress bars.")
@click.option("--eval-every", type=click.IntRange(min=1), default=10, show_default=True, help="Iterations between metric evaluations.")
@click.option("--max-memory", callback=lambda c, p, v: _parse_size(v), metavar="SIZE",
              help="Refuse inputs whose inversion would need more memory than this (e.g. 512M, 16G; 'none' = no "
                   "limit) [available memory: MemAvailable, or free CUDA memory].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per output on stdout, then a summary line.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or info on stderr (errors and warnings still shown).")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@_apply(_method_option_decorators())
def invert(inputs, output, output_dir, example, method, n_iter, init, seed, tol, config_name, n_fft,
           hop_length, win_length, window, center, pad_mode, sample_rate, input_kind, layout, key,
           n_mels, fmin, fmax, mel_scale, mel_norm, mel_power, compression, clamp, normalization, stats,
           refine, nnls_iters, length, subtype, normalize, device, precision, metric, eval_every, max_memory,
           as_json, quiet, debug, **method_options):
    """Invert spectrogram files (.npy, .npz, .pt) to WAV.

    \b
    Examples:
      specinv invert mag.npy -m fgla -o out.wav
      specinv invert mag.pt -m gla --iters 200 --sr 22050 -o out.wav
      specinv invert spec_db.npy --input-kind db --layout tf -o out.wav
      specinv invert batch.npy -O wavs/ --json          # [B, F, T] -> wavs/batch_000.wav ...
      specinv invert mel.npy --config hifigan-22k -o out.wav   # a model's log-mel
    """
    from .progress import Reporter

    rep = Reporter(quiet=quiet, metric=metric)
    opts = {k: v for k, v in method_options.items() if v is not None}
    try:
        if method is not None:
            get_method(method).resolve_options(opts)
        else:  # the default depends on the input (linear or mel): check the options fit one of them
            defaults = list(dict.fromkeys((DEFAULT_METHOD, DEFAULT_MEL_METHOD)))
            errors = []
            for name in defaults:
                try:
                    get_method(name).resolve_options(opts)
                except ValueError as e:
                    errors.append(str(e))
            if len(errors) == len(defaults):
                raise ValueError(errors[0] + " (give -m to choose a method)")
    except ValueError as e:
        _usage(rep, str(e))
    if example:
        if inputs:
            _usage(rep, "--example takes no input files")
        from .io import example_path
        inputs = (str(example_path()),)
    if not inputs:
        _usage(rep, "no input given; pass spectrogram files, '-' for stdin, or --example")
    if output and output_dir:
        _usage(rep, "give either -o/--output or -O/--output-dir, not both")
    if output and len(inputs) > 1:
        _usage(rep, f"-o names one output but {len(inputs)} inputs were given; use -O DIR")
    if output == "-" and as_json:
        _usage(rep, "-o - writes audio to stdout, which --json also needs; use one of them")

    try:
        base_cfg = _build_config(config_name, dict(n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                                                   window=window, center=center, pad_mode=pad_mode,
                                                   sample_rate=sample_rate, n_mels=n_mels, fmin=fmin,
                                                   fmax=fmax, mel_scale=mel_scale, mel_norm=mel_norm,
                                                   mel_power=mel_power, compression=compression,
                                                   clamp=clamp, normalization=normalization,
                                                   stats=stats, layout=layout))
    except ValueError as e:
        _usage(rep, str(e))
    if output_dir:
        od = Path(output_dir)
        if not od.exists():
            try:
                od.mkdir(parents=True)
            except OSError as e:
                _usage(rep, f"{output_dir}: cannot create output folder ({e.strerror or e})")

    import torch  # noqa: F401  (after argument checks: usage errors stay fast)
    from .api import DeviceError, resolve_device

    try:
        dev = resolve_device(device)
    except DeviceError as e:
        _usage(rep, str(e))

    if max_memory is None:
        from .api import available_memory

        limit = (available_memory(dev), "free CUDA memory" if dev.type == "cuda" else "available memory")
    else:
        limit = (max_memory, "--max-memory")
    _install_signal_handlers()
    results, failures = [], 0
    t_start = time.perf_counter()
    with rep.session():
        for path in inputs:
            try:
                for rec in _invert_one(path, rep, output=output, output_dir=output_dir,
                                       example=example, method=method, opts=opts, n_iter=n_iter,
                                       init=init, seed=seed, tol=tol, cfg=base_cfg, input_kind=input_kind,
                                       key=key, length=length, subtype=subtype, refine=refine,
                                       nnls_iters=nnls_iters,
                                       normalize=normalize or "auto", device=dev, precision=precision,
                                       eval_every=eval_every, debug=debug, limit=limit):
                    results.append(rec)
                    _emit(rec, as_json)
            except KeyboardInterrupt:
                from .io import cleanup_temporaries

                cleanup_temporaries()
                rep.error("interrupted; temporary files removed, finished outputs kept")
                sys.exit(EXIT_INTERRUPTED)
            except Failure as e:
                failures += 1
                rep.error(str(e))
                rec = {"input": str(path), "status": "error", "error": str(e)}
                results.append(rec)
                _emit(rec, as_json)
    ok = sum(1 for r in results if r.get("status") == "ok")
    if as_json:
        _emit({"summary": {"outputs": ok, "failed_inputs": failures, "inputs": len(inputs),
                           "seconds": round(time.perf_counter() - t_start, 4)}}, True)
    if failures:
        sys.exit(EXIT_PARTIAL if ok else EXIT_USAGE)


_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def _parse_size(value):
    """``16G``, ``512M``, ``2.5GiB``, ``1000000`` (bytes) or ``none`` -> bytes (``inf`` for none)."""
    if value is None:
        return None
    import re

    v = str(value).strip().lower()
    if v in ("none", "inf", "unlimited", "off"):
        return float("inf")
    m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]?)(?:i?b)?", v)
    if not m:
        raise click.BadParameter(f"{value!r} is not a size like 512M, 16G or 2.5GiB (or 'none')")
    return float(m[1]) * 1024 ** _UNITS[m[2]]


def _check_memory(name, n_items, n_frames, cfg, *, length, precision, input_bytes, limit):
    """Refuse (Failure) an inversion whose estimated peak memory exceeds the limit."""
    from .api import estimate_memory
    from .io import _fmt_bytes

    cap, origin = limit
    if cap is None or cap == float("inf"):
        return
    need = estimate_memory(n_items, n_frames, cfg, length=length, precision=precision, input_bytes=input_bytes)
    if need > cap:
        import math

        gib = need / 2 ** 30
        suggest = f"{math.ceil(gib * 1.25)}G" if gib >= 1 else f"{math.ceil(need / 2 ** 20 * 1.25)}M"
        raise Failure(f"{name}: inverting needs about {_fmt_bytes(need)}, more than the limit {_fmt_bytes(cap)} "
                      f"({origin}); raise it with --max-memory {suggest}")


def _header_dims(shape, dtype, input_kind, layout):
    """(items, bins, frames) that an array of ``shape`` will have once interpreted, or None."""
    shape = tuple(shape)
    if input_kind == "complex" and dtype.kind != "c" and len(shape) >= 3 and shape[-1] == 2:
        shape = shape[:-1]
    if len(shape) < 2 or 0 in shape:
        return None
    n_f, n_t = (shape[-2], shape[-1]) if layout == "ft" else (shape[-1], shape[-2])
    items = 1
    for d in shape[:-2]:
        items *= d
    return items, n_f, n_t


def _num(v: float):
    """A metric for JSON: rounded, ``null`` if not finite (JSON has no NaN)."""
    import math

    return round(v, 4) if math.isfinite(v) else None


def _usage(rep, message: str):
    rep.error(message)
    sys.exit(EXIT_USAGE)


def _emit(rec: dict, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(rec) + "\n")
        sys.stdout.flush()


def _install_signal_handlers():
    def on_term(signum, frame):
        raise KeyboardInterrupt
    try:
        signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not in the main thread (e.g. embedded use)
        pass


def _build_config(config_name, flags: dict):
    from .config import ConfigError, load_preset

    cfg = load_preset(config_name) if config_name else load_preset("default", explicit=False)
    changes = {k: v for k, v in flags.items() if v is not None}
    if "n_fft" in changes and "win_length" not in changes:
        if "win_length" not in cfg.explicit or (cfg.win_length or 0) > changes["n_fft"]:
            changes["win_length"] = None  # the window follows n_fft, as in librosa/torch
    if changes:
        try:
            cfg = cfg.replace(**changes)
        except ConfigError as e:
            raise ConfigError(str(e).replace("settings:", "options:", 1)) from None
    return cfg


def _output_paths(path: str, n_items: int, output: str | None, output_dir: str | None, example: bool):
    """Destination of each item of one input."""
    if output == "-":
        if n_items != 1:
            raise Failure(f"{path}: holds {n_items} items; -o - writes a single WAV stream, use -O DIR")
        return ["-"]
    if output:
        out = Path(output)
        if n_items == 1:
            return [out]
        stem, suffix = out.stem, out.suffix or ".wav"
        width = max(3, len(str(n_items - 1)))
        return [out.with_name(f"{stem}_{i:0{width}d}{suffix}") for i in range(n_items)]
    stem = "example" if example else ("stdin" if path == "-" else Path(path).stem)
    folder = Path(output_dir) if output_dir else (Path(".") if path == "-" or example else Path(path).parent)
    if n_items == 1:
        return [folder / f"{stem}.wav"]
    width = max(3, len(str(n_items - 1)))
    return [folder / f"{stem}_{i:0{width}d}.wav" for i in range(n_items)]


def _invert_one(path, rep, *, output, output_dir, example, method, opts, n_iter, init, seed, tol, cfg,
                input_kind, key, length, subtype, normalize, device, precision, eval_every, debug, refine,
                nnls_iters, limit=(None, "")):
    """Invert one input file; yields one record per written output. Raises Failure."""
    from .api import invert as run_invert
    from .config import ConfigError
    from .io import OutputError, load_spectrogram, peek_array, prepare_audio, save_audio, wav_bytes
    from .spectrogram import InputError

    name = "<stdin>" if path == "-" else str(path)
    try:
        head = peek_array(path, key)  # .npy/.npz: shape and dtype from the header, data unread
        dims = _header_dims(head[0], head[1], input_kind, cfg.layout) if head else None
        if dims is not None:
            items, n_f, n_t = dims
            _check_memory(name, items, n_t, cfg.with_bins(n_f, name), length=length, precision=precision,
                          input_bytes=items * n_f * n_t * (head[1].itemsize + 8), limit=limit)
        target = load_spectrogram(path, key=key, input_kind=input_kind, layout=cfg.layout, n_mels=cfg.n_mels)
        item_cfg = cfg.with_bins(target.mag.shape[-2], name)
    except (InputError, ConfigError) as e:
        if debug:
            raise
        raise Failure(str(e)) from None
    n_items = 1
    for d in target.batch_shape:
        n_items *= d
    in_bytes = target.mag.numel() * target.mag.element_size() * (3 if target.phase is not None else 1)
    _check_memory(name, n_items, target.mag.shape[-1], item_cfg, length=length, precision=precision,
                  input_bytes=in_bytes, limit=limit)
    dests = _output_paths(path, n_items, output, output_dir, example)
    for d in dests:
        if d != "-" and path != "-" and Path(d).resolve() == Path(path).resolve():
            raise Failure(f"{name}: output path {d} is the input file; choose another -o/-O")
    labels = [Path(str(d)).name if d != "-" else "stdout" for d in dests]
    method = method or (DEFAULT_MEL_METHOD if item_cfg.is_mel else DEFAULT_METHOD)
    m = get_method(method)
    total = n_iter if m.iterative else (refine or 0)
    callback = rep.callback_for(labels, max(total, 1))
    try:
        res = run_invert(target, method=method, config=item_cfg, n_iter=n_iter, init=init, length=length,
                         device=device, precision=precision, seed=seed, tol=tol, eval_every=eval_every,
                         callback=callback, source=name, refine=refine, nnls_iters=nnls_iters, **opts)
    except (InputError, ConfigError, ValueError) as e:
        if debug:
            raise
        raise Failure(str(e) if str(e).startswith(name) else f"{name}: {e}") from None
    except RuntimeError as e:  # e.g. out of memory on the device
        if debug:
            raise
        raise Failure(f"{name}: {method} failed: {str(e).splitlines()[0][:200]}") from None

    import numpy as np

    audio = res.audio.reshape(n_items, -1).numpy()
    flat = {k: v.reshape(-1).tolist() for k, v in res.metrics.items()}
    per_item_seconds = res.seconds / n_items
    for i, dest in enumerate(dests):
        data, gain, clipped = prepare_audio(audio[i], normalize, subtype)
        label = name if n_items == 1 else f"{name}[{i}]"
        if gain != 1.0 and normalize == "auto":
            rep.warning(f"{label}: peak {0.99 / gain:.3g} exceeds full scale; scaled by {gain:.4g} "
                        f"({20 * np.log10(gain):.1f} dB) to avoid clipping (--normalize none to keep levels)")
        if clipped:
            rep.warning(f"{label}: {clipped} sample(s) beyond full scale will be clipped in {subtype} "
                        f"(use --normalize peak or --subtype FLOAT)")
        try:
            if dest == "-":
                sys.stdout.buffer.write(wav_bytes(data, item_cfg.sample_rate, subtype))
                sys.stdout.buffer.flush()
            else:
                save_audio(dest, data, item_cfg.sample_rate, subtype)
        except OutputError as e:
            raise Failure(str(e)) from None
        rec = {"input": name, "item": i if n_items > 1 else None, "output": str(dest), "status": "ok",
               "method": method, "iterations": res.iterations, "domain": res.domain,
               "sc": _num(flat["sc"][i]), "snr": _num(flat["snr"][i]), "ser": _num(flat["ser"][i]),
               "seconds": round(per_item_seconds, 4), "device": res.device, "samples": int(data.shape[-1]),
               "sample_rate": item_cfg.sample_rate, "gain": round(gain, 6)}
        if not rep.live:
            dom = "mel " if res.domain == "mel" else ""
            rep.info(f"{label} -> {dest}: {method} {res.iterations} it, {dom}SC {flat['sc'][i]:.2f} dB, "
                     f"SNR {flat['snr'][i]:.2f} dB, SER {flat['ser'][i]:.2f} dB, {per_item_seconds:.2f} s on {res.device}")
        yield rec


# --- methods / configs ----------------------------------------------------------------------
@cli.command(context_settings=CONTEXT)
def methods():
    """List the algorithms: name, description, paper, options with defaults."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title="specinv methods", show_lines=False)
    for col in ("name", "description", "paper", "options (defaults)"):
        t.add_column(col, overflow="fold")
    for m in REGISTRY.values():
        opts = ", ".join(f"{o.flag} {o.default}" for o in m.options) or "-"
        kind = "" if m.iterative else " [non-iterative]"
        t.add_row(m.name, m.summary + kind, m.paper, opts)
    Console().print(t)


@cli.group(context_settings=CONTEXT, invoke_without_command=True)
@click.pass_context
def configs(ctx):
    """List the STFT presets in configs/ ('configs show NAME' prints one)."""
    if ctx.invoked_subcommand is None:
        from .config import list_presets, read_preset_text

        for name in list_presets():
            first = next((ln[1:].strip() for ln in read_preset_text(name).splitlines() if ln.startswith("#")), "")
            click.echo(f"{name:<20} {first}")


@configs.command("show", context_settings=CONTEXT)
@click.argument("name")
def configs_show(name):
    """Print preset NAME (or a .toml file) as TOML."""
    from .config import ConfigError, load_preset, read_preset_text

    try:
        load_preset(name)
        click.echo(read_preset_text(name), nl=False)
    except ConfigError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_USAGE)


from . import cli_bench, cli_companion  # noqa: E402  (click only: --help stays fast)

cli_companion.register(cli)
cli_bench.register(cli)


def main(argv=None):
    """Entry point: click errors become one line on stderr with exit code 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        rv = cli.main(args=argv, prog_name="specinv", standalone_mode=False)
    except click.ClickException as e:
        ctx_cmd = getattr(getattr(e, "ctx", None), "command_path", "specinv")
        click.echo(f"error: {e.format_message()} (see '{ctx_cmd} --help')", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except Exception as e:  # a bug, not bad input: one line unless --debug
        if "--debug" in argv:
            raise
        first = (str(e).splitlines() or [""])[0][:300]
        click.echo(f"error: internal error: {type(e).__name__}: {first} (rerun with --debug for a traceback)", err=True)
        sys.exit(EXIT_INTERNAL)
    if isinstance(rv, int) and rv:
        sys.exit(rv)
