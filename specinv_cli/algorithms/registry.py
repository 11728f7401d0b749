"""Name -> algorithm registry.

Each entry names the module and function implementing a method, a one-line summary, the paper,
and its options with defaults. Nothing here imports torch: modules are imported when a method
is first used, so ``specinv --help`` and ``specinv methods`` stay fast.

Adding a method is one module in ``specinv_cli/algorithms/`` and one :class:`Method` below.

Methods from elsewhere
----------------------
:func:`register_method` adds one from Python (then ``invert(..., method=NAME)`` runs it). An
installed package offers methods to every program, the CLI included, through the entry-point
group ``specinv.methods`` (:data:`ENTRY_POINT_GROUP`), e.g. in its ``pyproject.toml``::

    [project.entry-points."specinv.methods"]
    halfgla = "mypkg.spec:METHOD"      # a Method, or a callable that calls register_method

Each entry point names either a :class:`Method` (registered as it is) or a callable taking no
arguments that registers methods with :func:`register_method` when called. They are loaded
once, the first time the table is read (:func:`get_method`, :func:`method_names`,
:func:`all_options`, :data:`REGISTRY`), never at import; ``SPECINV_NO_PLUGINS=1`` skips them.
One that fails to load is a one-line warning naming it and the error, and the rest goes on.

The CLI builds ``specinv invert``'s flags from every method's options, so the entry points are
loaded whenever the CLI starts (``--help`` too): the object an entry point names should be
light, a spec that declares the options and points to the implementation by name (``Method``'s
``module``/``function``, or ``register_method(name, "mypkg.impl:fn", ...)``), which is imported
only when the method runs. A plugin whose spec imports torch makes every ``specinv`` start
(``--help`` included) pay for importing torch.
"""
from __future__ import annotations

import dataclasses
import importlib
import math
import os
import re
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

__all__ = ["Option", "Method", "REGISTRY", "get_method", "method_names", "all_options", "INITS",
           "register_method", "unregister_method", "ENTRY_POINT_GROUP", "RESERVED_OPTION_NAMES"]

#: The entry-point group installed packages declare their methods in (see the module docstring).
ENTRY_POINT_GROUP = "specinv.methods"

#: Starting phases an iterative method can be given (``--init``): ``spsi`` and ``pghi`` run
#: that non-iterative method (with its default options) and start from its phase.
INITS = ("random", "zero", "spsi", "pghi")

#: The defaults, chosen by measurement: the best median spectral convergence at 100 iterations
#: on ../shared/corpus with the reference STFT (benchmarks/methods.py; the table, with date and
#: machine, is benchmarks/results/methods_100.md).
DEFAULT_METHOD = "dm"
#: The starting phase of iterative methods when none is given (``--init``), chosen with it.
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
        """``value`` converted to the option's type and checked against its range (``ValueError``
        naming the option otherwise). A 0-dim torch tensor given to an int or float option is
        checked on its value and returned unchanged, so a learnable option (a tensor with
        ``requires_grad``) reaches the algorithm with its autograd graph.

        >>> Option("alpha", float, 0.99, "momentum", min=0.0, max=1.0, max_open=True).check("0.5", "fgla")
        0.5
        """
        torch = sys.modules.get("torch")  # a tensor can only exist once torch is imported
        if torch is not None and isinstance(value, torch.Tensor):
            return self._check_tensor(value, method)
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

    def _check_tensor(self, value, method: str):
        if value.dim() != 0:
            raise ValueError(f"`{self.name}` for {method} must be a number or a 0-dim tensor, got a tensor of "
                             f"shape {tuple(value.shape)}")
        if value.is_complex():
            raise ValueError(f"`{self.name}` for {method} must be real, got a complex tensor")
        raw = value.detach().item()
        if self.type not in (int, float):  # bool/str options are settings, not learnable: plain values
            return self.check(raw, method)
        if self.type is int and not (math.isfinite(raw) and raw == int(raw)):
            raise ValueError(f"`{self.name}` for {method} must be int, got a tensor holding {raw}")
        self.check(raw, method)
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
    #: The algorithm itself, when it is given as a callable (:func:`register_method`) rather
    #: than found by ``module``/``function``.
    impl: Callable | None = field(default=None, compare=False, repr=False)
    #: Where a method that is not built in comes from: the distribution of its entry point
    #: (group ``specinv.methods``), or ``python`` (:func:`register_method` called by a program).
    #: ``None`` for the built-in ones.
    origin: str | None = None
    #: Its iterations run on differentiable ops when a gradient is wanted (see
    #: :func:`specinv_cli.algorithms.base.wants_grad`): :mod:`specinv_cli.functional` lets
    #: gradients through only such methods.
    differentiable: bool = False

    @property
    def builtin(self) -> bool:
        return self.origin is None

    def _module(self):
        # a dotted name is a full module path; a plain one names a built-in module of this
        # package (for built-in methods) or a top-level module (for the others)
        name = self.module
        if "." not in name and self.origin is None:
            name = f"specinv_cli.algorithms.{name}"
        return importlib.import_module(name)

    def load(self) -> Callable:
        """The algorithm function (imported now, on first use)."""
        if self.impl is not None:
            return self.impl
        return getattr(self._module(), self.function)

    def load_phase(self) -> Callable:
        if self.phase_function is None:
            raise ValueError(f"method {self.name!r} does not provide an initial phase")
        return getattr(self._module(), self.phase_function)

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

