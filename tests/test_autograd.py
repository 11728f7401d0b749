"""Autograd through the GLA family (gla, fgla, agla, admm, dm, raar).

When a gradient is needed (:func:`specinv_cli.algorithms.base.wants_grad`) each method runs its
iteration on the out-of-place operators of :class:`~specinv_cli.algorithms.base.Plain`; otherwise
on the fused in-place buffers. The plain path is the reference for the fused one: both must give
the same waveform up to float rounding, the plain path's gradients must match finite differences,
and the fused path must stay the one taken when no gradient is needed.
"""
import math

import pytest
import torch

from conftest import SPEECH, GUITAR, load_clip
from specinv_cli.algorithms.admm import admm
from specinv_cli.algorithms.agla import agla
from specinv_cli.algorithms.base import Monitor, Plain, wants_grad
from specinv_cli.algorithms.dm import dm, raar
from specinv_cli.algorithms.gla import fgla, gla
from specinv_cli.config import STFTConfig
from specinv_cli.dsp.ragged import RaggedSTFT
from specinv_cli.dsp.stft import STFT, Projector

#: (id, function, options): the six methods, DM also with beta != 1 (its two-projection loop)
#: and the FGLA finisher, and without a finisher.
METHODS = [
    ("gla", gla, {}),
    ("fgla", fgla, {}),
    ("agla", agla, {}),
    ("admm", admm, {}),
    ("dm", dm, {}),
    ("dm-beta0.7-fgla", dm, {"beta": 0.7, "finisher": "fgla"}),
    ("raar", raar, {}),
    ("dm-only", dm, {"dm_iters": 100}),
]
IDS = [m[0] for m in METHODS]

#: Options of each method that may be tensors (e.g. learnable), with test values.
TENSOR_OPTIONS = {
    "fgla": {"alpha": 0.9},
    "agla": {"alpha": 0.9, "beta": 1.1, "gamma": 1.2},
    "admm": {"rho": 0.3},
    "dm-beta0.7-fgla": {"beta": 0.7},
    "raar": {"beta": 0.8},
}

N_ITER = 6
EPS64 = torch.finfo(torch.float64).eps


def _speech(seconds=0.5):
    name, _, offset = SPEECH
    return torch.from_numpy(load_clip(name, seconds, offset)).double()


def _random_phase(shape, seed=0):
    angle = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.polar(torch.ones(shape, dtype=torch.float64), angle * 2 * math.pi)


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def _tolerance(n_iter, n_fft):
    """Relative L2 distance allowed between two float64 runs of the same iteration that round
    differently (plain torch ops vs fused buffers and numba kernels). Each iteration is two
    FFT-based transforms, each with relative rounding error about ``eps log2(n_fft)`` (the FFT's
    L2 bound); accumulated linearly that is ``2 n_iter log2(n_fft) eps``. The iterations are not
    contractions: the magnitude projection amplifies a perturbation by ``mag / |c|`` where the
    estimate ``c`` is small, and the momenta (0.99, 1.1) and RAAR's reflections add to it, so a
    growth factor of 8 is allowed on top. A wrong iteration (an off-by-one, a wrong momentum
    point or relaxation) differs by orders of magnitude more than this."""
    return 8 * 2 * n_iter * math.log2(n_fft) * EPS64


def _run(fn, mag, op, grad, **kw):
    """``fn`` on the plain path (``grad``: with ``mag.requires_grad``) or the fused one."""
    m = mag.detach().clone().requires_grad_(grad)
    return fn(m, op, **kw)


# --- the plain path is a reference for the fused one -----------------------------------------
@pytest.mark.parametrize("name, fn, kw", METHODS, ids=IDS)
def test_plain_path_matches_fused_path_in_float64(name, fn, kw, kernels, corpus):
    """Same waveform from the differentiable and the fused path (both numba and plain torch
    in-place paths, via the ``kernels`` fixture), from random phase on a speech excerpt."""
    x = _speech()
    op = STFT(STFTConfig(), dtype=torch.float64)
    mag = op.forward(x).abs()
    init = mag * _random_phase(mag.shape)
    args = dict(n_iter=N_ITER, init=init, length=x.shape[-1], **kw)
    fused = _run(fn, mag, op, False, **args)
    plain = _run(fn, mag, op, True, **args)
    assert plain.requires_grad and not fused.requires_grad
    assert plain.shape == fused.shape == x.shape
    err = _rel(plain.detach(), fused)
    assert err <= _tolerance(N_ITER, op.n_fft), f"{name}: relative distance {err:.3g}"


