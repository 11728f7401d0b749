"""STFT settings and the TOML presets in ``configs/``.

A preset is a TOML file with an ``[stft]`` table whose keys are the fields of
:class:`STFTConfig`::

    # configs/default.toml
    [stft]
    n_fft = 1024
    hop_length = 256

``load_preset("default")`` reads the packaged preset of that name; ``load_preset("my.toml")``
reads a user's file. Unknown keys and wrong types are errors that name the file and the key.
"""
from __future__ import annotations

import os

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["STFTConfig", "ConfigError", "load_preset", "list_presets", "preset_path", "PAD_MODES",
           "COMPRESSIONS", "NORMALIZATIONS", "TABLES"]

PAD_MODES = ("reflect", "constant", "replicate", "circular")
MEL_SCALES = ("slaney", "htk")
MEL_NORMS = ("slaney", "none")
COMPRESSIONS = ("none", "ln", "log10", "db", "log1p")
NORMALIZATIONS = ("none", "meanvar", "symmetric")
#: Which TOML table each setting lives in.
TABLES = {
    "stft": ("n_fft", "hop_length", "win_length", "window", "center", "pad_mode", "pad", "normalized",
             "sample_rate", "onesided"),
    "mel": ("n_mels", "fmin", "fmax", "mel_scale", "mel_norm", "mel_power", "compression", "clamp",
            "db_ref", "top_db", "normalization", "stats", "max_norm", "min_level_db", "ref_level_db"),
    "input": ("layout",),
}

#: Window names accepted by :func:`~specinv_cli.dsp.stft.get_window` (aliases map to the same window).
WINDOWS = ("hann", "hamming", "blackman", "bartlett", "rectangular", "gaussian")
_ALIASES = {"hanning": "hann", "boxcar": "rectangular", "ones": "rectangular", "rect": "rectangular",
            "gauss": "gaussian", "triangle": "bartlett"}

#: Standard deviation of the ``gaussian`` window, as a fraction of its length.
GAUSSIAN_STD_FRACTION = 1.0 / 6.0


def canonical_window(name: str) -> str:
    """Canonical spelling of a window name, or ``ValueError`` listing the valid ones."""
    key = name.lower().strip()
    key = _ALIASES.get(key, key)
    if key not in WINDOWS:
        raise ValueError(f"unknown window {name!r}; choose one of {', '.join(WINDOWS)}")
    return key




from .errors import ConfigError  # noqa: E402  (re-exported)