_BUILTIN: dict[str, Method] = {m.name: m for m in [
    Method("gla", "gla", "gla", "Griffin-Lim: alternating projections, monotone",
           "Griffin & Lim, IEEE TASSP 1984", ragged=True, differentiable=True),
    Method("fgla", "gla", "fgla", "Fast Griffin-Lim: GLA with an inertial (momentum) step",
           "Perraudin, Balazs & Søndergaard, WASPAA 2013", (_ALPHA,), ragged=True, differentiable=True),
    Method("agla", "agla", "agla", "Accelerated Griffin-Lim: two-step inertia on top of FGLA",
           "Nenov, Nguyen & Balazs, ICASSP 2023 (arXiv 2306.12504)",
           (Option("alpha", float, 0.99, "AGLA momentum of c_n (as FGLA's alpha)", min=0.0),
            Option("beta", float, 1.1, "AGLA momentum of d_n", min=0.0),
            Option("gamma", float, 1.25, "AGLA relaxation of the GLA step (1: FGLA); stable only while "
                   "(1-gamma)*beta + gamma*alpha < 1", min=0.0)), ragged=True, check=_agla_stability, differentiable=True),
    Method("admm", "admm", "admm", "GLA-like phase recovery by ADMM",
           "Masuyama, Yatabe & Oikawa, IEEE SPL 2019",
           (Option("rho", float, 0.1, "ADMM penalty parameter", min=0.0),), ragged=True, differentiable=True),
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
            # 5: the same quality as 10 on the corpus at less memory traffic (benchmarks/results/lbfgs_history.md)
            Option("history_size", int, 5, "L-BFGS memory (curvature pairs kept)", min=1),
            Option("power", float, 1.0, "compare |STFT|^power (2: the paper's power spectrogram)", min=0.1)),
           fit=_lbfgs_fit),
    Method("dm", "dm", "dm", "Difference map, then AGLA (or FGLA) for the remaining iterations",
           "Peer, Welker & Gerkmann, IWAENC 2022",
           (Option("beta", float, 1.0, "difference-map relaxation (1: one STFT pair per iteration, else two)",
                   min=0.0),
            Option("dm_iters", int, -1, "iterations run as DM before the finisher takes over "
                   "(-1: half of --iters; >= --iters: all DM)", min=-1),
            Option("finisher", str, "agla", "descent method after DM", choices=("agla", "fgla"))), ragged=True, differentiable=True),
    Method("raar", "dm", "raar", "Relaxed averaged alternating reflections",
           "Luke 2005; compared in Peer, Welker & Gerkmann, IWAENC 2022",
           (Option("beta", float, 0.95, "RAAR relaxation (1: Douglas-Rachford)", min=0.0, max=1.0),), ragged=True, differentiable=True),
]}


