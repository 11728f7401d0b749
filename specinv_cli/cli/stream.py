"""``specinv stream``: spectrogram frames on standard input to audio on standard output, as they
arrive, through :class:`~specinv_cli.streaming.StreamingInverter` (click only: the reading and
writing are :mod:`specinv_cli.io.stream`'s)."""
from __future__ import annotations

import os
import signal
import stat
import sys
import time

import click

from .common import ENDING_SIGNALS, CONTEXT, EXIT_INTERRUPTED, EXIT_USAGE, build_config, ignore_signals, load_torch, require_stdout
from .flags import SETTING_DESTS, cli_words, settings_options

#: ``io.stream.STREAM_SUBTYPES``, spelled here so that ``--help`` does not import numpy.
_SUBTYPES = ("FLOAT", "PCM_16", "PCM_24")
#: The most frames given to the inverter at once: a long chunk is pushed in steps of this many,
#: so its first audio goes out before the rest is inverted and a signal waits at most one step.
_STEP_FRAMES = 16
_NAME = "<stdin>"
#: The names of ``streaming.STREAM_METHODS``, spelled here for ``--help`` (which must not import
#: torch); a test holds the two equal.
_METHODS = ("dm", "fgla", "raar", "rtisi-la", "rtpghi")
#: ``streaming.DEFAULT_STREAM_METHOD`` and its defaults, spelled here for the same reason (a test
#: holds them equal).
_DEFAULT = ("fgla", 3, 8)


class _HeldSignals:
    """SIGINT, SIGTERM and SIGHUP held for one step (push, encode, write), so that the
    inverter's state and the bytes on standard output are never cut in the middle of a step;
    a signal that came meanwhile ends the run when the step is done, as the project's handlers
    (:func:`~specinv_cli.cli.common.install_signal_handlers`) would have: ``KeyboardInterrupt``.
    A step waits on nothing but standard output's reader (a slow producer is waited for between
    steps, where signals act at once)."""

    def __init__(self):
        self.caught = None
        self._saved = {}

    def _note(self, signum, frame):
        self.caught = signum

    def __enter__(self):
        for sig in ENDING_SIGNALS:
            try:
                old = signal.getsignal(sig)
                if old is not signal.SIG_IGN:  # nohup's choice is kept
                    signal.signal(sig, self._note)
                    self._saved[sig] = old
            except ValueError:  # not in the main thread (embedded use): nothing to hold
                pass
        return self

    def __exit__(self, kind, value, tb):
        for sig, old in self._saved.items():
            signal.signal(sig, old)
        self._saved = {}
        if self.caught is not None and kind is None:
            raise KeyboardInterrupt


def _check_standard_streams(fail) -> None:
    """Refuse, before any work, standard input or output that cannot carry a stream: input
    closed, a terminal or a folder; output a terminal (binary audio would garble it); the two
    one regular file (``< f >> f`` would read its own output)."""
    try:
        st_in = os.fstat(0)
    except OSError:
        fail(f"{_NAME}: standard input is closed; pipe spectrogram frames into it")
    if stat.S_ISDIR(st_in.st_mode):
        fail(f"{_NAME}: standard input is a directory, not a stream of frames")
    if os.isatty(0):
        fail(f"{_NAME}: standard input is a terminal; pipe spectrogram frames into it (raw float32 frames or .npy "
             f"chunks)")
    try:
        st_out = os.fstat(1)
    except OSError:
        return  # closed: require_stdout says so
    if os.isatty(1):
        fail("standard output is a terminal; pipe the audio into a player or a file (specinv stream ... | aplay, "
             "> out.wav)")
    if stat.S_ISREG(st_in.st_mode) and (st_in.st_dev, st_in.st_ino) == (st_out.st_dev, st_out.st_ino):
        fail(f"{_NAME}: standard input and standard output are the same file; the stream would read its own audio")


