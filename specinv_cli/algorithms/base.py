"""What every phase-retrieval algorithm shares: the progress monitor and initial phases.

An algorithm is a function::

    fn(mag, stft, *, n_iter, init, length, monitor, **options) -> waveform [..., length]

- ``mag``: target magnitudes ``[..., F, T]`` (real, on the compute device, float32/float64);
- ``stft``: a :class:`specinv_cli.dsp.stft.STFT` for the same settings, device and dtype;
- ``n_iter``: iterations (ignored by non-iterative methods);
- ``init``: complex starting estimate ``[..., F, T]`` (``mag`` times a unit phase) or ``None``
  (zero phase);
- ``length``: samples of the output signal (``None``: ``stft.default_length(T)``);
- ``monitor``: a :class:`Monitor`; iterative methods call ``monitor.step(i, est_mag)`` each
  iteration and stop when it returns ``True``.

Algorithms know nothing of files, the CLI or rich: progress leaves through the monitor's
callback.

Autograd: the GLA family (gla, fgla, agla, admm, dm, raar) runs its iterations on fused in-place
buffers, except when :func:`wants_grad` says a gradient is needed; then it runs the same
iteration on the out-of-place operators of :class:`Plain`, and gradients flow to ``mag``,
``init`` and options given as tensors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..dsp import metrics as _metrics
from ..dsp.stft import STFT, fit_frames, magnitude_projection
from ..util import interrupt

__all__ = ["Progress", "Monitor", "MonitorView", "prepare", "random_phase", "zero_phase", "unit",
           "wants_grad", "Plain", "real_view", "lerp_into", "sub_into", "axpy_into"]


@dataclass
class Progress:
    """One report from a running algorithm.

    ``metrics`` maps metric names to tensors of the batch shape ``mag.shape[:-2]`` (on CPU).
    """

    iteration: int
    total: int
    metrics: dict[str, torch.Tensor]
    done: bool = False


class Monitor:
    """Evaluates the metrics every ``eval_every`` iterations, reports them and decides early stop.

    Parameters
    ----------
    target : the magnitudes being matched, ``[..., F, T]``.
    n_iter : planned iterations (for progress totals).
    eval_every : evaluate every this many iterations (and at the last one).
    tol : stop when the relative change of the loss (``||est - target|| / ||target||``) between
        two evaluations is below ``tol`` for every item; ``0`` runs all iterations.
    callback : called with a :class:`Progress` at each evaluation.
    metrics : names from :data:`specinv_cli.dsp.metrics.METRICS` to compute.
    record : evaluate (and keep :attr:`history`) even without a callback or ``tol``.
    """

    def __init__(self, target: torch.Tensor | None = None, n_iter: int = 0, eval_every: int = 10,
                 tol: float = 0.0, callback: Callable[[Progress], None] | None = None,
                 metrics=("sc", "snr", "ser"), record: bool = False):
        self.target = target
        self.n_iter = int(n_iter)
        self.eval_every = max(1, int(eval_every))
        self.tol = float(tol)
        self.callback = callback
        self.metric_names = tuple(metrics)
        self.iterations = 0
        self.history: list[dict] = []
        self._prev_loss: torch.Tensor | None = None
        self.stopped_early = False
        self.record = bool(record)

    @property
    def active(self) -> bool:
        """Whether evaluations run: only when someone uses them (a callback, ``tol``, or a
        history asked for with ``record``), since each costs an STFT."""
        return self.target is not None and (self.callback is not None or self.tol > 0 or self.record)

    def due(self, i: int) -> bool:
        """Whether iteration ``i`` (1-based, completed) is evaluated."""
        return self.active and (i % self.eval_every == 0 or i == self.n_iter)

    def step(self, i: int, est_mag: torch.Tensor | Callable[[], torch.Tensor]) -> bool:
        """Record that ``i`` iterations are done; ``est_mag`` is the current estimate's STFT
        magnitude (or a function computing it, called only when an evaluation is due).
        Returns ``True`` when the algorithm should stop. Raises ``KeyboardInterrupt`` when a
        signal asked the run to end (:func:`specinv_cli.util.interrupt.check`)."""
        interrupt.check()
        self.iterations = i
        if not self.due(i):
            return False
        if callable(est_mag):
            est_mag = est_mag()
        return self.report(i, est_mag)

    def view(self, offset: int = 0, transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> "MonitorView":
        """This monitor as seen by a stage of a pipeline: iterations shifted by ``offset`` and
        estimates mapped by ``transform`` (e.g. linear magnitude -> mel) before evaluation."""
        return MonitorView(self, offset, transform)

    def report(self, i: int, est_mag: torch.Tensor, done: bool = False) -> bool:
        values = {k: v.detach().cpu() for k, v in _metrics.compute(est_mag, self.target, self.metric_names).items()}
        self.history.append({"iteration": i, **{k: v.tolist() for k, v in values.items()}})
        if self.callback is not None:
            self.callback(Progress(i, self.n_iter, values, done))
        if self.tol > 0 and "sc" in values:
            loss = torch.pow(10.0, values["sc"] / 20)
            prev, self._prev_loss = self._prev_loss, loss
            if prev is not None:
                rel = (prev - loss).abs() / prev.clamp_min(1e-30)
                if bool((rel < self.tol).all()):
                    self.stopped_early = True
                    return True
        return False


class MonitorView:
    """A stage's window on a :class:`Monitor` (see :meth:`Monitor.view`)."""

    def __init__(self, monitor: Monitor, offset: int = 0, transform=None):
        self.monitor, self.offset, self.transform = monitor, offset, transform

    @property
    def active(self) -> bool:
        return self.monitor.active

    @property
    def iterations(self) -> int:
        return self.monitor.iterations - self.offset

    @iterations.setter
    def iterations(self, value: int) -> None:
        self.monitor.iterations = value + self.offset

    @property
    def n_iter(self) -> int:
        return self.monitor.n_iter - self.offset

    def due(self, i: int) -> bool:
        return self.monitor.due(i + self.offset)

    def step(self, i: int, est_mag) -> bool:
        if self.transform is None:
            return self.monitor.step(i + self.offset, est_mag)
        t = self.transform
        return self.monitor.step(i + self.offset, (lambda: t(est_mag())) if callable(est_mag) else t(est_mag))

    def view(self, offset: int = 0, transform=None) -> "MonitorView":
        if transform is not None and self.transform is not None:
            inner, outer = transform, self.transform
            transform = lambda x: outer(inner(x))  # noqa: E731
        return MonitorView(self.monitor, self.offset + offset, transform or self.transform)


