"""Streaming inversion: spectrogram frames in, final audio samples out, with a stated latency.

:class:`StreamingInverter` is built from the STFT (or mel) settings and a streaming method;
:meth:`~StreamingInverter.push` takes frames ``[..., F, k]`` as a model produces them and returns
only the samples that no later frame can change; :meth:`~StreamingInverter.flush` returns the
tail. Leading dimensions are independent streams. The state is bounded (a few frames and
windows), whatever the stream's length.

Methods (:data:`STREAM_METHODS`; the algorithms in :mod:`specinv_cli.algorithms.online`,
:mod:`~specinv_cli.algorithms.rtisi` and :mod:`~specinv_cli.algorithms.rtpghi`):

- ``rtpghi``: real-time PGHI (Průša & Søndergaard, DAFx 2016), non-iterative, look-ahead 0 or 1;
- ``rtisi-la``: RTISI-LA (Zhu, Beauregard & Wyse 2007), the offline ``-m rtisi-la``'s code;
- ``fgla`` (the default), ``dm``, ``raar``: the online framework of Peer, Welker & Gerkmann
  (2023), each entering frame started from RTPGHI and refined inside the look-ahead window: of
  ``look_ahead >= 2`` frames RTPGHI takes one (its centred time difference) and the window the
  rest; with fewer, RTPGHI takes none.

``look_ahead`` counts the frames after a frame that it waits for; the algorithmic latency
(``StreamingInverter.latency_ms``) is ``n_fft + (look_ahead - 1) hop`` samples: from the last
input sample the newest frame needs (had the spectrogram been analysed from a live signal) to
the output samples made final by it. ``n_iter`` counts the updates each frame gets in all, as
the offline methods' iterations update every frame once: compute per frame is about
``n_iter`` FFT pairs of one frame, whatever the look-ahead.

Chunk invariance: every frame is one step of the same operations, so pushing 1, 7 or all frames
at a time gives the same samples, bit for bit, for linear magnitudes. Mel input is turned into
magnitudes per push (non-negative least squares, each frame on its own, in float64, then
rounded): there the result agrees to float64 rounding before that last rounding.

Example
-------
>>> import torch
>>> from specinv_cli.streaming import StreamingInverter
>>> inv = StreamingInverter("default", method="fgla", look_ahead=3)
>>> frames = torch.rand(513, 20)
>>> audio = torch.cat([inv.push(frames[:, :7]), inv.push(frames[:, 7:]), inv.flush()])
>>> audio.shape
torch.Size([4864])
"""
from __future__ import annotations

import math
from typing import Any

import torch

from .algorithms.online import OnlineStream, iterations_per_step, latency_samples
from .config import STFTConfig, load_preset
from .dsp.stft import STFT

__all__ = ["StreamingInverter", "STREAM_METHODS", "DEFAULT_STREAM_METHOD", "stream_defaults"]

#: name -> (look-ahead default, n_iter default, the largest look-ahead or None, summary)
STREAM_METHODS: dict[str, tuple[int, int, int | None, str]] = {
    "rtpghi": (1, 0, 1, "real-time phase gradient heap integration (non-iterative)"),
    "rtisi-la": (3, 8, None, "RTISI-LA: Griffin-Lim on the look-ahead window, asymmetric window"),
    "fgla": (3, 8, None, "online fast Griffin-Lim (alpha 0.9) on the look-ahead window, from RTPGHI"),
    "dm": (3, 8, None, "online difference map (Douglas-Rachford) on the look-ahead window, from RTPGHI"),
    "raar": (3, 8, None, "online RAAR (beta 0.7) on the look-ahead window, from RTPGHI"),
}
#: Chosen by measurement: benchmarks/results/streaming.md.
DEFAULT_STREAM_METHOD = "fgla"
_RULES = {"rtisi-la": "gla", "fgla": "fgla", "dm": "dm", "raar": "raar"}
#: The online rules' parameters (measured on the corpus: benchmarks/streaming.py).
_OPTIONS = {"fgla": dict(alpha=0.9), "raar": dict(beta=0.7), "dm": {}, "gla": {}}
#: Non-negative least-squares iterations per mel frame: from 20 to 100 the streamed audio's
#: mel SC moves by 0.2 dB at most (benchmarks/results/streaming_mel.md), while each costs time.
MEL_NNLS_ITERS = 30


def stream_defaults(method: str | None) -> tuple[str, int, int]:
    """``(method, look_ahead, n_iter)`` defaults of a streaming method (``None``: the default)."""
    name = DEFAULT_STREAM_METHOD if method is None else str(method)
    if name not in STREAM_METHODS:
        raise ValueError(f"unknown streaming method {name!r}; choose one of {', '.join(STREAM_METHODS)}")
    la, it, _, _ = STREAM_METHODS[name]
    return name, la, it


def _config(config: Any) -> STFTConfig:
    if isinstance(config, STFTConfig):
        return config
    return load_preset(str(config))


