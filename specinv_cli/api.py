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

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from .algorithms.base import Monitor, Progress, random_phase, zero_phase
from .algorithms.registry import DEFAULT_MEL_METHOD, DEFAULT_METHOD, get_method
from .config import STFTConfig
from .options import InversionOptions
from .dsp.stft import STFT, fit_frames, jit_scope
from .dsp.metrics import compute
from .errors import DeviceError, InversionError
from .io.spectrogram import InputError, Target, interpret

__all__ = ["invert", "InversionOptions", "InversionResult", "default_method", "default_refine", "resolve_device", "DeviceError", "InversionError",
           "spectrogram_of", "estimate_memory", "available_memory", "output_problems"]

#: L-BFGS iterations against the mel at the end of a mel inversion (out of ``n_iter``).
DEFAULT_REFINE = 50


def default_method(config: STFTConfig) -> str:
    """The method when none is given: :data:`~specinv_cli.algorithms.registry.DEFAULT_MEL_METHOD`
    for mel settings, else :data:`~specinv_cli.algorithms.registry.DEFAULT_METHOD`."""
    return DEFAULT_MEL_METHOD if config.is_mel else DEFAULT_METHOD


def default_refine(config: STFTConfig, method: str, n_iter: int = 100) -> int:
    """``refine`` when not given: for a mel cascade (an iterative method other than ``lbfgs``
    on mel settings) :data:`DEFAULT_REFINE` L-BFGS steps, but never more than half of
    ``n_iter`` (so the default fits any iteration count); else 0."""
    m = get_method(method)
    if not (config.is_mel and m.iterative and m.name != "lbfgs"):
        return 0
    return min(DEFAULT_REFINE, max(int(n_iter), 0) // 2)


#: Real and complex dtypes of each ``precision`` (the names: :data:`specinv_cli.options.PRECISIONS`).
PRECISIONS = {"single": (torch.float32, torch.complex64), "double": (torch.float64, torch.complex128)}


@dataclass
class InversionResult:
    """What :func:`invert` returns.

    One shape contract for every path: ``audio`` is ``[..., length]`` with the input's batch
    dims (a ragged batch: ``[B, L_max]`` with ``lengths``; a long input in blocks: ``[length]``),
    on the device it was computed on (the input's unless ``device`` was given), in the input's
    float dtype (float64 for a float64 input, else float32). ``metrics`` maps ``sc``/``snr``/``ser``
    to per-item CPU tensors of the batch shape, computed on ``audio`` exactly as returned, against
    the target (the mel for mel input). ``history`` holds the metrics at each evaluation
    (every ``eval_every`` iterations) when ``history=True``, a ``callback`` or a ``tol`` was
    given, else it is empty. ``config`` is the settings used, ``inferred`` what of them was
    inferred from the data rather than given (e.g. ``{"n_fft": "1024 (from 513 bins)"}``).
    ``failures`` has one entry per item (flattened batch order): ``None``, or why that item's
    audio is unusable (with ``errors="report"``; ``"raise"`` raises instead).
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
    #: ``linear`` or ``mel``: the domain of ``metrics``.
    domain: str = "linear"
    #: For a ragged batch (``frames=``): each item's own length; ``audio[b, :lengths[b]]``.
    lengths: list[int] | None = None
    inferred: dict[str, str] = field(default_factory=dict)
    failures: list[str | None] = field(default_factory=list)
    #: Blocks the input was inverted in (:func:`specinv_cli.batch.blocks.invert_blocks`); 1 otherwise.
    blocks: int = 1


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
            raise DeviceError("`device` cuda was asked for but no CUDA device is available "
                              "(torch.cuda.is_available() is False); use `device` cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"`device` {device}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif dev.type != "cpu":
        raise DeviceError(f"unsupported device {device!r}; use auto, cpu, cuda or cuda:N")
    return dev


#: Peak working memory of an inversion, in units of ``frames * n_fft`` reals per item: the
#: largest peak measured over the methods on the CPU, rounded up for slack.
MEMORY_FACTOR = 24


def estimate_memory(n_items: int, n_frames: int, config: STFTConfig, *, length: int | None = None,
                    precision: str = "single", input_bytes: int = 0) -> int:
    """Rough peak memory in bytes of inverting ``n_items`` spectrograms of ``n_frames`` frames
    with ``config`` (after :meth:`STFTConfig.with_bins`): the algorithm's spectral buffers
    (``MEMORY_FACTOR`` x frames x n_fft reals), a few waveforms, the mel filterbank, and the
    loaded input itself."""
    real = 8 if precision == "double" else 4
    n_fft = int(config.n_fft)
    samples = max(int(length or 0), n_frames * int(config.hop_length)) + n_fft
    per_item = MEMORY_FACTOR * n_frames * n_fft * real + 8 * samples * real
    fixed = 4 * n_fft * real
    if config.is_mel:
        fixed += 4 * int(config.n_mels) * (n_fft // 2 + 1) * real
    return int(n_items) * per_item + fixed + int(input_bytes)


def available_memory(device: torch.device | str = "cpu") -> int | None:
    """Memory an inversion may use: free device memory for CUDA, else the host's available
    memory (``MemAvailable`` in /proc/meminfo, else ``sysconf``), and under an address-space
    limit (``ulimit -v``) no more than what is left of it; ``None`` if unknown."""
    dev = torch.device(device)
    if dev.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(dev)[0])
        except (RuntimeError, AssertionError):
            return None
    from .util.limits import host_memory

    return host_memory()


#: Magnitudes whose peak lies outside this range are scaled to a peak of 1 for the inversion
#: (and the audio scaled back): squares of 1e20 overflow float32, and 1e-30 underflows.
SAFE_PEAK = (1e-6, 1e6)


def _safe_scale(mag: torch.Tensor):
    """``(mag / s, s)`` with ``s [..., 1, 1]`` the peak of each item whose peak is outside
    :data:`SAFE_PEAK` (1 elsewhere); ``(mag, None)`` when no item needs it."""
    peak = mag.abs().amax(dim=(-2, -1), keepdim=True).to(torch.float64)
    odd = (peak > SAFE_PEAK[1]) | ((peak > 0) & (peak < SAFE_PEAK[0]))
    if not bool(odd.any()):
        return mag, None
    s = torch.where(odd, peak, torch.ones_like(peak))
    return (mag.to(torch.float64) / s).to(mag.dtype), s


def spectrogram_of(audio: torch.Tensor, stft: STFT, n_frames: int) -> torch.Tensor:
    """STFT magnitude of ``audio`` with exactly ``n_frames`` frames (cropped or zero-padded)."""
    return fit_frames(stft.forward(audio).abs(), n_frames)


def invert(spec, options: InversionOptions | None = None, *, config: STFTConfig | None = None,
           input_kind: str = "magnitude", layout: str | None = None, length: int | None = None,
           frames: Sequence[int] | None = None, callback: Callable[[Progress], None] | None = None,
           source: str | None = None, **kwargs: Any) -> InversionResult:
    """Invert a spectrogram ``[..., F, T]`` (linear or mel) to audio with a registered method.

    The tool's entry point: validation, inference of unset settings, safe scaling, metrics of
    the result. It runs without autograd (the fused kernels); for gradients through the
    iterations use :mod:`specinv_cli.functional` or :class:`specinv_cli.transforms.PhaseRetrieval`.

    Parameters
    ----------
    spec : numpy array or torch tensor (or a :class:`~specinv_cli.io.spectrogram.Target`).
    options : an :class:`InversionOptions` (how to invert: method, iterations, init, device...);
        keyword arguments named after its fields override it, and any other keyword is a method
        option, so ``invert(mag, method="fgla", n_iter=50, alpha=0.9)`` needs none. The
        parameters below are the options' fields and the other keywords.
    method : a name from ``specinv methods``; default ``dm`` (difference map then AGLA) for
        linear input, ``lbfgs`` (direct optimisation against the mel) for mel input.
    config : STFT (and mel) settings. Every field the caller set is used as given (a
        contradiction with the data is an error naming both numbers); unset ones are inferred
        (:meth:`~specinv_cli.config.STFTConfig.infer`: ``n_fft`` from the bins, ``hop_length``
        as ``win_length // 4``) and listed in ``result.inferred``.
        With mel settings, an input of ``n_mels`` bins is a model's mel features: it is decoded
        (``compression``, ``normalization``), mapped to a linear magnitude by non-negative least
        squares (``nnls_iters``), phase-retrieved with ``method``, and optionally refined.
    n_iter : iterations in total (``refine`` of them are L-BFGS steps at the end).
    init : starting phase: ``random``, ``zero``, ``spsi`` or ``pghi`` (default); a complex
        input's phase overrides it.
    input_kind, layout : how to read ``spec`` (see :func:`specinv_cli.io.spectrogram.interpret`);
        ``layout`` defaults to the settings' (``ft``).
    length : output samples (default ``(T - 1) * hop`` for centred frames).
    device : ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available); default: the
        input's device (the CPU for a numpy array). ``audio`` is returned there.
    precision : ``single`` (float32/complex64) or ``double``.
    seed : seed of the random initial phase (``None``: nondeterministic).
    tol : early stop on the relative change of the spectral loss (0: run all iterations).
    eval_every : iterations between metric evaluations (progress and ``tol``).
    callback : receives :class:`~specinv_cli.algorithms.base.Progress` reports; metrics are in
        the input's domain (mel SC for mel input).
    refine : L-BFGS iterations on the waveform against the input itself (the mel for mel input),
        taken from ``n_iter`` after ``method``; ``None``: :func:`default_refine` (for a mel
        cascade :data:`DEFAULT_REFINE`, at most half of ``n_iter``; 0 for linear input).
    frames : for a batch ``[B, F, T_max]`` of spectrograms of different lengths, zero-padded
        after their ends: each item's own frame count. Each item is then inverted as it would be
        alone (up to float rounding; see :mod:`specinv_cli.dsp.ragged`): methods with
        ``Method.ragged`` only, no ``refine``, no ``length``. ``audio`` is ``[B, L_max]`` and
        ``result.lengths[b]`` says where item ``b`` ends.
    history : record the metrics at each evaluation in ``result.history`` (also done when a
        ``callback`` or ``tol`` is given); costs one STFT per evaluation.
    errors : ``raise`` (default): an :class:`InversionError` when an item's audio is unusable
        (non-finite samples: the iteration diverged; or silence from a non-silent target);
        ``report``: return anyway, with the reasons in ``result.failures``.
    method_options : (``**kwargs`` not named above) the method's options (e.g. ``alpha=0.99`` for
        ``fgla``), checked against their valid ranges (options that make a method diverge are
        refused).
    """
    if torch.is_inference_mode_enabled():
        # L-BFGS (the mel default, ``refine``) differentiates the waveform, which inference mode
        # forbids for every tensor made inside it: run outside it, on copies of the input
        with torch.inference_mode(False):
            return invert(_copied(spec), options, config=config, input_kind=input_kind, layout=layout,
                          length=length, frames=frames, callback=callback, source=source, **kwargs)
    opts_in = options if options is not None else InversionOptions()
    run = (opts_in.replace(**kwargs) if kwargs else opts_in).validate()  # fail fast, before any work
    if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 1):
        raise ValueError(f"`length` must be a positive number of samples, got {length!r}")
    method, n_iter, init, seed, tol = run.method, run.n_iter, run.init, run.seed, run.tol
    eval_every, refine, nnls_iters, history, errors = run.eval_every, run.refine, run.nnls_iters, run.history, run.errors
    precision, options = run.precision, dict(run.method_options)
    dev = resolve_device(run.device if run.device is not None else _device_of(spec))
    real, cplx = PRECISIONS[precision]

    cfg0 = config or STFTConfig()
    target = spec if isinstance(spec, Target) else interpret(
        spec, input_kind, layout or cfg0.layout, source, n_mels=cfg0.n_mels)
    cfg, inferred = cfg0.infer(target.mag.shape[-2], source or "input")
    inferred = {**target.inferred, **inferred}
    if target.mel_features and not cfg.is_mel:
        raise InputError(source, "mel features given but the settings have no n_mels")

    m = get_method(method or default_method(cfg))
    opts = m.resolve_options(options)
    mask = None
    if frames is not None:
        frames = [int(t) for t in frames]
        if target.mag.dim() != 3 or len(frames) != target.mag.shape[0]:
            raise ValueError(f"frames gives {len(frames)} lengths for a batch of shape {tuple(target.mag.shape)}; "
                             f"a ragged batch is [B, F, T_max] with one frame count per item")
        if not frames or min(frames) < 1 or max(frames) > target.mag.shape[-1]:
            raise ValueError(f"frames must lie in 1..{target.mag.shape[-1]}, got {frames}")
        if not m.ragged:
            raise ValueError(f"method {m.name!r} cannot run on a ragged batch; invert its items one by one")
        if refine or length is not None:
            raise ValueError("a ragged batch takes neither refine nor length")
        refine = 0
        t_idx = torch.arange(target.mag.shape[-1], device=dev)
        mask = (t_idx[None, :] < torch.tensor(frames, device=dev)[:, None]).to(real)[:, None, :]
    # a "ragged" batch whose items all have the full length is a plain batch: the plain STFT (the
    # fused path) with each item's own start, as alone
    uniform = frames is not None and min(frames) == target.mag.shape[-1]
    if uniform:
        mask = None
    mel_op, scale = None, None
    if cfg.is_mel:
        from .dsp.mel import MelTransform, decode

        try:
            domain_target = decode(target.mag.to(device=dev, dtype=real), cfg)
        except InputError as e:
            raise (InputError(source, e.message) if e.source is None else e) from None
        if not bool(torch.isfinite(domain_target).all()):
            raise InputError(source, f"mel features overflow when decoded ({cfg.compression}, "
                                     f"{cfg.normalization}); check `config`/`compression`")
        mel_op = MelTransform(cfg, device=dev, dtype=real)
        empty = int((mel_op.fb.abs().sum(dim=-1) == 0).sum())
        if empty:  # too many bands for n_fft (or fmin/fmax too close): those bands carry nothing
            raise InputError(source, f"{empty} of the {cfg.n_mels} mel bands are empty with n_fft {cfg.n_fft} "
                                     f"(fmin {cfg.fmin:g}, fmax {cfg.effective_fmax:g} Hz); check `n_mels`, "
                                     f"`n_fft`, `fmin`, `fmax` or `config`")
        if mask is not None:  # padding is zero magnitude, not zero log-mel
            domain_target = domain_target * mask
        mag = mel_op.to_linear(domain_target, nnls_iters)
        if mask is not None:
            mag = mag * mask
    else:
        mag = target.mag
        if not cfg.onesided:  # real signals: the upper half is redundant
            mag = mag[..., : cfg.n_fft // 2 + 1, :]
        mag, scale = _safe_scale(mag)
        mag = mag.to(device=dev, dtype=real)
        domain_target = mag
    if refine is None:
        refine = default_refine(cfg, m.name, n_iter)
    if refine < 0 or (m.iterative and refine > n_iter):
        raise ValueError(f"refine must be between 0 and the iterations ({n_iter}), got {refine}")
    n_phase = n_iter - refine if m.iterative else 0

    if frames is not None and not uniform:
        from .dsp.ragged import RaggedSTFT

        stft = RaggedSTFT(cfg, frames, device=dev, dtype=real)
    else:
        stft = STFT(cfg, device=dev, dtype=real)
    n_frames = mag.shape[-1]
    # options whose cost grows with their value, bounded by this input (every caller: CLI, blocks)
    opts, clamped = m.fit_options(opts, frames=n_frames, n_iter=n_phase, win_length=stft.win_length,
                                  hop=stft.hop)
    inferred.update(clamped)
    if length is None:
        length = stft.default_length(n_frames)
        if length < 1:
            raise InputError(source, f"{n_frames} frame(s) give no samples with these settings (centred frames: "
                                     f"(T - 1) * hop = {length}); give `length`, or more frames")

    phase = target.phase
    if phase is not None or init in ("spsi", "pghi"):
        opts = {**opts, **{k: v for k, v in m.informed_init_options.items() if k not in options}}
    if phase is not None:
        phase = phase[..., : mag.shape[-2], :].to(device=dev, dtype=cplx)
    elif frames is not None and init in ("spsi", "pghi", "random"):
        phase = _ragged_phase(mag, frames, init, cfg, seed, dev, real, cplx)
    elif init in ("spsi", "pghi"):
        phase = get_method(init).load_phase()(mag, stft).to(cplx)
    elif init == "random":
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        phase = random_phase(mag.shape, gen, dev, cplx)
    else:
        phase = zero_phase(mag.shape, dev, cplx)

    total = n_phase + refine
    monitor = Monitor(domain_target, total, eval_every, tol, callback, record=history)
    fn = m.load()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    work = total * mag.numel() / mag.shape[-2] * stft.n_fft  # iterations x items x frames x n_fft
    with torch.no_grad(), (jit_scope(work, real) if dev.type == "cpu" else contextlib.nullcontext()):
        t0 = time.perf_counter()  # after the scope has loaded the kernels: start-up, not inversion
        if mel_op is not None and m.name == "lbfgs":  # direct optimisation against the mel
            audio = fn(mag, stft, n_iter=n_phase, init=mag * phase, length=length, monitor=monitor,
                       domain=mel_op, domain_target=domain_target, **opts)
        else:
            stage = monitor.view(transform=mel_op) if mel_op is not None else monitor
            audio = fn(mag, stft, n_iter=n_phase, init=mag * phase, length=length, monitor=stage, **opts)
        if refine > 0 and not monitor.stopped_early:
            from .algorithms.lbfgs import lbfgs

            audio = lbfgs(mag, stft, n_iter=refine, init=stft.forward(audio), length=length,
                          monitor=monitor.view(offset=n_phase), domain=mel_op,
                          domain_target=domain_target if mel_op is not None else None)
        # the result in the input's dtype, scale undone; then its metrics, of exactly that
        out_dtype = target.mag.dtype if target.mag.dtype in (torch.float32, torch.float64) else torch.float32
        audio = audio.detach()
        if scale is not None:  # undo _safe_scale
            audio = audio.to(torch.float64) * scale.to(audio.device, torch.float64)[..., 0]
        audio = audio.to(out_dtype)
        measured = audio.to(dev, torch.float64 if scale is not None else real)
        if scale is not None:  # back to the scaled target's level (SC is scale-invariant)
            measured = measured / scale.to(dev, torch.float64)[..., 0]
        est = spectrogram_of(measured.to(real), stft, n_frames)
        final = compute(mel_op(est) if mel_op is not None else est, domain_target)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    final = {k: v.cpu() for k, v in final.items()}
    iterations = monitor.iterations if m.iterative else 0
    if callback is not None:
        callback(Progress(iterations, monitor.n_iter, final, done=True))
    lengths = None if frames is None else [stft.default_length(t) for t in frames] if uniform else list(stft.lengths)
    failures = output_problems(audio, target.mag if not target.mel_features else domain_target)
    if errors == "raise" and any(failures):
        bad = [(i, f) for i, f in enumerate(failures) if f]
        where = "" if len(failures) == 1 else f"item {bad[0][0]}{f' (and {len(bad) - 1} more)' if len(bad) > 1 else ''}: "
        raise InversionError(f"{source + ': ' if source else ''}{where}{bad[0][1]}", failures)
    return InversionResult(audio, final, m.name, opts, iterations, seconds, str(dev), cfg,
                           monitor.history, monitor.stopped_early, "mel" if mel_op is not None else "linear",
                           lengths, inferred, failures)


def _copied(spec):
    """``spec`` with its tensors cloned (outside inference mode: ordinary tensors)."""
    if isinstance(spec, Target):
        return Target(spec.mag.clone(), None if spec.phase is None else spec.phase.clone(), spec.mel_features,
                      dict(spec.inferred))
    return spec.clone() if isinstance(spec, torch.Tensor) else spec


def _device_of(spec) -> torch.device:
    """Where ``spec`` lives: a tensor's (or a Target's) device, else the CPU."""
    t = spec.mag if isinstance(spec, Target) else spec
    return t.device if isinstance(t, torch.Tensor) else torch.device("cpu")


def output_problems(audio: torch.Tensor, target: torch.Tensor) -> list[str | None]:
    """For each item of ``audio [..., L]`` (flattened batch order): ``None`` if usable, else why
    not: non-finite samples (a diverged iteration), or all-zero samples while the item's target
    ``[..., F, T]`` (same batch shape) is not silent."""
    a = audio.reshape(-1, audio.shape[-1])
    t = target.reshape(-1, *target.shape[-2:])
    finite = torch.isfinite(a).all(dim=-1).tolist()
    silent = (a == 0).all(dim=-1).tolist()
    loud = (t.to(a.device) != 0).flatten(1).any(dim=-1).tolist()
    out: list[str | None] = []
    for fin, sil, lo in zip(finite, silent, loud):
        if not fin:
            out.append("the inversion diverged: the audio has non-finite samples (NaN or inf)")
        elif sil and lo:
            out.append("the inversion produced silence (all samples zero) from a non-silent target")
        else:
            out.append(None)
    return out


def _ragged_phase(mag, frames, init, cfg, seed, dev, real, cplx):
    """Each item's starting phase computed on its own frames (PGHI's random phases and its
    time split depend on the frame count), padded with phase 0."""
    out = torch.ones(mag.shape, dtype=cplx, device=dev)
    stft = STFT(cfg, device=dev, dtype=real)
    for b, t in enumerate(frames):
        if init == "random":
            gen = torch.Generator().manual_seed(seed) if seed is not None else None
            out[b, :, :t] = random_phase((mag.shape[-2], t), gen, dev, cplx)
        else:
            out[b, :, :t] = get_method(init).load_phase()(mag[b, :, :t], stft).to(cplx)
    return out
