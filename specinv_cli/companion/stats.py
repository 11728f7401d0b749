"""Paired comparison statistics: is the difference between two runs on the same items more than noise?

For one metric, run A gives ``a[i]`` and run B gives ``b[i]`` on the same items ``i``; everything
here is about the per-item differences ``d = b - a``. numpy and scipy only.

What is computed, and why
-------------------------
* **Pairs.** A pair is used when both values are finite: NaN and +-inf are dropped pairwise (an
  item that failed in one run says nothing about the difference). :func:`compare_table` pairs
  items by name and ignores items present in one run only.
* **Intervals.** The mean and the median of ``d`` get bootstrap confidence intervals, by default
  bias-corrected and accelerated (**BCa**; Efron 1987; Efron & Tibshirani 1993, section 14.3):
  metric differences are often skewed (a few items where one method fails), and BCa corrects the
  percentile interval for the bias and skewness of the statistic, with coverage error O(1/n)
  instead of O(1/sqrt n); ``method="percentile"`` is available. The bias correction ``z0`` counts
  bootstrap values equal to the estimate as half below (as ``scipy.stats.bootstrap`` does); the
  acceleration ``a`` is the jackknife one, computed in closed form for the mean and the median
  (O(n), no n x n array). Past the pole of the BCa transform (``1 - a (z0 + z) <= 0``, a single
  far-out item among many) an end point is the extreme of the bootstrap distribution.
  The resamples come from ``numpy.random.default_rng(seed)``: the same values, ``n_resamples`` and
  ``seed`` give the same interval. They are drawn and reduced in blocks of about 2**20 values
  (a block's size depends on n only, so the result does not depend on memory), which makes
  10000 resamples of 1000 items a fraction of a second in ~20 MB.
  Bootstrap intervals are a little narrow at small n (for normal data the interval is close to
  ``mean +- z s / sqrt n`` with the 1/n variance: about 93.6 % coverage at n = 30 for a nominal
  95 %); with fewer than 2 pairs there is no interval: ``(nan, nan)``. When every difference is
  the same value ``c`` the interval is ``(c, c)``: ``(0, 0)`` for two identical runs.
* **Wilcoxon signed-rank test** (Wilcoxon 1945), two-sided. Zero differences are dropped
  (Wilcoxon's own convention, ``zero_method="wilcox"`` in scipy, the same rule as the sign test:
  a tie says nothing about the direction); the absolute values of the others get mid-ranks. Up to
  200 non-zero differences the p-value is exact, from the permutation distribution of the signed
  rank sum given those ranks (the conditional exact test: with no ties it is the classical exact
  distribution, equal to ``scipy.stats.wilcoxon(method="exact")``; with ties it is what scipy
  obtains by enumeration for n <= 13, but computed by a convolution for any n <= 200, where scipy
  falls back on the normal approximation). Above 200 the normal approximation with the tie
  correction (``scipy.stats.wilcoxon(method="asymptotic")``) is accurate. No non-zero difference:
  ``p = 1``; no pair at all: ``p = nan``.
* **Sign test**, two-sided and exact (``scipy.stats.binomtest`` on the signs, zeros dropped): the
  same question without using the sizes of the differences.
* **Significance.** A difference is *significant* when the Wilcoxon p is below ``1 - level``
  (``level`` is also the intervals' confidence level). Then ``better`` names the run the test
  points to: the sign of ``T+ - T-`` (the signed rank sums) read with the metric's direction;
  e.g. for SC (lower is better) a negative ``b - a`` means B is better. The test and the interval
  of the *mean* answer slightly different questions (a shift of the distribution vs. its mean),
  so in borderline cases one may exclude 0 while the other does not. Nothing is corrected for
  the number of metrics unless asked: :func:`holm` gives Holm-Bonferroni adjusted p-values, and
  ``compare_table(..., adjust="holm")`` decides significance on them.

References
----------
B. Efron (1987), Better bootstrap confidence intervals. J. Am. Stat. Assoc. 82(397), 171-185.
B. Efron, R. J. Tibshirani (1993), An Introduction to the Bootstrap. Chapman & Hall, ch. 14.
F. Wilcoxon (1945), Individual comparisons by ranking methods. Biometrics Bulletin 1(6), 80-83.
S. Holm (1979), A simple sequentially rejective multiple test procedure. Scand. J. Stat. 6, 65-70.

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> a = rng.normal(-20.0, 2.0, 30)              # SC of run A in dB: lower is better
>>> b = a - 1.0 + rng.normal(0.0, 0.5, 30)      # run B about 1 dB lower
>>> r = paired(a, b, metric="sc", higher_is_better=False, n_resamples=2000)
>>> r.n, r.significant, r.better
(30, True, 'b')
>>> round(r.mean_diff, 2), tuple(round(v, 2) for v in r.ci)
(-1.02, (-1.17, -0.84))
>>> sign_test_p(np.ones(10)) == wilcoxon_p(np.ones(10)) == 2 / 2 ** 10
True
>>> holm([0.01, 0.04, 0.03, 0.005])
[0.03, 0.06, 0.06, 0.02]
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

__all__ = ["PairedResult", "bootstrap_ci", "wilcoxon_p", "sign_test_p", "holm", "paired", "compare_table",
           "STATISTICS", "BOOTSTRAP_METHODS", "EXACT_WILCOXON_MAX"]

#: Statistics :func:`bootstrap_ci` knows (each with a closed-form jackknife).
STATISTICS = ("mean", "median")
BOOTSTRAP_METHODS = ("bca", "percentile")
#: Up to this many non-zero differences the Wilcoxon p-value is exact (the convolution costs
#: O(n^3): about a millisecond at 200; the normal approximation is good well before that).
EXACT_WILCOXON_MAX = 200
#: Values drawn and reduced at once by the bootstrap (memory ~ 16 bytes each).
_BLOCK = 2 ** 20


@dataclass(frozen=True)
class PairedResult:
    """One metric's paired comparison of runs A and B (differences ``b - a``); see the module notes.

    ``p_adjusted`` is the Holm-adjusted Wilcoxon p when :func:`compare_table` was asked for it
    (``None`` otherwise); ``significant`` then uses it."""

    metric: str
    n: int
    higher_is_better: bool
    mean_a: float
    mean_b: float
    median_a: float
    median_b: float
    mean_diff: float
    median_diff: float
    ci: tuple[float, float]
    median_ci: tuple[float, float]
    p_wilcoxon: float
    p_sign: float
    level: float
    significant: bool
    better: str | None
    p_adjusted: float | None = None

    def to_dict(self) -> dict:
        """JSON-ready: floats as they are (no rounding), NaN and inf as ``None``, intervals as lists."""
        def f(v):
            return None if v is None or not math.isfinite(v) else float(v)

        return {"metric": self.metric, "n": int(self.n), "higher_is_better": bool(self.higher_is_better),
                "mean_a": f(self.mean_a), "mean_b": f(self.mean_b), "median_a": f(self.median_a),
                "median_b": f(self.median_b), "mean_diff": f(self.mean_diff), "median_diff": f(self.median_diff),
                "ci": [f(v) for v in self.ci], "median_ci": [f(v) for v in self.median_ci],
                "p_wilcoxon": f(self.p_wilcoxon), "p_sign": f(self.p_sign), "p_adjusted": f(self.p_adjusted),
                "level": float(self.level), "significant": bool(self.significant), "better": self.better}


# --- validation ---------------------------------------------------------------------------
def _check_level(level) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0 < level < 1:
        raise ValueError(f"level must be a number between 0 and 1 (e.g. 0.95), got {level!r}")
    return float(level)


def _check_resamples(n_resamples) -> int:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    return int(n_resamples)


def _vector(values, what: str) -> np.ndarray:
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be numbers, got {type(values).__name__}") from None
    if x.ndim != 1:
        x = x.reshape(-1) if x.ndim == 0 or x.size == max(x.shape) else x
        if x.ndim != 1:
            raise ValueError(f"{what} must be one-dimensional, got shape {np.shape(values)}")
    return x


def _finite(values, what: str) -> np.ndarray:
    x = _vector(values, what)
    if not np.isfinite(x).all():
        raise ValueError(f"{what} contain NaN or infinite values; drop them first (paired() drops such pairs)")
    return x


# --- bootstrap ----------------------------------------------------------------------------
def _statistic(x, name, axis=-1):
    return x.mean(axis=axis) if name == "mean" else np.median(x, axis=axis)


def _jackknife(x, name) -> np.ndarray:
    """Leave-one-out values of the statistic, in closed form (O(n log n))."""
    n = x.size
    if name == "mean":
        return (x.sum() - x) / (n - 1)
    s = np.sort(x)
    k = np.arange(n)[:, None]                     # the left-out sorted position
    m = n - 1                                     # the remaining sample's size
    j = np.array([(m - 1) // 2, m // 2])          # its middle position(s)
    vals = s[j[None, :] + (j[None, :] >= k)]      # remaining[j] = s[j] before k, s[j + 1] after
    loo_sorted = vals.mean(axis=1)
    # back to the original order (tied values have tied leave-one-out medians anyway)
    out = np.empty(n)
    out[np.argsort(x, kind="stable")] = loo_sorted
    return out


def _resampled(x, name, n_resamples, seed) -> np.ndarray:
    n = x.size
    rows = max(1, _BLOCK // n)
    rng = np.random.default_rng(seed)
    out = np.empty(n_resamples)
    for start in range(0, n_resamples, rows):
        m = min(rows, n_resamples - start)
        out[start:start + m] = _statistic(x[rng.integers(0, n, size=(m, n))], name, axis=1)
    return out


def bootstrap_ci(values, statistic: str = "mean", *, level=0.95, n_resamples=10000, seed=0,
                 method="bca") -> tuple[float, float]:
    """Bootstrap confidence interval ``(low, high)`` of the ``statistic`` (``"mean"`` or
    ``"median"``) of ``values`` at confidence ``level``, two-sided: BCa (``method="bca"``) or
    percentile. Deterministic for a given ``seed``. ``(nan, nan)`` with fewer than 2 values;
    ``(v, v)`` when all values equal ``v``. Raises ``ValueError`` for NaN/inf values or bad options."""
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
    if method not in BOOTSTRAP_METHODS:
        raise ValueError(f"method must be one of {', '.join(BOOTSTRAP_METHODS)}, got {method!r}")
    level = _check_level(level)
    n_resamples = _check_resamples(n_resamples)
    x = _finite(values, "values")
    if x.size < 2:
        return (math.nan, math.nan)
    theta = float(_statistic(x, statistic))
    if x.min() == x.max():
        return (theta, theta)
    boot = _resampled(x, statistic, n_resamples, seed)
    alpha = (1 - level) / 2
    if method == "percentile":
        q = np.array([alpha, 1 - alpha])
    else:
        # bias correction: the bootstrap distribution's position of the estimate, ties counted half
        below = (np.count_nonzero(boot < theta) + np.count_nonzero(boot <= theta)) / (2 * n_resamples)
        below = min(max(below, 0.5 / n_resamples), 1 - 0.5 / n_resamples)   # keep z0 finite
        z0 = float(special.ndtri(below))
        u = _jackknife(x, statistic)
        u = u.mean() - u
        den = float(np.sum(u ** 2))
        acc = float(np.sum(u ** 3)) / (6 * den ** 1.5) if den > 0 else 0.0
        q = np.empty(2)
        for i, z in enumerate((special.ndtri(alpha), -special.ndtri(alpha))):
            w = z0 + z
            d = 1 - acc * w
            q[i] = special.ndtr(z0 + w / d) if d > 0 else (1.0 if w > 0 else 0.0)
    lo, hi = np.quantile(boot, np.clip(q, 0.0, 1.0))
    return (float(lo), float(hi))


# --- tests --------------------------------------------------------------------------------
def _signed_ranks(d):
    """(doubled mid-ranks of |d| as integers, positive mask) of the non-zero ``d``."""
    d = d[d != 0]
    r2 = np.rint(2 * stats.rankdata(np.abs(d))).astype(np.int64)
    return r2, d > 0


def _exact_signed_rank_p(r2, pos) -> float:
    """Two-sided p of the sum of the (doubled) ranks of the positive differences, from its exact
    null distribution given the ranks: each sign + or - with probability 1/2, independently."""
    total = int(r2.sum())
    f = np.zeros(total + 1)
    f[0] = 1.0
    top = 0
    for r in r2:            # f <- (f + f shifted by r) / 2, over the support reached so far
        top += int(r)
        f[r:top + 1] = 0.5 * f[r:top + 1] + 0.5 * f[:top + 1 - r]
        f[:r] *= 0.5
    t = int(r2[pos].sum())
    lower, upper = f[:t + 1].sum(), f[t:].sum()
    return float(min(1.0, 2 * min(lower, upper)))


def wilcoxon_p(d) -> float:
    """Two-sided Wilcoxon signed-rank p-value of the differences ``d`` (zeros dropped, mid-ranks
    for ties; exact up to :data:`EXACT_WILCOXON_MAX` non-zero differences, normal approximation
    with tie correction above). ``nan`` for no values, 1 when all are zero."""
    d = _finite(d, "differences")
    if d.size == 0:
        return math.nan
    nz = d[d != 0]
    if nz.size == 0:
        return 1.0
    if nz.size <= EXACT_WILCOXON_MAX:
        return _exact_signed_rank_p(*_signed_ranks(nz))
    return float(stats.wilcoxon(nz, zero_method="wilcox", method="asymptotic").pvalue)


def sign_test_p(d) -> float:
    """Two-sided exact sign test p-value of the differences ``d`` (zeros dropped): binomial with
    p = 1/2 on the number of positive ones. ``nan`` for no values, 1 when all are zero."""
    d = _finite(d, "differences")
    if d.size == 0:
        return math.nan
    n = int(np.count_nonzero(d))
    if n == 0:
        return 1.0
    return float(stats.binomtest(int(np.count_nonzero(d > 0)), n, 0.5).pvalue)


def holm(pvalues) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input's order: the k-th smallest of m is multiplied
    by ``m - k + 1``, made non-decreasing, capped at 1. NaN p-values stay NaN and are not counted in m."""
    p = _vector(pvalues, "p-values")
    ok = ~np.isnan(p)
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError("p-values must lie between 0 and 1")
    out = np.full(p.shape, np.nan)
    q = p[ok]
    m = q.size
    order = np.argsort(q, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate(q[order] * (m - np.arange(m))))
    back = np.empty(m)
    back[order] = adj
    out[ok] = back
    return [float(v) for v in out]


