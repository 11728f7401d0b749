"""The evaluation metrics: what each one is, what it needs, and the code that computes them. No click here.

:data:`METRICS` names every metric ``specinv eval``/``compare``/``report`` can give (label, unit,
direction, what it compares with, its gain behaviour, its source); they come in :data:`GROUPS`
that ``--metrics`` selects (default: all; a group whose package is missing is left out with a
note). Three kinds:

- against the target spectrogram (``spectral``: SC/SNR/SER, computed in
  :func:`specinv_cli.companion.analysis.evaluate`);
- against the reference recording (``lsd``, ``mcd``, ``pesq``, ``stoi``, ``visqol``,
  ``visqol-audio``, ``f0``): :func:`score_pair`;
- of the output alone, no reference needed (``dnsmos``): :func:`score_output`.

The model-based groups (:data:`PERCEPTUAL`) are the ones ``--no-perceptual`` skips.

Example
-------
>>> parse_groups("pesq,f0")
('pesq', 'f0')
>>> parse_groups("pesq,visqol-speech")
Traceback (most recent call last):
...
ValueError: unknown metric group 'visqol-speech'; choose from spectral, lsd, mcd, pesq, stoi, visqol, visqol-audio, dnsmos, f0 (or all)
>>> METRICS["mcd"].higher_is_better, METRICS["mcd"].needs
(False, 'reference')
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Metric", "METRICS", "GROUPS", "PERCEPTUAL", "parse_groups", "selected", "score_pair", "score_output",
           "protocol_lines"]


@dataclass(frozen=True)
class Metric:
    """One metric: ``label``/``unit`` for tables, ``higher_is_better``, ``needs`` (``target``,
    ``reference`` or ``output``), ``group`` (what ``--metrics`` names), ``gain`` (how it treats the
    output's level) and ``source`` (the method and implementation)."""

    name: str
    label: str
    unit: str
    higher_is_better: bool
    needs: str
    group: str
    gain: str
    source: str


def _m(name, label, unit, higher, needs, group, gain, source):
    return name, Metric(name, label, unit, higher, needs, group, gain, source)


_AS_WRITTEN = "as written (--scale-invariant: after the least-squares gain)"
#: Metric name -> :class:`Metric`, in table order.
METRICS: dict[str, Metric] = dict([
    _m("sc", "SC", "dB", False, "target", "spectral", _AS_WRITTEN,
       "spectral convergence ||S_hat - S|| / ||S|| in the target's domain (mel SC for mel input)"),
    _m("snr", "SNR", "dB", True, "target", "spectral", "sensitive", "spectral SNR of the magnitudes"),
    _m("ser", "SER", "dB", True, "target", "spectral", _AS_WRITTEN, "spectral-error ratio (Griffin-Lim 1984)"),
    _m("lsd", "LSD", "dB", False, "reference", "lsd", "sensitive",
       "log-spectral distance of power spectra, floored 100 dB below the reference's peak"),
    _m("mcd", "MCD", "dB", False, "reference", "mcd", "invariant (c0 excluded)",
       "mel-cepstral distortion (Kubichek 1993), no time warping"),
    _m("pesq", "PESQ", "", True, "reference", "pesq", "invariant (level-aligned)",
       "wide-band PESQ, ITU-T P.862.2, at 16 kHz ('pesq' package)"),
    _m("stoi", "STOI", "", True, "reference", "stoi", "invariant", "STOI (Taal et al. 2011, 'pystoi')"),
    _m("visqol", "ViSQOL", "", True, "reference", "visqol", "invariant (level-aligned)",
       "ViSQOL v3 speech mode at 16 kHz, MOS-LQO ('visqol-python', port of Google's ViSQOL 3.3.3)"),
    _m("visqol_audio", "ViSQOL-A", "", True, "reference", "visqol-audio", "invariant (level-aligned)",
       "ViSQOL v3 audio mode at 48 kHz, MOS-LQO ('visqol-python', SVR model)"),
    _m("dnsmos", "DNSMOS", "", True, "output", "dnsmos", "sensitive",
       "DNSMOS P.835 OVRL (Reddy et al. 2022; Microsoft's ONNX models via 'speechmos'), no reference"),
    _m("dnsmos_sig", "SIG", "", True, "output", "dnsmos", "sensitive", "DNSMOS P.835 speech quality (SIG)"),
    _m("dnsmos_bak", "BAK", "", True, "output", "dnsmos", "sensitive", "DNSMOS P.835 background (BAK)"),
    _m("dnsmos_p808", "P808", "", True, "output", "dnsmos", "sensitive", "DNSMOS P.808 MOS"),
    _m("f0_rmse", "F0 RMSE", "cents", False, "reference", "f0", "invariant",
       "F0 error over frames voiced in both (torchcrepe; CARGAN's protocol)"),
    _m("periodicity", "Periodicity", "", False, "reference", "f0", "invariant",
       "RMSE of the periodicity (voicing confidence) sequences (torchcrepe)"),
    _m("vuv_f1", "V/UV F1", "", True, "reference", "f0", "invariant",
       "F1 of the voiced/unvoiced decisions against the reference's (torchcrepe)"),
])

#: Group name -> what it gives, in table order.
GROUPS = {g: [m for m in METRICS.values() if m.group == g] for g in dict.fromkeys(m.group for m in METRICS.values())}
#: The groups computed by a model or a perceptual algorithm (``--no-perceptual`` skips them).
PERCEPTUAL = ("pesq", "stoi", "visqol", "visqol-audio", "dnsmos", "f0")


def parse_groups(text: str | None) -> tuple:
    """The groups a ``--metrics`` value names (comma-separated; ``all`` or ``None``: every group)."""
    if text is None or text.strip() in ("", "all"):
        return tuple(GROUPS)
    out = []
    for g in (w.strip() for w in text.split(",")):
        if not g:
            continue
        if g == "all":
            out += list(GROUPS)
        elif g not in GROUPS:
            raise ValueError(f"unknown metric group {g!r}; choose from {', '.join(GROUPS)} (or all)")
        else:
            out.append(g)
    if not out:
        raise ValueError(f"no metric group given; choose from {', '.join(GROUPS)} (or all)")
    return tuple(dict.fromkeys(out))


def selected(groups=None, perceptual: bool = True) -> tuple:
    """The groups to compute: ``groups`` (default all), less :data:`PERCEPTUAL` unless ``perceptual``."""
    gs = tuple(GROUPS) if groups is None else tuple(groups)
    return tuple(g for g in gs if perceptual or g not in PERCEPTUAL)


def _finite(name: str, v, notes: list, out: dict, why: str) -> None:
    if v is not None and math.isfinite(v):
        out[name] = float(v)
    else:
        notes.append(f"{METRICS[name].label} left out: {why}")


def score_pair(est, ref, sample_rate: int, groups, notes: list, *, crepe_model: str = "tiny") -> dict:
    """The reference-based metrics of ``groups`` (except ``lsd``, which needs the STFT settings)
    for the output ``est`` against the reference ``ref`` (mono ``[L]`` each, ``sample_rate``,
    time-aligned). Returns ``{name: value}``; what could not be computed is appended to
    ``notes`` as "<label> left out: <why>"."""
    from . import perceptual as P

    out: dict = {}
    est = np.asarray(est, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    for g in groups:
        try:
            if g == "mcd":
                from .mcd import mcd

                _finite("mcd", mcd(est, ref, sample_rate), notes, out, "undefined (no frame above the floor)")
            elif g == "pesq":
                out["pesq"] = P.pesq_wb(est, ref, sample_rate)
            elif g == "stoi":
                out["stoi"] = P.stoi(est, ref, sample_rate)
            elif g == "visqol":
                out["visqol"] = P.visqol(est, ref, sample_rate, "speech")
            elif g == "visqol-audio":
                out["visqol_audio"] = P.visqol(est, ref, sample_rate, "audio")
            elif g == "f0":
                try:
                    from .pitch import f0_metrics

                    vals = f0_metrics(est, ref, sample_rate, model=crepe_model)
                except ImportError:
                    raise P.Unavailable("F0 metrics left out: the 'torchcrepe' package is not installed "
                                        "(pip install 'specinv-cli[eval]')") from None
                except ValueError as e:
                    raise P.Unavailable(f"F0 metrics left out: {e}") from None
                for k, why in (("f0_rmse", "no frame voiced in both"), ("periodicity", "undefined"),
                               ("vuv_f1", "no voiced frame in either")):
                    _finite(k, vals.get(k), notes, out, why)
        except P.Unavailable as e:
            notes.append(str(e))
    return out


def score_output(audio, sample_rate: int, groups, notes: list) -> dict:
    """The metrics of ``groups`` that need no reference (``dnsmos``) for ``audio`` (``[L]``)."""
    from . import perceptual as P

    out: dict = {}
    if "dnsmos" in groups:
        try:
            out.update(P.dnsmos(np.asarray(audio, dtype=np.float64), sample_rate))
        except P.Unavailable as e:
            notes.append(str(e))
    return out


def protocol_lines(groups, *, scale_invariant: bool = False) -> list[str]:
    """One line per metric of ``groups``: label, direction, what it compares with, gain, source."""
    lines = []
    for g in groups:
        for m in GROUPS.get(g, []):
            gain = m.gain
            if gain == _AS_WRITTEN:
                gain = "after the least-squares gain" if scale_invariant else "as written"
            what = {"target": "vs the target spectrogram", "reference": "vs the reference",
                    "output": "no reference"}[m.needs]
            lines.append(f"{m.label}{' [' + m.unit + ']' if m.unit else ''} "
                         f"({'higher' if m.higher_is_better else 'lower'} is better; {what}; gain: {gain}): {m.source}")
    return lines
