"""Audio -> spectrograms in ``invert``'s conventions, and the evaluation metrics. No click here.

- :func:`load_audio` reads anything soundfile reads, mixes down to mono (or picks a channel) and
  resamples (librosa, soxr) to the settings' rate.
- :func:`analyze` computes the spectrogram ``invert`` decodes with the same settings: the
  :class:`~specinv_cli.dsp.STFT` magnitude as ``kind`` (magnitude/power/db/log), or the mel
  features :func:`specinv_cli.mel.encode` gives (compression, normalisation), in the preset's layout.
- :func:`evaluate` scores a waveform against a target spectrogram (SC/SNR/SER in the target's
  domain: mel SC for mel features) and, given the original waveform, the log-spectral distance
  and, when ``pesq``/``pystoi`` import, PESQ and STOI.

Example
-------
>>> import numpy as np
>>> from specinv_cli.config import STFTConfig
>>> from specinv_cli.spectrogram import interpret
>>> cfg = STFTConfig()
>>> x = np.random.default_rng(0).standard_normal(22050).astype(np.float32) * 0.1
>>> spec = analyze(x, cfg)                        # [513, 87], what `specinv invert` reads
>>> ev = evaluate(x, 22050, interpret(spec), cfg)
>>> ev.metrics["sc"] < -100                       # the signal itself: SC at the float floor
True
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .spectrogram import InputError

__all__ = ["SPEC_KINDS", "audio_suffixes", "is_audio_file", "load_audio", "resample", "analyze",
           "save_array", "atomic_write", "Evaluation", "evaluate", "lsd", "summarize", "METRIC_INFO",
           "LSD_FLOOR_DB"]

#: What ``specinv stft --kind`` writes for linear spectrograms (``invert --input-kind`` reads them).
SPEC_KINDS = ("magnitude", "power", "db", "log")
#: Magnitudes below this are floored before ``db``/``log`` (a silent frame would give -inf, which
#: ``invert`` refuses); 1e-10 is -200 dB, far below any 16-bit or float32 content.
LOG_FLOOR = 1e-10
#: LSD: power spectra are floored this many dB below the reference's peak power, so that silent
#: bins (where any estimate is "infinitely" wrong in dB) do not dominate the distance.
LSD_FLOOR_DB = 100.0

#: Metric name -> (label, unit, higher is better) for tables and reports.
METRIC_INFO = {
    "sc": ("SC", "dB", False), "snr": ("SNR", "dB", True), "ser": ("SER", "dB", True),
    "lsd": ("LSD", "dB", False), "pesq": ("PESQ", "", True), "stoi": ("STOI", "", True),
}


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
    :func:`specinv_cli.io.atomic_output`: same checks (folder exists, writable) and clean-up on
    SIGINT."""
    from .io import atomic_output

    with atomic_output(path) as tmp:
        yield tmp


def save_array(path, array: np.ndarray) -> None:
    """Write ``array`` as ``.npy`` (numpy, no pickle) or ``.pt`` (a plain tensor), atomically.

    Raises :class:`~specinv_cli.io.OutputError` naming ``path``."""
    from .io import OutputError

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
def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """``audio [..., L]`` from ``sr_in`` to ``sr_out`` Hz (librosa with soxr, high quality)."""
    if int(sr_in) == int(sr_out):
        return audio
    import librosa

    return librosa.resample(np.asarray(audio, dtype=np.float32), orig_sr=int(sr_in), target_sr=int(sr_out),
                            res_type="soxr_hq").astype(np.float32)


def load_audio(path, sample_rate: int | None = None, channel: int | None = None):
    """Read an audio file as float32 mono ``[L]``: ``(audio, rate)``.

    Multichannel files are averaged (or ``channel``, 0-based, is taken); with ``sample_rate`` the
    audio is resampled to it. Raises :class:`InputError` naming the file (missing, unreadable,
    not audio, no samples, no such channel).
    """
    import soundfile as sf

    name = str(path)
    from .io import _check_readable

    _check_readable(Path(path), name, "an audio file")
    try:
        data, sr = sf.read(name, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(name, f"not a readable audio file ({msg[:160]})") from None
    except OSError as e:
        raise InputError(name, f"cannot read: {e.strerror or e}") from None
    if data.shape[0] == 0:
        raise InputError(name, "holds no samples")
    if channel is not None:
        if not 0 <= channel < data.shape[1]:
            raise InputError(name, f"has {data.shape[1]} channel(s); --channel {channel} does not exist "
                                   f"(channels are numbered from 0)")
        audio = data[:, channel]
    else:
        audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(audio)):
        raise InputError(name, f"contains {int((~np.isfinite(audio)).sum())} NaN or infinite sample(s)")
    if sample_rate is not None and int(sample_rate) != int(sr):
        audio, sr = resample(audio, sr, sample_rate), int(sample_rate)
    return np.ascontiguousarray(audio, dtype=np.float32), int(sr)