# --- comparisons --------------------------------------------------------------------------
def paired(a, b, *, metric="", higher_is_better=True, level=0.95, n_resamples=10000, seed=0,
           method="bca") -> PairedResult:
    """Compare ``b`` with ``a`` item by item (``a[i]`` and ``b[i]`` the same item): differences
    ``b - a``, pairs with a NaN or inf on either side dropped. See the module notes for the
    intervals, tests and significance rule."""
    if not isinstance(higher_is_better, (bool, np.bool_)):
        raise ValueError(f"higher_is_better must be True or False, got {higher_is_better!r}")
    level = _check_level(level)
    n_resamples = _check_resamples(n_resamples)
    if method not in BOOTSTRAP_METHODS:
        raise ValueError(f"method must be one of {', '.join(BOOTSTRAP_METHODS)}, got {method!r}")
    a, b = _vector(a, "a"), _vector(b, "b")
    if a.size != b.size:
        raise ValueError(f"a and b must hold one value per item each, got {a.size} and {b.size} values")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    d = b - a
    n = int(d.size)
    nan = math.nan

    def mean(x):
        return float(x.mean()) if x.size else nan

    def median(x):
        return float(np.median(x)) if x.size else nan

    kw = dict(level=level, n_resamples=n_resamples, seed=seed, method=method)
    ci = bootstrap_ci(d, "mean", **kw) if n else (nan, nan)
    median_ci = bootstrap_ci(d, "median", **kw) if n else (nan, nan)
    p_w, p_s = wilcoxon_p(d), sign_test_p(d)
    significant = bool(n and p_w < 1 - level)
    better = _better(d, higher_is_better) if significant else None
    return PairedResult(metric=str(metric), n=n, higher_is_better=bool(higher_is_better), mean_a=mean(a),
                        mean_b=mean(b), median_a=median(a), median_b=median(b), mean_diff=mean(d),
                        median_diff=median(d), ci=ci, median_ci=median_ci, p_wilcoxon=p_w, p_sign=p_s,
                        level=level, significant=significant, better=better)