#: The table itself: the built-in methods, then those registered (plugins, register_method).
_TABLE: dict[str, Method] = dict(_BUILTIN)
_LOCK = threading.RLock()
#: "new" until the entry points are read, "loading" while they are, then "done".
_PLUGINS = ["new"]
#: The distribution whose entry point is being loaded (the ``origin`` of what it registers).
_LOADING_FROM: list[str] = []


class _Registry(Mapping):
    """Name -> :class:`Method`, read-only; reading it first loads the plugins (once). Change
    it with :func:`register_method` / :func:`unregister_method`."""

    def __getitem__(self, name: str) -> Method:
        _load_plugins()
        return _TABLE[name]

    def __iter__(self) -> Iterator[str]:
        _load_plugins()
        return iter(list(_TABLE))

    def __len__(self) -> int:
        _load_plugins()
        return len(_TABLE)

    def __contains__(self, name: object) -> bool:
        _load_plugins()
        return name in _TABLE

    def __repr__(self) -> str:
        return f"REGISTRY({', '.join(self)})"


#: Every method by name, built-in and registered (plugins are loaded on first access).
REGISTRY: Mapping[str, Method] = _Registry()


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


# --- methods from elsewhere ---------------------------------------------------------------------

_METHOD_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}\Z")
_OPTION_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}\Z")
_OPTION_TYPES = (bool, int, float, str)

#: Names a method option cannot take, since each is also passed as a keyword to
#: :func:`specinv_cli.api.invert` (its own parameters and :class:`~specinv_cli.options.InversionOptions`'
#: fields) or to the algorithm (its signature, :mod:`specinv_cli.algorithms.base`), or is a flag
#: of ``specinv invert`` (where every method option is ``--name``).
RESERVED_OPTION_NAMES = frozenset("""
    spec options config input_kind layout length frames callback source
    method n_iter init seed tol eval_every refine nnls_iters precision device history errors method_options
    mag stft monitor domain domain_target
    inputs output output_dir example iters key subtype normalize metric recursive from_list skip_existing
    batch_size shard block block_frames overlap block_overlap history_file max_memory json as_json quiet
    debug help version threads
    config_name n_fft hop_length win_length window center no_center pad_mode sample_rate sr n_mels fmin
    fmax mel_scale mel_norm mel_power compression normalization clamp stats
""".split())


def _fail(name: str, why: str) -> None:
    raise ValueError(f"cannot register method {name!r}: {why}")


def _as_options(name: str, options) -> tuple[Option, ...]:
    if isinstance(options, Mapping):
        out = []
        for k, default in options.items():
            if default is None or type(default) not in _OPTION_TYPES:
                _fail(name, f"option `{k}` needs a default of type bool, int, float or str (its type is "
                            f"taken from it), got {default!r}; give an Option for anything else")
            out.append(Option(str(k), type(default), default, ""))
        return tuple(out)
    if isinstance(options, (str, bytes)):
        _fail(name, f"`options` must be a sequence of Option or a dict name -> default, got {options!r}")
    try:
        out = tuple(options)
    except TypeError:
        _fail(name, f"`options` must be a sequence of Option or a dict name -> default, got {options!r}")
    for o in out:
        if not isinstance(o, Option):
            _fail(name, f"`options` must hold Option objects, got {o!r}")
    return out


