"""companion.stats: intervals that cover a known difference at the rate theory predicts, a test
that rejects a true null at its exact size, exact small-sample p-values, BCa against a plain
textbook version and against scipy, edge cases; and the per-item difference plot."""
from __future__ import annotations

import itertools
import math
import os

import numpy as np
import pytest
from scipy import stats

from specinv_cli.companion.stats import (EXACT_WILCOXON_MAX, PairedResult, bootstrap_ci, compare_table, holm, paired,
                                         sign_test_p, wilcoxon_p)

Z975 = stats.norm.ppf(0.975)


def binomial_margin(p, reps, k=3.5):
    """k standard deviations of a rate estimated from ``reps`` independent trials."""
    return k * math.sqrt(p * (1 - p) / reps)


def exact_wilcoxon_size(n, alpha):
    """P(two-sided exact signed-rank p < alpha) under the null, from subset-sum counts of 1..n
    (plain integer arithmetic): the rate at which a true null is rejected."""
    counts = [1] + [0] * (n * (n + 1) // 2)
    for r in range(1, n + 1):
        for t in range(len(counts) - 1, r - 1, -1):
            counts[t] += counts[t - r]
    total = 2 ** n
    cdf = list(itertools.accumulate(counts))
    size = 0
    for t, c in enumerate(counts):
        lower = cdf[t] / total
        upper = (total - (cdf[t - 1] if t else 0)) / total
        if min(1.0, 2 * min(lower, upper)) < alpha:
            size += c
    return size / total


# --- coverage and error rates --------------------------------------------------------------
def test_intervals_cover_the_true_difference_and_the_test_keeps_its_size():
    """2000 simulated experiments of n = 40 pairs, b = a + delta + N(0, 1).

    Coverage: for normal differences the bootstrap interval of the mean is close to
    mean +- z s_n / sqrt(n) with the 1/n variance, whose coverage is P(|t_39| < z sqrt(39/40))
    = 0.940 (the known small-sample shortfall below 0.95). The estimate must lie within 3.5
    binomial standard deviations (0.018 here) of that, less 0.005 for the Monte-Carlo noise of
    2000 resamples in the end points; a 90% interval (coverage about 0.89) fails this.
    Size: under delta = 0 the exact Wilcoxon test rejects at exactly its size (0.0497 at n = 40,
    alpha = 0.05; computed below by counting), so the rate of "significant" must lie within 3.5
    binomial sd of it. Power: delta = 1 sd is significant essentially always (t-test power
    1 - 1e-8), with the right direction."""
    rng = np.random.default_rng(20240)
    reps, n, delta = 2000, 40, 1.0
    cover = sig_alt = right = sig_null = 0
    for i in range(reps):
        a = rng.normal(-20.0, 3.0, n)
        r = paired(a, a + delta + rng.normal(0, 1, n), n_resamples=2000, seed=i)
        cover += r.ci[0] <= delta <= r.ci[1]
        sig_alt += r.significant
        right += r.better == "b"
        sig_null += paired(a, a + rng.normal(0, 1, n), n_resamples=100, seed=i).significant
    theory = 2 * stats.t.cdf(Z975 * math.sqrt((n - 1) / n), n - 1) - 1
    assert theory == pytest.approx(0.940, abs=5e-4)
    rate = cover / reps
    assert theory - binomial_margin(theory, reps) - 0.005 <= rate <= theory + binomial_margin(theory, reps), rate
    size = exact_wilcoxon_size(n, 0.05)
    assert 0.045 < size <= 0.05
    assert abs(sig_null / reps - size) <= binomial_margin(size, reps), (sig_null / reps, size)
    assert sig_alt >= reps - 2 and right == sig_alt


def test_bca_covers_better_than_percentile_on_skewed_data():
    """Means of lognormal(0, 1) samples, n = 20: both intervals under-cover (the skewness is
    strong), BCa less: the experiments where only BCa covers outnumber those where only the
    percentile interval covers, by more than a sign test on those discordant pairs allows by
    chance (p < 0.01)."""
    rng = np.random.default_rng(5)
    mu = math.exp(0.5)
    only_bca = only_pct = 0
    for i in range(2000):
        x = rng.lognormal(0.0, 1.0, 20)
        lo, hi = bootstrap_ci(x, n_resamples=2000, seed=i)
        b = lo <= mu <= hi
        lo, hi = bootstrap_ci(x, n_resamples=2000, seed=i, method="percentile")
        p = lo <= mu <= hi
        only_bca += b and not p
        only_pct += p and not b
    assert only_bca > only_pct
    assert stats.binomtest(only_bca, only_bca + only_pct).pvalue < 0.01, (only_bca, only_pct)


# --- exact p-values ------------------------------------------------------------------------
def test_exact_small_sample_p_values():
    d = np.arange(1, 11, dtype=float)                    # n = 10, all positive
    assert wilcoxon_p(d) == 2 / 1024 and sign_test_p(d) == 2 / 1024
    assert wilcoxon_p(-d) == 2 / 1024 and sign_test_p(-d) == 2 / 1024
    d[0] = -1                                            # the smallest one negative: T- = 1
    assert wilcoxon_p(d) == 4 / 1024                     # P(T <= 1) = 2 / 1024, two-sided
    assert sign_test_p(d) == pytest.approx(2 * 11 / 1024)   # 9 of 10: 2 (1 + 10) / 2^10
    # zeros are dropped by both tests (a tie says nothing about the direction)
    assert wilcoxon_p([0, 0, 1, 2, 3]) == wilcoxon_p([1, 2, 3]) == 0.25
    assert sign_test_p([1, 1, -1, 0, 0]) == 1.0
    assert wilcoxon_p([0.0, 0.0]) == 1.0 and sign_test_p([0.0]) == 1.0
    assert math.isnan(wilcoxon_p([])) and math.isnan(sign_test_p([]))
    # every difference the same: all ranks tie, and the test is the sign test
    assert wilcoxon_p(np.full(8, 0.5)) == sign_test_p(np.full(8, 0.5)) == 2 / 256


def test_wilcoxon_agrees_with_scipy():
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 13, 30, 50):                      # scipy's default: exact below 51
        x = rng.normal(0.3, 1, n)
        assert wilcoxon_p(x) == pytest.approx(stats.wilcoxon(x).pvalue, rel=1e-12)
    for n in (80, 200):                                  # exact here too; scipy's "exact"
        x = rng.normal(0.1, 1, n)
        assert wilcoxon_p(x) == pytest.approx(stats.wilcoxon(x, method="exact").pvalue, rel=1e-9)
    for n in (260, 600):                                 # the tie-corrected normal approximation
        x = np.round(rng.normal(0.1, 1, n), 1)
        assert np.count_nonzero(x) > EXACT_WILCOXON_MAX      # zeros dropped: past the exact range
        assert wilcoxon_p(x) == pytest.approx(
            stats.wilcoxon(x, zero_method="wilcox", method="asymptotic").pvalue, rel=1e-12)
    for n in (6, 10, 13):   # ties and zeros: scipy enumerates the permutations up to n = 13
        x = rng.integers(-3, 5, n).astype(float)
        assert wilcoxon_p(x) == pytest.approx(stats.wilcoxon(x).pvalue, rel=1e-12)


