"""Paired comparison of two runs: the same items, two systems, every metric, and whether each
difference is more than noise. No click here.

A run is a folder of outputs (``<stem>.wav``, any audio soundfile reads). The items of two runs
are matched by name; each pair is scored as :func:`~specinv_cli.companion.report.evaluate_item`
scores a report's item (the same target and reference for both outputs, the same checks), and
per metric :func:`~specinv_cli.companion.stats.compare_table` gives the mean and median
difference ``B - A`` with bootstrap confidence intervals and the paired Wilcoxon signed-rank and
sign tests. An item present in one run only is listed, not scored.

Example
-------
>>> # c = compare_runs("runs/fgla", "runs/dm", load_preset("default", explicit=False), references="corpus/")
>>> # c.results["pesq"].mean_diff, c.results["pesq"].ci, c.results["pesq"].significant
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..io.spectrogram import InputError

__all__ = ["Comparison", "NothingCompared", "match_runs", "compare_runs"]


class NothingCompared(InputError):
    """No item could be compared (no common names, or every comparison refused); ``errors``
    holds the messages."""

    def __init__(self, message: str, errors=None):
        self.errors = list(errors or [])
        super().__init__(None, message)


@dataclass
class Comparison:
    """What :func:`compare_runs` returns.

    ``labels``: the names of the two runs; ``items``: the stems scored in both; ``only``: label ->
    stems found in that run only; ``rows``: label -> {stem: {metric: value}}; ``results``: metric
    -> :class:`~specinv_cli.companion.stats.PairedResult`; ``notes``/``errors``: per-item notes
    and refused comparisons (one message each); ``groups``: the metric groups asked for."""

    labels: tuple
    items: list = field(default_factory=list)
    only: dict = field(default_factory=dict)
    rows: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    groups: tuple = ()
    domain: str = "linear"

    def differences(self) -> dict:
        """metric -> {stem: B - A} over the items where both values exist."""
        a, b = (self.rows[lab] for lab in self.labels)
        out = {}
        for k in self.results:
            out[k] = {s: b[s][k] - a[s][k] for s in self.items
                      if s in a and s in b and a[s].get(k) is not None and b[s].get(k) is not None}
        return out


def _index(folder, what: str) -> dict:
    from .analysis import audio_suffixes, index_by_stem

    if not os.path.exists(folder):
        raise InputError(str(folder), f"no such {what} folder")
    if not os.path.isdir(folder):
        raise InputError(str(folder), f"is not a folder; give the {what} folder of outputs (<stem>.wav)")
    return index_by_stem(Path(folder), audio_suffixes())


def match_runs(run_a, run_b) -> tuple[dict, list, list]:
    """``({stem: (path_a, path_b)}, only_a, only_b)`` of two run folders, matched by file stem."""
    a, b = _index(run_a, "run"), _index(run_b, "run")
    common = {s: (a[s], b[s]) for s in sorted(a) if s in b}
    return common, sorted(set(a) - set(b)), sorted(set(b) - set(a))


def compare_runs(run_a, run_b, cfg, *, targets=None, references=None, labels=None, metrics=None, perceptual=True,
                 scale_invariant=False, options=None, key=None, input_kind="magnitude", level=0.95,
                 n_resamples=10000, seed=0, progress=None) -> Comparison:
    """Score the items two run folders share and compare them per metric (see the module docstring).

    ``targets``/``references``: folders of the target spectrograms and original recordings, matched
    by name as ``specinv eval`` matches them (without targets the reference's spectrogram is the
    target; without either, only DNSMOS). ``metrics``/``perceptual``: the metric groups
    (:func:`~specinv_cli.companion.suite.selected`). ``level``, ``n_resamples``, ``seed``: the
    intervals (:func:`~specinv_cli.companion.stats.paired`). ``progress(i, n, stem)`` is called
    before each item. Raises :class:`NothingCompared` when no item could be scored in both runs."""
    from .analysis import audio_suffixes, index_by_stem, match_stem, spectrogram_suffixes
    from .report import ReportItem, evaluate_item
    from .stats import compare_table
    from .suite import METRICS, selected

    labels = tuple(labels) if labels else (Path(run_a).resolve().name or "A", Path(run_b).resolve().name or "B")
    if len(labels) != 2 or labels[0] == labels[1]:
        labels = ("A", "B") if len(labels) != 2 else (f"A:{labels[0]}", f"B:{labels[1]}")
    common, only_a, only_b = match_runs(run_a, run_b)
    c = Comparison(labels, only={labels[0]: only_a, labels[1]: only_b}, groups=selected(metrics, perceptual),
                   rows={lab: {} for lab in labels})
    if not common:
        raise NothingCompared(f"{run_a} and {run_b} have no output name in common "
                              f"({len(only_a)} and {len(only_b)} audio files)")
    ttable = rtable = {}
    if targets:
        if not os.path.isdir(targets):
            raise InputError(str(targets), "no such target folder")
        ttable = index_by_stem(Path(targets), spectrogram_suffixes())
    if references:
        if not os.path.isdir(references):
            raise InputError(str(references), "no such reference folder")
        rtable = index_by_stem(Path(references), audio_suffixes())
    domains = set()
    for i, (stem, (pa, pb)) in enumerate(common.items()):
        if progress is not None:
            progress(i, len(common), stem)
        it = ReportItem(stem, outputs={labels[0]: pa, labels[1]: pb})
        it.target = match_stem(stem, ttable) if ttable else None
        r = match_stem(stem, rtable) if rtable else None
        it.reference = r[0] if r else None
        if targets and it.target is None:
            it.notes.append(f"no target named {stem} in {targets}")
        if references and it.reference is None:
            it.notes.append(f"no reference named {stem} in {references}")
        evaluate_item(it, cfg, list(labels), perceptual=perceptual, metrics=c.groups, images=False, key=key,
                      input_kind=input_kind, scale_invariant=scale_invariant, options=options)
        c.errors += it.errors
        c.notes += [f"{stem}: {n}" for n in dict.fromkeys(it.notes)]
        if all(lab in it.metrics for lab in labels):
            c.items.append(stem)
            domains.add(it.domain)
            for lab in labels:
                c.rows[lab][stem] = it.metrics[lab]
    if not c.items:
        raise NothingCompared(c.errors[0] if c.errors else "no item could be scored in both runs", c.errors)
    c.domain = "mel" if domains == {"mel"} else "linear"
    directions = {k: m.higher_is_better for k, m in METRICS.items()
                  if any(k in c.rows[lab][s] for lab in labels for s in c.items)}
    c.results = compare_table(c.rows[labels[0]], c.rows[labels[1]], directions, level=level,
                              n_resamples=n_resamples, seed=seed)
    return c