@dataclass(frozen=True)
class STFTConfig:
    """Framing of the spectrograms to invert (the conventions of ``torch.stft``), and the mel
    settings from ``n_mels`` on (a preset's ``[mel]`` table; ``n_mels`` unset means linear
    spectrograms).

    Attributes
    ----------
    n_fft : FFT size; a one-sided spectrogram has ``n_fft // 2 + 1`` bins.
    hop_length : samples between frames.
    win_length : window length (``None`` = ``n_fft``); shorter windows are zero-padded centrally.
    window : ``hann``, ``hamming``, ``blackman``, ``bartlett``, ``rectangular`` or ``gaussian``.
    center : frame ``t`` is centred on sample ``t * hop_length`` (signal padded by ``n_fft // 2``).
    pad_mode : padding used when ``center`` (``reflect``, ``constant``, ``replicate``, ``circular``).
    normalized : spectrogram scaled by ``n_fft ** -0.5`` (``torch.stft(normalized=True)``).
    sample_rate : sample rate of the audio written, in Hz.
    pad : with ``center=False``, samples of ``pad_mode`` padding added on each side before
        framing (HiFi-GAN/BigVGAN use ``(n_fft - hop_length) // 2``); ignored when centred.
    onesided : the input holds ``n_fft // 2 + 1`` bins (``False``: all ``n_fft`` bins; the
        redundant upper half is dropped since audio is real).
    n_mels, fmin, fmax : filterbank size and range in Hz (``fmax`` ``None`` = ``sample_rate / 2``).
    mel_scale : ``slaney`` (librosa's default) or ``htk`` (torchaudio's default).
    mel_norm : ``slaney`` (area-normalised triangles) or ``none``.
    mel_power : the mel is ``filterbank @ |X| ** mel_power`` (1: magnitude mel, 2: power mel).
    compression : what the model stored: ``none``; ``ln`` = ``ln(max(x, clamp))``; ``log10`` =
        ``log10(max(x, clamp))``; ``db`` = ``(20 / mel_power) log10(max(x, clamp) / db_ref)``
        (clipped to ``top_db`` below the maximum when set); ``log1p`` = ``ln(1 + x)``.
    normalization : after compression: ``none``; ``meanvar`` = ``(x - mean) / std`` per mel band
        from ``stats`` (an .npz with ``mean``/``std``, or ESPnet's ``count``/``sum``/``sum_square``);
        ``symmetric`` (Coqui TTS): ``clip(2 m (db - ref_level_db - min_level_db) / -min_level_db - m,
        -m, m)`` with ``m = max_norm``.
    layout : axis order of inputs for this preset, ``ft`` (``[..., F, T]``) or ``tf``.
    """

    n_fft: int = 1024
    hop_length: int = 256
    win_length: int | None = None
    window: str = "hann"
    center: bool = True
    pad_mode: str = "reflect"
    normalized: bool = False
    sample_rate: int = 22050
    onesided: bool = True
    pad: int = 0
    # --- mel ---
    n_mels: int | None = None
    fmin: float = 0.0
    fmax: float | None = None
    mel_scale: str = "slaney"
    mel_norm: str = "slaney"
    mel_power: float = 1.0
    compression: str = "none"
    clamp: float = 1e-5
    db_ref: float = 1.0
    top_db: float | None = None
    normalization: str = "none"
    stats: str | None = None
    max_norm: float = 4.0
    min_level_db: float = -100.0
    ref_level_db: float = 20.0
    # --- input ---
    layout: str = "ft"
    #: Fields set explicitly (passed to the constructor, by a chosen preset or a flag), as
    #: opposed to defaults; only explicit values are checked against the input's bin count,
    #: the others are inferred (:meth:`infer`). ``None``: the fields the constructor was given.
    explicit: frozenset | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        explicit = frozenset(self.explicit or ())
        object.__setattr__(self, "explicit", explicit)
        # unset framing follows n_fft, as in librosa: win_length = n_fft, hop = win_length // 4
        if "win_length" not in explicit:
            object.__setattr__(self, "win_length", None)
        if "hop_length" not in explicit and isinstance(self.n_fft, int) and not isinstance(self.n_fft, bool):
            object.__setattr__(self, "hop_length", max(1, self.effective_win_length // 4))
        self.validate()

    @property
    def n_freqs(self) -> int:
        """Bins of a spectrogram with these settings as stored in the input."""
        return self.n_fft // 2 + 1 if self.onesided else self.n_fft

    @property
    def is_mel(self) -> bool:
        return self.n_mels is not None

    @property
    def effective_fmax(self) -> float:
        return float(self.sample_rate) / 2 if self.fmax is None else float(self.fmax)

    @property
    def effective_win_length(self) -> int:
        return int(self.win_length or self.n_fft)

    def validate(self, source: str = "settings") -> None:
        def need_int(name, lo=1):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ConfigError(f"{source}: {name} must be an integer >= {lo}, got {v!r}")

        for name in ("n_fft", "hop_length", "sample_rate"):
            need_int(name)
        if self.sample_rate > 2 ** 31 - 1:  # audio files store the rate as a 32-bit integer
            raise ConfigError(f"{source}: `sample_rate` must be at most {2 ** 31 - 1} Hz, got {self.sample_rate}")
        need_int("pad", lo=0)
        if self.n_fft < 2:
            raise ConfigError(f"{source}: n_fft must be at least 2, got {self.n_fft}")
        if self.win_length is not None:
            need_int("win_length")
            if self.win_length > self.n_fft:
                raise ConfigError(f"{source}: win_length {self.win_length} is larger than n_fft {self.n_fft}")
        if self.hop_length > self.effective_win_length:
            raise ConfigError(f"{source}: hop_length {self.hop_length} is larger than the window "
                              f"({self.effective_win_length}); frames would not overlap-add to the signal")
        try:
            canonical_window(str(self.window))
        except ValueError as e:
            raise ConfigError(f"{source}: {e}") from None
        if self.pad_mode not in PAD_MODES:
            raise ConfigError(f"{source}: pad_mode must be one of {', '.join(PAD_MODES)}, got {self.pad_mode!r}")
        for name in ("center", "normalized", "onesided"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{source}: {name} must be true or false, got {getattr(self, name)!r}")
        if self.layout not in ("ft", "tf"):
            raise ConfigError(f"{source}: layout must be ft or tf, got {self.layout!r}")
        self._validate_mel(source)

    def _validate_mel(self, source: str) -> None:
        def number(name, lo=None, allow_none=False, positive=False):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"{source}: {name} must be a number, got {v!r}")
            if positive and not v > 0:
                raise ConfigError(f"{source}: {name} must be > 0, got {v}")
            if lo is not None and v < lo:
                raise ConfigError(f"{source}: {name} must be >= {lo}, got {v}")

        choices = {"mel_scale": MEL_SCALES, "mel_norm": MEL_NORMS, "compression": COMPRESSIONS,
                   "normalization": NORMALIZATIONS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{source}: {name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.n_mels is not None and (isinstance(self.n_mels, bool) or not isinstance(self.n_mels, int)
                                        or self.n_mels < 1):
            raise ConfigError(f"{source}: n_mels must be a positive integer, got {self.n_mels!r}")
        if self.n_mels is not None and self.n_mels > self.n_fft // 2 + 1:  # also bounds the filterbank's size
            raise ConfigError(f"{source}: `n_mels` {self.n_mels} is more than the {self.n_fft // 2 + 1} frequency bins "
                              f"of `n_fft` {self.n_fft} it is made from (bands would be empty)")
        number("fmin", lo=0)
        number("fmax", allow_none=True, positive=True)
        number("mel_power", positive=True)
        number("clamp", positive=True)
        number("db_ref", positive=True)
        number("top_db", allow_none=True, positive=True)
        number("max_norm", positive=True)
        number("min_level_db")
        number("ref_level_db")
        if self.min_level_db >= 0:
            raise ConfigError(f"{source}: min_level_db must be negative, got {self.min_level_db}")
        if self.is_mel and not self.fmin < self.effective_fmax <= self.sample_rate / 2 + 1e-6:
            raise ConfigError(f"{source}: need fmin < fmax <= sample_rate/2, got fmin {self.fmin}, "
                              f"fmax {self.effective_fmax}, sample_rate {self.sample_rate}")
        if self.normalization == "meanvar" and self.stats is None and self.is_mel:
            pass  # the stats file may come later (--stats); checked when the input is decoded
        if self.stats is not None:
            if not isinstance(self.stats, str):
                raise ConfigError(f"{source}: stats must be the path of a stats file (a string), got {self.stats!r}")
            # checked here, where it enters, so that every command refuses it the same way
            _checked_stats(self.stats, self.n_mels if self.is_mel else None)

    def replace(self, **changes: Any) -> "STFTConfig":
        """Copy with ``changes`` applied; the changed fields become explicit."""
        explicit = self.explicit | {k for k, v in changes.items() if k != "explicit"}
        return dataclasses.replace(self, **changes, explicit=frozenset(explicit))

    def with_bins(self, n_bins: int, source: str = "input") -> "STFTConfig":
        """Settings matching a spectrogram of ``n_bins`` bins (see :meth:`infer`)."""
        return self.infer(n_bins, source)[0]

    def infer(self, n_bins: int, source: str = "input") -> tuple["STFTConfig", dict[str, str]]:
        """``(settings, inferred)`` for a spectrogram of ``n_bins`` bins.

        Fields the caller set (:attr:`explicit`) are used as given, and a contradiction with
        the data is a :class:`ConfigError` naming both numbers; only unset fields are inferred:
        ``n_fft`` from the bins (``2 (F - 1)``), then ``hop_length`` as ``win_length // 4``
        (librosa's convention). ``inferred`` says, for each field or decision that was not
        given, what was taken and why, e.g. ``{"n_fft": "1024 (from 513 bins)"}``; with mel
        settings it has ``domain`` (``mel`` for ``n_mels`` bins, ``linear`` for
        ``n_fft // 2 + 1``).

        A bin count of a common mel size (64, 80, 100, 128) under linear settings whose
        ``n_fft`` was not given is refused with a hint to use mel settings: those counts give
        an n_fft no linear front-end uses (126, 158, 198, 254).

        >>> cfg, how = STFTConfig().infer(1025)
        >>> cfg.n_fft, cfg.hop_length, how["n_fft"], how["hop_length"]
        (2048, 512, '2048 (from 1025 bins)', '512 (win_length/4, the default)')
        """
        notes: dict[str, str] = {}
        if self.is_mel:
            if n_bins == self.n_mels:
                notes["domain"] = f"mel ({n_bins} bins = n_mels)"
                return self, {**self._derived_notes(), **notes}
            if n_bins == self.n_freqs:
                notes["domain"] = f"linear ({n_bins} bins = n_fft/2+1, not n_mels {self.n_mels})"
                return dataclasses.replace(self, n_mels=None), {**self._derived_notes(), **notes}
            raise ConfigError(
                f"{source}: {n_bins} bins match neither n_mels {self.n_mels} (a mel spectrogram) nor "
                f"n_fft/2+1 = {self.n_freqs} (a linear one) of these settings; check `config`, `n_mels`, "
                f"`n_fft` or `layout`")
        if n_bins == self.n_freqs and ("n_fft" in self.explicit or n_bins not in MEL_SIZES):
            if "n_fft" not in self.explicit:
                notes["n_fft"] = f"{self.n_fft} (from {n_bins} bins)"
            return self, {**notes, **self._derived_notes()}
        mel_hint = (f"; {n_bins} is a common mel size: for a model's mel features use mel settings "
                    f"(a preset in `config`, see 'specinv configs', or `n_mels` {n_bins})"
                    if n_bins in MEL_SIZES else "")
        if "n_fft" in self.explicit:
            raise ConfigError(
                f"{source}: {n_bins} frequency bins do not match `n_fft` {self.n_fft} "
                f"(which gives {self.n_freqs} bins{'' if self.onesided else ', two-sided'}); "
                f"leave `n_fft` unset to infer it, or check `layout`{mel_hint}")
        n_fft = 2 * (n_bins - 1) if self.onesided else n_bins
        if mel_hint:
            raise ConfigError(f"{source}: {n_bins} bins would be a linear spectrogram of n_fft {n_fft}, which "
                              f"no common front-end uses{mel_hint}; for a linear one, set `n_fft` {n_fft}")
        if n_fft < 2:
            raise ConfigError(f"{source}: {n_bins} frequency bin(s) is too few for a spectrogram")
        win = self.win_length if "win_length" in self.explicit else None
        if win is not None and win > n_fft:
            raise ConfigError(f"{source}: {n_bins} bins give n_fft {n_fft}, smaller than `win_length` {win}")
        if "hop_length" in self.explicit and self.hop_length > (win or n_fft):
            raise ConfigError(f"{source}: {n_bins} bins give n_fft {n_fft}, smaller than `hop_length` "
                              f"{self.hop_length}")
        out = dataclasses.replace(self, n_fft=n_fft, win_length=win)  # hop re-derived unless explicit
        notes["n_fft"] = f"{n_fft} (from {n_bins} bins{'' if self.onesided else ', two-sided'})"
        return out, {**notes, **out._derived_notes()}

    def _derived_notes(self) -> dict[str, str]:
        """What :meth:`__post_init__` derived rather than took from the caller."""
        if "hop_length" in self.explicit:
            return {}
        return {"hop_length": f"{self.hop_length} (win_length/4, the default)"}

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "explicit"}

    def to_toml(self, comment: str | None = None) -> str:
        lines = [f"# {c}" for c in (comment or "").splitlines()]
        d = self.to_dict()
        for table, names in TABLES.items():
            if table == "mel" and not self.is_mel:
                continue
            if table == "input" and self.layout == "ft":
                continue
            lines.append(f"[{table}]")
            lines += [f"{k} = {_toml_value(d[k])}" for k in names if d[k] is not None]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_mapping(cls, data: dict, source: str = "settings", explicit: bool = True) -> "STFTConfig":
        known = {f.name: f for f in fields(cls) if f.name != "explicit"}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"{source}: unknown setting(s) {_names(unknown)}; "
                              f"known: {', '.join(known)}")
        try:
            cfg = dataclasses.replace(cls(), **data, explicit=frozenset(data) if explicit else frozenset())
        except ConfigError as e:
            raise ConfigError(str(e).replace("settings:", f"{source}:", 1)) from None
        cfg.validate(source)
        return cfg


def _record_given(init):
    """Wrap the dataclass ``__init__`` so that a config remembers which fields its caller set:
    ``STFTConfig(n_fft=1024)`` has ``explicit == {"n_fft"}`` (copies pass ``explicit`` on)."""
    import functools

    names = [f.name for f in fields(STFTConfig)]

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if kwargs.get("explicit") is None:
            kwargs["explicit"] = frozenset(names[: len(args)]) | frozenset(k for k in kwargs if k != "explicit")
        init(self, *args, **kwargs)

    return __init__


STFTConfig.__init__ = _record_given(STFTConfig.__init__)

#: Bin counts of the mel front-ends in use (TTS, vocoders, music models).
MEL_SIZES = (64, 80, 100, 128)


def _names(names) -> str:
    from .util.limits import name_list

    return name_list(names)


#: A stats file holds a few arrays of one value per mel band: a member larger than this is not one.
STATS_MAX_BYTES = 16 * 2 ** 20
_STATS_SEEN: dict = {}


def _checked_stats(path: str, n_mels: int | None) -> None:
    """:func:`read_stats` once per file version (validate runs on every copy of a config)."""
    import os

    try:
        st = os.stat(path)
        key = (os.path.abspath(path), st.st_mtime_ns, st.st_size, n_mels)
    except OSError:
        key = None
    if key is not None and key in _STATS_SEEN:
        return
    read_stats(path, n_mels)
    if key is not None:
        _STATS_SEEN[key] = True


def read_stats(path: str, n_mels: int | None = None):
    """Per-band ``(mean, std)`` float64 numpy arrays for ``meanvar`` normalisation, from an
    ``.npz`` with ``mean`` and ``std`` (or ``var``), or ESPnet's ``feats_stats.npz`` (``count``,
    ``sum``, ``sum_square``: ``mean = sum / count``, ``std = sqrt(max(sum_square / count -
    mean^2, 1e-20))``). Never unpickles. Raises :class:`ConfigError` naming the file: not an
    .npz archive, damaged, missing arrays, non-numeric, a count that is not positive, band
    counts that differ (or differ from ``n_mels``), NaN/Inf, non-positive std."""
    import os
    import zipfile

    import numpy as np

    from .util.limits import name_list

    def bad(msg):
        return ConfigError(f"{path}: {msg}")

    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == 2:
            raise bad("stats file not found") from None
        raise bad(f"cannot read stats file ({(e.strerror or str(e)).lower()})") from None
    import stat as _stat

    if not _stat.S_ISREG(st.st_mode):
        raise bad("is not a regular file; the stats must be an .npz file")
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise bad(f"cannot read stats file ({(e.strerror or str(e)).lower()})") from None
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        from .util.sniff import looks_like

        raise bad(f"not a stats .npz archive (it looks like {looks_like(head)}); expected mean/std or "
                  f"count/sum/sum_square arrays")
    try:
        with zipfile.ZipFile(path) as zf:
            big = [i.filename for i in zf.infolist() if i.file_size > STATS_MAX_BYTES]
        if big:
            raise bad(f"array {big[0]!r} is larger than stats can be ({STATS_MAX_BYTES // 2 ** 20} MiB)")
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)

            def arr(k):
                a = np.asarray(z[k])
                if a.dtype.kind not in "biuf":
                    raise bad(f"array {k!r} is not numeric (dtype {a.dtype})")
                return a.astype(np.float64)

            if {"count", "sum", "sum_square"} <= keys:
                count = arr("count").reshape(-1)
                if count.size != 1:
                    raise bad(f"'count' must hold one number, holds {count.size}")
                count = float(count[0])
                if not (np.isfinite(count) and count > 0):
                    raise bad(f"'count' must be a positive number of frames, got {count:g}")
                total, squares = arr("sum").reshape(-1), arr("sum_square").reshape(-1)
                if total.size != squares.size:
                    raise bad(f"'sum' holds {total.size} bands but 'sum_square' {squares.size}")
                mean = total / count
                with np.errstate(all="ignore"):
                    std = np.sqrt(np.maximum(squares / count - mean ** 2, 1e-20))
            elif "mean" in keys and ("std" in keys or "var" in keys):
                mean = arr("mean").reshape(-1)
                if "std" in keys:
                    std = arr("std").reshape(-1)
                else:
                    with np.errstate(all="ignore"):
                        std = np.sqrt(np.maximum(arr("var").reshape(-1), 1e-20))
                if mean.size != std.size:
                    raise bad(f"'mean' holds {mean.size} bands but the std {std.size}")
            else:
                raise bad(f"stats file needs mean/std or count/sum/sum_square arrays; has "
                          f"{name_list(sorted(keys)) or 'none'}")
    except ConfigError:
        raise
    except MemoryError:
        raise bad("too large to load as a stats file") from None
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise bad("holds Python objects (a pickle), refused") from None
        raise bad(f"damaged stats file ({(str(e).splitlines() or [''])[0][:160]})") from None
    except Exception as e:  # untrusted bytes: any parser failure (BadZipFile, zlib.error, EOFError...) is damage
        raise bad(f"damaged stats file ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]})") from None
    if mean.size == 0:
        raise bad("stats hold no bands")
    if n_mels is not None and mean.size != n_mels:
        raise bad(f"stats hold {mean.size} bands, the settings have `n_mels` {n_mels}")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise bad("stats contain NaN, Inf or non-positive std")
    return mean, std


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(v)


# --- presets -------------------------------------------------------------------------------
def _preset_dir() -> Path:
    """``configs/`` of a source checkout (editable install), else the copy packaged in the wheel."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "configs", here / "configs"):
        if (cand / "default.toml").is_file():
            return cand
    raise ConfigError(f"preset folder not found (looked in {here.parent / 'configs'} and {here / 'configs'})")


def list_presets() -> list[str]:
    """Names of the packaged presets (``configs/*.toml``)."""
    return sorted(p.name[:-5] for p in _preset_dir().iterdir() if p.name.endswith(".toml"))


def preset_path(name_or_path: str):
    """The file a ``--config`` value refers to: a packaged preset name or a path to a .toml file."""
    p = Path(name_or_path)
    if name_or_path.endswith(".toml") or os.path.exists(p) or "/" in name_or_path:
        if not os.path.isfile(p):
            raise ConfigError(f"{name_or_path}: config file not found")
        return p
    res = _preset_dir() / f"{name_or_path}.toml"
    if not os.path.isfile(res):
        raise ConfigError(f"unknown preset {name_or_path!r}; available: {', '.join(list_presets())} "
                          f"(or give a path to a .toml file)")
    return res


def read_preset_text(name_or_path: str) -> str:
    return preset_path(name_or_path).read_text(encoding="utf-8")


def load_preset(name_or_path: str, explicit: bool = True) -> STFTConfig:
    """Settings from a preset name (``default``) or a TOML file path."""
    path = preset_path(name_or_path)
    source = str(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: invalid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{source}: cannot read config: {e}") from None
    extra = sorted(set(data) - set(TABLES))
    if extra:
        raise ConfigError(f"{source}: unknown table(s) or key(s) {_names(extra)}; expected tables "
                          f"{', '.join('[' + t + ']' for t in TABLES)}")
    flat: dict = {}
    for table, names in TABLES.items():
        body = data.get(table, {})
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: [{table}] must be a table")
        wrong = sorted(set(body) - set(names))
        if wrong:
            raise ConfigError(f"{source}: unknown setting(s) {_names(wrong)} in [{table}]; "
                              f"known: {', '.join(names)}")
        flat.update(body)
    if isinstance(flat.get("stats"), str) and isinstance(path, Path):
        flat["stats"] = str((path.parent / flat["stats"]).resolve()) if not Path(flat["stats"]).is_absolute() else flat["stats"]
    return STFTConfig.from_mapping(flat, source=source, explicit=explicit)