@pytest.mark.parametrize("name, fn, kw", [m for m in METHODS if m[0] != "gla"], ids=IDS[1:])
def test_plain_path_matches_fused_path_on_a_ragged_batch(name, fn, kw, corpus):
    """Two items of different lengths (RaggedSTFT, whose own ``project`` the plain path uses),
    with the options given as tensors on both paths."""
    cfg = STFTConfig(n_fft=512, hop_length=128)
    a = _speech(0.4)
    g_name, _, g_offset = GUITAR
    b = torch.from_numpy(load_clip(g_name, 0.3, g_offset)).double()
    alone = STFT(cfg, dtype=torch.float64)
    frames = [alone.n_frames(len(a)), alone.n_frames(len(b))]
    op = RaggedSTFT(cfg, frames, dtype=torch.float64)
    mag = torch.zeros(2, alone.n_freqs, max(frames), dtype=torch.float64)
    mag[0, :, :frames[0]] = alone.forward(a).abs()
    mag[1, :, :frames[1]] = alone.forward(b).abs()
    init = mag * _random_phase(mag.shape, seed=1)
    opts = {k: torch.tensor(v, dtype=torch.float64) for k, v in TENSOR_OPTIONS.get(name, {}).items()}
    args = dict(n_iter=N_ITER, init=init, **{**kw, **opts})
    fused = _run(fn, mag, op, False, **args)
    plain = _run(fn, mag, op, True, **args)
    err = _rel(plain.detach(), fused)
    assert err <= _tolerance(N_ITER, cfg.n_fft), f"{name}: relative distance {err:.3g}"


class _StopAt(Monitor):
    """Evaluates every iteration and asks to stop at iteration ``k``."""

    def __init__(self, target, n_iter, k):
        super().__init__(target, n_iter, eval_every=1, record=True)
        self.k = k

    def report(self, i, est_mag, done=False):
        super().report(i, est_mag, done)
        return i >= self.k


@pytest.mark.parametrize("name, fn, kw, stop", [(*m, 3) for m in METHODS] + [(*METHODS[4], 5)],
                         ids=IDS + ["dm-stop-in-finisher"])
def test_plain_path_honours_the_monitor(name, fn, kw, stop, corpus):
    """The plain path reports the same iterations (and metrics) as the fused one and stops where
    the monitor says; for DM (4 of 8 iterations as DM) also inside the finisher."""
    x = _speech(0.3)
    op = STFT(STFTConfig(), dtype=torch.float64)
    mag = op.forward(x).abs()
    init = mag * _random_phase(mag.shape)
    n = 8
    runs = {}
    for grad in (False, True):
        mon = _StopAt(mag, n, stop)
        y = _run(fn, mag, op, grad, n_iter=n, init=init, length=x.shape[-1], monitor=mon, **kw)
        runs[grad] = (y.detach(), mon)
    (yf, mf), (yp, mp) = runs[False], runs[True]
    assert mf.iterations == mp.iterations == stop
    assert [h["iteration"] for h in mp.history] == [h["iteration"] for h in mf.history] == list(range(1, stop + 1))
    for hf, hp in zip(mf.history, mp.history):
        assert abs(hf["sc"] - hp["sc"]) < 1e-6, (hf, hp)  # dB of two float64 runs
    assert _rel(yp, yf) <= _tolerance(stop, op.n_fft)


