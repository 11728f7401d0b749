"""Audio -> spectrograms in ``invert``'s conventions, and the evaluation metrics. No click here.

- :func:`read_audio` reads anything soundfile reads as it is (``[C, L]`` and its rate);
  :func:`load_audio` mixes down to mono (or picks a channel) and resamples (librosa, soxr) to the
  settings' rate, as ``specinv stft`` does to make a spectrogram.
- :func:`check_comparison` is the one gate every comparison of audio with a target spectrogram or
  a reference recording goes through (:func:`evaluate`, ``plot``, ``report``): it refuses
  (:class:`ComparisonError`) a length the target's framing does not explain (more than one
  window apart), a sample rate other than the settings', and more than one channel, unless the
  caller asks deliberately (:class:`CompareOptions`: ``truncate``, ``resample``, ``channel``,
  ``mixdown``), which is then noted.
- :func:`analyze` computes the spectrogram ``invert`` decodes with the same settings: the
  :class:`~specinv_cli.dsp.stft.STFT` magnitude as ``kind`` (magnitude/power/db/log), or the mel
  features :func:`specinv_cli.dsp.mel.encode` gives (compression, normalisation), in the preset's layout.
- :func:`evaluate` scores a waveform against a target spectrogram (SC/SNR/SER in the target's
  domain: mel SC for mel features), given the original waveform, the log-spectral distance and the
  metrics of :mod:`~specinv_cli.companion.suite` (MCD, PESQ, STOI, ViSQOL, F0), and DNSMOS, which
  needs no reference.

Example
-------
>>> import numpy as np
>>> from specinv_cli.config import STFTConfig
>>> from specinv_cli.io.spectrogram import interpret
>>> cfg = STFTConfig()
>>> x = np.random.default_rng(0).standard_normal(22050).astype(np.float32) * 0.1
>>> spec = analyze(x, cfg)                        # [513, 87], what `specinv invert` reads
>>> ev = evaluate(x, 22050, interpret(spec), cfg)
>>> ev.metrics["sc"] < -100                       # the signal itself: SC at the float floor
True
>>> try:                                          # half of it: its length does not fit the target
...     evaluate(x[:11025], 22050, interpret(spec), cfg)
... except ComparisonError as e:
...     print(e)
11025 samples (0.50 s), but the target implies 22016 samples (1.00 s: 87 frames, hop 256): more than one window (1024 samples) apart; is it the right target? Cut or pad it to the target deliberately with `truncate`
>>> ev = evaluate(x[:11025], 22050, interpret(spec), cfg, options=CompareOptions(truncate=True))
>>> print(ev.notes[0]); ev.adjusted
zero-padded from 11025 samples (0.50 s) to the target's 22016 samples (1.00 s) (`truncate`)
{'output': {'truncated': [11025, 22016]}}
"""
from __future__ import annotations

import math
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..dsp.resample import resample
from ..io.spectrogram import InputError
from .suite import METRICS, score_output, score_pair, selected

__all__ = ["SPEC_KINDS", "audio_suffixes", "is_audio_file", "read_audio", "load_audio", "resample", "analyze",
           "stft_bytes", "save_array", "atomic_write", "CompareOptions", "ComparisonError", "Checked", "check_comparison",
           "implied_length", "Evaluation", "evaluate", "lsd", "summarize", "METRIC_INFO", "LSD_FLOOR_DB"]

#: What ``specinv stft --kind`` writes for linear spectrograms (``invert --input-kind`` reads them).
SPEC_KINDS = ("magnitude", "power", "db", "log")
#: Magnitudes below this are floored before ``db``/``log`` (a silent frame would give -inf, which
#: ``invert`` refuses); 1e-10 is -200 dB, far below any 16-bit or float32 content.
LOG_FLOOR = 1e-10
#: For the LSD, power spectra are floored this many dB below the reference's peak power, so that silent
#: bins (where any estimate is "infinitely" wrong in dB) do not dominate the distance.
LSD_FLOOR_DB = 100.0

#: Metric name -> (label, unit, higher is better) for tables and reports (:data:`~.suite.METRICS`).
METRIC_INFO = {k: (m.label, m.unit, m.higher_is_better) for k, m in METRICS.items()}


