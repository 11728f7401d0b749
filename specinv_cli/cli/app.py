"""The ``specinv`` group and entry point: one module per command beside it, shared parts in
:mod:`.common` (exit codes, signals, settings). No DSP here; torch is imported by the commands
that need it, so ``specinv --help`` stays fast.
"""
from __future__ import annotations

import sys

import click

from .._version import __version__
from .common import CONTEXT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_PIPE, EXIT_USAGE, exit_code, ignore_signals, install_signal_handlers
from .flags import cli_words
from . import bench, catalog, compare, eval, invert, plot, report, stft, stream


class _Group(click.Group):
    """click turns a broken pipe into a silent exit 1; here it is ``StdoutClosed`` (exit 141)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            from ..errors import StdoutClosed

            raise StdoutClosed("standard output was closed by its reader") from None


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="specinv")
def cli():
    """specinv: turn spectrograms back into audio.

    \b
    Examples:
      specinv invert mag.npy -m fgla -o out.wav
      specinv invert --example -o example.wav
      specinv invert mels/*.npy -O wavs/ --json
    """


for _cmd in (invert.invert, catalog.methods, catalog.configs, stft.stft, eval.eval_, compare.compare, plot.plot,
             report.report, bench.bench, stream.stream):
    cli.add_command(_cmd)


def main(argv=None):
    """Entry point: click errors become one line on stderr with exit code 2.

    As the program itself (``argv`` None), an interrupted run ends with ``os._exit(130)`` after
    flushing: a KeyboardInterrupt that passed through code run from a string (``exec`` inside
    imports, e.g. numba's runtime pulling in scipy) is recorded by CPython as unhandled even
    though it was caught, and ``python -m`` would then end the process by re-raising SIGINT on
    itself (return code -2) instead of exiting 130."""
    if argv is None:
        _guard_standard_fds()
        try:
            _main(sys.argv[1:])
        except SystemExit as e:
            if e.code == EXIT_INTERRUPTED:
                import os

                for std in (sys.stdout, sys.stderr):
                    try:
                        std.flush()
                    except (OSError, ValueError):
                        pass
                os._exit(EXIT_INTERRUPTED)
            raise
        return
    _main(list(argv))


def _guard_standard_fds() -> None:
    """A program started with stdin, stdout or stderr closed would give those descriptors to
    the next files it opens (an output's bytes could land in a JSON line's place). Hold them on
    /dev/null instead, and remember that stdout was closed (writing to it is then an error)."""
    import os

    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                null = os.open(os.devnull, os.O_RDWR)
            except OSError:
                continue
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            if fd == 1:
                from ..util.stdio import mark_stdout_closed

                mark_stdout_closed()


def _say(message: str) -> None:
    from ..util.text import printable

    try:
        click.echo(f"error: {printable(message)}", err=True)
    except (OSError, ValueError):  # stderr gone too
        pass


def _out_of_memory(e: BaseException) -> bool:
    """torch reports a failed allocation as a RuntimeError (``std::bad_alloc``, ``can't allocate``)."""
    text = str(e)
    return "bad_alloc" in text or "can't allocate memory" in text or "out of memory" in text.lower()


def _cleanup() -> None:
    """Remove temporaries being written, if any output was begun (io is loaded only then)."""
    io_module = sys.modules.get("specinv_cli.io.write")
    if io_module is not None:
        io_module.cleanup_temporaries()


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's last flush is silent."""
    import os

    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    except OSError:
        pass


def _main(argv):
    from ..errors import SpecinvError, StdoutClosed

    install_signal_handlers()
    try:
        rv = cli.main(args=argv, prog_name="specinv", standalone_mode=False)
    except click.ClickException as e:
        ctx_cmd = getattr(getattr(e, "ctx", None), "command_path", "specinv")
        _say(f"{e.format_message()} (see '{ctx_cmd} --help')")
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        _say("aborted")
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        ignore_signals()
        _cleanup()
        sys.exit(EXIT_INTERRUPTED)
    except (StdoutClosed, BrokenPipeError) as e:
        _cleanup()
        from ..util.stdio import stdout_was_closed

        if stdout_was_closed():  # closed from the start: a usage problem, said once
            _say(f"{e}; nothing can be written to it")
            sys.exit(EXIT_USAGE)
        _quiet_stdout()  # its reader went away: end quietly, as Unix tools do
        sys.exit(EXIT_PIPE)
    except SpecinvError as e:  # a library error no command handled: its one line and its code
        if "--debug" in argv:
            raise
        _cleanup()
        _say(cli_words(str(e)))
        sys.exit(exit_code(e))
    except (MemoryError, RuntimeError) as e:  # out of memory is the environment's limit, not a bug
        if "--debug" in argv or isinstance(e, RuntimeError) and not _out_of_memory(e):
            if "--debug" in argv:
                raise
            first = (str(e).splitlines() or [""])[0][:300]
            _say(f"internal error: {type(e).__name__}: {first} (rerun with --debug for a traceback)")
            sys.exit(EXIT_INTERNAL)
        _cleanup()
        _say("not enough memory to run (an allocation failed); check `ulimit -v`/`-d` or the "
             "container's memory limit")
        sys.exit(EXIT_USAGE)
    except Exception as e:  # a bug, not bad input: one line unless --debug
        if "--debug" in argv:
            raise
        first = (str(e).splitlines() or [""])[0][:300]
        _say(f"internal error: {type(e).__name__}: {first} (rerun with --debug for a traceback)")
        sys.exit(EXIT_INTERNAL)
    if isinstance(rv, int) and rv:
        sys.exit(rv)