# --- analysis -----------------------------------------------------------------------------
def _mag(audio, cfg, source=None):
    """STFT magnitude ``[..., F, T]`` (float64 torch) of ``audio [..., L]`` with ``cfg``."""
    import torch

    from .dsp import STFT

    x = torch.as_tensor(np.asarray(audio, dtype=np.float64))
    stft = STFT(cfg, dtype=torch.float64)
    try:
        return stft.forward(x).abs()
    except ValueError as e:
        raise InputError(source, f"too short for these settings ({e})") from None


def analyze(audio, cfg, *, mel: bool | None = None, kind: str = "magnitude", source: str | None = None) -> np.ndarray:
    """The spectrogram of ``audio [..., L]`` that ``specinv invert`` reads back with ``cfg``.

    Parameters
    ----------
    cfg : :class:`~specinv_cli.config.STFTConfig` (framing; with ``n_mels``, the mel front-end).
    mel : write mel features (default: when ``cfg`` has ``n_mels``): ``encode(fb @ |X| ** p)``,
        compressed and normalised as the settings say, decoded by ``invert`` with the same ``cfg``.
    kind : for linear spectrograms, ``magnitude`` |X|, ``power`` |X|^2, ``db`` 20 log10 |X| or
        ``log`` ln |X| (floored at :data:`LOG_FLOOR`); read back with ``--input-kind KIND``.

    Returns float32 ``[..., F, T]`` (``[..., T, F]`` when ``cfg.layout`` is ``tf``): ``F`` is
    ``n_fft // 2 + 1`` (or ``n_fft`` when not ``onesided``) or ``n_mels``; ``T`` =
    ``STFT.n_frames(L)``, so a centred STFT of ``L`` samples gives ``1 + L // hop`` frames.
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
    mag = _mag(audio, cfg, source)
    if mel:
        from .mel import MelTransform, encode

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


# --- evaluation ---------------------------------------------------------------------------
@dataclass
class Evaluation:
    """What :func:`evaluate` returns: ``metrics`` (name -> float), the ``domain`` of SC/SNR/SER
    (``linear`` or ``mel``) and ``notes`` (metrics left out and why, resampling done)."""

    metrics: dict
    domain: str = "linear"
    notes: list = field(default_factory=list)


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
    p_est = _mag(np.asarray(est)[:n], cfg) ** 2
    p_ref = _mag(np.asarray(ref)[:n], cfg) ** 2
    eps = max(float(p_ref.max()), 1e-30) * 10 ** (-floor_db / 10)
    d = 10 * ((p_ref + eps).log10() - (p_est + eps).log10())
    return float(d.pow(2).mean(dim=-2).sqrt().mean())


def _pesq(est, ref, sr):
    """Wide-band PESQ (ITU-T P.862.2) at 16 kHz, or ``(None, reason)``."""
    try:
        from pesq import pesq
    except ImportError:
        return None, "PESQ left out: the 'pesq' package is not installed (pip install 'specinv-cli[eval]')"
    r16, e16 = resample(ref, sr, 16000), resample(est, sr, 16000)
    try:
        return float(pesq(16000, r16.astype(np.float64), e16.astype(np.float64), "wb")), None
    except Exception as e:  # pesq raises its own errors (no utterances, too short...)
        return None, f"PESQ left out: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")


def _stoi(est, ref, sr):
    """STOI (Taal et al. 2011; pystoi resamples to 10 kHz itself), or ``(None, reason)``."""
    try:
        from pystoi import stoi
    except ImportError:
        return None, "STOI left out: the 'pystoi' package is not installed (pip install 'specinv-cli[eval]')"
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pystoi warns on very short signals; we report the value
            v = float(stoi(np.asarray(ref, dtype=np.float64), np.asarray(est, dtype=np.float64), int(sr), extended=False))
    except Exception as e:
        return None, f"STOI left out: {type(e).__name__}: {e}"
    if not math.isfinite(v):
        return None, "STOI left out: undefined for this signal (silent or too short)"
    return v, None


def evaluate(audio, sample_rate: int, target, cfg, *, reference=None, reference_rate: int | None = None,
             scale_invariant: bool = False, perceptual: bool = True, source: str | None = None) -> Evaluation:
    """Score a waveform against the spectrogram it was reconstructed from.

    Parameters
    ----------
    audio : ``[L]`` waveform (e.g. ``specinv invert``'s output) at ``sample_rate``; resampled to
        ``cfg.sample_rate`` if different (noted).
    target : a :class:`~specinv_cli.spectrogram.Target` of one item ``[F, T]`` (``load_spectrogram``):
        a linear magnitude, or mel features (``mel_features``), decoded with ``cfg``.
    cfg : the settings the target was made with (those given to ``invert``).
    reference : the original waveform ``[L']`` (at ``reference_rate``, default ``sample_rate``):
        adds ``lsd`` (:func:`lsd`) and, when ``perceptual`` and the packages import, ``pesq``
        (wide-band, at 16 kHz) and ``stoi``.
    scale_invariant : SC/SER after the least-squares gain ``g = <S_hat, S> / <S_hat, S_hat>``
        (the gain is reported as ``gain``). Off by default: SC is scale-sensitive, and a WAV that
        ``invert`` peak-normalised (its peak exceeded full scale) is measured as written.

    SC/SNR/SER are those of :mod:`specinv_cli.metrics` between ``|STFT(audio)|`` cut or padded to
    the target's ``T`` frames and the target magnitude, or, for mel features, between
    ``fb @ |STFT(audio)| ** p`` and the decoded mel (the domain ``invert`` reports for mel input).
    """
    import torch

    from .api import spectrogram_of
    from .dsp import STFT
    from .metrics import compute

    notes = []
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if audio.size == 0:
        raise InputError(source, "holds no samples")
    if int(sample_rate) != int(cfg.sample_rate):
        notes.append(f"resampled from {sample_rate} Hz to the settings' {cfg.sample_rate} Hz")
        audio = resample(audio, sample_rate, cfg.sample_rate)
    if target.mag.dim() != 2:
        raise ValueError(f"evaluate takes one item [F, T], got shape {tuple(target.mag.shape)}")
    cfg = cfg.with_bins(target.mag.shape[-2], source or "target")
    stft = STFT(cfg, dtype=torch.float64)
    n_frames = target.mag.shape[-1]
    x = torch.from_numpy(audio.astype(np.float64))
    try:
        est = spectrogram_of(x, stft, n_frames)
    except ValueError as e:
        raise InputError(source, f"too short for these settings ({e})") from None
    if target.mel_features:
        from .mel import MelTransform, decode

        ref = decode(target.mag.to(torch.float64), cfg)
        est = MelTransform(cfg, dtype=torch.float64)(est)
        domain = "mel"
    else:
        ref = target.mag.to(torch.float64)[: cfg.n_fft // 2 + 1]
        domain = "linear"
    metrics = {}
    if scale_invariant:
        den = float((est * est).sum())
        g = float((est * ref).sum()) / den if den > 0 else 1.0
        est = est * g
        metrics["gain"] = g
    metrics.update({k: float(v) for k, v in compute(est, ref).items()})
    if reference is not None:
        rsr = int(reference_rate or sample_rate)
        ref_audio = np.asarray(reference, dtype=np.float32).reshape(-1)
        if rsr != int(cfg.sample_rate):
            ref_audio = resample(ref_audio, rsr, cfg.sample_rate)
        n = min(len(audio), len(ref_audio))
        if abs(len(audio) - len(ref_audio)) > cfg.hop_length:
            notes.append(f"output ({len(audio)} samples) and reference ({len(ref_audio)}) differ in length; "
                         f"both cut to {n}")
        lin = cfg.replace(n_mels=None) if cfg.is_mel else cfg
        metrics["lsd"] = lsd(audio[:n], ref_audio[:n], lin)
        if perceptual:
            for name, fn in (("pesq", _pesq), ("stoi", _stoi)):
                v, why = fn(audio[:n], ref_audio[:n], cfg.sample_rate)
                if v is None:
                    notes.append(why)
                else:
                    metrics[name] = v
    return Evaluation(metrics, domain, notes)


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
    from .io import SUFFIXES

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


def load_target(path, cfg, *, item: int | None = None, key: str | None = None, input_kind: str = "magnitude"):
    """One item ``[F, T]`` of a spectrogram file, read as ``invert`` reads it: ``(Target, cfg)``
    with ``cfg.with_bins`` applied. A batched file needs ``item`` (its flat index)."""
    from .config import ConfigError
    from .io import load_spectrogram
    from .spectrogram import Target

    name = str(path)
    try:
        t = load_spectrogram(path, key=key, input_kind=input_kind, layout=cfg.layout, n_mels=cfg.n_mels)
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
