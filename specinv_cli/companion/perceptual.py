"""Perceptual quality metrics from their reference packages: PESQ, STOI, ViSQOL, DNSMOS. No click here.

Each function takes mono waveforms ``[L]`` (float, any rate: each resamples to the rate its model
is defined at, with :func:`~specinv_cli.dsp.resample.resample`) and returns the metric, or
raises :class:`Unavailable` with the reason (package not installed, signal too short...), which
the callers turn into a "left out" note. Models load once per process and stay cached; every
model ships inside its wheel, so nothing is downloaded, ever.

- :func:`pesq_wb`: wide-band PESQ, ITU-T P.862.2 (the ``pesq`` package), at 16 kHz; 1.04-4.64.
- :func:`stoi`: STOI (Taal, Hendriks, Heusdens, Jensen 2011; ``pystoi``, which resamples to
  10 kHz itself); 0-1.
- :func:`visqol`: ViSQOL v3 MOS-LQO (Chinen, Lim, Skoglund, Gureev, O'Gorman, Hines, "ViSQOL v3:
  an open source production ready objective speech and audio metric", QoMEX 2020) through
  ``visqol-python``, a port of Google's C++ ViSQOL 3.3.3 that ships its models: ``speech`` mode
  at 16 kHz (the exponential MOS mapping, scaled so that identical signals score 5; the deep-lattice
  mapping needs a TFLite runtime and is not used) or ``audio`` mode at 48 kHz (the bundled SVR
  model; identical signals score about 4.73). 1-5.
- :func:`dnsmos`: DNSMOS P.835 (SIG, BAK, OVRL) and P.808 MOS (Reddy, Gopal, Cutler, "DNSMOS
  P.835: a non-intrusive perceptual objective speech quality metric to evaluate noise
  suppressors", ICASSP 2022) with Microsoft's ONNX models as ``speechmos`` ships them, at 16 kHz:
  9.01 s windows at a 1 s hop (a shorter clip is repeated to 9.01 s, as the reference script
  does), averaged. Non-intrusive: no reference needed. 1-5.

Example
-------
>>> import numpy as np
>>> x = 0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
>>> round(stoi(x, x, 16000), 6)                  # a signal against itself
1.0
>>> try:
...     pesq_wb(x, np.zeros(16000), 16000)        # a silent reference: no utterance to score
... except Unavailable as e:
...     print(e)
PESQ left out: NoUtterancesError: b'No utterances detected'

"""
from __future__ import annotations

import math
import os
import threading

import numpy as np

from ..dsp.resample import resample
from ..errors import InputError

__all__ = ["Unavailable", "pesq_wb", "stoi", "visqol", "dnsmos", "VISQOL_RATES", "DNSMOS_RATE", "versions"]

#: ViSQOL's mode -> the rate its model is defined at.
VISQOL_RATES = {"speech": 16000, "audio": 48000}
DNSMOS_RATE = 16000
_lock = threading.Lock()
_models: dict = {}


class Unavailable(Exception):
    """A metric that cannot be computed here, with the reason as the message ("PESQ left out: ...")."""


def _not_installed(label: str, package: str) -> Unavailable:
    return Unavailable(f"{label} left out: the '{package}' package is not installed "
                       f"(pip install 'specinv-cli[eval]')")


def _at(x, sr_in: int, sr_out: int, label: str) -> np.ndarray:
    try:
        return np.asarray(resample(np.asarray(x, dtype=np.float32), sr_in, sr_out), dtype=np.float64)
    except InputError as e:
        raise Unavailable(f"{label} left out: {e.message}") from None


def _pair(est, ref):
    n = min(len(est), len(ref))
    return np.asarray(est)[:n], np.asarray(ref)[:n]


def pesq_wb(est, ref, sample_rate: int) -> float:
    """Wide-band PESQ of ``est`` against ``ref`` (``[L]`` at ``sample_rate``), at 16 kHz."""
    try:
        from pesq import pesq
    except ImportError:
        raise _not_installed("PESQ", "pesq") from None
    est, ref = _pair(est, ref)
    r16, e16 = _at(ref, sample_rate, 16000, "PESQ"), _at(est, sample_rate, 16000, "PESQ")
    try:
        return float(pesq(16000, r16, e16, "wb"))
    except Exception as e:  # pesq raises its own errors (no utterances, too short...)
        msg = str(e).splitlines()[0] if str(e) else ""
        raise Unavailable(f"PESQ left out: {type(e).__name__}: {msg}".rstrip(": ")) from None