def test_wilcoxon_with_ties_against_brute_force():
    """Past scipy's enumeration limit: all 2^16 sign patterns of 16 tied mid-ranks, counted plainly."""
    rng = np.random.default_rng(1)
    x = rng.integers(1, 5, 16).astype(float) * np.where(rng.random(16) < 0.75, 1, -1)
    ranks = stats.rankdata(np.abs(x))
    signs = np.array(list(itertools.product((0, 1), repeat=16)), dtype=bool)
    t_null = (signs * ranks).sum(axis=1)
    t = ranks[x > 0].sum()
    p = min(1.0, 2 * min(np.mean(t_null <= t + 1e-9), np.mean(t_null >= t - 1e-9)))
    assert wilcoxon_p(x) == pytest.approx(p, rel=1e-12)


def test_sign_test_is_the_binomial():
    for k, n in ((0, 5), (3, 12), (7, 7), (10, 25)):
        d = [1.0] * k + [-1.0] * (n - k)
        tail = sum(math.comb(n, j) for j in range(min(k, n - k) + 1)) / 2 ** n
        assert sign_test_p(d) == pytest.approx(min(1.0, 2 * tail), rel=1e-12)


# --- BCa -----------------------------------------------------------------------------------
def textbook_bca(x, level, stat):
    """The ideal bootstrap (all n^n resamples, each once) and the BCa interval of Efron &
    Tibshirani (1993) 14.3 written out plainly: z0 from the fraction below the estimate (ties
    half), the acceleration from the jackknife, the adjusted levels read off the distribution."""
    n = len(x)
    idx = np.array(list(itertools.product(range(n), repeat=n)))
    boot = stat(x[idx], axis=1)
    theta = stat(x)
    z0 = stats.norm.ppf((np.sum(boot < theta) + 0.5 * np.sum(boot == theta)) / len(boot))
    jack = [stat(np.delete(x, i)) for i in range(n)]
    m = sum(jack) / n
    a = sum((m - j) ** 3 for j in jack) / (6 * sum((m - j) ** 2 for j in jack) ** 1.5)
    ends = []
    for z in (stats.norm.ppf((1 - level) / 2), stats.norm.ppf((1 + level) / 2)):
        ends.append(float(np.quantile(boot, stats.norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))))))
    pct = [float(v) for v in np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])]
    return ends, pct, a


