"""Public Python API: :func:`invert` turns a spectrogram (array or tensor) into audio.

Example
-------
>>> import torch
>>> from specinv_cli import invert, STFTConfig
>>> cfg = STFTConfig(n_fft=512, hop_length=128)
>>> x = torch.randn(2, 8192)
>>> from specinv_cli.dsp import STFT
>>> mag = STFT(cfg).forward(x).abs()                  # a batch of two [257, 65] magnitudes
>>> res = invert(mag, config=cfg, method="fgla", n_iter=20, device="cpu")
>>> res.audio.shape, res.metrics["sc"].shape
(torch.Size([2, 8192]), torch.Size([2]))
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .algorithms.base import Monitor, Progress, random_phase, zero_phase
from .algorithms.registry import INITS, get_method
from .config import STFTConfig
from .dsp import STFT
from .metrics import compute
from .spectrogram import InputError, Target, interpret

__all__ = ["invert", "InversionResult", "resolve_device", "DeviceError", "spectrogram_of"]

PRECISIONS = {"single": (torch.float32, torch.complex64), "double": (torch.float64, torch.complex128)}


class DeviceError(ValueError):
    """A device that cannot be used here (e.g. CUDA without a GPU)."""


@dataclass
class InversionResult:
    """What :func:`invert` returns.

    ``audio`` is ``[..., length]`` float32 on the CPU (batch dims of the input kept);
    ``metrics`` maps ``sc``/``snr``/``ser`` to per-item tensors of the batch shape, computed on
    ``audio`` against the target magnitude; ``history`` holds the metrics at each evaluation.
    """

    audio: torch.Tensor
    metrics: dict[str, torch.Tensor]
    method: str
    options: dict[str, Any]
    iterations: int
    seconds: float
    device: str
    config: STFTConfig
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto`` -> CUDA when available else CPU; asking for CUDA without one is an error."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda was asked for but no CUDA device is available "
                              "(torch.cuda.is_available() is False); use --device cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif dev.type != "cpu":
        raise DeviceError(f"unsupported device {device!r}; use auto, cpu, cuda or cuda:N")
    return dev


def spectrogram_of(audio: torch.Tensor, stft: STFT, n_frames: int) -> torch.Tensor:
    """STFT magnitude of ``audio`` with exactly ``n_frames`` frames (cropped or zero-padded)."""
    mag = stft.forward(audio).abs()
    if mag.shape[-1] > n_frames:
        mag = mag[..., :n_frames]
    elif mag.shape[-1] < n_frames:
        mag = torch.nn.functional.pad(mag, (0, n_frames - mag.shape[-1]))
    return mag


def invert(spec, *, method: str = "fgla", config: STFTConfig | None = None, n_iter: int = 100,
           init: str = "random", input_kind: str = "magnitude", layout: str = "ft",
           length: int | None = None, device: str | torch.device = "auto", precision: str = "single",
           seed: int | None = 0, tol: float = 0.0, eval_every: int = 10,
           callback: Callable[[Progress], None] | None = None, source: str | None = None,
           **options: Any) -> InversionResult:
    """Invert a spectrogram ``[..., F, T]`` to audio with a registered method.

    Parameters
    ----------
    spec : numpy array or torch tensor (or a :class:`~specinv_cli.spectrogram.Target`).
    method : a name from ``specinv methods`` (``gla``, ``fgla``, ...).
    config : STFT settings; ``n_fft`` is inferred from the bins unless set explicitly.
    n_iter : iterations of iterative methods.
    init : starting phase: ``random``, ``zero``, ``spsi`` or ``pghi``; a complex input's phase
        overrides it.
    input_kind, layout : how to read ``spec`` (see :func:`specinv_cli.spectrogram.interpret`).
    length : output samples (default ``(T - 1) * hop`` for centred frames).
    device : ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    precision : ``single`` (float32/complex64) or ``double``.
    seed : seed of the random initial phase (``None``: nondeterministic).
    tol : early stop on the relative change of the spectral loss (0: run all iterations).
    eval_every : iterations between metric evaluations (progress and ``tol``).
    callback : receives :class:`~specinv_cli.algorithms.base.Progress` reports.
    **options : method options (e.g. ``alpha=0.99`` for ``fgla``).
    """
    m = get_method(method)
    opts = m.resolve_options(options)
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose single or double")
    if n_iter < 0:
        raise ValueError(f"n_iter must be >= 0, got {n_iter}")
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    if length is not None and length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    dev = resolve_device(device)
    real, cplx = PRECISIONS[precision]

    target = spec if isinstance(spec, Target) else interpret(spec, input_kind, layout, source)
    cfg = (config or STFTConfig()).with_bins(target.mag.shape[-2], source or "input")
    mag = target.mag
    if not cfg.onesided:  # real signals: the upper half is redundant
        mag = mag[..., : cfg.n_fft // 2 + 1, :]
    mag = mag.to(device=dev, dtype=real)
    stft = STFT(cfg, device=dev, dtype=real)
    n_frames = mag.shape[-1]
    if length is None:
        length = stft.default_length(n_frames)

    phase = target.phase
    if phase is not None:
        phase = phase[..., : mag.shape[-2], :].to(device=dev, dtype=cplx)
    elif init in ("spsi", "pghi"):
        phase = get_method(init).load_phase()(mag, stft).to(cplx)
    elif init == "random":
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        phase = random_phase(mag.shape, gen, dev, cplx)
    else:
        phase = zero_phase(mag.shape, dev, cplx)

    monitor = Monitor(mag, n_iter if m.iterative else 0, eval_every, tol, callback)
    fn = m.load()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    with torch.no_grad():
        audio = fn(mag, stft, n_iter=n_iter, init=mag * phase, length=length, monitor=monitor, **opts)
        final = compute(spectrogram_of(audio, stft, n_frames), mag)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    final = {k: v.cpu() for k, v in final.items()}
    iterations = monitor.iterations if m.iterative else 0
    if callback is not None:
        callback(Progress(iterations, monitor.n_iter, final, done=True))
    audio = audio.detach().to("cpu", torch.float32)
    audio = torch.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
    return InversionResult(audio, final, m.name, opts, iterations, seconds, str(dev), cfg,
                           monitor.history, monitor.stopped_early)
