"""What every command shares: exit codes, signals, the settings, the run's bookkeeping (click only).

Exit codes: 0 success; 1 some items failed while others were written; 2 bad usage or no usable
input (one line on stderr naming the file and the reason); 3 internal error (a bug: please
report it; ``--debug`` shows the traceback); 130 interrupted (SIGINT/SIGTERM/SIGHUP;
temporary files removed, finished outputs kept); 141 standard output closed by its reader
(``| head``: the run ends quietly, as Unix tools do, finished outputs kept).
:func:`exit_code` maps the library's :class:`~specinv_cli.errors.SpecinvError` family to them.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from .flags import SETTING_DESTS, cli_words

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_PIPE = 0, 1, 2, 3, 130, 141
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def parse_size(value):
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


def exit_code(e: BaseException) -> int:
    """The exit code for a library error that ends a command: the one table of the mapping.
    Unusable input, settings, device or output: 2; a closed standard output: 141; an inversion
    whose audio is unusable: 1 (the run went, its result did not); anything else is a bug: 3."""
    from ..errors import ConfigError, DeviceError, InputError, InversionError, OutputError, StdoutClosed

    if isinstance(e, StdoutClosed):
        return EXIT_PIPE
    if isinstance(e, (InputError, ConfigError, DeviceError, OutputError)):
        return EXIT_USAGE
    if isinstance(e, InversionError):
        return EXIT_PARTIAL
    return EXIT_INTERNAL


def usage(rep, message: str):
    rep.error(message)
    sys.exit(EXIT_USAGE)


def emit_record(rec: dict, as_json: bool) -> None:
    if as_json:
        from ..util.stdio import emit_json

        emit_json(rec)


def require_stdout(fail, what: str) -> None:
    """Call ``fail`` with one line, before any work, when ``what`` would write to a closed stdout."""
    from ..errors import StdoutClosed
    from ..util.stdio import stdout_binary

    try:
        stdout_binary()
    except StdoutClosed:
        fail(f"{what} writes to standard output, which is closed")


def load_torch(fail, threads: int | None = None) -> None:
    """Import torch (and numpy) now, in a command's body, where failing to (a tight ``ulimit
    -v`` makes its C extensions fail in several ways) is one line from ``fail``, not exit 3.
    First the thread pools are sized and their wait policy chosen
    (:func:`specinv_cli.util.threads.configure`: ``threads``, default what the process may use),
    and freed memory is kept for reuse (:func:`specinv_cli.util.allocator.retain_freed_memory`)."""
    from ..util.allocator import retain_freed_memory
    from ..util.threads import configure

    configure(threads)
    retain_freed_memory()
    import gc

    # torch's import allocates enough to trigger several full collections (a quarter of a second
    # here), none of which frees anything: collect nothing during it, then park what it built
    # where later collections do not scan it
    gc.disable()
    try:
        import torch  # noqa: F401
    except (ImportError, MemoryError, OSError, SystemError) as e:
        why = "not enough memory" if isinstance(e, (MemoryError, SystemError)) else \
            (str(e).splitlines() or [type(e).__name__])[0][:200]
        fail(f"cannot load torch ({why}); check `ulimit -v`/`-d` or the container's memory limit")
    finally:
        gc.freeze()
        gc.enable()


#: Signals that end a run like Ctrl-C: temporaries removed, finished outputs kept, exit 130.
ENDING_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


def ignore_signals():
    """Once interrupted, a repeated (or late-delivered) SIGINT/SIGTERM/SIGHUP must not raise a
    second KeyboardInterrupt during clean-up or shutdown: Python would then end by re-raising
    SIGINT on itself (exit -2) instead of exiting 130."""
    for sig in ENDING_SIGNALS:
        try:
            signal.signal(sig, signal.SIG_IGN)
        except ValueError:  # not in the main thread
            pass


def install_signal_handlers():
    """SIGINT, SIGTERM and SIGHUP (Ctrl-C, a batch system's stop, a closed terminal) end the run:
    ``KeyboardInterrupt``, and the signal recorded (:mod:`specinv_cli.util.interrupt`) for when
    that exception is raised inside a callback from C and dropped there."""
    from ..util import interrupt

    def on_term(signum, frame):
        interrupt.note(signum)
        raise KeyboardInterrupt

    report = sys.unraisablehook

    def unraisable(u):  # the callback's caller drops it with a traceback; the run ends at the next check
        if not (isinstance(u.exc_value, KeyboardInterrupt) and interrupt.pending()):
            report(u)
    sys.unraisablehook = unraisable
    for sig in ENDING_SIGNALS:
        try:
            if signal.getsignal(sig) is not signal.SIG_IGN:  # nohup's choice is kept
                signal.signal(sig, on_term)
        except ValueError:  # not in the main thread (e.g. embedded use)
            pass


def build_config(config_name, flags: dict):
    from ..config import ConfigError, load_preset

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


def read_options(f):
    f = click.option("--key", help="Array name in a .npz, or key in a .pt dict.")(f)
    f = click.option("--input-kind", type=click.Choice(["magnitude", "power", "db", "log", "complex"]),
                     default="magnitude", show_default=True,
                     help="What the spectrogram files hold (as 'invert --input-kind').")(f)
    return f


def compare_options(f):
    """The deliberate choices of a comparison (analysis.CompareOptions); refused without them."""
    f = click.option("--mixdown", is_flag=True, help="Average the channels of multichannel audio (noted) instead of refusing it.")(f)
    f = click.option("--channel", type=click.IntRange(min=0), metavar="N", help="Take channel N (0-based) of multichannel audio instead of refusing it (mono files are used as they are).")(f)
    f = click.option("--resample", is_flag=True, help="Resample audio whose sample rate is not the settings' (--sr, --config) to it (soxr; noted) instead of refusing it.")(f)
    f = click.option("--truncate", is_flag=True, help="Cut or zero-pad audio whose length is more than one window from what the target's frames imply to the target's length (against a reference: both to the shorter), noted, instead of refusing it.")(f)
    return f


def metric_groups(run: "Run", metrics):
    """The groups ``--metrics`` names (all when not given); a bad name is a usage error."""
    from ..companion.suite import parse_groups

    try:
        return parse_groups(metrics)
    except ValueError as e:
        run.usage(f"--metrics: {e}")


def comparison(run: "Run", truncate, resample, channel, mixdown):
    from ..companion.analysis import CompareOptions

    if channel is not None and mixdown:
        run.usage("--channel and --mixdown exclude each other: take one channel or mix them down")
    return CompareOptions(truncate=truncate, resample=resample, channel=channel, mixdown=mixdown)


def common_flags(f):
    f = click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")(f)
    f = click.option("-q", "--quiet", is_flag=True, help="No progress or info on stderr (errors and warnings still shown).")(f)
    return f


class Run:
    """Counts items, prints ``--json`` lines and errors, and turns the counts into the exit code."""

    def __init__(self, quiet: bool, as_json: bool = False):
        from .progress import Reporter

        self.rep = Reporter(quiet=quiet)
        self.as_json = as_json
        self.ok = 0
        self.failed = 0

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
            from ..util.stdio import emit_json

            emit_json(rec)

    def need_stdout(self, what: str):
        """Refuse before any work a command whose results go to a closed stdout."""

        require_stdout(self.usage, what)

    def check_writes(self, writes, reads):
        """Every output against every file read (by identity) and each other, before any work;
        ``--json`` and an output on standard output exclude each other."""
        from ..errors import OutputError
        from ..io.write import check_outputs, is_stdout

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


def run_config(run: Run, config_name, flags: dict):

    try:
        return build_config(config_name, {k: flags.get(k) for k in SETTING_DESTS})
    except ValueError as e:
        run.usage(str(e))


def setting_files(cfg, config_name) -> list:
    """The files the settings were read from (a preset file, a stats file): never written."""
    return [str(p) for p in (config_name, getattr(cfg, "stats", None)) if p and os.path.isfile(str(p))]


def interrupted(run: Run):
    from ..io.write import cleanup_temporaries

    ignore_signals()
    cleanup_temporaries()
    run.rep.error("interrupted; temporary files removed, finished outputs kept")
    sys.exit(EXIT_INTERRUPTED)


def audio_inputs(run: Run, inputs) -> list:
    """Files as given; folders -> their audio files (sorted, not recursive); missing -> errors later."""
    from ..companion.analysis import is_audio_file

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


def fmt_number(v, digits=2):
    return "" if v is None else f"{v:.{digits}f}"


def print_table(table) -> None:
    """A rich table on stdout, as a result: at the terminal's width on a TTY; to a pipe, rows never
    wrap and lines carry no trailing padding (rich pads every line to the table's width)."""
    from rich.console import Console

    tty = sys.stdout.isatty()
    con = Console(file=sys.stdout, highlight=False, soft_wrap=False, width=None if tty else 100_000)
    if tty:
        con.print(table)
        return
    with con.capture() as cap:
        con.print(table)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in cap.get().splitlines()))
    sys.stdout.flush()