def prepare(mag: torch.Tensor, stft, init: torch.Tensor | None, length: int | None,
            monitor: "Monitor | None"):
    """The preamble the GLA family shares: ``(monitor, length, eps, x0)`` with a do-nothing
    monitor when none is given, ``stft.default_length(T)`` when no length is, the ``eps`` of
    the magnitude projection for ``mag``'s precision (``sqrt(tiny)``, so that ``eps^2`` is
    still a normal number) and the starting estimate (``mag`` with zero phase when no ``init``)."""
    if length is None:
        length = stft.default_length(mag.shape[-1])
    x0 = mag.to(stft.window.dtype.to_complex()) if init is None else init
    return monitor or Monitor(), length, torch.finfo(mag.dtype).tiny ** 0.5, x0


def wants_grad(mag: torch.Tensor, init: torch.Tensor | None = None, *options) -> bool:
    """Whether an algorithm must take its differentiable path: autograd is on and ``mag``,
    ``init`` or one of the ``options`` (those that are tensors) requires grad.

    >>> m = torch.ones(3, 2, requires_grad=True)
    >>> wants_grad(m), wants_grad(m.detach(), None, torch.tensor(0.9, requires_grad=True))
    (True, True)
    >>> with torch.no_grad():
    ...     wants_grad(m)
    False
    """
    if not torch.is_grad_enabled():
        return False
    return any(isinstance(t, torch.Tensor) and t.requires_grad for t in (mag, init, *options))