@click.command(context_settings=CONTEXT)
@click.option("--bins", type=click.IntRange(min=1), metavar="F", help="Values in one frame [the settings': n_mels with mel settings, else n_fft/2+1]. Without --config or --n-fft, n_fft follows from it (2(F-1)), as 'invert' infers it from an input's bins.")
@click.option("--input-kind", type=click.Choice(["magnitude", "power", "db", "log"]), default="magnitude", show_default=True, help="What the frames hold: |X|, |X|^2, 20log10|X| or ln|X| (as 'invert --input-kind'). With mel settings, frames of n_mels bins are the preset's mel features, decoded with its --compression (none: mel amplitudes), as 'invert' reads them.")
@click.option("-m", "--method", default=None, metavar="NAME", help=f"Streaming method: {', '.join(_METHODS)} (see specinv_cli.streaming) [{_DEFAULT[0]}: online fast Griffin-Lim from RTPGHI].")
@click.option("--look-ahead", type=click.IntRange(min=0), default=None, metavar="N", help=f"Frames after a frame that are waited for before it is final: more is better audio and more delay [the method's; {_DEFAULT[0]}: {_DEFAULT[1]}, 69.7 ms at n_fft 1024, hop 256, 22.05 kHz].")
@click.option("--latency", type=click.FloatRange(min=0), default=None, metavar="MS", help="Take the largest look-ahead whose algorithmic latency is at most MS milliseconds (excludes --look-ahead).")
@click.option("-n", "--iters", "n_iter", type=click.IntRange(min=0), default=None, help=f"Updates each frame gets in all, as an offline method's iterations (iterative methods) [the method's; {_DEFAULT[0]}: {_DEFAULT[2]}].")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, metavar="N", help="CPU threads for torch. One frame is little work, which thread pools do not speed up but slow down (waking threads costs more than it saves), and a stream usually runs beside the model that produces its frames, whose cores it should not take.")
@click.option("--raw", is_flag=True, help="Write headerless little-endian samples (as --subtype) instead of a WAV stream.")
@click.option("--subtype", type=click.Choice(_SUBTYPES), default="FLOAT", show_default=True, help="Sample format. FLOAT (32-bit) keeps any level: a stream cannot go back to rescale what it wrote, so unlike 'invert --subtype auto' it cannot choose PCM_16 after seeing the peak. PCM_16/PCM_24 clip beyond full scale (the samples counted in a warning at the end).")
@click.option("-q", "--quiet", is_flag=True, help="No start and summary lines on stderr (errors and warnings still shown).")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@settings_options
def stream(config_name, bins, input_kind, method, look_ahead, latency, n_iter, threads, raw, subtype, quiet, debug,
           **settings):
    """Invert frames from stdin to audio on stdout, as they come.

    The input is raw little-endian float32 frames (F values each, F from --bins or the
    settings) or concatenated .npy chunks of float32/float64 frames ([F, k]; [k, F] with
    --layout tf), told apart by the first bytes. Each frame's audio is written as soon as it is
    final (after --look-ahead more frames), as a WAV stream whose header gives no length (as
    ffmpeg writes to a pipe; a regular file gets the true sizes at the end) or, with --raw,
    samples only. At the end of the input the last frames are inverted and written.

    SIGINT/SIGTERM stop the reading: the frames read so far are finished and written, exit 130.
    Bad input ends the stream with one error line, exit 2; what was written stays a valid WAV.

    \b
    Examples:
      my_tts --frames | specinv stream | aplay
      my_model | specinv stream --config hifigan-22k --latency 50 | sox -t wav - out.flac
      specinv stream --bins 513 --raw --subtype PCM_16 < frames.f32 > audio.s16
    """
    from .progress import Reporter

    rep = Reporter(quiet=quiet, words=cli_words)

    def fail(message):
        rep.error(message)
        sys.exit(EXIT_USAGE)

    if latency is not None and look_ahead is not None:
        fail("--latency and --look-ahead exclude each other: give the delay in milliseconds or in frames")
    require_stdout(fail, "specinv stream")
    _check_standard_streams(fail)
    try:
        cfg = build_config(config_name, {k: settings.get(k) for k in SETTING_DESTS})
        n_bins = bins or (cfg.n_mels if cfg.is_mel else cfg.n_freqs)
        cfg, _ = cfg.infer(n_bins, f"--bins {bins}" if bins else "settings")
    except ValueError as e:
        fail(str(e))
    mel = cfg.is_mel  # (infer took the mel settings away from frames of n_fft/2+1 bins)
    if mel and input_kind != "magnitude":
        fail(f"frames of {n_bins} bins (n_mels) are the settings' mel features, decoded with their compression "
             f"(--compression, --config), not --input-kind {input_kind}")
    load_torch(fail, threads)
    import torch

    from ..errors import InputError, StdoutClosed
    from ..io.spectrogram import interpret
    from ..io.stream import FrameReader, WavStreamWriter
    from ..streaming import StreamingInverter
    from ..util.stdio import stdout_binary

    if latency is not None:
        try:
            look_ahead = StreamingInverter.look_ahead_for(latency, cfg, method)
        except ValueError as e:
            fail(f"--latency {latency:g}: {cli_words(str(e))}")
    try:
        inv = StreamingInverter(cfg, method=method, look_ahead=look_ahead, n_iter=n_iter,
                                input_kind="mel-features" if mel else "magnitude")
    except ValueError as e:
        fail(cli_words(str(e)))
    if inv.n_bins != n_bins:  # the inverter's reading of the settings, not ours, is what it takes
        fail(f"the settings give {n_bins} bins per frame but the inverter takes {inv.n_bins}; give --bins")
    rep.info(f"stream: method {inv.method}, look-ahead {inv.look_ahead} frame{'s' * (inv.look_ahead != 1)}, "
             f"algorithmic latency {inv.latency_ms:.1f} ms ({inv.latency_samples} samples); "
             f"{n_bins} {'mel ' if mel else ''}bins per frame in, {inv.sample_rate} Hz {subtype} "
             f"{'raw samples' if raw else 'WAV'} out")

    out = stdout_binary()
    writer = WavStreamWriter(out, inv.sample_rate, subtype, raw=raw)
    reader = FrameReader(0, n_bins, name=_NAME, layout=cfg.layout)
    spent, pushed = 0.0, 0

    def step(frames, first):
        """Push frames [F, k] (validated and converted as 'invert' would) and write what is final."""
        nonlocal spent, pushed
        t = interpret(frames, input_kind, "ft", f"{_NAME} ({_frames(first, frames.shape[-1])})",
                      n_mels=cfg.n_mels if mel else None)
        mag = t.mag.to(torch.float32)
        for i in range(0, mag.shape[-1], _STEP_FRAMES):
            part = mag[..., i:i + _STEP_FRAMES]
            with _HeldSignals():
                t0 = time.perf_counter()
                try:
                    audio = inv.push(part)
                except ValueError as e:
                    raise InputError(f"{_NAME} ({_frames(first + i, part.shape[-1])})", str(e)) from None
                spent += time.perf_counter() - t0
                pushed += part.shape[-1]
                writer.write(audio.detach().cpu().numpy())

    done = False

    def finish():
        nonlocal spent, done
        if done:
            return
        done = True
        t0 = time.perf_counter()
        tail = inv.flush()
        spent += time.perf_counter() - t0
        writer.write(tail.detach().cpu().numpy())
        writer.close()

    def clipping():
        if writer.clipped:
            rep.warning(f"{writer.clipped} sample(s) beyond full scale were clipped to fit {subtype} (peak "
                        f"{writer.peak:.4g}); --subtype FLOAT keeps any level")

    try:
        try:
            with _HeldSignals():
                writer.start()  # the header at once: a reader can get ready before the first frame
            first = 0
            for frames in reader:
                step(frames, first)
                first = reader.frames
            with _HeldSignals():
                finish()
        except KeyboardInterrupt:
            ignore_signals()
            finish()  # the frames read are the whole signal now: their audio, to the end
            clipping()
            rep.error(f"interrupted: stopped after {pushed} frame(s); their audio was written "
                      f"({writer.samples / inv.sample_rate:.2f} s)")
            sys.exit(EXIT_INTERRUPTED)
        except InputError as e:
            try:
                writer.close()  # what was written stays a valid WAV (on a file, with its sizes)
            except OSError:
                pass
            clipping()
            rep.error(cli_words(str(e)))
            sys.exit(EXIT_USAGE)
    except BrokenPipeError:
        raise StdoutClosed("standard output was closed by its reader") from None
    clipping()
    seconds = writer.samples / inv.sample_rate
    rtf = f"{seconds / spent:.1f} (audio seconds per second)" if seconds and spent else "n/a"
    rep.info(f"stream: {reader.frames} frame(s) in, {seconds:.2f} s of audio out ({writer.samples} samples), "
             f"{spent:.2f} s inverting: real-time factor {rtf}")


def _frames(first: int, k: int) -> str:
    return f"frame {first}" if k == 1 else f"frames {first}-{first + k - 1}"