# --- gradients ---------------------------------------------------------------------------------
def _small():
    """n_fft 16, hop 4, 13 frames; magnitudes in [0.5, 1.5] (away from zero, so that the
    projection is smooth) and a fixed random phase."""
    op = STFT(STFTConfig(n_fft=16, hop_length=4), dtype=torch.float64)
    length = 48
    shape = (op.n_freqs, op.n_frames(length))
    mag = 0.5 + torch.rand(shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    return op, length, mag, _random_phase(shape, seed=6)


@pytest.mark.parametrize("name, fn, kw", METHODS, ids=IDS)
def test_gradcheck_wrt_magnitude(name, fn, kw):
    op, length, mag, phase = _small()
    n_iter = 4 if fn is dm else 3  # DM: 2 DM iterations, then 2 of the finisher

    def f(m):
        return fn(m, op, n_iter=n_iter, init=m * phase, length=length, **kw)

    assert torch.autograd.gradcheck(f, (mag.clone().requires_grad_(),))


@pytest.mark.parametrize("name", sorted(TENSOR_OPTIONS))
def test_gradcheck_wrt_tensor_options(name):
    """Gradients w.r.t. the magnitude and every option given as a tensor (FGLA's learnable
    momentum ``alpha`` as in unrolled Griffin-Lim, AGLA's three, ADMM's rho, DM's and RAAR's beta)."""
    _, fn, kw = next(m for m in METHODS if m[0] == name)
    op, length, mag, phase = _small()
    names = sorted(TENSOR_OPTIONS[name])
    values = [torch.tensor(TENSOR_OPTIONS[name][k], dtype=torch.float64, requires_grad=True) for k in names]
    kw = {k: v for k, v in kw.items() if k not in names}
    n_iter = 4 if fn is dm else 3

    def f(m, *opts):
        return fn(m, op, n_iter=n_iter, init=m * phase, length=length, **kw, **dict(zip(names, opts)))

    assert torch.autograd.gradcheck(f, (mag.clone().requires_grad_(), *values))


@pytest.mark.parametrize("name, fn, kw", METHODS, ids=IDS)
def test_gradient_flows_in_float32(name, fn, kw, corpus):
    """A spectral-convergence loss of the output, backpropagated to a float32 magnitude (and to
    a learnable momentum for FGLA): non-zero and finite."""
    x = _speech(0.25).float()
    op = STFT(STFTConfig(n_fft=512, hop_length=128))
    target = op.forward(x).abs()
    mag = target.clone().requires_grad_()
    opts = {k: torch.tensor(v, requires_grad=True) for k, v in TENSOR_OPTIONS.get(name, {}).items()}
    init = (target * _random_phase(target.shape).to(torch.complex64))
    y = fn(mag, op, n_iter=5, init=init, length=x.shape[-1], **{**kw, **opts})
    assert y.dtype == torch.float32
    loss = (op.forward(y).abs() - target).norm() / target.norm()
    loss.backward()
    for t in (mag, *opts.values()):
        assert t.grad is not None and bool(torch.isfinite(t.grad).all()), name
        assert float(t.grad.abs().max()) > 0, name


# --- the fused path stays the one taken without autograd -------------------------------------------
FUSED_STEPS = ("gla_step", "agla_step", "raar_step", "admm_step")


@pytest.fixture
def calls(monkeypatch):
    """Counts of calls to the plain path's projection and to the Projector's fused steps."""
    rec = {"plain": 0, "fused": 0}
    p_a = Plain.p_a

    def counted_p_a(self, x):
        rec["plain"] += 1
        return p_a(self, x)

    monkeypatch.setattr(Plain, "p_a", counted_p_a)
    for step in FUSED_STEPS:
        def counted(self, *a, _orig=getattr(Projector, step), **k):
            rec["fused"] += 1
            return _orig(self, *a, **k)
        monkeypatch.setattr(Projector, step, counted)
    return rec


@pytest.mark.parametrize("mode", ["no_grad", "no_requires_grad", "grad"])
@pytest.mark.parametrize("name, fn, kw", METHODS, ids=IDS)
def test_fused_path_is_taken_unless_a_gradient_is_needed(name, fn, kw, mode, calls, kernels):
    """Under ``torch.no_grad()`` or without ``requires_grad`` no plain projection runs (and, with
    the numba kernels, the fused steps do); with a gradient needed only the plain path runs.
    Options given as tensors that need no gradient go to the fused path as floats: same result."""
    op = STFT(STFTConfig(n_fft=64, hop_length=16), dtype=torch.float64)
    x = torch.randn(2, 1024, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mag = op.forward(x).abs().requires_grad_(mode != "no_requires_grad")
    init = mag.detach() * _random_phase(mag.shape)
    floats = TENSOR_OPTIONS.get(name, {})
    tensors = {k: torch.tensor(v, dtype=torch.float64, requires_grad=mode == "no_grad") for k, v in floats.items()}
    args = dict(n_iter=4, init=init, length=1024)
    with torch.no_grad() if mode == "no_grad" else torch.enable_grad():
        assert wants_grad(mag, init, *tensors.values()) == (mode == "grad")
        y = fn(mag, op, **args, **{**kw, **tensors})
    if mode == "grad":
        assert calls["plain"] > 0 and calls["fused"] == 0 and y.requires_grad
        return
    assert calls["plain"] == 0 and not y.requires_grad
    if kernels == "jit":
        assert calls["fused"] > 0
    assert torch.equal(y, fn(mag.detach(), op, **args, **{**kw, **floats}))


def test_wants_grad():
    m = torch.ones(2, 2)
    alpha = torch.tensor(0.5, requires_grad=True)
    assert not wants_grad(m, None, 0.99, "agla")
    assert wants_grad(m, None, 0.99, alpha)
    assert wants_grad(m.requires_grad_(), None)
    assert wants_grad(torch.ones(2), torch.ones(2, dtype=torch.complex64, requires_grad=True))
    with torch.no_grad():
        assert not wants_grad(m, None, alpha)
