"""The exceptions every layer raises; ``SpecinvError`` is their root.

Messages name the file (when there is one) and the problem in one line, and speak of
parameters as the Python API names them, in backticks (``n_fft``); the CLI turns those into its
flags (``--n-fft``) in one place (:func:`specinv_cli.cli.flags.cli_words`).
"""
from __future__ import annotations

__all__ = ["SpecinvError", "InputError", "ConfigError", "DeviceError", "OutputError", "InversionError", "StdoutClosed"]


class SpecinvError(Exception):
    """Root of specinv's errors: bad input, settings, device or output, or a failed inversion."""


class InputError(SpecinvError, ValueError):
    """An input that cannot be used; ``str()`` is the one-line message for the user."""

    def __init__(self, source: str | None, message: str):
        self.source = source
        self.message = message
        super().__init__(f"{source}: {message}" if source else message)


class ConfigError(SpecinvError, ValueError):
    """Invalid settings or preset (the message names the source and the field)."""


class InversionError(SpecinvError, ValueError):
    """An inversion whose output is unusable: non-finite samples, or silence from a non-silent
    target. ``failures`` lists one message (or ``None``) per item of the batch."""

    def __init__(self, message: str, failures: list | None = None):
        self.failures = list(failures or [])
        super().__init__(message)


class StdoutClosed(SpecinvError, OSError):
    """Standard output is closed, or its reader went away (a broken pipe): the CLI ends the run
    quietly, as Unix tools do, keeping the outputs already finished."""


class OutputError(SpecinvError, OSError):
    """The output cannot be written (folder missing, not writable, disk full...)."""

    def __init__(self, path, message):
        self.path = str(path)
        self.message = message
        super().__init__(f"{path}: {message}")


class DeviceError(SpecinvError, ValueError):
    """A device that cannot be used here (e.g. CUDA without a GPU)."""