def _better(d, higher_is_better) -> str | None:
    """The run the signed-rank statistic points to: B when ``T+ > T-`` and higher is better."""
    r2, pos = _signed_ranks(d)
    t = int(r2[pos].sum()) - int(r2[~pos].sum())
    if t == 0:
        return None
    return "b" if (t > 0) == bool(higher_is_better) else "a"


def _number(v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        return math.nan
    return float(v)


def compare_table(a_rows: dict[str, dict], b_rows: dict[str, dict], metrics: dict[str, bool], *,
                  adjust: str | None = None, **kw) -> dict[str, PairedResult]:
    """:func:`paired` for each metric of ``metrics`` (name -> higher is better), in that order.

    ``a_rows``/``b_rows``: item name -> {metric: value}. A metric is compared over the items
    present in both with a finite number for it in both (items in one run only, missing values,
    ``None`` and non-numbers are left out); a metric with no such pair is not in the result.
    ``adjust="holm"``: the Wilcoxon p-values are
    Holm-adjusted over the metrics (``p_adjusted``) and significance is decided on those.
    Other keywords (``level``, ``n_resamples``, ``seed``, ``method``) go to :func:`paired`."""
    if adjust not in (None, "holm"):
        raise ValueError(f"adjust must be None or 'holm', got {adjust!r}")
    for what, rows in (("a_rows", a_rows), ("b_rows", b_rows)):
        if not isinstance(rows, dict) or not all(isinstance(r, dict) for r in rows.values()):
            raise ValueError(f"{what} must map item names to {{metric: value}} dicts")
    if not isinstance(metrics, dict):
        raise ValueError("metrics must map metric names to higher_is_better (True or False)")
    common = [k for k in a_rows if k in b_rows]
    out = {}
    for name, higher in metrics.items():
        a = [_number(a_rows[k].get(name)) for k in common]
        b = [_number(b_rows[k].get(name)) for k in common]
        r = paired(a, b, metric=name, higher_is_better=higher, **kw)
        if r.n:
            out[name] = r
    if adjust == "holm" and out:
        from dataclasses import replace

        adj = holm([r.p_wilcoxon for r in out.values()])
        for (name, r), p in zip(list(out.items()), adj):
            sig = bool(math.isfinite(p) and p < 1 - r.level)
            d = np.array([_number(b_rows[k].get(name)) - _number(a_rows[k].get(name)) for k in common])
            d = d[np.isfinite(d)]
            out[name] = replace(r, p_adjusted=p, significant=sig,
                                better=_better(d, r.higher_is_better) if sig else None)
    return out