def test_bca_matches_the_ideal_bootstrap():
    """On 7 skewed values, the Monte-Carlo BCa end points of 20 seeds (10000 resamples each)
    average to the ideal bootstrap's within 4 standard errors (the spread over the seeds gives
    it), and that BCa differs from the percentile interval by far more than this error. (The
    values are spread so that the ideal distribution has no wide gaps at the end points: a
    quantile that falls in a gap is a step, which Monte-Carlo resamples estimate with a bias.)"""
    x = np.array([0.3, 0.4, 0.55, 0.75, 1.05, 1.6, 3.2])
    ref, pct, a = textbook_bca(x, 0.9, np.mean)
    assert a > 0.05                                       # a real acceleration to get right
    ours = np.array([bootstrap_ci(x, level=0.9, n_resamples=10000, seed=s) for s in range(20)])
    se = ours.std(axis=0, ddof=1) / math.sqrt(len(ours))
    assert np.all(np.abs(ours.mean(axis=0) - ref) <= 4 * se + 1e-12), (ours.mean(axis=0), ref, se)
    assert np.all(np.abs(np.array(ref) - pct) > 20 * se)
    assert bootstrap_ci(x, level=0.9, seed=3) == bootstrap_ci(x, level=0.9, seed=3)      # seeded


def test_bca_agrees_with_scipy_within_the_monte_carlo_error():
    """scipy.stats.bootstrap(method="BCa") draws other resamples: the end points of both are
    Monte-Carlo estimates of the same ideal ones, so they agree within 4 sqrt(2) times the
    spread of ours over seeds (the same method and resample count give scipy the same error)."""
    rng = np.random.default_rng(5)
    x = rng.lognormal(0.0, 0.8, 25)
    for stat, fn in (("mean", np.mean), ("median", np.median)):
        ours = np.array([bootstrap_ci(x, stat, n_resamples=5000, seed=s) for s in range(12)])
        sd = ours.std(axis=0, ddof=1)
        ref = stats.bootstrap((x,), fn, method="BCa", n_resamples=5000, rng=1).confidence_interval
        assert np.all(np.abs(ours[0] - [ref.low, ref.high]) <= 4 * math.sqrt(2) * sd + 1e-12), (stat, ours[0], ref)
    pct = bootstrap_ci(x, n_resamples=5000, method="percentile")
    bca = bootstrap_ci(x, n_resamples=5000)
    assert bca[0] > pct[0] and bca[1] > pct[1]            # right skew: BCa moves the interval up


def test_a_large_sample_is_resampled_in_blocks():
    x = np.random.default_rng(2).normal(1.0, 1.0, 1000)
    lo, hi = bootstrap_ci(x, n_resamples=10000)            # 10^7 values, in blocks of ~10^6
    se = x.std() / math.sqrt(len(x))
    assert lo == pytest.approx(x.mean() - Z975 * se, abs=0.1 * se)
    assert hi == pytest.approx(x.mean() + Z975 * se, abs=0.1 * se)
    lo, hi = bootstrap_ci(x, "median", n_resamples=2000)
    assert lo < np.median(x) < hi


