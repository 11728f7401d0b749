"""The STFT/mel settings flags shared by ``invert`` and the companion commands (click only).

One table, so that ``specinv stft``, ``invert``, ``eval``, ``plot`` and ``report`` take the same
flags with the same meaning; :data:`SETTING_DESTS` are the keyword names the commands receive
and hand to ``specinv_cli.cli.common.build_config``.
"""
from __future__ import annotations

import click

__all__ = ["SETTINGS", "SETTING_DESTS", "settings_options"]

#: (flag, keyword, click kwargs) of each settings option, in the order ``--help`` shows them.
SETTINGS = [
    ("--config", "config_name", dict(metavar="NAME|FILE.toml", help="STFT/mel preset from configs/ (see 'specinv configs') or a TOML file [default].")),
    ("--n-fft", "n_fft", dict(type=click.IntRange(min=2), help="FFT size [spectrogram inputs: inferred from the number of bins; else the preset's, 1024].")),
    ("--hop-length", "hop_length", dict(type=click.IntRange(min=1), help="Hop between frames in samples [256].")),
    ("--win-length", "win_length", dict(type=click.IntRange(min=1), help="Window length [n_fft].")),
    ("--window", "window", dict(help="Window: hann, hamming, blackman, bartlett, rectangular, gaussian [hann].")),
    ("--center/--no-center", "center", dict(default=None, help="Frames centred on t*hop (signal padded by n_fft/2) [center].")),
    ("--pad-mode", "pad_mode", dict(type=click.Choice(["reflect", "constant", "replicate", "circular"]), help="Padding for centred frames [reflect].")),
    ("--sr", "sample_rate", dict(type=click.IntRange(min=1), help="Sample rate in Hz [the preset's: 22050].")),
    ("--layout", "layout", dict(type=click.Choice(["ft", "tf"]), default=None, help="Axis order of the last two dims: ft = [..., F, T], tf = [..., T, F] [the preset's, else ft].")),
    ("--n-mels", "n_mels", dict(type=click.IntRange(min=1), help="Mel bands: spectrograms with this many bins are mel [preset's].")),
    ("--fmin", "fmin", dict(type=click.FloatRange(min=0), help="Lowest mel frequency in Hz [0].")),
    ("--fmax", "fmax", dict(type=click.FloatRange(min=0, min_open=True), help="Highest mel frequency in Hz [sr/2].")),
    ("--mel-scale", "mel_scale", dict(type=click.Choice(["slaney", "htk"]), help="Mel scale [slaney].")),
    ("--mel-norm", "mel_norm", dict(type=click.Choice(["slaney", "none"]), help="Mel filter normalisation [slaney].")),
    ("--mel-power", "mel_power", dict(type=click.FloatRange(min=0, min_open=True), help="Mel of |X|**p: 1 magnitude, 2 power [1].")),
    ("--compression", "compression", dict(type=click.Choice(["none", "ln", "log10", "db", "log1p"]), help="Log compression of the mel features [preset's, else none].")),
    ("--clamp", "clamp", dict(type=click.FloatRange(min=0, min_open=True), help="Floor applied before the log (e.g. 1e-5 for ln(clamp(x, 1e-5))) [preset's].")),
    ("--normalization", "normalization", dict(type=click.Choice(["none", "meanvar", "symmetric"]), help="Normalisation after compression [preset's, else none].")),
    ("--stats", "stats", dict(type=click.Path(dir_okay=False), help="Mean/std stats (.npz; ESPnet feats_stats.npz) for meanvar normalisation.")),
]
#: The keywords ``specinv_cli.cli.common.build_config`` takes as overrides (all but ``config_name``).
SETTING_DESTS = [d for _, d, _ in SETTINGS if d != "config_name"]


def settings_options(f):
    """Decorate a click command with every settings flag of :data:`SETTINGS`."""
    for flag, dest, kw in reversed(SETTINGS):
        f = click.option(flag, dest, **kw)(f)
    return f


#: Library parameter -> CLI flag where the flag is not ``--`` + the name with dashes.
_FLAG_OF = {dest: flag.split("/")[0] for flag, dest, _ in SETTINGS}
_FLAG_OF.update(config="--config", n_iter="--iters", sample_rate="--sr", block="--block-frames",
                overlap="--block-overlap")


def cli_words(message: str) -> str:
    """A library message in the CLI's words: each backticked parameter (```n_fft```) becomes
    its flag (``--n-fft``). The one place where the API's vocabulary meets the CLI's."""
    import re

    return re.sub(r"`([A-Za-z_][A-Za-z0-9_]*)`",
                  lambda m: _FLAG_OF.get(m[1], "--" + m[1].replace("_", "-")), message)