# --- files --------------------------------------------------------------------------------
def audio_suffixes() -> set[str]:
    """File suffixes soundfile (libsndfile) reads, lower case with the dot (``.wav``, ``.flac``...)."""
    import soundfile as sf

    # container names double as suffixes; .raw needs a sample format, so it is not audio here
    suf = {"." + k.lower() for k in sf.available_formats()} - {".raw"}
    return suf | {".wav", ".aif", ".oga", ".opus"}


def is_audio_file(path) -> bool:
    return Path(path).suffix.lower() in audio_suffixes()


@contextmanager
def atomic_write(path):
    """Yield a temporary path beside ``path``, renamed over it on success and deleted on error
    (so a failed or interrupted write never leaves a partial file). Uses
    :func:`specinv_cli.io.write.atomic_output`: same checks (folder exists, writable) and clean-up on
    SIGINT."""
    from ..io.write import atomic_output

    with atomic_output(path) as tmp:
        yield tmp


def save_array(path, array: np.ndarray) -> None:
    """Write ``array`` as ``.npy`` (numpy, no pickle) or ``.pt`` (a plain tensor), atomically.

    Raises :class:`~specinv_cli.errors.OutputError` naming ``path``."""
    from ..errors import OutputError

    path = Path(path)
    arr = np.ascontiguousarray(array)
    try:
        with atomic_write(path) as tmp:
            if path.suffix == ".pt":
                import torch

                torch.save(torch.from_numpy(arr), tmp)
            else:
                with open(tmp, "wb") as f:
                    np.save(f, arr, allow_pickle=False)
    except OutputError:
        raise
    except OSError as e:
        raise OutputError(path, f"cannot write: {e.strerror or e}") from None


# --- audio --------------------------------------------------------------------------------
def _sniffed(path) -> str:
    from ..util.sniff import looks_like

    try:
        with open(path, "rb") as f:
            return f" (it looks like {looks_like(f.read(64))})"
    except OSError:
        return ""


def read_audio(path, *, max_bytes: float | None = None):
    """Read an audio file as it is: ``(audio [C, L] float32, rate)``, no mix-down, no resampling.

    A FIFO or character device is read as a stream. The samples the header declares are
    checked against ``max_bytes`` (``None``: the available memory) before they are read.
    Raises :class:`InputError` naming the file (missing, unreadable, not audio, no samples,
    non-finite samples, too large)."""
    import io as _io

    import soundfile as sf

    from ..io.read import check_readable, read_stream_bytes
    from ..util.limits import check_bytes

    name = str(path)
    kind = check_readable(Path(path), name, "an audio file")
    src = name
    if kind == "stream":
        src = _io.BytesIO(read_stream_bytes(path, name, max_bytes))
    try:
        info = sf.info(src)
        if kind == "stream":
            src.seek(0)
        # float32 samples, and the channels-first copy
        check_bytes(name, 2 * 4 * max(int(info.frames), 0) * int(info.channels), max_bytes,
                    f"reading its {int(info.frames)} frames of {int(info.channels)} channel(s) (as its header says)")
        data, sr = sf.read(src, dtype="float32", always_2d=True)
    except InputError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        msg = re.sub(r"<[^<>]* object at 0x[0-9a-fA-F]+>", "the stream", msg)  # libsndfile names the buffer
        if kind == "stream":
            from ..util.sniff import looks_like

            src.seek(0)
            looks = f" (it looks like {looks_like(src.read(64))})"
        else:
            looks = _sniffed(name)
        raise InputError(name, f"not a readable audio file{looks or ''}: {msg[:160]}") from None
    except MemoryError:
        raise InputError(name, "too large to read into memory") from None
    except OSError as e:
        raise InputError(name, f"cannot read: {e.strerror or e}") from None
    if data.shape[0] == 0:
        raise InputError(name, "holds no samples")
    if not np.all(np.isfinite(data)):
        raise InputError(name, f"contains {int((~np.isfinite(data)).sum())} NaN or infinite sample(s)")
    return np.ascontiguousarray(data.T), int(sr)