def _validate(m: Method, replace: bool) -> None:
    """Refuse a method the table, the API or the CLI could not take (``ValueError``)."""
    if not isinstance(m.name, str) or not _METHOD_NAME.match(m.name):
        _fail(m.name, "a method name is 1 to 40 characters: a lowercase letter, then lowercase letters, "
                      "digits, '-' or '_'")
    if m.name in _TABLE and not replace:
        where = "a built-in method" if _TABLE[m.name].builtin else f"already registered (from {_TABLE[m.name].origin})"
        _fail(m.name, f"the name is {where}; pass replace=True to replace it")
    if m.impl is None and not (isinstance(m.module, str) and m.module and isinstance(m.function, str) and m.function):
        _fail(m.name, "a Method needs a `module` and `function` naming its algorithm (or a callable)")
    seen = set()
    others = {}  # option name -> (type, methods) among the other methods: the CLI has one flag per name
    for other in _TABLE.values():
        if other.name != m.name:
            for o in other.options:
                others.setdefault(o.name, (o.type, []))[1].append(other.name)
    for o in m.options:
        if not isinstance(o.name, str) or not _OPTION_NAME.match(o.name):
            _fail(m.name, f"option name {o.name!r} must be a lowercase identifier (a letter, then letters, "
                          f"digits or '_'; up to 40)")
        if o.name in seen:
            _fail(m.name, f"option `{o.name}` is given twice")
        seen.add(o.name)
        if o.name in RESERVED_OPTION_NAMES:
            _fail(m.name, f"option `{o.name}` clashes with a keyword of invert() or a flag of 'specinv invert' "
                          f"(see RESERVED_OPTION_NAMES in {__name__})")
        if o.type not in _OPTION_TYPES:
            _fail(m.name, f"option `{o.name}` has type {getattr(o.type, '__name__', o.type)!r}; "
                          f"options are bool, int, float or str")
        if o.name in others and others[o.name][0] is not o.type:
            t, users = others[o.name]
            _fail(m.name, f"option `{o.name}` is {o.type.__name__} here but {t.__name__} for {', '.join(users)}; "
                          f"options of the same name share one CLI flag, so they need the same type")
        try:
            o.check(o.default, m.name)
        except ValueError as e:
            _fail(m.name, f"the default of option `{o.name}` is invalid: {e}")


def _add(m: Method, replace: bool) -> Method:
    with _LOCK:
        _validate(m, replace)
        _TABLE[m.name] = m
    return m


def register_method(name: str, fn, options=(), *, summary: str = "", paper: str = "", iterative: bool = True,
                    ragged: bool = False, replace: bool = False,
                    check: Callable[[dict], str | None] | None = None, differentiable: bool = False) -> Method:
    """Add an algorithm to the table: ``invert(..., method=name)`` and ``specinv invert -m name``
    then run it, and ``specinv methods`` lists it.

    Parameters
    ----------
    name : lowercase letters, digits, ``-`` and ``_``, starting with a letter.
    fn : the algorithm, ``fn(mag [..., F, T], stft, *, n_iter, init, length, monitor, **options)
        -> waveform [..., length]`` (see :mod:`specinv_cli.algorithms.base`); or a string
        ``"package.module:function"``, imported only when the method first runs (what a plugin's
        light spec module gives, so that loading it imports nothing heavy).
    options : a sequence of :class:`Option`, or a dict name -> default (the type is the default's:
        bool, int, float or str). Names must not be keywords of :func:`~specinv_cli.api.invert`
        or flags of ``specinv invert`` (:data:`RESERVED_OPTION_NAMES`); an option of the same name
        as another method's must have its type (they share one CLI flag).
    summary, paper : shown by ``specinv methods``.
    iterative : whether ``n_iter`` applies (a non-iterative method ignores ``n_iter`` and ``init``).
    ragged : ``fn`` uses only ``stft.forward``/``inverse``/``projector`` and elementwise steps, so
        it may run on a cross-file ragged batch (see :attr:`Method.ragged`).
    differentiable : ``fn`` runs differentiable ops when a gradient is wanted, so
        :mod:`specinv_cli.functional` lets gradients through it.
    replace : replace a method of that name (a built-in one too) instead of refusing.
    check : ``check(options) -> message | None``: constraints across options.

    Returns the :class:`Method`. Inside a plugin's entry point the method's ``origin`` is that
    plugin's distribution, else ``python``.

    Example
    -------
    >>> from specinv_cli.algorithms.gla import gla
    >>> def half_gla(mag, stft, *, n_iter, init, length, monitor, fraction=0.5):
    ...     return gla(mag, stft, n_iter=round(fraction * n_iter), init=init, length=length, monitor=monitor)
    >>> m = register_method("half-gla", half_gla, {"fraction": 0.5}, summary="GLA for part of the iterations")
    >>> m.options[0].type, get_method("half-gla") is m
    (<class 'float'>, True)
    >>> unregister_method("half-gla")
    """
    if isinstance(fn, str):
        module, sep, function = fn.partition(":")
        if not (sep and module and function):
            _fail(name, f"`fn` as a string is 'package.module:function', got {fn!r}")
        impl = None
    elif callable(fn):
        module, function, impl = getattr(fn, "__module__", None) or "", getattr(fn, "__qualname__", "") or "", fn
    else:
        raise TypeError(f"cannot register method {name!r}: `fn` must be callable (the algorithm) or "
                        f"'package.module:function', got {type(fn).__name__} {fn!r}")
    if check is not None and not callable(check):
        raise TypeError(f"cannot register method {name!r}: `check` must be callable, got {check!r}")
    opts = _as_options(name, options)
    _load_plugins()  # so that a clash with a plugin is this call's error, not the plugin's
    with _LOCK:  # a plugin's hook holds the lock while it runs: _LOADING_FROM is its own
        m = Method(name, module, function, str(summary), str(paper), opts, iterative=bool(iterative),
                   uses_init=bool(iterative), ragged=bool(ragged), check=check, impl=impl,
                   differentiable=bool(differentiable), origin=_LOADING_FROM[-1] if _LOADING_FROM else "python")
        return _add(m, replace)


