"""``specinv invert``: spectrogram files to audio, through :class:`~specinv_cli.batch.pipeline.Pipeline`."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from .common import CONTEXT, EXIT_INTERRUPTED, EXIT_PARTIAL, EXIT_USAGE, build_config, emit_record, ignore_signals, load_torch, parse_size, require_stdout, usage
from .flags import settings_options
from ..algorithms.registry import DEFAULT_INIT, DEFAULT_MEL_METHOD, DEFAULT_METHOD, INITS, REGISTRY, all_options


def _method_option_decorators():
    """One click option per distinct method option in the registry (default None = method's),
    plugins' included: reading the registry loads their light spec entry points (not their
    implementations; a spec that imports torch would make every start, --help too, pay for it)."""
    decos = []
    for name, opt in sorted(all_options().items()):
        users = [m.name + ("" if m.builtin else " (plugin)") for m in REGISTRY.values()
                 if any(o.name == name for o in m.options)]
        defaults = {m.name: o.default for m in REGISTRY.values() for o in m.options if o.name == name}
        shown = ", ".join(f"{k} {v}" for k, v in defaults.items())
        help_ = f"{opt.help + ' ' if opt.help else ''}[{'; '.join(users)}; default: {shown}]"
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


@click.command(context_settings=CONTEXT)
@click.argument("inputs", nargs=-1, type=click.Path(dir_okay=True, allow_dash=True, readable=False))
@click.option("-o", "--output", type=click.Path(allow_dash=True), help="Output WAV ('-' = stdout). A batched input writes OUTPUT_000.wav, ...")
@click.option("-O", "--output-dir", type=click.Path(file_okay=False), help="Folder for outputs, named after the inputs (<stem>.wav, <stem>_000.wav for batches).")
@click.option("--example", is_flag=True, help="Invert the bundled example spectrogram (CC0 guitar chord).")
@click.option("-m", "--method", default=None, metavar="NAME", help=f"Algorithm: {', '.join(REGISTRY)} (see 'specinv methods', plugins included) [{DEFAULT_METHOD}; mel input: {DEFAULT_MEL_METHOD}].")
@click.option("-n", "--iters", "n_iter", type=click.IntRange(min=0), default=100, show_default=True, help="Iterations of iterative methods.")
@click.option("--init", type=click.Choice(INITS), default=DEFAULT_INIT, show_default=True, help="Initial phase (a complex input's phase overrides it).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random initial phase.")
@click.option("--tol", type=click.FloatRange(min=0), default=0.0, show_default=True, help="Stop when the spectral loss changes by less than this fraction between evaluations (0 = run all iterations).")
@settings_options
@click.option("--input-kind", type=click.Choice(["magnitude", "power", "db", "log", "complex"]), default="magnitude", show_default=True, help="What the input holds: |X|, |X|^2, 20log10|X|, ln|X|, or complex X (also real [..., F, T, 2]).")
@click.option("--refine", type=click.IntRange(min=0), default=None, help="L-BFGS iterations on the waveform against the input (the mel for mel input), taken from --iters [mel input: 50, at most half of --iters; linear: 0].")
@click.option("--nnls-iters", type=click.IntRange(min=0), default=100, show_default=True, help="Iterations of the mel -> linear non-negative least squares.")
@click.option("--key", help="Array name in a .npz, or key in a .pt dict.")
@click.option("--length", type=click.IntRange(min=1), help="Output length in samples [(T-1)*hop for centred frames].")
@click.option("--subtype", type=click.Choice(["auto", "PCM_16", "PCM_24", "FLOAT"]), default="auto", show_default=True, help="WAV sample format. auto: PCM_16 when the audio fits full scale, else 32-bit FLOAT (said on stderr), so the level is never changed and nothing is clipped; PCM_16/PCM_24 clip beyond full scale (with a warning counting the samples).")
@click.option("--normalize", type=click.Choice(["none", "peak"]), default="none", show_default=True, help="none: keep the level; peak: scale to a 0.99 peak (the JSON then has gain and sc_before_gain).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N (auto = cuda when available).")
@click.option("--precision", type=click.Choice(["single", "double"]), default="single", show_default=True, help="float32/complex64 or float64/complex128.")
@click.option("--metric", type=click.Choice(["sc", "snr", "ser"]), default="sc", show_default=True, help="Metric shown in the progress bars.")
@click.option("--eval-every", type=click.IntRange(min=1), default=10, show_default=True, help="Iterations between metric evaluations.")
@click.option("-r", "--recursive", is_flag=True, help="Folders given as inputs are searched in subfolders too (outputs mirror them under -O).")
@click.option("--from-list", "from_list", metavar="FILE", help="Also invert the paths listed in FILE, one per line ('-' = stdin; '#' comments).")
@click.option("--skip-existing", is_flag=True, help="Skip inputs whose outputs already exist (resume an interrupted run).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Items inverted together (of different lengths: padded to the longest, each inverted as alone); GLA-family methods only, others go one by one [16 on CUDA; 1 on the CPU, where no batch was measured faster than one item at a time].")
@click.option("--shard", metavar="I/N", help="Process shard I of N (round-robin over the inputs) [from RANK/WORLD_SIZE or SLURM_* when set].")
@click.option("--block-frames", "block", type=click.IntRange(min=0), default=2048, show_default=True, help="Inputs longer than this many frames are inverted in overlapping blocks, cross-faded (0 = never).")
@click.option("--block-overlap", "overlap", type=click.IntRange(min=0), default=128, show_default=True, help="Frames shared by neighbouring blocks.")
@click.option("--history", "history_file", type=click.Path(dir_okay=False, allow_dash=False), metavar="FILE.json", help="Save each output's metrics at every evaluation (see --eval-every) to FILE.json.")
@click.option("--max-memory", callback=lambda c, p, v: parse_size(v), metavar="SIZE",
              help="Refuse inputs whose inversion would need more memory than this (e.g. 512M, 16G; 'none' = no "
                   "limit) [available memory: MemAvailable, or free CUDA memory].")
@click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N", help="CPU threads for torch, MKL and numba [what the process may use: its CPU affinity and quota]. When the machine is already busy the thread pools sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE unless set).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per output on stdout, then a summary line.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or info on stderr (errors and warnings still shown).")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@_apply(_method_option_decorators())
def invert(inputs, output, output_dir, example, method, n_iter, init, seed, tol, config_name, n_fft,
           hop_length, win_length, window, center, pad_mode, sample_rate, input_kind, layout, key,
           n_mels, fmin, fmax, mel_scale, mel_norm, mel_power, compression, clamp, normalization, stats,
           refine, nnls_iters, length, subtype, normalize, device, precision, metric, eval_every, max_memory,
           as_json, quiet, debug, recursive, from_list, skip_existing, batch_size, shard, block, overlap,
           history_file, threads, **method_options):
    """Invert spectrogram files (.npy, .npz, .pt) to WAV.

    \b
    Examples:
      specinv invert mag.npy -m fgla -o out.wav
      specinv invert mag.pt -m gla --iters 200 --sr 22050 -o out.wav
      specinv invert spec_db.npy --input-kind db --layout tf -o out.wav
      specinv invert batch.npy -O wavs/ --json          # [B, F, T] -> wavs/batch_000.wav ...
      specinv invert mel.npy --config hifigan-22k -o out.wav   # a model's log-mel
      specinv invert mels/ -r -O wavs/ --skip-existing --json  # a folder tree, resumable
      find mels -name '*.npy' | specinv invert --from-list - -O wavs/ --shard 0/4
    """
    from .progress import Reporter

    from .flags import cli_words

    rep = Reporter(quiet=quiet, metric=metric, words=cli_words)
    from ..options import InversionOptions

    inversion = InversionOptions(
        method=method, n_iter=n_iter, init=init, seed=seed, tol=tol, eval_every=eval_every, refine=refine,
        nnls_iters=nnls_iters, precision=precision, history=history_file is not None,
        method_options={k: v for k, v in method_options.items() if v is not None})
    try:
        inversion.validate()
    except ValueError as e:
        usage(rep, str(e))
    if example:
        if inputs or from_list:
            usage(rep, "--example takes no input files")
        from ..io.read import example_path
        inputs = (str(example_path()),)
    if not inputs and not from_list:
        usage(rep, "no input given; pass spectrogram files or folders, '-' for stdin, --from-list FILE, or --example")
    load_torch(lambda m: usage(rep, m), threads)
    from ..errors import OutputError
    from ..io.write import check_outputs, is_stdout

    given_output = output
    if output and output != "-" and is_stdout(output):
        output = "-"  # /dev/stdout and its aliases are standard output, as '-'
    if output == "-" and as_json:
        usage(rep, f"-o {given_output} writes audio to standard output, which --json also needs; use one of them")
    if output == "-" or as_json:
        require_stdout(lambda m: usage(rep, m), f"-o {given_output}" if output == "-" else "--json")
    if "-" in inputs and from_list == "-":
        usage(rep, "stdin cannot be both an input ('-') and the manifest (--from-list -)")
    from ..batch.inputs import InputsError, expand, select, shard_spec

    try:
        entries = expand(inputs, recursive=recursive, manifest=from_list)
        shard_i, shard_n, shard_origin = shard_spec(shard)
    except InputsError as e:
        usage(rep, str(e))
    n_all = len(entries)
    entries = select(entries, shard_i, shard_n)
    if output and output_dir:
        usage(rep, "give either -o/--output or -O/--output-dir, not both")
    if output and n_all > 1:
        usage(rep, f"-o names one output but {n_all} inputs were given; use -O DIR")
    from ..batch.blocks import check_blocks

    try:
        check_blocks(block, overlap)
    except ValueError as e:
        usage(rep, str(e))

    try:
        base_cfg = build_config(config_name, dict(n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                                                   window=window, center=center, pad_mode=pad_mode,
                                                   sample_rate=sample_rate, n_mels=n_mels, fmin=fmin,
                                                   fmax=fmax, mel_scale=mel_scale, mel_norm=mel_norm,
                                                   mel_power=mel_power, compression=compression,
                                                   clamp=clamp, normalization=normalization,
                                                   stats=stats, layout=layout))
    except ValueError as e:
        usage(rep, str(e))
    # every path the call reads; what it writes is checked against them before any work
    reads = [e.path for e in entries if e.path != "-"]
    reads += [p for p in (base_cfg.stats, config_name) if p and os.path.isfile(p)]
    if from_list and from_list != "-":
        reads.append(from_list)
    try:
        named = [(w, role) for w, role in ((output, "the audio output (-o)"), (history_file, "the history (--history)"))
                 if w]
        check_outputs([w for w, _ in named], reads, roles=[r for _, r in named])
        if output and output != "-":
            from ..io.write import audio_format

            audio_format(output)
        if as_json and history_file and is_stdout(history_file):
            raise OutputError(history_file, "is standard output, which --json also uses; give the history a file")
    except OutputError as e:
        usage(rep, str(e))
    if output_dir:
        od = Path(output_dir)
        if not os.path.exists(od):
            try:
                od.mkdir(parents=True)
            except OSError as e:
                usage(rep, f"{output_dir}: cannot create output folder ({e.strerror or e})")

    import torch  # noqa: F401  (loaded above by load_torch)
    from ..errors import DeviceError
    from ..api import resolve_device

    try:
        from ..batch.inputs import cuda_index

        local = cuda_index()
        if local is not None and device in ("auto", "cuda") and torch.cuda.is_available():
            device = f"cuda:{local % torch.cuda.device_count()}"  # the launcher's GPU for this process
        dev = resolve_device(device)
    except DeviceError as e:
        usage(rep, str(e))

    if max_memory is None:
        from ..api import available_memory

        limit = (available_memory(dev), "free CUDA memory" if dev.type == "cuda" else "available memory")
    else:
        limit = (max_memory, "--max-memory")
    from ..batch.pipeline import Pipeline, Settings, batching

    settings = Settings(
        cfg=base_cfg, inversion=inversion.replace(device=dev), input_kind=input_kind, key=key, length=length,
        subtype=subtype, normalize=normalize, limit=limit, output=output, output_dir=output_dir, example=example,
        debug=debug, skip_existing=skip_existing, block=block, overlap=overlap, **batching(dev, batch_size),
        reads=tuple(reads),
        reserved=(history_file,) if history_file else ())
    try:
        settings.validate()
    except ValueError as e:
        usage(rep, str(e))
    pipe = Pipeline(settings, rep)
    counts = {"ok": 0, "error": 0, "skipped": 0}
    failed_inputs = set()
    t_start = time.perf_counter()

    def emit(records):
        for rec in records:
            counts[rec["status"]] += 1
            if rec["status"] == "error":
                failed_inputs.add(rec["input"])
            emit_record(rec, as_json)

    with rep.session():
        try:
            for entry in entries:
                emit(pipe.feed(entry.path, None if output else (entry.name if not example else None)))
            emit(pipe.flush())
        except KeyboardInterrupt:
            from ..io.write import cleanup_temporaries

            ignore_signals()
            cleanup_temporaries()
            rep.error("interrupted; temporary files removed, finished outputs kept")
            sys.exit(EXIT_INTERRUPTED)
    if history_file is not None:
        _save_history(rep, history_file, pipe.histories)
    if as_json:
        summary = {"outputs": counts["ok"], "failed": counts["error"], "failed_inputs": len(failed_inputs),
                   "skipped": counts["skipped"],
                   "inputs": len(entries), "seconds": round(time.perf_counter() - t_start, 4)}
        if shard_n > 1:
            summary.update(shard=f"{shard_i}/{shard_n}", shard_from=shard_origin, inputs_all_shards=n_all)
        emit_record({"summary": summary}, True)
    if failed_inputs:
        sys.exit(EXIT_PARTIAL if counts["ok"] or counts["skipped"] else EXIT_USAGE)


def _save_history(rep, path, histories):
    """Write the metric histories as one JSON file, atomically."""
    from ..errors import StdoutClosed
    from ..errors import OutputError
    from ..io.write import atomic_output, describe_write_error
    from ..util.text import json_line

    try:
        with atomic_output(path) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(json_line({"items": histories}) + "\n")
    except StdoutClosed:
        raise
    except (OutputError, OSError) as e:
        rep.error(str(e) if isinstance(e, OutputError) else f"{path}: cannot write history ({describe_write_error(e)})")
        sys.exit(EXIT_PARTIAL)