def load_audio(path, sample_rate: int | None = None, channel: int | None = None, *,
               max_bytes: float | None = None):
    """Read an audio file as float32 mono ``[L]``: ``(audio, rate)``, to make a spectrogram of it.

    Multichannel files are averaged (or ``channel``, 0-based, is taken); with ``sample_rate`` the
    audio is resampled to it. ``max_bytes`` bounds what reading and resampling allocate (see
    :func:`read_audio`, :func:`resample`). Raises :class:`InputError` naming the file (missing,
    unreadable, not audio, no samples, no such channel, too large). Comparisons do not use
    this silent conversion: they read with :func:`read_audio` and go through
    :func:`check_comparison`.
    """
    name = str(path)
    data, sr = read_audio(path, max_bytes=max_bytes)
    if channel is not None:
        if not 0 <= channel < data.shape[0]:
            raise InputError(name, f"has {data.shape[0]} channel(s); `channel` {channel} does not exist "
                                   f"(channels are numbered from 0)")
        audio = data[channel]
    else:
        audio = data.mean(axis=0) if data.shape[0] > 1 else data[0]
    if sample_rate is not None and int(sample_rate) != int(sr):
        audio, sr = resample(audio, sr, sample_rate, max_bytes=max_bytes, source=name), int(sample_rate)
    return np.ascontiguousarray(audio, dtype=np.float32), int(sr)