class Plain:
    """The operators of the GLA family as out-of-place torch ops, for autograd.

    ``p_a`` is the magnitude projection ``mag * x / max(|x|, eps)``, ``synth`` the ISTFT to
    ``length`` samples, ``analyze`` the STFT cropped or padded to ``mag``'s frame count, and
    ``project = analyze o synth`` (``P_C``; an STFT subclass's own ``project`` when it has one):
    what :class:`~specinv_cli.dsp.stft.Projector` computes in place, without buffers, so each
    call keeps what its backward needs. :meth:`measure` wraps what the monitor evaluates, so
    that no graph is built for it.

    >>> from specinv_cli.config import STFTConfig
    >>> op = STFT(STFTConfig(n_fft=16, hop_length=4))
    >>> mag = op.forward(torch.randn(32)).abs().requires_grad_()
    >>> ops = Plain(mag, op, 32, 1e-8)
    >>> ops.project(ops.p_a(mag.to(torch.complex64))).shape, ops.synth(mag + 0j).requires_grad
    (torch.Size([9, 9]), True)
    """

    def __init__(self, mag: torch.Tensor, stft: STFT, length: int, eps: float):
        self.mag, self.stft, self.length, self.eps = mag, stft, length, eps
        self.n_frames = mag.shape[-1]
        self._own_project = type(stft).project is not STFT.project

    def p_a(self, x: torch.Tensor) -> torch.Tensor:
        return magnitude_projection(self.mag, x, self.eps)

    def synth(self, spec: torch.Tensor) -> torch.Tensor:
        return self.stft.inverse(spec, self.length)

    def analyze(self, sig: torch.Tensor) -> torch.Tensor:
        return fit_frames(self.stft.forward(sig), self.n_frames)

    def project(self, spec: torch.Tensor) -> torch.Tensor:
        if self._own_project:  # e.g. RaggedSTFT, as Projector.project does
            return self.stft.project(spec, self.length)
        return self.analyze(self.synth(spec))

    @staticmethod
    def measure(fn: Callable, *args) -> Callable[[], torch.Tensor]:
        """For ``monitor.step``: a function returning ``|fn(*args)|``, computed without a graph."""
        def est() -> torch.Tensor:
            with torch.no_grad():
                return fn(*args).abs()
        return est


# The in-place paths' elementwise updates, on the real views of complex spectrograms (complex
# add/sub with alpha are several times slower than the same real ops on the CPU); ``out`` may
# alias an input.
def real_view(z: torch.Tensor) -> torch.Tensor:
    """``z`` as real ``[..., 2]`` (conjugation resolved), for the elementwise updates below."""
    return torch.view_as_real(z.resolve_conj())


def lerp_into(d: torch.Tensor, g: torch.Tensor, gamma: float, out: torch.Tensor) -> torch.Tensor:
    """``out = (1 - gamma) d + gamma g``."""
    torch.lerp(real_view(d), real_view(g), gamma, out=real_view(out))
    return out


def sub_into(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    """``out = a - b`` (a new tensor shaped like ``a`` when ``out`` is None)."""
    out = torch.empty_like(a) if out is None else out
    torch.sub(real_view(a), real_view(b), out=real_view(out))
    return out


def axpy_into(x: torch.Tensor, y: torch.Tensor, k: float, out: torch.Tensor | None) -> torch.Tensor:
    """``out = x + k y``."""
    out = torch.empty_like(x) if out is None else out
    torch.add(real_view(x), real_view(y), alpha=k, out=real_view(out))
    return out


def unit(z: torch.Tensor, eps: float = 1e-16) -> torch.Tensor:
    """``z / |z|`` with phase 0 where ``z == 0``."""
    mag = z.abs()
    return torch.where(mag > eps, z / mag.clamp_min(eps), torch.ones_like(z))


def random_phase(shape, generator: torch.Generator | None = None, device=None,
                 dtype=torch.complex64) -> torch.Tensor:
    """Unit-modulus tensor with phases uniform in [-pi, pi).

    Drawn on the CPU from ``generator`` so that a seed gives the same phases on every device.
    """
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    angle = (torch.rand(shape, generator=generator, dtype=real) * 2 - 1) * math.pi
    return torch.polar(torch.ones_like(angle), angle).to(device=device)


def zero_phase(shape, device=None, dtype=torch.complex64) -> torch.Tensor:
    return torch.ones(shape, device=device, dtype=dtype)
