"""How to invert, as one object: :class:`InversionOptions` travels from the CLI through the
pipeline to :func:`specinv_cli.api.invert` (torch-free, so the CLI builds it before loading torch)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from .algorithms.registry import DEFAULT_INIT, DEFAULT_MEL_METHOD, DEFAULT_METHOD, INITS, get_method

__all__ = ["InversionOptions", "PRECISIONS"]

#: ``single`` is float32/complex64, ``double`` float64/complex128.
PRECISIONS = ("single", "double")


@dataclass(frozen=True)
class InversionOptions:
    """How to invert: what applies to every spectrogram of a run. The CLI builds one from its
    flags, the pipeline hands it on, :func:`~specinv_cli.api.invert` takes it (its keywords override fields).

    ``method`` None is the default for the input (:func:`~specinv_cli.api.default_method`);
    ``refine`` None is :func:`~specinv_cli.api.default_refine`; ``device`` None keeps the input's device;
    ``method_options`` are the method's own (e.g. ``{"alpha": 0.99}`` for ``fgla``). See
    :func:`~specinv_cli.api.invert` for the meaning of each field.

    Example
    -------
    >>> opts = InversionOptions(method="fgla", n_iter=50, method_options={"alpha": 0.9}).validate()
    >>> opts.replace(n_iter=10).n_iter
    10
    """

    method: str | None = None
    n_iter: int = 100
    init: str = DEFAULT_INIT
    seed: int | None = 0
    tol: float = 0.0
    eval_every: int = 10
    refine: int | None = None
    nnls_iters: int = 100
    precision: str = "single"
    device: Any = None
    history: bool = False
    errors: str = "raise"
    method_options: Mapping[str, Any] = field(default_factory=dict)

    def replace(self, **changes) -> "InversionOptions":
        """A copy with ``changes``: field names, and any other keyword as a method option."""
        names = {f.name for f in dataclasses.fields(self)}
        extra = {k: changes.pop(k) for k in list(changes) if k not in names}
        if extra:
            changes["method_options"] = {**dict(changes.get("method_options", self.method_options)), **extra}
        return dataclasses.replace(self, **changes)

    def validate(self) -> "InversionOptions":
        """Refuse what cannot run, before any work (``ValueError`` naming the parameter); the one
        place these rules live. Returns ``self``. Method options are checked against ``method``
        here when it is given, else against the defaults for linear and for mel input (they
        must fit one; :func:`~specinv_cli.api.invert` checks the input's)."""
        def integer(name, lo):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"`{name}` must be an integer >= {lo}, got {v!r}")
        if self.method is not None:
            get_method(self.method).resolve_options(dict(self.method_options))
        elif self.method_options:  # the default depends on the input (linear or mel): fit one of them
            problems = []
            for name in dict.fromkeys((DEFAULT_METHOD, DEFAULT_MEL_METHOD)):
                try:
                    get_method(name).resolve_options(dict(self.method_options))
                except ValueError as e:
                    problems.append(str(e))
            if len(problems) == len(dict.fromkeys((DEFAULT_METHOD, DEFAULT_MEL_METHOD))):
                raise ValueError(problems[0] + " (give `method` to choose one)")
        if self.init not in INITS:
            raise ValueError(f"unknown `init` {self.init!r}; choose one of {', '.join(INITS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown `precision` {self.precision!r}; choose single or double")
        integer("n_iter", 0)
        integer("eval_every", 1)
        integer("nnls_iters", 0)
        if self.refine is not None:
            integer("refine", 0)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or not -2 ** 63 <= self.seed < 2 ** 64):
            raise ValueError(f"`seed` must be an integer that fits in 64 bits, got {self.seed!r}")
        if not (isinstance(self.tol, (int, float)) and math.isfinite(self.tol) and self.tol >= 0):
            raise ValueError(f"`tol` must be a finite number >= 0, got {self.tol!r}")
        if self.errors not in ("raise", "report"):
            raise ValueError(f"`errors` must be raise or report, got {self.errors!r}")
        return self
