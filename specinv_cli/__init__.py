"""specinv: turn spectrograms back into audio.

The public API is imported lazily so that ``import specinv_cli`` (and ``specinv --help``)
does not pay for torch::

    from specinv_cli import invert, load_spectrogram, STFTConfig
    from specinv_cli.dsp import metrics
"""
from ._version import __version__

__all__ = ["__version__", "invert", "InversionOptions", "InversionResult", "functional", "transforms",
           "register_method", "Option", "load_spectrogram", "save_audio",
           "STFTConfig", "load_preset", "STFT", "metrics", "SpecinvError", "InputError", "ConfigError",
           "InversionError", "DeviceError", "OutputError", "StdoutClosed", "encode_audio"]

_LAZY = {
    "invert": ("api", "invert"),
    "InversionResult": ("api", "InversionResult"),
    "InversionOptions": ("options", "InversionOptions"),
    "register_method": ("algorithms.registry", "register_method"),
    "Option": ("algorithms.registry", "Option"),
    "load_spectrogram": ("io.read", "load_spectrogram"),
    "save_audio": ("io.write", "save_audio"),
    "STFTConfig": ("config", "STFTConfig"),
    "load_preset": ("config", "load_preset"),
    "STFT": ("dsp.stft", "STFT"),
    "SpecinvError": ("errors", "SpecinvError"),
    "InputError": ("errors", "InputError"),
    "ConfigError": ("errors", "ConfigError"),
    "InversionError": ("errors", "InversionError"),
    "DeviceError": ("errors", "DeviceError"),
    "OutputError": ("errors", "OutputError"),
    "StdoutClosed": ("errors", "StdoutClosed"),
    "encode_audio": ("io.encode", "encode_audio"),
}


def __getattr__(name):
    import importlib

    if name == "metrics":
        return importlib.import_module(".dsp.metrics", __name__)
    if name in ("functional", "transforms"):
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{mod}", __name__), attr)
    raise AttributeError(f"module 'specinv_cli' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