# --- analysis -----------------------------------------------------------------------------
def stft_bytes(n_samples: int, cfg, rows: int = 1) -> int:
    """Peak bytes of :func:`analyze` on ``rows`` signals of ``n_samples``: the float64 signal
    and its padded copy, then per frame the windowed frame, the complex spectrum, its
    magnitude and the float32 result (an upper bound on the frame count)."""
    n_fft, hop = int(cfg.n_fft), int(cfg.hop_length)
    frames = (int(n_samples) + n_fft + 2 * int(cfg.pad)) // hop + 1
    bins = n_fft // 2 + 1 if cfg.onesided else n_fft
    per_frame = 8 * n_fft + 24 * (n_fft // 2 + 1) + 4 * bins + (8 * bins if not cfg.onesided else 0)
    return int(rows) * (16 * (int(n_samples) + n_fft) + frames * per_frame)


def magnitude_of(audio, cfg, source=None, max_bytes=None):
    """STFT magnitude ``[..., F, T]`` (float64 torch) of ``audio [..., L]`` with ``cfg``; its
    size is checked first (:func:`stft_bytes` against ``max_bytes``, ``None``: the available
    memory)."""
    import torch

    from ..dsp.stft import STFT
    from ..util.limits import check_bytes

    a = np.asarray(audio)
    rows = int(np.prod(a.shape[:-1])) if a.ndim > 1 else 1
    check_bytes(source, stft_bytes(a.shape[-1] if a.ndim else 1, cfg, rows), max_bytes,
                f"the spectrogram of {a.shape[-1] if a.ndim else 1} samples")
    x = torch.as_tensor(np.asarray(a, dtype=np.float64))
    stft = STFT(cfg, dtype=torch.float64)
    try:
        return stft.forward(x).abs()
    except ValueError as e:
        raise InputError(source, f"too short for these settings ({e})") from None


def analyze(audio, cfg, *, mel: bool | None = None, kind: str = "magnitude", source: str | None = None,
            max_bytes: float | None = None) -> np.ndarray:
    """The spectrogram of ``audio [..., L]`` that ``specinv invert`` reads back with ``cfg``.

    Parameters
    ----------
    cfg : :class:`~specinv_cli.config.STFTConfig` (framing; with ``n_mels``, the mel front-end).
    mel : write mel features (default: when ``cfg`` has ``n_mels``): ``encode(fb @ |X| ** p)``,
        compressed and normalised as the settings say, decoded by ``invert`` with the same ``cfg``.
    kind : for linear spectrograms, ``magnitude`` ``|X|``, ``power`` ``|X|^2``, ``db`` ``20 log10 |X|`` or
        ``log`` ``ln |X|`` (floored at :data:`LOG_FLOOR`); read back with ``--input-kind KIND``.

    Returns float32 ``[..., F, T]`` (``[..., T, F]`` when ``cfg.layout`` is ``tf``): ``F`` is
    ``n_fft // 2 + 1`` (or ``n_fft`` when not ``onesided``) or ``n_mels``; ``T`` =
    ``STFT.n_frames(L)``, so a centred STFT of ``L`` samples gives ``1 + L // hop`` frames.

    ``max_bytes`` bounds the work's memory (:func:`stft_bytes`; ``None``: the available memory),
    checked before it starts: an :class:`InputError` naming ``source``.
    """
    import torch

    mel = cfg.is_mel if mel is None else bool(mel)
    if kind not in SPEC_KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(SPEC_KINDS)}")
    if mel and not cfg.is_mel:
        raise ValueError("mel features need mel settings: a mel preset (--config hifigan-22k, ...) or --n-mels N")
    if mel and kind != "magnitude":
        raise ValueError(f"--kind {kind} is for linear spectrograms; mel features are encoded as the settings "
                         f"say (compression {cfg.compression}, normalization {cfg.normalization})")
    mag = magnitude_of(audio, cfg, source, max_bytes)
    if mel:
        from ..dsp.mel import MelTransform, encode

        if cfg.normalization == "meanvar" and cfg.stats is None:
            raise ValueError("these settings use mean/variance normalisation: give the stats file with --stats")
        out = encode(MelTransform(cfg, dtype=torch.float64)(mag), cfg)
    elif not cfg.onesided:  # the two-sided spectrum of a real signal: mirror the upper half
        out = torch.cat([mag, mag[..., 1:cfg.n_fft - cfg.n_fft // 2, :].flip(-2)], dim=-2)
    else:
        out = mag
    if not mel:
        if kind == "power":
            out = out ** 2
        elif kind == "db":
            out = 20 * torch.log10(out.clamp_min(LOG_FLOOR))
        elif kind == "log":
            out = torch.log(out.clamp_min(LOG_FLOOR))
    if cfg.layout == "tf":
        out = out.transpose(-1, -2)
    return out.to(torch.float32).contiguous().numpy()


# --- comparisons --------------------------------------------------------------------------
class ComparisonError(InputError):
    """A comparison that cannot be right (length, sample rate or channels), refused by
    :func:`check_comparison`; the message names the file, both values and the deliberate option."""


@dataclass(frozen=True)
class CompareOptions:
    """What a comparison may do deliberately instead of refusing (see :func:`check_comparison`).

    Attributes
    ----------
    truncate : cut or zero-pad audio whose length the target's framing does not explain to the
        target's length (against a reference recording: both to the shorter).
    resample : resample audio whose rate is not the settings' ``sample_rate`` (soxr).
    channel : take this channel (0-based) of multichannel audio (mono audio is used as it is).
    mixdown : average the channels of multichannel audio.
    """

    truncate: bool = False
    resample: bool = False
    channel: int | None = None
    mixdown: bool = False

    def __post_init__(self):
        if self.channel is not None and self.mixdown:
            raise ValueError("`channel` and `mixdown` exclude each other: take one channel or mix them down")
        if self.channel is not None and int(self.channel) < 0:
            raise ValueError(f"`channel` must be >= 0 (channels are numbered from 0), got {self.channel}")


@dataclass
class Checked:
    """What :func:`check_comparison` returns.

    ``audio``: the output ``[L]`` float32 at the settings' rate, cut or padded to the target's
    length when ``truncate`` had to act (else as it is: up to one window of framing slack);
    ``pair``: ``(output, reference)`` cut to a common length for LSD/PESQ/STOI (``None`` without
    a reference); ``notes``: what was done deliberately; ``adjusted``: the same as data, e.g.
    ``{"output": {"resampled": [16000, 22050], "truncated": [238140, 31488]},
    "reference": {"mixdown": 2}, "reference_cut": {"output": N, "reference": M, "to": K}}``.
    """

    audio: np.ndarray
    pair: tuple | None = None
    notes: list = field(default_factory=list)
    adjusted: dict = field(default_factory=dict)


def _samples(n: int, sr: int, inner: bool = False) -> str:
    """``1000 samples (0.05 s)``; ``inner``: ``1000 samples, 0.05 s`` (to go inside parentheses)."""
    return f"{n} samples, {n / sr:.2f} s" if inner else f"{n} samples ({n / sr:.2f} s)"


def implied_length(cfg, n_frames: int) -> int:
    """Samples a signal of ``n_frames`` frames with ``cfg``'s framing has:
    :meth:`specinv_cli.dsp.stft.STFT.default_length` (``(T - 1) * hop`` for centred frames,
    ``n_fft + (T - 1) * hop - 2 * pad`` otherwise), what ``invert`` writes without ``length``."""
    from ..dsp.stft import STFT

    return int(STFT(cfg).default_length(int(n_frames)))


def _conform(audio, sr, cfg, opts: CompareOptions, source, adjusted: dict, notes: list, who: str):
    """``audio`` ([L] or [C, L]) as float32 mono [L] at ``cfg.sample_rate``, or a refusal."""
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 1:
        a = a[None]
    elif a.ndim != 2:
        raise ComparisonError(source, f"audio of shape {tuple(a.shape)}: expected [samples] or [channels, samples]")
    n_ch, n = a.shape
    if n == 0:
        raise InputError(source, "holds no samples")
    if n_ch > n:
        raise ComparisonError(source, f"audio of shape {tuple(a.shape)} reads as {n_ch} channels of {n} sample(s); "
                                      f"pass [samples] or [channels, samples]")
    if n_ch > 1:
        if opts.channel is not None:
            if opts.channel >= n_ch:
                raise ComparisonError(source, f"has {n_ch} channels; `channel` {opts.channel} does not exist "
                                              f"(channels are numbered from 0)")
            a = a[opts.channel]
            adjusted["channel"] = int(opts.channel)
            notes.append(f"{who}channel {opts.channel} of {n_ch} taken (`channel`)")
        elif opts.mixdown:
            a = a.mean(axis=0)
            adjusted["mixdown"] = int(n_ch)
            notes.append(f"{who}mixed down from {n_ch} channels (`mixdown`)")
        else:
            raise ComparisonError(source, f"has {n_ch} channels, but a comparison takes one: choose one with "
                                          f"`channel` N (0-based) or mix them down deliberately with `mixdown`")
    else:
        a = a[0]
    sr, want = int(cfg.sample_rate if sr is None else sr), int(cfg.sample_rate)
    if sr != want:
        if not opts.resample:
            hint = "give the settings this file's rate, or " if not who else ""  # the output's rate may be right
            raise ComparisonError(source, f"sample rate {sr} Hz, but the settings' `sample_rate` is {want} Hz; "
                                          f"{hint}resample it deliberately with `resample`")
        a = resample(a, sr, want, source=source)
        adjusted["resampled"] = [sr, want]
        notes.append(f"{who}resampled from {sr} Hz to the settings' {want} Hz (`resample`)")
    return np.ascontiguousarray(a, dtype=np.float32)


def check_comparison(audio, sample_rate: int, cfg, *, n_frames: int | None = None, reference=None,
                     reference_rate: int | None = None, options: CompareOptions | None = None,
                     source: str | None = None, target_source: str | None = None,
                     reference_source: str | None = None, role: str = "output") -> Checked:
    """The one check before audio is compared with a target spectrogram or a reference recording.

    Parameters
    ----------
    audio : the output, ``[L]`` or ``[C, L]`` (channels first, as :func:`read_audio` gives) at
        ``sample_rate`` Hz.
    cfg : the settings the target was made with (``with_bins`` applied): its ``sample_rate`` is
        the rate compared at, its framing gives the target's length and the tolerance, one window
        (``win_length``, else ``n_fft``).
    n_frames : the target's frames ``T``; its length is :func:`implied_length`.
    reference : the original recording ``[L']`` or ``[C, L']`` at ``reference_rate`` (default
        ``sample_rate``), for LSD/PESQ/STOI.
    options : :class:`CompareOptions`, what may be done deliberately instead of refusing.
    source, target_source, reference_source : file names for the messages.
    role : what ``audio`` is, in the notes (``output``; ``reference`` when a recording is checked
        before its spectrogram becomes the target).

    Raises :class:`ComparisonError` (an :class:`InputError`) naming the file and both values:
    more than one channel (unless ``channel``/``mixdown``); a sample rate other than
    ``cfg.sample_rate`` (unless ``resample``); a length more than one window from the target's
    (unless ``truncate``: cut or zero-padded to it) or from the reference's (unless ``truncate``:
    both cut to the shorter). The rules apply to the reference as to the output.
    """
    opts = options or CompareOptions()
    sr = int(cfg.sample_rate)
    notes: list = []
    out_adj: dict = {}
    who = "" if role == "output" else f"{role}: "  # notes on the output need no prefix
    x = _conform(audio, sample_rate, cfg, opts, source, out_adj, notes, who)
    n = int(x.shape[-1])
    win = int(cfg.effective_win_length)
    fitted = x
    if n_frames is not None:
        m = implied_length(cfg, n_frames)
        if abs(n - m) > win:
            tname = f"the target {target_source}" if target_source else "the target"
            if not opts.truncate:
                raise ComparisonError(source, f"{_samples(n, sr)}, but {tname} implies {m} samples "
                                              f"({m / sr:.2f} s: {n_frames} frames, hop {cfg.hop_length}): more "
                                              f"than one window ({win} samples) apart; is it the right target? Cut "
                                              f"or pad it to the target deliberately with `truncate`")
            m = max(m, 1)
            fitted = x[:m] if n >= m else np.pad(x, (0, m - n))
            out_adj["truncated"] = [n, m]
            notes.append(f"{who}{'cut' if n >= m else 'zero-padded'} from {_samples(n, sr)} to the target's "
                         f"{_samples(m, sr)} (`truncate`)")
    adjusted = {role: out_adj} if out_adj else {}
    pair = None
    if reference is not None:
        ref_adj: dict = {}
        rsr = sample_rate if reference_rate is None else reference_rate
        r = _conform(reference, rsr, cfg, opts, reference_source, ref_adj, notes, "reference: ")
        nr = int(r.shape[-1])
        k = min(n, nr)
        if abs(n - nr) > win:
            rname = f"the reference {reference_source}" if reference_source else "the reference"
            if not opts.truncate:
                raise ComparisonError(source, f"{_samples(n, sr)}, but {rname} has {_samples(nr, sr)}: more than "
                                              f"one window ({win} samples) apart; is it the right reference? Cut "
                                              f"both to the shorter deliberately with `truncate`")
            adjusted["reference_cut"] = {"output": n, "reference": nr, "to": k}
            notes.append(f"output ({_samples(n, sr, inner=True)}) and reference "
                         f"({_samples(nr, sr, inner=True)}) both cut to {k} samples (`truncate`)")
        if ref_adj:
            adjusted["reference"] = ref_adj
        pair = (x[:k], r[:k])
    return Checked(fitted, pair, notes, adjusted)


# --- evaluation ---------------------------------------------------------------------------
@dataclass
class Evaluation:
    """What :func:`evaluate` returns: ``metrics`` (name -> float), the ``domain`` of SC/SNR/SER
    (``linear`` or ``mel``), ``notes`` (metrics left out and why, what was done deliberately),
    ``adjusted`` (:attr:`Checked.adjusted`) and ``audio``, the output as compared with the target
    (``[L]`` at the settings' rate)."""

    metrics: dict
    domain: str = "linear"
    notes: list = field(default_factory=list)
    adjusted: dict = field(default_factory=dict)
    audio: np.ndarray | None = field(default=None, repr=False, compare=False)


def lsd(est, ref, cfg, floor_db: float = LSD_FLOOR_DB) -> float:
    """Log-spectral distance in dB between waveforms ``est`` and ``ref`` (``[L]``, same rate).

    With power spectra ``P = |STFT(x)|^2`` (the linear framing of ``cfg``) floored at
    ``eps = max(P_ref) * 10^(-floor_db / 10)``::

        LSD = mean over frames t of sqrt( mean over bins f of (10 log10 (P_ref + eps) / (P_est + eps))^2 )

    (0 for identical spectra; the usual definition in speech enhancement and bandwidth-extension
    papers). Both signals are cut to the shorter length. Insensitive to phase, sensitive to gain.
    """
    n = min(len(est), len(ref))
    if n == 0:
        return float("nan")
    p_est = magnitude_of(np.asarray(est)[:n], cfg) ** 2
    p_ref = magnitude_of(np.asarray(ref)[:n], cfg) ** 2
    eps = max(float(p_ref.max()), 1e-30) * 10 ** (-floor_db / 10)
    d = 10 * ((p_ref + eps).log10() - (p_est + eps).log10())
    return float(d.pow(2).mean(dim=-2).sqrt().mean())


def evaluate(audio, sample_rate: int, target, cfg, *, reference=None, reference_rate: int | None = None,
             scale_invariant: bool = False, perceptual: bool = True, metrics=None,
             options: CompareOptions | None = None, source: str | None = None, target_source: str | None = None,
             reference_source: str | None = None, crepe_model: str = "tiny") -> Evaluation:
    """Score a waveform against the spectrogram it was reconstructed from.

    Parameters
    ----------
    audio : ``[L]`` (or ``[C, L]``) waveform, e.g. ``specinv invert``'s output, at ``sample_rate``.
    target : a :class:`~specinv_cli.io.spectrogram.Target` of one item ``[F, T]`` (``load_spectrogram``):
        a linear magnitude, or mel features (``mel_features``), decoded with ``cfg``; or ``None``
        (no SC/SNR/SER; the output's length is then checked against the reference only).
    cfg : the settings the target was made with (those given to ``invert``).
    reference : the original waveform ``[L']`` (at ``reference_rate``, default ``sample_rate``):
        adds the reference-based metrics (``lsd`` (:func:`lsd`), ``mcd``, ``pesq``, ``stoi``,
        ``visqol``, ``visqol_audio``, ``f0_rmse``/``periodicity``/``vuv_f1``:
        :func:`~specinv_cli.companion.suite.score_pair`).
    perceptual, metrics : the metric groups to compute (:data:`~specinv_cli.companion.suite.GROUPS`;
        ``metrics=None``: all); ``perceptual=False`` leaves out the model-based ones
        (:data:`~specinv_cli.companion.suite.PERCEPTUAL`). DNSMOS needs no reference. A metric
        whose package is missing (the ``[eval]`` extra) or that is undefined for the signal is
        left out with a note.
    scale_invariant : SC/SER after the least-squares gain ``g = <S_hat, S> / <S_hat, S_hat>``
        (the gain is reported as ``gain``). Off by default: SC is scale-sensitive, and a WAV that
        ``invert`` peak-normalised (its peak exceeded full scale) is measured as written.
    options : :class:`CompareOptions`. Audio and reference go through :func:`check_comparison`
        first: a length more than one window from what the target's frames imply (or from the
        reference's), a rate other than ``cfg.sample_rate`` or more than one channel is refused
        (:class:`ComparisonError`) unless ``options`` asks for ``truncate``, ``resample``,
        ``channel`` or ``mixdown``.
    source, target_source, reference_source : file names for the messages.

    SC/SNR/SER are those of :mod:`specinv_cli.dsp.metrics` between ``|STFT(audio)|`` cut or padded to
    the target's ``T`` frames and the target magnitude, or, for mel features, between
    ``fb @ |STFT(audio)| ** p`` and the decoded mel (the domain ``invert`` reports for mel input).
    """
    import torch

    from ..api import spectrogram_of
    from ..dsp.stft import STFT
    from ..dsp.metrics import compute

    groups = selected(metrics, perceptual)
    if target is not None and target.mag.dim() != 2:
        raise ValueError(f"evaluate takes one item [F, T], got shape {tuple(target.mag.shape)}")
    n_frames = None
    if target is not None:
        cfg = cfg.with_bins(target.mag.shape[-2], target_source or source or "target")
        n_frames = target.mag.shape[-1]
    chk = check_comparison(audio, sample_rate, cfg, n_frames=n_frames, reference=reference,
                           reference_rate=reference_rate, options=options, source=source,
                           target_source=target_source, reference_source=reference_source)
    notes = list(chk.notes)
    metrics = {}
    domain = "mel" if target is not None and target.mel_features else "linear"
    if target is not None and "spectral" in groups:
        stft = STFT(cfg, dtype=torch.float64)
        x = torch.from_numpy(chk.audio.astype(np.float64))
        try:
            est = spectrogram_of(x, stft, n_frames)
        except ValueError as e:
            raise InputError(source, f"too short for these settings ({e})") from None
        if target.mel_features:
            from ..dsp.mel import MelTransform, decode

            ref = decode(target.mag.to(torch.float64), cfg)
            est = MelTransform(cfg, dtype=torch.float64)(est)
        else:
            ref = target.mag.to(torch.float64)[: cfg.n_fft // 2 + 1]
        if scale_invariant:
            den = float((est * est).sum())
            g = float((est * ref).sum()) / den if den > 0 else 1.0
            est = est * g
            metrics["gain"] = g
        metrics.update({k: float(v) for k, v in compute(est, ref).items()})
    if chk.pair is not None:
        out_audio, ref_audio = chk.pair
        if "lsd" in groups:
            lin = cfg.replace(n_mels=None) if cfg.is_mel else cfg
            metrics["lsd"] = lsd(out_audio, ref_audio, lin)
        metrics.update(score_pair(out_audio, ref_audio, cfg.sample_rate, groups, notes, crepe_model=crepe_model))
    metrics.update(score_output(chk.audio, cfg.sample_rate, groups, notes))
    return Evaluation(metrics, domain, notes, chk.adjusted, chk.audio)


def summarize(rows: list[dict], names=None) -> dict:
    """``{"median": {name: v}, "mean": {name: v}, "count": {name: n}}`` over the rows holding
    each metric (finite values only)."""
    names = names or [k for k in METRIC_INFO if any(k in r for r in rows)]
    out = {"median": {}, "mean": {}, "count": {}}
    for k in names:
        vals = [float(r[k]) for r in rows if r.get(k) is not None and math.isfinite(float(r[k]))]
        if vals:
            out["median"][k] = float(np.median(vals))
            out["mean"][k] = float(np.mean(vals))
            out["count"][k] = len(vals)
    return out


# --- matching outputs to targets and references ---------------------------------------------
def spectrogram_suffixes() -> tuple:
    from ..io.read import SUFFIXES

    return SUFFIXES


def index_by_stem(folder, suffixes) -> dict:
    """``{stem: path}`` of the files in ``folder`` (not recursive) with one of ``suffixes``;
    hidden files and ``specinv`` temporaries are skipped."""
    out = {}
    for p in sorted(Path(folder).iterdir()):
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes:
            out.setdefault(p.stem, p)
    return out


def match_stem(stem: str, table: dict):
    """``(path, item)`` for an output named ``stem``: ``table[stem]`` (item ``None``), or
    ``table[base]`` with item ``N`` for ``<base>_<N>`` (how ``invert`` names the items of a batched
    input: ``batch_003.wav`` is item 3 of ``batch.npy``); ``None`` when nothing matches."""
    if stem in table:
        return table[stem], None
    base, sep, idx = stem.rpartition("_")
    if sep and idx.isdigit() and base in table:
        return table[base], int(idx)
    return None


def load_target(path, cfg, *, item: int | None = None, key: str | None = None, input_kind: str = "magnitude",
                max_bytes: float | None = None):
    """One item ``[F, T]`` of a spectrogram file, read as ``invert`` reads it: ``(Target, cfg)``
    with ``cfg.with_bins`` applied. A batched file needs ``item`` (its flat index);
    ``max_bytes`` bounds the stored array (:func:`specinv_cli.io.read.load_array`)."""
    from ..config import ConfigError
    from ..io.read import load_spectrogram
    from ..io.spectrogram import Target

    name = str(path)
    try:
        t = load_spectrogram(path, key=key, input_kind=input_kind, layout=cfg.layout, n_mels=cfg.n_mels,
                             max_bytes=max_bytes)
        item_cfg = cfg.with_bins(t.mag.shape[-2], name)
    except ConfigError as e:
        raise InputError(None, str(e)) from None
    n = int(np.prod(t.batch_shape)) if t.batch_shape else 1
    if t.batch_shape:
        if item is None:
            if n != 1:
                raise InputError(name, f"holds a batch of {n} spectrograms (shape {tuple(t.mag.shape)}); name the "
                                       f"outputs <stem>_NNN.wav as invert does, or choose one with --item")
            item = 0
        if not 0 <= item < n:
            raise InputError(name, f"has {n} item(s); item {item} does not exist")
        mag = t.mag.reshape(n, *t.mag.shape[-2:])[item]
        phase = t.phase.reshape(n, *t.phase.shape[-2:])[item] if t.phase is not None else None
        t = Target(mag, phase, t.mel_features)
    elif item not in (None, 0):
        raise InputError(name, f"holds one spectrogram; item {item} does not exist")
    return t, item_cfg
