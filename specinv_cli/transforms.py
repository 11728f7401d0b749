"""Phase retrieval as ``torch.nn.Module`` s, for models, pipelines and ``nn.Sequential``.

- :class:`GriffinLim`: a drop-in for ``torchaudio.transforms.GriffinLim`` (same constructor,
  same forward), on the library's fast Griffin–Lim;
- :class:`PhaseRetrieval`: any registered method on linear magnitudes ``[..., F, T]``;
- :class:`MelToAudio`: a model's mel features (a preset such as ``hifigan-22k``, or mel
  parameters) to audio.

Windows, mel filterbanks and tensor options are buffers (or parameters), so they follow
``.to(device)`` / ``.to(dtype)`` and ``state_dict``; the output is on the input's device, in
its dtype. All three work under ``torch.inference_mode()``.

Example
-------
>>> import torch
>>> from specinv_cli.transforms import PhaseRetrieval
>>> x = torch.randn(2, 4096)
>>> mag = torch.stft(x, 256, 64, window=torch.hann_window(256), return_complex=True).abs()
>>> PhaseRetrieval("fgla", n_fft=256, hop_length=64, n_iter=5)(mag, length=4096).shape
torch.Size([2, 4096])
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Callable

import torch
from torch import nn

from . import functional as F
from .algorithms import registry
from .config import STFTConfig, load_preset
from .dsp.stft import get_window

__all__ = ["GriffinLim", "PhaseRetrieval", "MelToAudio"]


def _integer(name: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"`{name}` must be an integer >= {lo}, got {value!r}")
    return int(value)


class GriffinLim(nn.Module):
    """``torchaudio.transforms.GriffinLim``: waveform from a (power) spectrogram by fast Griffin–Lim.

    D. Griffin and J. Lim, IEEE Trans. ASSP 1984; N. Perraudin, P. Balazs, P. L. Søndergaard,
    "A fast Griffin-Lim algorithm", WASPAA 2013. ``forward(specgram [..., F, T])`` with
    ``specgram = |X| ** power`` and ``F = n_fft // 2 + 1`` -> waveform ``[..., length]``
    (default ``(T - 1) * hop_length``), on the input's device and in its dtype; runs
    :func:`specinv_cli.functional.griffinlim` (see it for the one difference, ``rand_init``'s
    first step). The parameters are torchaudio's, with its defaults (in parentheses).

    Parameters
    ----------
    n_fft : FFT size (400).
    n_iter : iterations (32).
    win_length : window size (``n_fft``).
    hop_length : hop (``win_length // 2``, torchaudio's default).
    window_fn : ``window_fn(win_length, **wkwargs)`` makes the window (``torch.hann_window``);
        it is the buffer ``window``.
    power : exponent of the input (2: power spectrogram).
    wkwargs : keyword arguments of ``window_fn``.
    momentum : FGLA momentum in ``[0, 1)`` (0.99).
    length : output samples (``None``).
    rand_init : random (True) or zero initial phase.

    Example
    -------
    >>> import torch
    >>> gl = GriffinLim(n_fft=256, n_iter=4)
    >>> spec = torch.stft(torch.randn(4096), 256, 128, window=torch.hann_window(256),
    ...                   return_complex=True).abs() ** 2
    >>> gl(spec).shape
    torch.Size([4096])
    """

    def __init__(self, n_fft: int = 400, n_iter: int = 32, win_length: int | None = None,
                 hop_length: int | None = None, window_fn: Callable[..., torch.Tensor] = torch.hann_window,
                 power: float = 2.0, wkwargs: dict | None = None, momentum: float = 0.99,
                 length: int | None = None, rand_init: bool = True) -> None:
        super().__init__()
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
            raise ValueError(f"`momentum` must be in [0, 1), got {momentum!r}")
        self.n_fft = _integer("n_fft", n_fft, 2)
        self.n_iter = _integer("n_iter", n_iter, 0)
        self.win_length = self.n_fft if win_length is None else _integer("win_length", win_length, 1)
        self.hop_length = self.win_length // 2 if hop_length is None else _integer("hop_length", hop_length, 1)
        window = window_fn(self.win_length) if wkwargs is None else window_fn(self.win_length, **wkwargs)
        self.register_buffer("window", window)
        self.length = length
        self.power = power
        self.momentum = momentum
        self.rand_init = rand_init

    def forward(self, specgram: torch.Tensor) -> torch.Tensor:
        """``specgram [..., F, T]`` (``|X| ** power``) -> waveform ``[..., length]``."""
        return F.griffinlim(specgram, self.window, self.n_fft, self.hop_length, self.win_length, self.power,
                            self.n_iter, self.momentum, self.length, self.rand_init)


def _register_options(module: nn.Module, method: registry.Method, options: dict[str, Any]) -> dict[str, Any]:
    """Validate ``options`` for ``method``; tensor ones become parameters (when they require
    grad or are ``nn.Parameter`` s) or buffers of ``module`` under their own names. Returns the
    plain (non-tensor) ones."""
    F.resolve_options(method.name, options)
    plain = {}
    for k, v in options.items():
        if isinstance(v, torch.Tensor):
            if hasattr(module, k):
                raise ValueError(f"option `{k}` clashes with an attribute of {type(module).__name__}")
            if isinstance(v, nn.Parameter) or v.requires_grad:
                module.register_parameter(k, v if isinstance(v, nn.Parameter) else nn.Parameter(v))
            else:
                module.register_buffer(k, v)
            module._tensor_options.append(k)
        else:
            plain[k] = v
    return plain


def _method(name: str) -> registry.Method:
    """A registered method by name, accepting the function spelling (``rtisi_la``)."""
    try:
        return registry.get_method(name)
    except ValueError:
        if isinstance(name, str) and "_" in name:
            try:
                return registry.get_method(name.replace("_", "-"))
            except ValueError:
                pass
        raise


def _resolve_config(config) -> STFTConfig:
    if isinstance(config, STFTConfig):
        return config
    if isinstance(config, str):
        return load_preset(config)
    raise ValueError(f"`config` must be an STFTConfig or a preset name, got {type(config).__name__}")


class PhaseRetrieval(nn.Module):
    """A phase-retrieval method as a module: ``forward(mag [..., F, T]) -> waveform [..., length]``.

    Runs the :mod:`specinv_cli.functional` function of ``method`` (``None``: the library default,
    :data:`~specinv_cli.algorithms.registry.DEFAULT_METHOD`); see it for the paper. Gradients
    reach ``mag`` (and tensor options) wherever that algorithm is differentiable.

    Parameters
    ----------
    method : a registered method name (``fgla``, ``rtisi-la`` or ``rtisi_la``, ...).
    n_fft, hop_length, win_length, window, center, pad_mode, normalized : the STFT of the
        magnitudes (as :mod:`specinv_cli.functional` takes them; ``n_fft`` ``None``: inferred
        from each input's bins, ``2 (F - 1)``).
    config : instead of those, an :class:`~specinv_cli.config.STFTConfig` or a preset name
        (linear settings; for mel features use :class:`MelToAudio`); its framing is used as is
        (including HiFi-GAN's explicit ``pad``).
    n_iter, init, seed : as in :mod:`specinv_cli.functional`.
    **options : the method's options; a tensor option becomes a parameter (when it requires
        grad or is an ``nn.Parameter``) or a buffer of that name.

    When ``n_fft`` is known at construction (given, or from ``config``) the window is the buffer
    ``window``.

    Example
    -------
    >>> import torch
    >>> pr = PhaseRetrieval("fgla", n_fft=256, hop_length=64, n_iter=4,
    ...                     alpha=torch.nn.Parameter(torch.tensor(0.9)))
    >>> [n for n, _ in pr.named_parameters()], [n for n, _ in pr.named_buffers()]
    (['alpha'], ['window'])
    """

    def __init__(self, method: str | None = None, *, n_fft: int | None = None, hop_length: int | None = None,
                 win_length: int | None = None, window: str | torch.Tensor | None = None,
                 center: bool | None = None, pad_mode: str | None = None, normalized: bool | None = None,
                 config: STFTConfig | str | None = None, n_iter: int = 100, init=None, seed: int | None = 0,
                 **options: Any) -> None:
        super().__init__()
        m = _method(registry.DEFAULT_METHOD if method is None else method)
        self.method = m.name
        self.n_iter = _integer("n_iter", n_iter, 0)
        if isinstance(init, torch.Tensor):
            raise ValueError("`init` of a PhaseRetrieval must be a name or None (a per-input spectrogram "
                             "belongs in forward(mag, init=...))")
        if init is not None and init not in registry.INITS:
            raise ValueError(f"unknown `init` {init!r}; choose one of {', '.join(registry.INITS)} or None")
        self.init = init
        self.seed = seed
        self._tensor_options: list[str] = []
        self.options = _register_options(self, m, options)
        params = dict(n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                      center=center, pad_mode=pad_mode, normalized=normalized)
        given = {k: v for k, v in params.items() if v is not None}
        self.config: STFTConfig | None = None
        self.stft_params: dict[str, Any] = {}
        if config is not None:
            if given:
                raise ValueError(f"give either `config` or the STFT parameters, not both (got "
                                 f"{', '.join('`' + k + '`' for k in given)} with `config`)")
            cfg = _resolve_config(config)
            if cfg.is_mel:
                raise ValueError("`config` has mel settings (n_mels); PhaseRetrieval inverts linear "
                                 "magnitudes: use MelToAudio for mel features")
            self.config = cfg
            self.register_buffer("window", get_window(cfg.window, cfg.effective_win_length))
            return
        p = {"window": "hann", "center": True, "pad_mode": "reflect", "normalized": False, **given}
        win = p.pop("window")
        if n_fft is not None:  # check every parameter now rather than at the first input
            n = _integer("n_fft", n_fft, 2)
            cfg, _ = F.stft_config(n // 2 + 1, **p, window=win)
        if isinstance(win, torch.Tensor):
            self.register_buffer("window", win.detach().clone())
        elif n_fft is not None:
            self.register_buffer("window", get_window(cfg.window, cfg.effective_win_length))
        else:  # a name, built for each input once its n_fft is known
            self.register_buffer("window", None)
            p["window"] = win
        self.stft_params = p

    def forward(self, mag: torch.Tensor, *, length: int | None = None, init=None) -> torch.Tensor:
        """``mag [..., F, T]`` -> waveform ``[..., length]``; ``init`` (a complex spectrogram or a
        name) overrides the module's for this call."""
        opts = {**self.options, **{k: getattr(self, k) for k in self._tensor_options}}
        start = self.init if init is None else init
        if self.config is not None:
            return F.run(self.method, mag, self.config, window=self.window, n_iter=self.n_iter, init=start,
                         length=length, seed=self.seed, **opts)
        if not isinstance(mag, torch.Tensor) or mag.dim() < 2:
            raise ValueError(f"`mag` must be a tensor [..., F, T], got {getattr(mag, 'shape', type(mag).__name__)}")
        p = dict(self.stft_params)
        if self.window is not None:
            p["window"] = self.window
        cfg, window = F.stft_config(mag.shape[-2], **p)
        return F.run(self.method, mag, cfg, window=None if window is None else self.window, n_iter=self.n_iter,
                     init=start, length=length, seed=self.seed, **opts)

    def extra_repr(self) -> str:
        return f"method={self.method!r}, n_iter={self.n_iter}"


#: Fields of :class:`STFTConfig` a :class:`MelToAudio` takes as keywords.
_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(STFTConfig) if f.name != "explicit")


class MelToAudio(nn.Module):
    """A model's mel features to audio: ``forward(mel [..., n_mels, T]) -> waveform [..., length]``.

    The features are decoded (the preset's ``compression`` / ``normalization``), mapped to a
    linear magnitude by non-negative least squares, and phase-retrieved with ``method``
    (``None``: :data:`~specinv_cli.algorithms.registry.DEFAULT_MEL_METHOD`, which optimises the
    waveform against the mel) by :func:`specinv_cli.api.invert`. Not differentiable (``invert``
    runs under ``no_grad``). The filterbank ``[n_mels, F]`` is the buffer ``fb``
    (:meth:`features` uses it).

    Parameters
    ----------
    preset : a preset name (``hifigan-22k``, see ``specinv configs``), a TOML path or an
        :class:`~specinv_cli.config.STFTConfig` with mel settings; ``None``: mel parameters.
    sample_rate, n_fft, hop_length, win_length, n_mels, fmin, fmax : mel parameters (override
        the preset's); any other :class:`~specinv_cli.config.STFTConfig` field (``mel_scale``,
        ``mel_norm``, ``mel_power``, ``compression``, ``center``, ``pad``...) is accepted too.
        Without a preset, ``n_mels`` defaults to 80 and the rest to ``STFTConfig``'s defaults.
    method, n_iter : the inversion (``n_iter`` in all, including L-BFGS refinement steps).
    **options : other keywords are the method's options.

    Example
    -------
    >>> import torch
    >>> m2a = MelToAudio(sample_rate=16000, n_fft=512, n_mels=40, n_iter=4)
    >>> m2a(torch.rand(40, 20)).shape
    torch.Size([2432])
    """

    def __init__(self, preset: str | STFTConfig | None = None, *, sample_rate: int | None = None,
                 n_fft: int | None = None, hop_length: int | None = None, win_length: int | None = None,
                 n_mels: int | None = None, fmin: float | None = None, fmax: float | None = None,
                 method: str | None = None, n_iter: int = 100, **options: Any) -> None:
        super().__init__()
        from .dsp.mel import mel_filterbank

        fields = dict(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                      n_mels=n_mels, fmin=fmin, fmax=fmax)
        fields = {k: v for k, v in fields.items() if v is not None}
        fields.update({k: options.pop(k) for k in list(options) if k in _CONFIG_FIELDS})
        if preset is None:
            cfg = STFTConfig(**{"n_mels": 80, **fields})
        else:
            cfg = _resolve_config(preset)
            if fields:
                cfg = cfg.replace(**fields)
        if not cfg.is_mel:
            raise ValueError("MelToAudio needs mel settings (`n_mels` or a mel preset); for linear "
                             "magnitudes use PhaseRetrieval")
        self.config = cfg
        self.method = registry.get_method(registry.DEFAULT_MEL_METHOD if method is None else method).name
        registry.get_method(self.method).resolve_options(options)
        self.options = options
        self.n_iter = _integer("n_iter", n_iter, 0)
        self.register_buffer("fb", mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin,
                                                  cfg.effective_fmax, cfg.mel_scale, cfg.mel_norm))

    def forward(self, mel: torch.Tensor, *, length: int | None = None) -> torch.Tensor:
        """``mel [..., n_mels, T]`` (the preset's features) -> waveform ``[..., length]``."""
        from .api import invert

        if not isinstance(mel, torch.Tensor) or mel.is_complex() or not mel.is_floating_point():
            raise ValueError(f"`mel` must be a real floating-point tensor [..., n_mels, T], got "
                             f"{getattr(mel, 'dtype', type(mel).__name__)}")
        out_dtype = mel.dtype
        precision = "double" if mel.dtype == torch.float64 else "single"
        inference = torch.is_inference_mode_enabled()
        with torch.inference_mode(False) if inference else contextlib.nullcontext():  # L-BFGS needs autograd
            x = mel.clone() if mel.is_inference() else mel
            res = invert(x.detach(), config=self.config, method=self.method, n_iter=self.n_iter, length=length,
                         device=mel.device, precision=precision, **self.options)
        return res.audio.to(device=mel.device, dtype=out_dtype)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """The preset's mel features ``[..., n_mels, T]`` of ``audio [..., L]`` (STFT, then
        ``fb @ |X| ** mel_power``, then its compression and normalisation): what ``forward``
        inverts."""
        from .dsp.mel import encode
        from .dsp.stft import STFT

        real = torch.float64 if audio.dtype == torch.float64 else torch.float32
        stft = STFT(self.config, device=audio.device, dtype=real)
        mag = stft.forward(audio.to(real)).abs()
        p = float(self.config.mel_power)
        mel = torch.matmul(self.fb.to(device=audio.device, dtype=real), mag if p == 1 else mag.pow(p))
        return encode(mel, self.config).to(audio.dtype)

    def extra_repr(self) -> str:
        return f"method={self.method!r}, n_iter={self.n_iter}, n_mels={self.config.n_mels}"