def unregister_method(name: str) -> None:
    """Remove a method added by :func:`register_method` or a plugin (built-in ones stay; a
    built-in that was replaced gets its own definition back)."""
    _load_plugins()
    with _LOCK:
        m = _TABLE.get(name)
        if m is None:
            raise ValueError(f"unknown method {name!r}")
        if m.builtin:
            raise ValueError(f"method {name!r} is built in and cannot be removed")
        if name in _BUILTIN:
            _TABLE[name] = _BUILTIN[name]
        else:
            del _TABLE[name]


def _load_plugins() -> None:
    """Read the ``specinv.methods`` entry points, once (the first reader does; others wait)."""
    if _PLUGINS[0] == "done":
        return
    with _LOCK:
        if _PLUGINS[0] != "new":  # done meanwhile, or this thread is loading them (a plugin reads the table)
            return
        _PLUGINS[0] = "loading"
        try:
            if os.environ.get("SPECINV_NO_PLUGINS", "").strip() not in ("", "0"):
                return
            from importlib import metadata

            try:
                eps = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
            except Exception as e:  # a broken metadata folder on sys.path
                _warn(f"cannot read the {ENTRY_POINT_GROUP!r} entry points ({_why(e)}); no plugin methods")
                return
            for ep in eps:
                _load_entry_point(ep)
        finally:
            _PLUGINS[0] = "done"


def _load_entry_point(ep) -> None:
    dist = getattr(ep, "dist", None)
    dist_name = getattr(dist, "name", None) or "an unnamed distribution"
    before = dict(_TABLE)
    _LOADING_FROM.append(dist_name)
    try:
        obj = ep.load()
        if isinstance(obj, Method):
            _add(dataclasses.replace(obj, origin=dist_name), replace=False)
        elif callable(obj):
            obj()
        else:
            raise TypeError(f"it names an object of type {type(obj).__name__}, not a Method or a callable "
                            f"that registers methods")
    except Exception as e:
        _TABLE.clear()  # nothing half-registered: back to the table before this entry point
        _TABLE.update(before)
        _warn(f"plugin entry point '{ep.name} = {ep.value}' (from {dist_name}, group {ENTRY_POINT_GROUP}) "
              f"failed and was skipped: {_why(e)}")
    finally:
        _LOADING_FROM.pop()


def _why(e: BaseException) -> str:
    first = (str(e).splitlines() or [""])[0][:200]
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def _warn(message: str) -> None:
    import warnings

    # warn_explicit with a file name that has no source: one line on stderr, not two
    warnings.warn_explicit(message, RuntimeWarning, "specinv", 0)
