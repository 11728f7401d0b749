"""Phase retrieval as plain functions on tensors: one per method, plus torchaudio's and librosa's.

Each method function takes magnitudes ``mag [..., F, T]`` (real, any leading batch dims) and the
STFT parameters of ``torch.stft`` (``n_fft``, ``hop_length``, ``win_length``, ``window``,
``center``, ``pad_mode``, ``normalized``) and returns the waveform ``[..., length]`` on
``mag``'s device and in its dtype (float64 in, float64 out; float16/bfloat16 are computed in
float32 and returned in their own dtype)::

    y = functional.fgla(mag, n_fft=1024, hop_length=256, n_iter=100, alpha=0.99)

Keyword-only arguments shared by all of them:

- ``n_iter``: iterations (ignored by the non-iterative ``pghi`` and ``spsi``);
- ``init``: the starting phase: ``None`` (the library default,
  :data:`~specinv_cli.algorithms.registry.DEFAULT_INIT`), ``"random"`` (uniform, from
  ``seed``), ``"zero"``, ``"pghi"`` or ``"spsi"`` (that method's phase), or a complex tensor
  ``[..., F, T]`` whose phase is used;
- ``length``: output samples (default ``(T - 1) * hop`` for centred frames, as ``torch.istft``);
- ``seed``: seed of the random phase (``None``: nondeterministic);
- the method's own options (e.g. ``alpha`` for ``fgla``), checked against their valid ranges
  (``specinv methods`` lists them); a one-element tensor option (a learnable ``alpha``) is
  passed through as a tensor.

Defaults follow the library (and librosa): ``n_fft = 2 (F - 1)``, ``win_length = n_fft``,
``hop_length = win_length // 4``, a periodic Hann window, centred frames with reflect padding.
``window`` is a name (``hann``, ``hamming``, ``blackman``, ``bartlett``, ``rectangular``,
``gaussian``) or a 1-D tensor of ``win_length`` samples (zero-padded to ``n_fft`` in the middle,
as ``torch.stft`` does). A tensor equal to a named window (e.g. ``torch.hann_window(n_fft)``)
runs exactly as that name does, on the fused fast path; any other tensor runs on the generic
path (same results, slower), and PGHI (as method or as ``init``) then uses the phase-gradient
ratio of the named window closest to it.

Autograd: gla, fgla, agla, admm, dm and raar are differentiable in ``mag``, a tensor ``init`` and
tensor options (they take their out-of-place path when a gradient is wanted, their fused one
otherwise); pghi and spsi in ``mag`` through the ISTFT (their phase is held constant);
rtisi_la and lbfgs are not, and refuse a ``mag`` that requires grad. Nothing here disables
gradients. Devices: CPU and CUDA, wherever ``mag`` is.

:func:`griffinlim` has the signature and semantics of ``torchaudio.functional.griffinlim`` and
:func:`mel_to_audio` those of ``librosa.feature.inverse.mel_to_audio``.

Example
-------
>>> import torch
>>> from specinv_cli import functional
>>> x = torch.randn(2, 4096)
>>> mag = torch.stft(x, 256, 64, window=torch.hann_window(256), return_complex=True).abs()
>>> y = functional.fgla(mag, n_iter=5, length=4096)
>>> y.shape, y.dtype
(torch.Size([2, 4096]), torch.float32)
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any

import torch

from .algorithms import registry
from .algorithms.base import random_phase, unit, zero_phase
from .config import PAD_MODES, WINDOWS, STFTConfig, canonical_window
from .dsp.stft import STFT, get_window, jit_scope

__all__ = ["gla", "fgla", "agla", "admm", "dm", "raar", "rtisi_la", "lbfgs", "pghi", "spsi",
           "griffinlim", "mel_to_audio", "run", "stft_config", "window_name", "resolve_options"]


# --- parameters --------------------------------------------------------------------------
def _integer(name: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"`{name}` must be an integer >= {lo}, got {value!r}")
    return int(value)


def _check_mag(mag) -> None:
    if not isinstance(mag, torch.Tensor):
        raise TypeError(f"`mag` must be a torch.Tensor [..., F, T], got {type(mag).__name__}")
    if mag.is_complex():
        raise ValueError("`mag` must be real magnitudes; for a complex spectrogram pass `mag.abs()` "
                         "and the spectrogram itself as `init` to start from its phase")
    if not mag.is_floating_point():
        raise ValueError(f"`mag` must be a floating-point tensor, got {mag.dtype}")
    if mag.dim() < 2:
        raise ValueError(f"`mag` must be [..., F, T] (at least 2 dims), got shape {tuple(mag.shape)}")
    if mag.shape[-1] < 1:
        raise ValueError(f"`mag` has no frames (shape {tuple(mag.shape)})")


def window_name(window: torch.Tensor, win_length: int, n_fft: int) -> str | None:
    """The name of the window in :data:`specinv_cli.config.WINDOWS` that ``window`` (``win_length``
    samples, or ``n_fft`` already padded) equals up to float32 rounding, else ``None``.

    >>> window_name(torch.hann_window(400), 400, 400)
    'hann'
    >>> window_name(torch.hann_window(400) ** 2, 400, 400) is None
    True
    """
    w = _padded(window.detach().to("cpu", torch.float64), win_length, n_fft)
    for name in WINDOWS:
        ref = get_window(name, win_length, n_fft, dtype=torch.float64)
        # 1e-6 of the peak: well above float32 rounding of a window computed in float32
        # (a few ulp, ~1e-7), far below any difference between two distinct windows.
        if float((w - ref).abs().max()) <= 1e-6 * float(ref.abs().max()):
            return name
    return None


def _closest_window(window: torch.Tensor) -> str:
    """The named window nearest to ``window`` (length ``n_fft``) in shape (unit-energy L2)."""
    w = window.detach().to("cpu", torch.float64)
    w = w / w.norm().clamp_min(1e-300)
    best, dist = "hann", math.inf
    for name in WINDOWS:
        n = w.shape[-1]
        ref = get_window(name, n, n, dtype=torch.float64)
        d = float((w - ref / ref.norm()).norm())
        if d < dist:
            best, dist = name, d
    return best


def _padded(w: torch.Tensor, win_length: int, n_fft: int) -> torch.Tensor:
    """``w`` zero-padded to ``n_fft`` in the middle (``torch.stft``'s rule)."""
    if w.shape[-1] == n_fft:
        return w
    left = (n_fft - win_length) // 2
    return torch.nn.functional.pad(w, (left, n_fft - win_length - left))


def stft_config(n_bins: int, n_fft: int | None = None, hop_length: int | None = None,
                win_length: int | None = None, window: str | torch.Tensor = "hann", center: bool = True,
                pad_mode: str = "reflect", normalized: bool = False) -> tuple[STFTConfig, torch.Tensor | None]:
    """``(config, window_tensor)`` for a spectrogram of ``n_bins`` bins and these parameters, each
    checked with a message naming it. ``window_tensor`` is ``None`` when ``window`` is a name or
    a tensor equal to a named window (``config.window`` is then that name); otherwise it is the
    window padded to ``n_fft`` and ``config.window`` the named window closest to it.

    >>> cfg, w = stft_config(513)
    >>> cfg.n_fft, cfg.hop_length, cfg.win_length, cfg.window, w
    (1024, 256, 1024, 'hann', None)
    """
    if n_fft is None:
        if n_bins < 2:
            raise ValueError(f"`mag` has {n_bins} frequency bin(s) (dim -2); a one-sided spectrogram "
                             f"needs at least 2 (give `n_fft` to say which size it is)")
        n_fft = 2 * (n_bins - 1)
    n_fft = _integer("n_fft", n_fft, 2)
    if n_fft // 2 + 1 != n_bins:
        raise ValueError(f"`n_fft` {n_fft} gives {n_fft // 2 + 1} frequency bins but `mag` has {n_bins} "
                         f"(dim -2); leave `n_fft` None to use 2 * ({n_bins} - 1) = {2 * (n_bins - 1)}")
    tensor = None
    if win_length is not None:
        win_length = _integer("win_length", win_length, 1)
    if isinstance(window, torch.Tensor):
        if window.dim() != 1 or window.is_complex() or not window.is_floating_point():
            raise ValueError(f"`window` must be a window name or a real 1-D tensor, got a {window.dtype} "
                             f"tensor of shape {tuple(window.shape)}")
        if win_length is None:
            win_length = window.shape[0]
        if window.shape[0] != win_length:
            raise ValueError(f"`window` has {window.shape[0]} samples but `win_length` is {win_length}")
        tensor = window
    elif isinstance(window, str):
        try:
            window = canonical_window(window)
        except ValueError:
            raise ValueError(f"unknown `window` {window!r}; choose one of {', '.join(WINDOWS)}, "
                             f"or pass a 1-D tensor") from None
    else:
        raise ValueError(f"`window` must be a window name or a 1-D tensor, got {type(window).__name__}")
    win_length = n_fft if win_length is None else win_length
    if win_length > n_fft:
        raise ValueError(f"`win_length` {win_length} is larger than `n_fft` {n_fft}")
    hop_length = max(1, win_length // 4) if hop_length is None else _integer("hop_length", hop_length, 1)
    if hop_length > win_length:
        raise ValueError(f"`hop_length` {hop_length} is larger than the window ({win_length} samples); "
                         f"frames would not overlap-add to the signal")
    if not isinstance(center, bool):
        raise ValueError(f"`center` must be True or False, got {center!r}")
    if not isinstance(normalized, bool):
        raise ValueError(f"`normalized` must be True or False, got {normalized!r}")
    if pad_mode not in PAD_MODES:
        raise ValueError(f"`pad_mode` must be one of {', '.join(PAD_MODES)}, got {pad_mode!r}")
    if tensor is not None:
        name = window_name(tensor, win_length, n_fft)
        if name is not None:
            window, tensor = name, None
        else:
            tensor = _padded(tensor, win_length, n_fft)
            window = _closest_window(tensor)
    cfg = STFTConfig(n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                     center=center, pad_mode=pad_mode, normalized=normalized)
    return cfg, tensor


class _TensorWindowSTFT(STFT):
    """An :class:`~specinv_cli.dsp.stft.STFT` whose window is a given tensor: its operators,
    envelope and fast path (the Projector's taps) all read ``self.window``."""

    def __init__(self, config: STFTConfig, window: torch.Tensor, device=None, dtype=torch.float32):
        super().__init__(config, device=device, dtype=dtype)
        self.window = window.detach().to(device=self.device, dtype=dtype).contiguous()
        self._env_cache.clear()  # computed from the name's window otherwise


def _make_stft(cfg: STFTConfig, window: torch.Tensor | None, device, dtype) -> STFT:
    if window is None:
        return STFT(cfg, device=device, dtype=dtype)
    return _TensorWindowSTFT(cfg, window, device=device, dtype=dtype)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _option_values(method: registry.Method, given: dict[str, Any]):
    """``(plain, tensors)``: ``given`` with one-element tensors replaced by their value (for
    validation), and those tensors by name."""
    plain, tensors = {}, {}
    for k, v in given.items():
        if isinstance(v, torch.Tensor):
            if v.numel() != 1 or v.is_complex():
                raise ValueError(f"`{k}` for {method.name} must be a number or a one-element real tensor, "
                                 f"got a tensor of shape {tuple(v.shape)}")
            tensors[k] = v
            plain[k] = v.detach().reshape(()).item()
        else:
            plain[k] = v
    return plain, tensors


def resolve_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` checked against ``method``'s (:meth:`~specinv_cli.algorithms.registry.Method.resolve_options`), one-element
    tensors kept as tensors. Raises ``ValueError`` naming a bad or unknown option.

    >>> resolve_options("fgla", {"alpha": 0.5})
    {'alpha': 0.5}
    """
    m = registry.get_method(method)
    plain, tensors = _option_values(m, options)
    return {**m.resolve_options(plain), **tensors}


def _check_init(init, mag: torch.Tensor):
    """``init`` (see the module docstring) refused with a message naming it, or returned."""
    if init is None:
        return registry.DEFAULT_INIT
    if isinstance(init, torch.Tensor):
        if not init.is_complex():
            raise ValueError("`init` must be a complex spectrogram [..., F, T] (its phase is used), "
                             f"one of {', '.join(registry.INITS)}, or None; got a {init.dtype} tensor")
        if tuple(init.shape) != tuple(mag.shape):
            raise ValueError(f"`init` has shape {tuple(init.shape)}; it must match `mag` {tuple(mag.shape)}")
        return init
    if not isinstance(init, str) or init not in registry.INITS:
        raise ValueError(f"unknown `init` {init!r}; choose one of {', '.join(registry.INITS)}, "
                         f"a complex tensor, or None ({registry.DEFAULT_INIT})")
    return init


def _start(init, mag: torch.Tensor, stft: STFT, seed, cplx: torch.dtype):
    """``(phase, informed)``: the unit-modulus starting phase ``[..., F, T]`` for a checked
    ``init`` and whether it is informative (``pghi``/``spsi`` or a given spectrogram) rather than
    random or zero."""
    if isinstance(init, torch.Tensor):
        return unit(init.to(device=mag.device, dtype=cplx)), True
    if init == "random":
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        return random_phase(mag.shape, gen, mag.device, cplx), False
    if init == "zero":
        return zero_phase(mag.shape, mag.device, cplx), False
    # the phase of a non-iterative method: a function of the magnitudes' values, not
    # differentiable (and PGHI's heap integration runs on numpy)
    with torch.no_grad():
        return registry.get_method(init).load_phase()(mag.detach(), stft).to(cplx), True


def _differentiable(m: registry.Method) -> bool:
    """Whether gradients may pass through ``m``: its iterations are differentiable
    (``Method.differentiable``), or it is a non-iterative phase whose waveform is differentiable
    in the magnitudes through the ISTFT (RTISI-LA updates its block in place; L-BFGS builds its own
    graph on the waveform)."""
    return m.differentiable or (not m.iterative and m.phase_function is not None)


def _run(method: str, mag: torch.Tensor, cfg: STFTConfig, window: torch.Tensor | None, *, n_iter: int,
         init, length: int | None, seed, options: dict[str, Any]) -> torch.Tensor:
    """The inversion every public function shares (``cfg`` from :func:`stft_config` or a preset)."""
    m = registry.get_method(method)
    _check_mag(mag)
    init = _check_init(init, mag)
    if m.name == "lbfgs" and torch.is_inference_mode_enabled():
        # L-BFGS optimises the waveform with autograd, which inference mode forbids: leave it
        # for this call, on copies of the (inference) tensors (the result is an ordinary tensor)
        with torch.inference_mode(False):
            def copy(v):
                return v.clone() if isinstance(v, torch.Tensor) else v
            return _run(method, mag.clone(), cfg, None if window is None else window.clone(), n_iter=n_iter,
                        init=copy(init), length=length, seed=seed, options={k: copy(v) for k, v in options.items()})
    if cfg.n_fft // 2 + 1 != mag.shape[-2]:
        raise ValueError(f"`mag` has {mag.shape[-2]} frequency bins (dim -2) but the settings' n_fft "
                         f"{cfg.n_fft} gives {cfg.n_fft // 2 + 1}")
    n_iter = _integer("n_iter", n_iter, 0)
    if length is not None:
        length = _integer("length", length, 1)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"`seed` must be an integer or None, got {seed!r}")
    plain, tensors = _option_values(m, options)
    opts = m.resolve_options(plain)
    if not _differentiable(m) and torch.is_grad_enabled() and any(
            isinstance(t, torch.Tensor) and t.requires_grad for t in (mag, init, *tensors.values())):
        raise ValueError(f"method {m.name!r} does not support autograd (its iterations run in place): "
                         f"detach `mag` (and `init`), run under torch.no_grad(), or use one of "
                         f"{', '.join(n for n in registry.method_names() if _differentiable(registry.get_method(n)))}")

    out_dtype = mag.dtype
    real = _compute_dtype(mag.dtype)
    cplx = real.to_complex()
    # contiguous as the CLI's inputs are: the same memory layout gives the same rounding
    x = (mag if mag.dtype == real else mag.to(real)).contiguous()
    if not _differentiable(m):  # no gradient is wanted (refused above): no graph either
        x = x.detach()
        init = init.detach() if isinstance(init, torch.Tensor) else init
        tensors = {k: t.detach() for k, t in tensors.items()}
    stft = _make_stft(cfg, window, x.device, real)
    if length is None:
        length = stft.default_length(x.shape[-1])
        if length < 1:
            raise ValueError(f"{x.shape[-1]} frame(s) give no samples with these settings; give `length`")

    start = None
    if m.uses_init:
        phase, informed = _start(init, x, stft, seed, cplx)
        start = x * phase
        if informed:
            opts.update({k: v for k, v in m.informed_init_options.items() if k not in options})
    opts, _ = m.fit_options(opts, frames=x.shape[-1], n_iter=n_iter, win_length=stft.win_length, hop=stft.hop)
    for k, t in tensors.items():  # the caller's tensor, for autograd, in the compute precision
        opts[k] = t.reshape(()).to(device=x.device, dtype=real)

    fn = m.load()
    work = max(n_iter, 1) * x.numel() / x.shape[-2] * stft.n_fft  # iterations x items x frames x n_fft
    scope = jit_scope(work, real) if x.device.type == "cpu" else contextlib.nullcontext()
    with scope:
        if not m.iterative and m.phase_function is not None and torch.is_grad_enabled() and x.requires_grad:
            # its phase is a function of the values (heap integration on numpy): constant for
            # autograd, so the waveform is differentiable in the magnitudes through the ISTFT
            with torch.no_grad():
                phase = m.load_phase()(x.detach(), stft, **opts).to(cplx)
            y = stft.inverse(x * phase, length)
        else:
            y = fn(x, stft, n_iter=n_iter, init=start, length=length, monitor=None, **opts)
    return y if y.dtype == out_dtype else y.to(out_dtype)


def _call(method: str, mag, n_fft, hop_length, win_length, window, center, pad_mode, normalized, n_iter, init,
          length, seed, options) -> torch.Tensor:
    _check_mag(mag)
    cfg, w = stft_config(mag.shape[-2], n_fft, hop_length, win_length, window, center, pad_mode, normalized)
    return _run(method, mag, cfg, w, n_iter=n_iter, init=init, length=length, seed=seed, options=options)


def run(method: str, mag: torch.Tensor, config: STFTConfig, *, window: torch.Tensor | None = None,
        n_iter: int = 100, init=None, length: int | None = None, seed: int | None = 0,
        **options: Any) -> torch.Tensor:
    """Any registered ``method`` on ``mag [..., F, T]`` with the framing of ``config`` (an
    :class:`~specinv_cli.config.STFTConfig`, e.g. a preset's, explicit ``pad`` included) instead
    of the STFT parameters; returns the waveform ``[..., length]`` as the method functions do.
    ``window``: ``None`` (``config.window``) or a 1-D tensor of ``config``'s ``win_length``
    samples (treated as in :func:`stft_config`).

    >>> from specinv_cli.config import load_preset
    >>> mag = torch.rand(513, 20)
    >>> run("gla", mag, load_preset("default"), n_iter=2).shape
    torch.Size([4864])
    """
    if not isinstance(config, STFTConfig):
        raise ValueError(f"`config` must be an STFTConfig, got {type(config).__name__}")
    if config.is_mel:
        raise ValueError("`config` has mel settings (n_mels): for mel features use mel_to_audio or "
                         "specinv_cli.api.invert")
    m = registry.get_method(method)
    if window is not None:
        win, n_fft = config.effective_win_length, config.n_fft
        if not isinstance(window, torch.Tensor) or window.dim() != 1 or window.shape[0] != win:
            raise ValueError(f"`window` must be a 1-D tensor of the settings' win_length ({win}) samples")
        name = window_name(window, win, n_fft)
        if name is not None:
            config, window = dataclasses.replace(config, window=name), None
        else:
            window = _padded(window, win, n_fft)
            config = dataclasses.replace(config, window=_closest_window(window))
    return _run(m.name, mag, config, window, n_iter=n_iter, init=init, length=length, seed=seed, options=options)


_COMMON = """    Parameters
    ----------
    mag : magnitudes ``[..., F, T]`` (float32 or float64; any leading batch dims, any device).
    n_fft, hop_length, win_length, window, center, pad_mode, normalized : the STFT the
        magnitudes come from, as ``torch.stft`` takes them (defaults: ``2 (F - 1)``,
        ``win_length // 4``, ``n_fft``, ``"hann"``, centred, ``"reflect"``, not normalised);
        ``window`` a name or a 1-D tensor of ``win_length`` samples.
    n_iter : iterations{iter_note}.
    init : starting phase: ``None`` (``{default_init}``), ``"random"``, ``"zero"``, ``"pghi"``,
        ``"spsi"``, or a complex tensor ``[..., F, T]`` whose phase is used{init_note}.
    length : output samples (default ``(T - 1) * hop`` for centred frames).
    seed : seed of the random phase (``None``: nondeterministic).
{options}
    Returns
    -------
    The waveform ``[..., length]`` on ``mag``'s device, in its dtype.

"""


def _documented(method: str):
    """Inserts the parameters every method function shares, and ``method``'s options from the
    registry (their help and defaults), before the ``Example`` of a docstring."""
    def decorate(fn):
        if fn.__doc__ is None:  # python -OO
            return fn
        m = registry.get_method(method)
        opts = "".join(f"    {o.name} : {o.help.replace('|', chr(92) + '|')} (default {o.default!r}).\n" for o in m.options)
        common = _COMMON.format(iter_note="" if m.iterative else " (ignored: non-iterative)",
                                default_init=registry.DEFAULT_INIT,
                                init_note="" if m.uses_init else " (ignored: non-iterative)", options=opts)
        head, sep, example = fn.__doc__.partition("    Example\n")
        fn.__doc__ = head + common + sep + example
        return fn
    return decorate


@_documented("gla")
def gla(mag: torch.Tensor, n_fft: int | None = None, hop_length: int | None = None, win_length: int | None = None,
        window: str | torch.Tensor = "hann", center: bool = True, pad_mode: str = "reflect",
        normalized: bool = False, *, n_iter: int = 100, init=None, length: int | None = None,
        seed: int | None = 0, **options: Any) -> torch.Tensor:
    """Griffin–Lim: alternating projections, monotone in the spectral distance.

    D. Griffin and J. Lim, "Signal estimation from modified short-time Fourier transform", IEEE
    Trans. ASSP 32(2), 1984. ``mag [..., F, T]`` -> waveform ``[..., length]``. Wraps
    :func:`specinv_cli.algorithms.gla.gla`; differentiable.

    Example
    -------
    >>> import torch
    >>> x = torch.randn(2, 4096, dtype=torch.float64)
    >>> mag = torch.stft(x, 256, 64, window=torch.hann_window(256, dtype=torch.float64),
    ...                  return_complex=True).abs()
    >>> y = gla(mag, n_iter=4, length=4096)
    >>> y.shape, y.dtype
    (torch.Size([2, 4096]), torch.float64)
    """
    return _call("gla", mag, n_fft, hop_length, win_length, window, center, pad_mode, normalized, n_iter, init,
                 length, seed, options)


@_documented("fgla")
def fgla(mag: torch.Tensor, n_fft: int | None = None, hop_length: int | None = None, win_length: int | None = None,
         window: str | torch.Tensor = "hann", center: bool = True, pad_mode: str = "reflect",
         normalized: bool = False, *, n_iter: int = 100, init=None, length: int | None = None,
         seed: int | None = 0, **options: Any) -> torch.Tensor:
    """Fast Griffin–Lim: Griffin–Lim with an inertial step of momentum ``alpha``.

    N. Perraudin, P. Balazs, P. L. Søndergaard, "A fast Griffin-Lim algorithm", WASPAA 2013.
    ``mag [..., F, T]`` -> waveform ``[..., length]``. Wraps
    :func:`specinv_cli.algorithms.gla.fgla` (``alpha = 0`` is :func:`gla`); differentiable,
    also in ``alpha`` given as a one-element tensor.

    Example
    -------
    >>> import torch
    >>> x = torch.randn(2, 4096, dtype=torch.float64)
    >>> mag = torch.stft(x, 256, 64, window=torch.hann_window(256, dtype=torch.float64),
    ...                  return_complex=True).abs()
    >>> y = fgla(mag, n_iter=4, length=4096, alpha=0.9)
    >>> y.shape, y.dtype
    (torch.Size([2, 4096]), torch.float64)
    """
    return _call("fgla", mag, n_fft, hop_length, win_length, window, center, pad_mode, normalized, n_iter, init,
                 length, seed, options)


@_documented("agla")
def agla(mag: torch.Tensor, n_fft: int | None = None, hop_length: int | None = None, win_length: int | None = None,
         window: str | torch.Tensor = "hann", center: bool = True, pad_mode: str = "reflect",
         normalized: bool = False, *, n_iter: int = 100, init=None, length: int | None = None,
         seed: int | None = 0, **options: Any) -> torch.Tensor:
    """Accelerated Griffin–Lim: two inertial sequences on top of FGLA.

    R. Nenov, D.-K. Nguyen, P. Balazs, "Faster than fast: accelerating the Griffin-Lim
    algorithm", ICASSP 2023. ``mag [..., F, T]`` -> waveform ``[..., length]``. Wraps
    :func:`specinv_cli.algorithms.agla.agla`; differentiable; options that make it unstable are
    refused.

    Example
    -------
    >>> import torch
    >>> x = torch.randn(2, 4096, dtype=torch.float64)
    >>> mag = torch.stft(x, 256, 64, window=torch.hann_window(256, dtype=torch.float64),
    ...                  return_complex=True).abs()
    >>> y = agla(mag, n_iter=4, length=4096)
    >>> y.shape, y.dtype
    (torch.Size([2, 4096]), torch.float64)
    """
    return _call("agla", mag, n_fft, hop_length, win_length, window, center, pad_mode, normalized, n_iter, init,
                 length, seed, options)


@_documented("admm")
def admm(mag: torch.Tensor, n_fft: int | None = None, hop_length: int | None = None, win_length: int | None = None,
         window: str | torch.Tensor = "hann", center: bool = True, pad_mode: str = "reflect",
         normalized: bool = False, *, n_iter: int = 100, init=None, length: int | None = None,
         seed: int | None = 0, **options: Any) -> torch.Tensor:
    """ADMM phase recovery, Griffin–Lim-like with a relaxed consistency step.

    Y. Masuyama, K. Yatabe, Y. Oikawa, "Griffin-Lim like phase recovery via alternating direction
    method of multipliers", IEEE SPL 26(1), 2019. ``mag [..., F, T]`` -> waveform
    ``[..., length]``. Wraps :func:`specinv_cli.algorithms.admm.admm`; differentiable.

    Example
    -------
    >>> import torch
    >>> x = torch.randn(2, 4096, dtype=torch.float64)
    >>> mag = torch.stft(x, 256, 64, window=torch.hann_window(256, dtype=torch.float64),
    ...                  return_complex=True).abs()
    >>> y = admm(mag, n_iter=4, length=4096)
    >>> y.shape, y.dtype
    (torch.Size([2, 4096]), torch.float64)
    """
    return _call("admm", mag, n_fft, hop_length, win_length, window, center, pad_mode, normalized, n_iter, init,
                 length, seed, options)


@_documented("dm")
def dm(mag: torch.Tensor, n_fft: int | None = None, hop_length: int | None = None, win_length: int | None = None,
       window: str | torch.Tensor = "hann", center: bool = True, pad_mode: str = "reflect",
       normalized: bool = False, *, n_iter: int = 100, init=None, length: int | None = None,
       seed: int | None = 0, **options: Any) -> torch.Tensor:
    """Difference map, then AGLA (or FGLA) for the remaining iterations.

    V. Elser, "Phase retrieval by iterated projections", JOSA A 20(1), 2003; T. Peer, S. Welker,
    T. Gerkmann, "Beyond Griffin-Lim: improved iterative phase retrieval for speech", IWAENC
    2022. ``mag [..., F, T]`` -> waveform ``[..., length]``. Wraps
    :func:`specinv_cli.algorithms.dm.dm`; differentiable.

    Example
    -------
    >>> import torch
    >>> x = torch.randn(2, 4096, dtype=torch.float64)
    >>> mag = torch.stft(x, 256, 64, window=torch.hann_window(256, dtype=torch.float64),
    ...                  return_complex=True).abs()
    >>> y = dm(mag, n_iter=4, length=4096)
    >>> y.shape, y.dtype
    (torch.Size([2, 4096]), torch.float64)
    """
    return _call("dm", mag, n_fft, hop_length, win_length, window, center, pad_mode, normalized, n_iter, init,
                 length, seed, options)


@_documented("raar")
def raar(mag: torch.Tensor, n_fft: int | None = None, hop_length: int | None = None, win_length: int | None = None,
         window: str | torch.Tensor = "hann", center: bool = True, pad_mode: str = "reflect",
         normalized: bool = False, *, n_iter: int = 100, init=None, length: int | None = None,
         seed: int | None = 0, **options: Any) -> torch.Tensor:
    """Relaxed averaged alternating reflections (``beta = 1``: Douglas–Rachford).

    D. R. Luke, "Relaxed averaged alternating reflections for diffraction imaging", Inverse
    Problems 21(1), 2005. ``mag [..., F, T]`` -> waveform ``[..., length]``. Wraps
    :func:`specinv_cli.algorithms.dm.raar`; differentiable.

    Example
    -------
    >>> import torch
    >>> x = torch.randn(2, 4096, dtype=torch.float64)
    >>> mag = torch.stft(x, 256, 64, window=torch.hann_window(256, dtype=torch.float64),
    ...                  return_complex=True).abs()
    >>> y = raar(mag, n_iter=4, length=4096)
    >>> y.shape, y.dtype
    (torch.Size([2, 4096]), torch.float64)
    """
    return _call("raar", mag, n_fft, hop_length, win_length, window, center, pad_mode, normalized, n_iter, init,
                 length, seed, options)


@_documented("rtisi-la")
def rtisi_la(mag: torch.Tensor, n_fft: int | None = None, hop_length: int | None = None,
             win_length: int | None = None, window: str | torch.Tensor = "hann", center: bool = True,
             pad_mode: str = "reflect", normalized: bool = False, *, n_iter: int = 100, init=None,
             length: int | None = None, seed: int | None = 0, **options: Any) -> torch.Tensor:
    """Real-time iterative inversion with look-ahead, frame by frame.

    X. Zhu, G. T. Beauregard, L. L. Wyse, "Real-time signal estimation from modified short-time
    Fourier transform magnitude spectra", IEEE TASLP 15(5), 2007. ``mag [..., F, T]`` ->
    waveform ``[..., length]``; ``n_iter`` is updates per frame. Wraps
    :func:`specinv_cli.algorithms.rtisi.rtisi_la`; with an informative ``init`` (the default
    PGHI, or a tensor) entering frames start from it unless ``frame_init`` is given. Not
    differentiable (a ``mag`` that requires grad is refused: detach it).

    Example
    -------
    >>> import torch
    >>> x = torch.randn(2, 4096, dtype=torch.float64)
    >>> mag = torch.stft(x, 256, 64, window=torch.hann_window(256, dtype=torch.float64),
    ...                  return_complex=True).abs()
    >>> y = rtisi_la(mag, n_iter=4, length=4096)
    >>> y.shape, y.dtype
    (torch.Size([2, 4096]), torch.float64)
    """
    return _call("rtisi-la", mag, n_fft, hop_length, win_length, window, center, pad_mode, normalized, n_iter,
                 init, length, seed, options)


@_documented("lbfgs")
def lbfgs(mag: torch.Tensor, n_fft: int | None = None, hop_length: int | None = None,
          win_length: int | None = None, window: str | torch.Tensor = "hann", center: bool = True,
          pad_mode: str = "reflect", normalized: bool = False, *, n_iter: int = 100, init=None,
          length: int | None = None, seed: int | None = 0, **options: Any) -> torch.Tensor:
    """L-BFGS on the waveform against the target magnitude.

    R. Decorsière, P. L. Søndergaard, E. N. MacDonald, T. Dau, "Inversion of auditory
    spectrograms, traditional spectrograms, and other envelope representations", IEEE/ACM TASLP
    23(1), 2015. ``mag [..., F, T]`` -> waveform ``[..., length]``. Wraps
    :func:`specinv_cli.algorithms.lbfgs.lbfgs`. It optimises the waveform with autograd, so
    under ``torch.inference_mode`` it runs outside it; it is not differentiable in ``mag``
    (a ``mag`` that requires grad is refused: detach it).

    Example
    -------
    >>> import torch
    >>> x = torch.randn(2, 4096, dtype=torch.float64)
    >>> mag = torch.stft(x, 256, 64, window=torch.hann_window(256, dtype=torch.float64),
    ...                  return_complex=True).abs()
    >>> y = lbfgs(mag, n_iter=4, length=4096)
    >>> y.shape, y.dtype
    (torch.Size([2, 4096]), torch.float64)
    """
    return _call("lbfgs", mag, n_fft, hop_length, win_length, window, center, pad_mode, normalized, n_iter, init,
                 length, seed, options)


@_documented("pghi")
def pghi(mag: torch.Tensor, n_fft: int | None = None, hop_length: int | None = None, win_length: int | None = None,
         window: str | torch.Tensor = "hann", center: bool = True, pad_mode: str = "reflect",
         normalized: bool = False, *, n_iter: int = 100, init=None, length: int | None = None,
         seed: int | None = 0, **options: Any) -> torch.Tensor:
    """Phase gradient heap integration (non-iterative).

    Z. Průša, P. Balazs, P. L. Søndergaard, "A noniterative method for reconstruction of phase
    from STFT magnitude", IEEE/ACM TASLP 25(5), 2017. ``mag [..., F, T]`` -> waveform
    ``[..., length]``. Wraps :func:`specinv_cli.algorithms.pghi.pghi`; with a ``mag`` that
    requires grad the phase is held constant and the waveform is differentiable through the
    ISTFT.

    Example
    -------
    >>> import torch
    >>> x = torch.randn(2, 4096, dtype=torch.float64)
    >>> mag = torch.stft(x, 256, 64, window=torch.hann_window(256, dtype=torch.float64),
    ...                  return_complex=True).abs()
    >>> y = pghi(mag, length=4096)
    >>> y.shape, y.dtype
    (torch.Size([2, 4096]), torch.float64)
    """
    return _call("pghi", mag, n_fft, hop_length, win_length, window, center, pad_mode, normalized, n_iter, init,
                 length, seed, options)


@_documented("spsi")
def spsi(mag: torch.Tensor, n_fft: int | None = None, hop_length: int | None = None, win_length: int | None = None,
         window: str | torch.Tensor = "hann", center: bool = True, pad_mode: str = "reflect",
         normalized: bool = False, *, n_iter: int = 100, init=None, length: int | None = None,
         seed: int | None = 0, **options: Any) -> torch.Tensor:
    """Single pass spectrogram inversion (non-iterative).

    G. T. Beauregard, M. Harish, L. Wyse, "Single pass spectrogram inversion", IEEE DSP 2015.
    ``mag [..., F, T]`` -> waveform ``[..., length]``. Wraps
    :func:`specinv_cli.algorithms.spsi.spsi`; with a ``mag`` that requires grad the phase is
    held constant and the waveform is differentiable through the ISTFT.

    Example
    -------
    >>> import torch
    >>> x = torch.randn(2, 4096, dtype=torch.float64)
    >>> mag = torch.stft(x, 256, 64, window=torch.hann_window(256, dtype=torch.float64),
    ...                  return_complex=True).abs()
    >>> y = spsi(mag, length=4096)
    >>> y.shape, y.dtype
    (torch.Size([2, 4096]), torch.float64)
    """
    return _call("spsi", mag, n_fft, hop_length, win_length, window, center, pad_mode, normalized, n_iter, init,
                 length, seed, options)


# --- torchaudio ----------------------------------------------------------------------------
def griffinlim(specgram: torch.Tensor, window: torch.Tensor, n_fft: int, hop_length: int, win_length: int,
               power: float, n_iter: int, momentum: float, length: int | None, rand_init: bool) -> torch.Tensor:
    """``torchaudio.functional.griffinlim``: fast Griffin–Lim from a (power) spectrogram.

    D. Griffin and J. Lim, IEEE Trans. ASSP 1984; N. Perraudin, P. Balazs, P. L. Søndergaard,
    "A fast Griffin-Lim algorithm", WASPAA 2013. ``specgram [..., F, T]`` (``|X| ** power``,
    ``F = n_fft // 2 + 1``) -> waveform ``[..., length]`` (default ``(T - 1) * hop_length``), on
    ``specgram``'s device and in its dtype; differentiable where :func:`fgla` is.

    The same signature and iteration as torchaudio's: centred frames with reflect padding,
    ``angles = unit(rebuilt - momentum / (1 + momentum) * tprev)`` each iteration, which is FGLA
    with ``alpha = momentum`` (scaling by ``1 + momentum`` does not change the phase), and the
    output is the ISTFT of the last estimate; ``momentum = 0`` is plain Griffin–Lim. It runs as
    :func:`fgla` (on the fused fast path when ``window`` equals a named window, as
    ``torch.hann_window(win_length)`` does).

    Parameters
    ----------
    specgram : ``|X| ** power``, ``[..., F, T]``.
    window : the window tensor of ``win_length`` samples (or a window name).
    n_fft, hop_length, win_length : framing (``None``: ``torch.istft``'s defaults,
        ``n_fft // 4`` and ``n_fft``).
    power : exponent of ``specgram`` (> 0): 1 for magnitude, 2 for power.
    n_iter : iterations.
    momentum : in ``[0, 1)``.
    length : output samples, or ``None``.
    rand_init : start from torchaudio's random draw (``torch.rand`` of the complex dtype, from
        torch's global generator, so ``torch.manual_seed`` makes it repeatable) instead of zero
        phase. Only the draw's phase is used: torchaudio's first ISTFT also weights the
        magnitudes by its modulus (in ``[0, sqrt 2)``), which this does not; from a zero-phase
        start (``rand_init=False``) the iterates are torchaudio's up to float rounding.

    Example
    -------
    >>> import torch
    >>> x = torch.randn(4096)
    >>> w = torch.hann_window(256)
    >>> spec = torch.stft(x, 256, 64, window=w, return_complex=True).abs() ** 2
    >>> griffinlim(spec, w, 256, 64, 256, 2.0, 8, 0.99, 4096, False).shape
    torch.Size([4096])
    """
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
        raise ValueError(f"`momentum` must be in [0, 1), got {momentum!r}")
    if isinstance(power, bool) or not isinstance(power, (int, float)) or not power > 0:
        raise ValueError(f"`power` must be > 0, got {power!r}")
    _check_mag(specgram)
    mag = specgram if power == 1 else specgram.pow(1.0 / power)
    if hop_length is None and isinstance(n_fft, int):
        hop_length = max(1, n_fft // 4)  # torch.istft's default, which torchaudio's call falls back to
    cplx = _compute_dtype(mag.dtype).to_complex()
    if rand_init:
        init = torch.rand(mag.shape, dtype=cplx, device=mag.device)
    else:
        init = torch.ones(mag.shape, dtype=cplx, device=mag.device)
    return fgla(mag, n_fft, hop_length, win_length, window, True, "reflect", False, n_iter=n_iter, init=init,
                length=length, alpha=float(momentum))


# --- librosa -------------------------------------------------------------------------------
def mel_to_audio(M, *, sr: int = 22050, n_fft: int = 2048, hop_length: int | None = None,
                 win_length: int | None = None, window: str = "hann", center: bool = True,
                 pad_mode: str = "constant", power: float = 2.0, n_iter: int = 32, length: int | None = None,
                 method: str | None = None, **kwargs: Any):
    """``librosa.feature.inverse.mel_to_audio``: audio from a mel (power) spectrogram.

    ``M [..., n_mels, T]`` = ``mel_filterbank @ |X| ** power`` -> waveform ``[..., length]``;
    a numpy array in gives a numpy array out (float64 stays float64, else float32), a tensor
    gives a tensor on its device in its dtype. The mel is mapped to a linear magnitude by
    non-negative least squares and phase-retrieved by :func:`specinv_cli.api.invert` with
    ``method`` (``None``: the library's mel default,
    :data:`~specinv_cli.algorithms.registry.DEFAULT_MEL_METHOD`, which optimises the waveform
    against the mel itself) rather than librosa's pseudo-inverse and Griffin–Lim; the
    parameters mean what librosa's do. Not differentiable (``invert`` works under ``no_grad``).

    Parameters
    ----------
    M : mel spectrogram ``[..., n_mels, T]`` (numpy array or tensor).
    sr, n_fft, hop_length, win_length, window, center, pad_mode : librosa's (``hop_length``
        ``None``: ``win_length // 4``; ``window`` a name).
    power : the exponent of ``|X|`` in ``M`` (2: power mel, librosa's default).
    n_iter : iterations (librosa's default 32).
    length : output samples.
    method : a method name from ``specinv methods``.
    **kwargs : the mel filterbank's ``fmin`` (0), ``fmax`` (``sr / 2``), ``htk`` (False) and
        ``norm`` (``"slaney"`` or ``None``), as ``librosa.filters.mel`` takes them; any other
        keyword is a method option.

    Example
    -------
    >>> import numpy as np
    >>> M = np.random.default_rng(0).random((64, 20)).astype(np.float32)
    >>> y = mel_to_audio(M, sr=16000, n_fft=512, n_iter=4)
    >>> y.shape, y.dtype
    ((2432,), dtype('float32'))
    """
    import numpy as np

    from .api import invert

    fmin = kwargs.pop("fmin", 0.0)
    fmax = kwargs.pop("fmax", None)
    htk = kwargs.pop("htk", False)
    norm = kwargs.pop("norm", "slaney")
    if not isinstance(htk, bool):
        raise ValueError(f"`htk` must be True or False, got {htk!r}")
    if norm not in ("slaney", None):
        raise ValueError(f"`norm` must be 'slaney' or None (area-normalised or peak-1 triangles), got {norm!r}")
    if not isinstance(window, str):
        raise ValueError(f"`window` must be a window name ({', '.join(WINDOWS)}), got {type(window).__name__}")
    is_numpy = not isinstance(M, torch.Tensor)
    if is_numpy:
        arr = np.asarray(M)
        if arr.dtype.kind != "f":
            raise ValueError(f"`M` must hold floating-point values, got {arr.dtype}")
        out_dtype = torch.float64 if arr.dtype == np.float64 else torch.float32
        x, device = torch.from_numpy(np.ascontiguousarray(arr)), torch.device("cpu")
    else:
        _check_mag(M)
        x, device, out_dtype = M, M.device, M.dtype
    if x.dim() < 2:
        raise ValueError(f"`M` must be [..., n_mels, T], got shape {tuple(x.shape)}")
    fields = dict(n_fft=_integer("n_fft", n_fft, 2), window=window, center=center, pad_mode=pad_mode,
                  sample_rate=_integer("sr", sr, 1), n_mels=int(x.shape[-2]), fmin=fmin, fmax=fmax,
                  mel_scale="htk" if htk else "slaney", mel_norm="slaney" if norm == "slaney" else "none",
                  mel_power=power)
    if hop_length is not None:
        fields["hop_length"] = hop_length
    if win_length is not None:
        fields["win_length"] = win_length
    cfg = STFTConfig(**fields)
    precision = "double" if out_dtype == torch.float64 else "single"
    leave = torch.inference_mode(False) if torch.is_inference_mode_enabled() else contextlib.nullcontext()
    with leave:  # L-BFGS needs autograd, which inference mode forbids
        if x.is_inference():
            x = x.clone()
        res = invert(x, config=cfg, method=method, n_iter=n_iter, length=length, device=device,
                     precision=precision, **kwargs)
    audio = res.audio.to(device=device, dtype=out_dtype)
    return audio.numpy() if is_numpy else audio
