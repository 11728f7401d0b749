"""Name -> algorithm registry.

Each entry names the module and function implementing a method, a one-line summary, the paper,
and its options with defaults. Nothing here imports torch: modules are imported when a method
is first used, so ``specinv --help`` and ``specinv methods`` stay fast.

Adding a method is one module in ``specinv_cli/algorithms/`` and one :class:`Method` below.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Option", "Method", "REGISTRY", "get_method", "method_names", "INITS"]

#: Starting phases an iterative method can be given (``--init``): ``spsi`` and ``pghi`` run
#: that non-iterative method (with its default options) and start from its phase.
INITS = ("random", "zero", "spsi", "pghi")

#: The defaults, chosen by measurement: the best median spectral convergence at 100 iterations
#: on ../shared/corpus with the reference STFT (benchmarks/methods.py; the table, with date and
#: machine, is benchmarks/results/methods_100.md).
DEFAULT_METHOD = "dm"
DEFAULT_INIT = "pghi"
#: For mel input: L-BFGS on the waveform against the mel, from the PGHI phase of the NNLS
#: magnitude: the best median mel SC of the cascades tried and of librosa's mel_to_audio
#: (benchmarks/mel.py; tables in benchmarks/results/mel_*.md).
DEFAULT_MEL_METHOD = "lbfgs"


@dataclass(frozen=True)
class Option:
    """A method option: ``name`` is the keyword argument; the CLI flag is ``--name`` with
    underscores as dashes."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    #: ``max`` itself is outside the valid range (e.g. a momentum in ``[0, 1)``).
    max_open: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any, method: str) -> Any:
        try:
            value = self.type(value)
        except (TypeError, ValueError):
            raise ValueError(f"`{self.name}` for {method} must be {self.type.__name__}, got {value!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"`{self.name}` for {method} must be a finite number, got {value}{self._range()}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"`{self.name}` for {method} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        if self.min is not None and value < self.min:
            raise ValueError(f"`{self.name}` for {method} must be >= {self.min}, got {value}")
        if self.max is not None and (value > self.max or (self.max_open and value == self.max)):
            raise ValueError(f"`{self.name}` for {method} must be {'<' if self.max_open else '<='} {self.max}, "
                             f"got {value}{self._range()}")
        return value

    def _range(self) -> str:
        if self.min is None and self.max is None:
            return ""
        lo = "-inf" if self.min is None else f"{self.min:g}"
        hi = "inf" if self.max is None else f"{self.max:g}"
        return f" (valid: [{lo}, {hi}{')' if self.max_open or self.max is None else ']'})"


@dataclass(frozen=True)
class Method:
    name: str
    module: str
    function: str
    summary: str
    paper: str
    options: tuple[Option, ...] = ()
    iterative: bool = True
    #: Whether the method's result depends on ``init`` (non-iterative ones ignore it).
    uses_init: bool = True
    #: For non-iterative methods: the function returning their unit-modulus phase
    #: ``[..., F, T]`` (used by ``--init NAME``).
    phase_function: str | None = None
    #: Options applied (unless given) when the start is informative (``--init spsi|pghi`` or a
    #: complex input) rather than random or zero.
    informed_init_options: dict = field(default_factory=dict)
    #: Written only with ``stft.forward``/``inverse``/``project`` and elementwise steps, so it
    #: runs unchanged on a :class:`~specinv_cli.dsp.ragged.RaggedSTFT` (cross-file batches of
    #: different lengths give each item its one-by-one result).
    ragged: bool = False
    #: ``check(options) -> message | None``: constraints across options (e.g. stability).
    check: Callable[[dict], str | None] | None = None
    #: ``fit(options, frames=, n_iter=, win_length=, hop=) -> (options, notes)``: options whose
    #: cost grows with their value, bounded by the input they apply to (see :meth:`fit_options`).
    fit: Callable[..., tuple] | None = None

    def load(self) -> Callable:
        mod = importlib.import_module(f"specinv_cli.algorithms.{self.module}")
        return getattr(mod, self.function)

    def load_phase(self) -> Callable:
        if self.phase_function is None:
            raise ValueError(f"method {self.name!r} does not provide an initial phase")
        mod = importlib.import_module(f"specinv_cli.algorithms.{self.module}")
        return getattr(mod, self.phase_function)

    def defaults(self) -> dict[str, Any]:
        return {o.name: o.default for o in self.options}

    def resolve_options(self, given: dict[str, Any]) -> dict[str, Any]:
        """Validate user options against this method's; unknown ones are an error."""
        by_name = {o.name: o for o in self.options}
        unknown = [k for k in given if k not in by_name]
        if unknown:
            flags = ", ".join(f"`{k}`" for k in unknown)
            accepted = ", ".join(f"`{o.name}`" for o in self.options) or "none"
            raise ValueError(f"option {flags} does not apply to method {self.name!r} (its options: {accepted})")
        out = self.defaults()
        for k, v in given.items():
            out[k] = by_name[k].check(v, self.name)
        problem = self.check(out) if self.check is not None else None
        if problem:
            raise ValueError(f"options of {self.name}: {problem}")
        return out

    def fit_options(self, options: dict[str, Any], *, frames: int, n_iter: int, win_length: int,
                    hop: int) -> tuple[dict[str, Any], dict[str, str]]:
        """``(options, notes)``: resolved ``options`` with those that would cost more than the
        input can use clamped to what it can (``notes``: option -> what was done, for
        ``result.inferred``). :func:`specinv_cli.api.invert` applies it to every call."""
        if self.fit is None:
            return options, {}
        return self.fit(dict(options), frames=int(frames), n_iter=int(n_iter), win_length=int(win_length),
                        hop=int(hop))


def _agla_stability(o: dict) -> str | None:
    """AGLA's inertia linearised around a fixed point: per eigenvalue l in [0, 1] of the GLA map,
    ``t_n = A t_{n-1} - B t_{n-2}`` with ``A = (1-g)(1+b) + g l (1+a)``, ``B = (1-g) b + g l a``.
    Stable while both roots lie inside the unit circle (Jury: ``|B| < 1``, ``|A| < 1 + B``) for
    every l; A and B are linear in l and the region is convex, so l = 0 and l = 1 suffice (at
    l = 1 one root is the fixed point's 1, the other B). Beyond it the iterates blow up (NaN) or
    stall near 0 dB."""
    a, b, g = o["alpha"], o["beta"], o["gamma"]
    b1 = (1 - g) * b + g * a
    a0, b0 = (1 - g) * (1 + b), (1 - g) * b
    if abs(b1) < 1 and abs(b0) < 1 and abs(a0) < 1 + b0:
        return None
    return (f"alpha {a:g}, beta {b:g}, gamma {g:g} make the iteration unstable; it needs "
            f"|(1-gamma) beta + gamma alpha| < 1 (here {b1:.4g}), |(1-gamma) beta| < 1 (here {b0:.4g}) and "
            f"|(1-gamma)(1+beta)| < 1 + (1-gamma) beta (here {abs(a0):.4g} vs {1 + b0:.4g}); "
            f"the defaults 0.99, 1.1, 1.25 are stable")


def _rtisi_fit(o: dict, *, frames: int, n_iter: int, win_length: int, hop: int):
    """RTISI-LA's block holds ``look_ahead + 1`` frames, each step updates all of them, and
    there are ``frames + look_ahead`` steps: the cost grows as ``frames x look_ahead``. Past the
    last frame there is nothing to look ahead to, and past ``n_iter - 1`` every frame would get
    more than ``n_iter`` updates, so larger values are clamped (never below the default)."""
    la = o["look_ahead"]
    default = (win_length - 1) // hop
    most = max(min(frames - 1, max(n_iter, 1) - 1), default)
    if la > most:
        o["look_ahead"] = most
        return o, {"look_ahead": f"{most} (clamped from {la}: the input has {frames} frames, "
                                 f"{n_iter} updates per frame)"}
    return o, {}


def _lbfgs_fit(o: dict, *, frames: int, n_iter: int, win_length: int, hop: int):
    """torch's L-BFGS keeps at most one pair of vectors per step but allocates a list of
    ``history_size`` slots up front: more than ``n_iter`` slots are never used."""
    h = o["history_size"]
    most = max(int(n_iter), 1)
    if h > most:
        o["history_size"] = most
        return o, {"history_size": f"{most} (clamped from {h}: {n_iter} iterations keep at most that many)"}
    return o, {}


_ALPHA = Option("alpha", float, 0.99, "FGLA momentum (0 gives plain GLA; 1 and above do not converge)",
                min=0.0, max=1.0, max_open=True)

REGISTRY: dict[str, Method] = {m.name: m for m in [
    Method("gla", "gla", "gla", "Griffin-Lim: alternating projections, monotone",
           "Griffin & Lim, IEEE TASSP 1984", ragged=True),
    Method("fgla", "gla", "fgla", "Fast Griffin-Lim: GLA with an inertial (momentum) step",
           "Perraudin, Balazs & Søndergaard, WASPAA 2013", (_ALPHA,), ragged=True),
    Method("agla", "agla", "agla", "Accelerated Griffin-Lim: two-step inertia on top of FGLA",
           "Nenov, Nguyen & Balazs, ICASSP 2023 (arXiv 2306.12504)",
           (Option("alpha", float, 0.99, "AGLA momentum of c_n (as FGLA's alpha)", min=0.0),
            Option("beta", float, 1.1, "AGLA momentum of d_n", min=0.0),
            Option("gamma", float, 1.25, "AGLA relaxation of the GLA step (1: FGLA); stable only while "
                   "(1-gamma)*beta + gamma*alpha < 1", min=0.0)), ragged=True, check=_agla_stability),
    Method("admm", "admm", "admm", "GLA-like phase recovery by ADMM",
           "Masuyama, Yatabe & Oikawa, IEEE SPL 2019",
           (Option("rho", float, 0.1, "ADMM penalty parameter", min=0.0),), ragged=True),
    Method("rtisi-la", "rtisi", "rtisi_la", "Real-time iterative inversion with look-ahead, frame by frame (n_iter: updates per frame)",
           "Zhu, Beauregard & Wyse, IEEE TASLP 2007",
           (Option("look_ahead", int, -1, "frames of look-ahead (-1: (win-1)//hop)", min=-1),
            Option("asymmetric_window", bool, True, "asymmetric analysis window on the newest frame"),
            Option("frame_init", str, "partial", "phase of entering frames: from the partial reconstruction (the "
                   "paper's) or from --init (the default when --init is spsi/pghi or the input is complex)",
                   choices=("partial", "init"))),
           informed_init_options={"frame_init": "init"}, fit=_rtisi_fit),
    Method("spsi", "spsi", "spsi", "Single pass spectrogram inversion (non-iterative)",
           "Beauregard, Harish & Wyse, IEEE DSP 2015", iterative=False, uses_init=False,
           phase_function="spsi_phase"),
    Method("pghi", "pghi", "pghi", "Phase gradient heap integration (non-iterative)",
           "Průša, Balazs & Søndergaard, IEEE/ACM TASLP 2017", 
           (Option("rel_tol", float, 1e-5, "coefficients below rel_tol x max get random phase", min=0.0),),
           iterative=False, uses_init=False, phase_function="pghi_phase"),
    Method("lbfgs", "lbfgs", "lbfgs", "L-BFGS on the waveform against the target magnitude",
           "Decorsière, Søndergaard, MacDonald & Dau, IEEE/ACM TASLP 2015",
           (Option("lr", float, 1.0, "L-BFGS step length", min=0.0),
            Option("history_size", int, 10, "L-BFGS memory", min=1),
            Option("power", float, 1.0, "compare |STFT|^power (2: the paper's power spectrogram)", min=0.1)),
           fit=_lbfgs_fit),
    Method("dm", "dm", "dm", "Difference map, then AGLA (or FGLA) for the remaining iterations",
           "Peer, Welker & Gerkmann, IWAENC 2022",
           (Option("beta", float, 1.0, "difference-map relaxation (1: one STFT pair per iteration, else two)",
                   min=0.0),
            Option("dm_iters", int, -1, "iterations run as DM before the finisher takes over "
                   "(-1: half of --iters; >= --iters: all DM)", min=-1),
            Option("finisher", str, "agla", "descent method after DM", choices=("agla", "fgla"))), ragged=True),
    Method("raar", "dm", "raar", "Relaxed averaged alternating reflections",
           "Luke 2005; compared in Peer, Welker & Gerkmann, IWAENC 2022",
           (Option("beta", float, 0.95, "RAAR relaxation (1: Douglas-Rachford)", min=0.0, max=1.0),), ragged=True),
]}


def method_names() -> list[str]:
    return list(REGISTRY)


def get_method(name: str) -> Method:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(REGISTRY)}") from None


def all_options() -> dict[str, Option]:
    """Every option of every method, by name (first definition wins for the CLI help)."""
    out: dict[str, Option] = {}
    for m in REGISTRY.values():
        for o in m.options:
            out.setdefault(o.name, o)
    return out