def stoi(est, ref, sample_rate: int) -> float:
    """STOI of ``est`` against ``ref`` (``[L]`` at ``sample_rate``)."""
    try:
        from pystoi import stoi as _stoi
    except ImportError:
        raise _not_installed("STOI", "pystoi") from None
    import warnings

    est, ref = _pair(est, ref)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pystoi warns on very short signals; we report the value
            v = float(_stoi(np.asarray(ref, dtype=np.float64), np.asarray(est, dtype=np.float64), int(sample_rate),
                            extended=False))
    except Exception as e:
        raise Unavailable(f"STOI left out: {type(e).__name__}: {e}") from None
    if not math.isfinite(v):
        raise Unavailable("STOI left out: undefined for this signal (silent or too short)")
    return v


def _visqol_api(mode: str):
    with _lock:
        api = _models.get(("visqol", mode))
        if api is None:
            import logging

            from visqol import VisqolApi

            # visqol logs its mapping choice at INFO/WARNING through the root logger's handlers
            logging.getLogger("visqol").setLevel(logging.ERROR)
            api = VisqolApi()
            if mode == "speech":
                api.create(mode="speech", use_lattice_model=False)
            else:
                api.create(mode="audio")
            _models[("visqol", mode)] = api
    return api


def visqol(est, ref, sample_rate: int, mode: str = "speech") -> float:
    """ViSQOL MOS-LQO of ``est`` against ``ref`` (``[L]`` at ``sample_rate``) in ``mode``
    (``speech``: 16 kHz, ``audio``: 48 kHz)."""
    if mode not in VISQOL_RATES:
        raise ValueError(f"ViSQOL mode must be one of {sorted(VISQOL_RATES)}, got {mode!r}")
    label = f"ViSQOL ({mode})"
    try:
        api = _visqol_api(mode)
    except ImportError:
        raise _not_installed(label, "visqol-python") from None
    rate = VISQOL_RATES[mode]
    est, ref = _pair(est, ref)
    e, r = _at(est, sample_rate, rate, label), _at(ref, sample_rate, rate, label)
    if len(r) < rate // 2:
        raise Unavailable(f"{label} left out: shorter than 0.5 s")
    if not np.any(r):
        raise Unavailable(f"{label} left out: the reference is silent")
    try:
        return float(api.measure_from_arrays(r, e, rate).moslqo)
    except Exception as e_:
        raise Unavailable(f"{label} left out: {type(e_).__name__}: {e_}") from None


def _dnsmos_model():
    with _lock:
        m = _models.get("dnsmos")
        if m is None:
            from speechmos import dnsmos as _d

            base = os.path.dirname(os.path.abspath(_d.__file__))
            m = _d.DNSMOS(os.path.join(base, "dnsmos_models", "sig_bak_ovr.onnx"),
                          os.path.join(base, "dnsmos_models", "model_v8.onnx"))
            _models["dnsmos"] = m
    return m


def dnsmos(audio, sample_rate: int) -> dict:
    """DNSMOS of one waveform ``[L]`` at ``sample_rate``: ``{"dnsmos": OVRL, "dnsmos_sig": SIG,
    "dnsmos_bak": BAK, "dnsmos_p808": P.808 MOS}`` (non-personalized models)."""
    try:
        m = _dnsmos_model()
    except ImportError:
        raise _not_installed("DNSMOS", "speechmos' and 'onnxruntime") from None
    x = _at(audio, sample_rate, DNSMOS_RATE, "DNSMOS").astype(np.float32)
    if len(x) < DNSMOS_RATE // 2:
        raise Unavailable("DNSMOS left out: shorter than 0.5 s")
    if not np.any(x):
        raise Unavailable("DNSMOS left out: the audio is silent")
    # the models take the waveform as a file would hold it: within full scale
    x = np.clip(x, -1.0, 1.0)
    try:
        r = m(x, DNSMOS_RATE, False)
    except Exception as e:
        raise Unavailable(f"DNSMOS left out: {type(e).__name__}: {e}") from None
    return {"dnsmos": float(r["ovrl_mos"]), "dnsmos_sig": float(r["sig_mos"]), "dnsmos_bak": float(r["bak_mos"]),
            "dnsmos_p808": float(r["p808_mos"])}


def versions() -> dict:
    """``{package: version or None}`` of the metric packages (for a report's protocol)."""
    from importlib import metadata

    out = {}
    for pkg in ("pesq", "pystoi", "visqol-python", "speechmos", "onnxruntime", "torchcrepe"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out