class StreamingInverter:
    """Frames in, final audio out (see the module docstring).

    Parameters
    ----------
    config : settings: a preset name, a config file, or an :class:`~specinv_cli.config.STFTConfig`.
    method : a name of :data:`STREAM_METHODS` (default :data:`DEFAULT_STREAM_METHOD`).
    look_ahead : frames of look-ahead (default: the method's); ``rtpghi`` takes 0 or 1.
    n_iter : updates per frame in all (iterative methods; default: the method's).
    input_kind : ``magnitude`` (``|STFT|``, ``F = n_fft // 2 + 1``), ``mel`` (linear mel
        amplitudes ``fb @ |X|^p``), ``mel-features`` (the settings' compressed, normalised mel);
        ``None``: ``mel-features`` for settings with ``n_mels``, else ``magnitude``.
    device, dtype : where and in what precision the stream runs (float32 or float64).

    The constructor runs a few frames through a scratch stream: the CPU kernels load there
    (once per process), not in the first :meth:`push`.
    """

    def __init__(self, config: Any = "default", *, method: str | None = None, look_ahead: int | None = None,
                 n_iter: int | None = None, input_kind: str | None = None, device=None,
                 dtype: torch.dtype = torch.float32):
        self.config = cfg = _config(config)
        self.method, la_default, it_default = stream_defaults(method)
        la = la_default if look_ahead is None else look_ahead
        it = it_default if n_iter is None else n_iter
        most = STREAM_METHODS[self.method][2]
        for name, v in (("look_ahead", la), ("n_iter", it)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"`{name}` must be an integer >= 0, got {v!r}")
        if most is not None and la > most:
            raise ValueError(f"`look_ahead` of {self.method} must be at most {most}, got {la}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"`dtype` must be torch.float32 or torch.float64, got {dtype}")
        kind = input_kind or ("mel-features" if cfg.is_mel else "magnitude")
        if kind not in ("magnitude", "mel", "mel-features"):
            raise ValueError(f"`input_kind` must be magnitude, mel or mel-features, got {input_kind!r}")
        if kind != "magnitude" and not cfg.is_mel:
            raise ValueError(f"input_kind {kind} needs settings with n_mels (a mel preset or config)")
        self.input_kind = kind
        self.look_ahead, self.n_iter = la, it
        self.stft = STFT(cfg, device=device, dtype=dtype)
        self.dtype = dtype
        self.n_bins = int(cfg.n_mels) if kind != "magnitude" else self.stft.n_freqs
        self.sample_rate = int(cfg.sample_rate)
        self.hop_length = self.stft.hop
        self.latency_samples = latency_samples(self.stft.n_fft, self.stft.hop, la)
        self.latency_ms = 1000.0 * self.latency_samples / self.sample_rate
        self._mel = None
        if kind != "magnitude":
            from .dsp.mel import MelTransform

            self._mel = MelTransform(cfg, device=device, dtype=torch.float64)
        self._lead: tuple | None = None
        self._engine: OnlineStream | None = None
        self._phase = None
        self._pending: list[torch.Tensor] = []  # magnitudes waiting for their RTPGHI phase
        self.frames_in = 0
        self.samples_out = 0
        self._done = False
        self._warm_up()

    def _warm_up(self) -> None:
        """Run a few frames through a scratch copy of the stream, so that loading the CPU kernels
        (numba's runtime, compiled code from its cache) happens here and not in the first push."""
        if self._mel is not None:
            self._mel.to_linear_frames(torch.ones(1, self.n_bins, 1, dtype=torch.float64, device=self.stft.device), 2)
        self._start(1)
        one = torch.ones(1, self.stft.n_freqs, dtype=self.dtype, device=self.stft.device)
        for _ in range(self.look_ahead + 2):
            self._frame(one)
        self._engine, self._phase, self._pending, self.frames_in = None, None, [], 0

    # --- latency ---------------------------------------------------------------------------------
    @staticmethod
    def latency_for(config: Any, method: str | None = None, look_ahead: int | None = None) -> float:
        """Algorithmic latency in ms of ``method`` with ``look_ahead`` frames under ``config``."""
        cfg = _config(config)
        name, la, _ = stream_defaults(method)
        la = la if look_ahead is None else look_ahead
        op = STFT(cfg)
        return 1000.0 * latency_samples(op.n_fft, op.hop, la) / cfg.sample_rate

    @staticmethod
    def look_ahead_for(latency_ms: float, config: Any, method: str | None = None) -> int:
        """The largest look-ahead whose algorithmic latency is at most ``latency_ms``."""
        ms = float(latency_ms)
        if not (math.isfinite(ms) and ms >= 0):
            raise ValueError(f"a latency must be a finite number of milliseconds >= 0, got {latency_ms!r}")
        cfg = _config(config)
        name, _, _ = stream_defaults(method)
        op = STFT(cfg)
        most = STREAM_METHODS[name][2]
        budget = ms * cfg.sample_rate / 1000.0
        la = math.floor((budget - op.n_fft) / op.hop + 1 + 1e-9)
        if most is not None:
            la = min(la, most)
        if la < 0:
            least = 1000.0 * latency_samples(op.n_fft, op.hop, 0) / cfg.sample_rate
            raise ValueError(f"no look-ahead of {name} fits {latency_ms:g} ms with n_fft {op.n_fft}, hop {op.hop} "
                             f"at {cfg.sample_rate} Hz: the least latency is {least:.1f} ms (look-ahead 0)")
        return int(la)

    # --- the stream ------------------------------------------------------------------------------
    def push(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames ``[..., F, k]`` in (``k >= 0``); the samples that became final ``[..., n]`` out."""
        if self._done:
            raise RuntimeError("the stream was flushed; make a new StreamingInverter")
        frames = self._check(frames)
        B = frames.shape[0]
        mags = self._magnitudes(frames)  # [B, F, k]
        outs = [self._frame(mags[:, :, t]) for t in range(mags.shape[-1])]
        return self._emit(outs, B)

    def flush(self) -> torch.Tensor:
        """The rest of the stream ``[..., n]``; the stream ends here."""
        if self._done:
            raise RuntimeError("the stream was flushed already")
        self._done = True
        if self._engine is None:  # nothing was pushed
            return torch.zeros(*(self._lead or ()), 0, dtype=self.dtype, device=self.stft.device)
        B = self._engine.batch
        outs = []
        if self._phase is not None:
            rest = self._phase.flush()  # [B, F, k]: the pending frames' phases
            for j in range(rest.shape[-1]):
                outs.append(self._engine.step(self._pending.pop(0), rest[:, :, j]))
        outs.append(self._engine.flush())
        return self._emit(outs, B)

    # --- internals -------------------------------------------------------------------------------
    def _check(self, frames: Any) -> torch.Tensor:
        if not isinstance(frames, torch.Tensor):
            frames = torch.as_tensor(frames)
        if frames.is_complex() or frames.dim() < 2 or frames.shape[-2] != self.n_bins:
            raise ValueError(f"frames must be real [..., {self.n_bins}, k] ({self.input_kind}), "
                             f"got {'complex ' if frames.is_complex() else ''}shape {tuple(frames.shape)}")
        lead = tuple(frames.shape[:-2])
        if self._lead is not None and lead != self._lead:
            raise ValueError(f"frames have leading shape {lead}, but the stream started with {self._lead}")
        x = frames.to(device=self.stft.device, dtype=torch.float64 if self._mel is not None else self.dtype)
        if x.numel() and not bool(torch.isfinite(x).all()):
            raise ValueError("frames contain NaN or infinite values")
        if self.input_kind != "mel-features" and x.numel() and bool((x < 0).any()):
            raise ValueError(f"{self.input_kind} frames must be >= 0")
        self._lead = lead  # the first valid push fixes the streams' shape
        return x.reshape(-1, self.n_bins, x.shape[-1])

    def _magnitudes(self, x: torch.Tensor) -> torch.Tensor:
        if self._mel is None:
            return x
        if self.input_kind == "mel-features":
            from .dsp.mel import decode

            x = decode(x, self.config)
            if not bool(torch.isfinite(x).all()):
                raise ValueError(f"mel features overflow when decoded ({self.config.compression}, "
                                 f"{self.config.normalization}); check the settings")
        # each frame on its own: a frame's result does not depend on the frames in its push
        return self._mel.to_linear_frames(x, MEL_NNLS_ITERS).to(self.dtype)

    def _start(self, B: int) -> None:
        la, it = self.look_ahead, self.n_iter
        if self.method == "rtpghi":
            from .algorithms.rtpghi import RTPGHIStream

            self._phase = RTPGHIStream(self.stft, look_ahead=la, batch=B)
            self._engine = OnlineStream(self.stft, look_ahead=0, iterations=0, rule="gla", batch=B,
                                        asymmetric_window=False)
            return
        rule = _RULES[self.method]
        block = la
        if rule != "gla":  # the entering frame's phase from RTPGHI, with one of the frames if there are two
            from .algorithms.rtpghi import RTPGHIStream

            init_la = 1 if la >= 2 else 0
            block = la - init_la
            self._phase = RTPGHIStream(self.stft, look_ahead=init_la, batch=B)
        steps = iterations_per_step(it, block, at_least_one=rule == "gla")  # rtisi-la: as offline
        self._engine = OnlineStream(self.stft, look_ahead=block, iterations=steps, rule=rule, batch=B,
                                    **_OPTIONS[rule])

    def _frame(self, mag: torch.Tensor) -> torch.Tensor:
        """One frame ``[B, F]`` through the phase initialiser (if any) and the engine."""
        if self._engine is None:
            self._start(mag.shape[0])
        self.frames_in += 1
        if self._phase is None:
            return self._engine.step(mag, None)
        self._pending.append(mag)
        ph = self._phase.push(mag)
        if ph is None:
            return mag.new_zeros(mag.shape[0], 0)
        return self._engine.step(self._pending.pop(0), ph)

    def _emit(self, outs: list, B: int) -> torch.Tensor:
        y = torch.cat(outs, dim=-1) if outs else torch.zeros(B, 0, dtype=self.dtype, device=self.stft.device)
        self.samples_out += y.shape[-1]
        return y.reshape(*(self._lead or ()), y.shape[-1])