# --- edge cases ----------------------------------------------------------------------------
def test_too_few_pairs():
    r = paired([1.0], [2.0])
    assert r.n == 1 and r.mean_diff == 1.0 and math.isnan(r.ci[0]) and math.isnan(r.median_ci[1])
    assert r.p_wilcoxon == 1.0 and r.p_sign == 1.0 and not r.significant and r.better is None
    d = r.to_dict()
    assert d["ci"] == [None, None] and d["n"] == 1 and d["better"] is None
    r = paired([np.nan, 1.0], [2.0, np.nan])             # no pair at all
    assert r.n == 0 and math.isnan(r.mean_diff) and math.isnan(r.p_wilcoxon) and not r.significant
    assert r.to_dict()["mean_a"] is None and r.to_dict()["p_sign"] is None
    assert bootstrap_ci([3.0]) == (pytest.approx(math.nan, nan_ok=True),) * 2


def test_identical_runs_and_constant_differences():
    r = paired([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert r.mean_diff == 0 and r.ci == (0.0, 0.0) and r.median_ci == (0.0, 0.0)
    assert r.p_wilcoxon == 1 and r.p_sign == 1 and not r.significant and r.better is None
    r = paired(np.arange(8.0), np.arange(8.0) + 0.5)
    assert r.ci == (0.5, 0.5) and r.p_wilcoxon == 2 / 256 and r.significant and r.better == "b"


def test_nan_pairs_are_dropped_pairwise():
    a = [1.0, np.nan, 3.0, 4.0, 2.0, 6.0, -np.inf]
    b = [2.5, 5.0, np.inf, 5.0, 2.0, 9.0, 1.0]
    r = paired(a, b, n_resamples=500)
    keep = [0, 3, 4, 5]
    ref = paired(np.take(a, keep), np.take(b, keep), n_resamples=500)
    assert r == ref and r.n == 4 and r.mean_a == 13 / 4


def test_better_follows_the_direction_of_the_metric():
    a = np.linspace(-30, -10, 12)
    b = a - 2 + np.linspace(-0.5, 0.5, 12)               # B lower everywhere
    sc = paired(a, b, metric="sc", higher_is_better=False)
    assert sc.mean_diff < 0 and sc.significant and sc.better == "b"      # SC: lower is better
    snr = paired(a, b, metric="snr", higher_is_better=True)
    assert snr.significant and snr.better == "a"
    # the test's direction, not the mean's: 15 small gains and one large loss
    d = np.r_[np.arange(1.0, 16.0), -200.0]
    r = paired(np.zeros(16), d)
    assert r.mean_diff < 0 and r.p_wilcoxon == 2 * 169 / 2 ** 16 and r.better == "b"


def test_compare_table_pairs_items_by_name():
    rows_a = {"x": {"sc": 1.0, "pesq": 2.0}, "y": {"sc": 2.0, "pesq": None}, "z": {"sc": 3.0, "pesq": "n/a"},
              "only_a": {"sc": 9.0, "pesq": 1.0}}
    rows_b = {"z": {"sc": 2.0}, "x": {"sc": 0.5, "pesq": 2.5}, "y": {"sc": 1.0, "pesq": 3.0},
              "only_b": {"sc": -9.0}}
    t = compare_table(rows_a, rows_b, {"sc": False, "pesq": True, "stoi": True}, n_resamples=500)
    assert list(t) == ["sc", "pesq"]                     # stoi: no pair, left out
    assert t["sc"].n == 3 and t["sc"].mean_diff == pytest.approx(-2.5 / 3) and t["pesq"].n == 1
    assert t["sc"].metric == "sc" and t["sc"].higher_is_better is False and t["sc"].p_adjusted is None
    assert t["sc"] == paired([1.0, 2.0, 3.0], [0.5, 1.0, 2.0], metric="sc", higher_is_better=False,
                             n_resamples=500)
    assert all(isinstance(r, PairedResult) for r in t.values())


def test_compare_table_holm_adjustment():
    rng = np.random.default_rng(3)
    items = [f"i{k}" for k in range(20)]
    a = {s: {"m1": 0.0, "m2": 0.0, "m3": 0.0} for s in items}
    b = {s: {"m1": float(rng.normal(0.6, 1)), "m2": float(rng.normal(0.45, 1)), "m3": float(rng.normal(0, 1))}
         for s in items}
    plain = compare_table(a, b, {"m1": True, "m2": True, "m3": True}, n_resamples=200)
    adj = compare_table(a, b, {"m1": True, "m2": True, "m3": True}, n_resamples=200, adjust="holm")
    expected = holm([r.p_wilcoxon for r in plain.values()])
    assert [r.p_adjusted for r in adj.values()] == pytest.approx(expected)
    for k in plain:
        assert adj[k].significant == (adj[k].p_adjusted < 0.05)
        assert adj[k].ci == plain[k].ci
    with pytest.raises(ValueError, match="adjust"):
        compare_table(a, b, {"m1": True}, adjust="bonferroni")


def test_to_dict_is_json_ready():
    import json

    r = paired(np.arange(10.0), np.arange(10.0) * 1.1, metric="snr", n_resamples=300)
    d = r.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert d["p_wilcoxon"] == r.p_wilcoxon and d["ci"] == list(r.ci) and d["better"] == "b"


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(ValueError, match="one value per item each, got 2 and 1"):
        paired([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="level must be a number between 0 and 1"):
        paired([1.0, 2.0], [1.0, 2.0], level=95)
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([1.0, 2.0], level=1.0)
    with pytest.raises(ValueError, match="n_resamples must be a positive integer"):
        bootstrap_ci([1.0, 2.0], n_resamples=0)
    with pytest.raises(ValueError, match="n_resamples"):
        paired([1.0, 2.0], [1.0, 2.0], n_resamples=10.5)
    with pytest.raises(ValueError, match="statistic must be one of mean, median"):
        bootstrap_ci([1.0, 2.0], "mode")
    with pytest.raises(ValueError, match="method must be one of bca, percentile"):
        bootstrap_ci([1.0, 2.0], method="basic")
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([1.0, np.nan])
    with pytest.raises(ValueError, match="NaN"):
        wilcoxon_p([1.0, np.nan])
    with pytest.raises(ValueError, match="higher_is_better must be True or False"):
        paired([1.0], [2.0], higher_is_better="yes")
    with pytest.raises(ValueError, match="must be numbers"):
        paired(["a"], [1.0])
    with pytest.raises(ValueError, match="between 0 and 1"):
        holm([0.5, 1.5])


def test_holm():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0]                # capped at 1
    p = holm([0.5, float("nan"), 0.01])                   # NaN kept, not counted
    assert p[0] == 0.5 and math.isnan(p[1]) and p[2] == 0.02
    assert holm([]) == []
    rng = np.random.default_rng(4)                       # against the definition, plainly
    q = list(rng.random(9) ** 3)
    order = sorted(range(9), key=q.__getitem__)
    ref, run = [0.0] * 9, 0.0
    for k, i in enumerate(order):
        run = max(run, min(1.0, (9 - k) * q[i]))
        ref[i] = run
    assert holm(q) == pytest.approx(ref)


# --- the plot ------------------------------------------------------------------------------
def test_the_differences_plot(tmp_path):
    pytest.importorskip("matplotlib")
    from specinv_cli.companion.plot import paired_differences_png

    rng = np.random.default_rng(0)
    items = [f"i{k:02d}" for k in range(12)]
    a = {"sc": rng.normal(-20, 2, 12), "pesq": rng.normal(3, 0.3, 12)}
    b = {"sc": a["sc"] - 2 + rng.normal(0, 0.5, 12), "pesq": a["pesq"] + rng.normal(0, 0.1, 12)}
    diffs = {k: dict(zip(items, (b[k] - a[k]).tolist())) for k in a}
    diffs["stoi"] = {"i00": 0.01, "i01": float("nan")}              # one pair only
    results = compare_table({s: {k: float(a[k][i]) for k in a} | {"stoi": 0.9} for i, s in enumerate(items)},
                            {s: {k: float(b[k][i]) for k in b} | {"stoi": 0.91 if i == 0 else None}
                             for i, s in enumerate(items)},
                            {"sc": False, "pesq": True, "stoi": True}, n_resamples=500)
    assert results["stoi"].n == 1 and results["sc"].better == "b"
    path = tmp_path / "d.png"
    out = paired_differences_png(path, results, diffs, labels=("fgla", "dm"), title="dm - fgla")
    assert out == {"path": str(path), "metrics": ["sc", "pesq", "stoi"], "significant": ["sc"]}
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1080, 305)                # 3 panels of 3.6 x 2.7 in (+ title) at 100 dpi
    assert os.listdir(tmp_path) == ["d.png"]             # written atomically: no temporary left
    with pytest.raises(ValueError, match="no metric"):
        paired_differences_png(tmp_path / "e.png", {}, {})
