"""Many inputs per call: load, group into device batches, invert, write. No click here.

:class:`Pipeline` takes the inputs one at a time (:meth:`Pipeline.feed`) and yields a record
(a dict, the ``--json`` line) for each output as it is written:

- inputs whose items can share a batch (same settings, a method with ``Method.ragged``, no
  ``--length``/``--refine``/``--tol``) are queued per settings and inverted ``batch_size`` items at
  a time, zero-padded to the longest item and trimmed after (:mod:`specinv_cli.dsp.ragged`: each
  item gets its one-by-one result up to float rounding); peak memory is that of one batch;
- longer inputs than ``block`` frames go block by block (:mod:`specinv_cli.batch.blocks`);
- everything else is inverted as it comes.

A bad input raises nothing: it gives an ``error`` record (its message names the file) and the
others go on. Records: ``status`` ``ok`` | ``error`` | ``skipped``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..algorithms.registry import get_method
from ..options import InversionOptions
from ..util import interrupt

__all__ = ["Failure", "Settings", "Pipeline", "batching", "DEFAULT_BATCH", "DEFAULT_CPU_BATCH"]


class Failure(Exception):
    """An item-level failure with its user-facing one-line message; ``dests``: the outputs of
    the items it stops, when known (each gets its record)."""

    def __init__(self, message: str, dests=None):
        super().__init__(message)
        self.dests = list(dests or [])


@dataclass
class Settings:
    """What an ``invert`` run applies to every input: how to invert (``inversion``, handed to
    :func:`specinv_cli.api.invert` as is) and what the pipeline does around it (the CLI's flags,
    resolved)."""

    cfg: Any
    inversion: InversionOptions = field(default_factory=InversionOptions)
    input_kind: str = "magnitude"
    key: str | None = None
    length: int | None = None
    subtype: str = "auto"
    normalize: str = "none"
    limit: tuple = (None, "")
    output: str | None = None
    output_dir: str | None = None
    example: bool = False
    debug: bool = False
    batch_size: int = 16
    skip_existing: bool = False
    block: int = 0
    overlap: int = 0
    block_batch: int = 1
    #: Batch items of different lengths together (the ragged operator), or only items of one
    #: length (see :func:`batching` for the defaults).
    ragged_batches: bool = True
    #: Every file the call reads (inputs, stats, config files): no output may be one of them.
    reads: tuple = ()
    #: Files the call writes by other means (``--history``): no audio output may take them.
    reserved: tuple = ()

    @property
    def history(self) -> bool:
        return self.inversion.history

    def validate(self) -> None:
        """Refuse settings that would only fail deep inside, before any work (``ValueError``
        naming the parameter): the inversion's (:meth:`InversionOptions.validate`), then the
        pipeline's own."""
        from .blocks import check_blocks

        self.inversion.validate()
        check_blocks(self.block, self.overlap)
        for name, lo in (("batch_size", 1), ("block_batch", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"`{name}` must be an integer >= {lo}, got {v!r}")
        if self.length is not None and (not isinstance(self.length, int) or self.length < 1):
            raise ValueError(f"`length` must be a positive number of samples, got {self.length!r}")


@dataclass
class _Job:
    """One loaded input file."""

    name: str          # for messages
    path: str
    target: Any
    cfg: Any
    dests: list
    method: str
    n_items: int
    inferred: dict = field(default_factory=dict)
    #: Items whose output cannot be written, with the reason (the others go on).
    bad: dict = field(default_factory=dict)

    def label(self, i: int) -> str:
        return _label(self.name, self.n_items, i)


def _label(name: str, n_items: int, i: int) -> str:
    """How messages name item ``i`` of an input: the input itself, or ``name[i]`` in a batch."""
    return name if n_items == 1 else f"{name}[{i}]"


#: Batches' worth of items a ragged pool holds before it runs one (the closest frame counts).
POOL_BATCHES = 4

#: Items inverted together by default on CUDA.
DEFAULT_BATCH = 16
#: On the CPU: one at a time. A batch's spectrograms and states leave the caches that one item's
#: stays in; measured, no batch size was faster than one (benchmarks/results/batch.md).
DEFAULT_CPU_BATCH = 1


def batching(device, batch_size: int | None = None) -> dict:
    """The batching fields of :class:`Settings` for ``device`` and a ``batch_size`` the user gave
    (``None``: the default). Given, it batches items of any lengths. By default, on CUDA a batch
    amortises kernel launches: :data:`DEFAULT_BATCH` items of any lengths, and long inputs' blocks
    four at a time; on the CPU :data:`DEFAULT_CPU_BATCH`, one block at a time."""
    cuda = getattr(device, "type", str(device)).startswith("cuda")
    default = DEFAULT_BATCH if cuda else DEFAULT_CPU_BATCH
    return dict(batch_size=default if batch_size is None else batch_size,
                ragged_batches=batch_size is not None or cuda, block_batch=4 if cuda else 1)


class Pipeline:
    """Runs inputs through :func:`specinv_cli.api.invert` (see the module docstring).

    ``rep`` is a :class:`~specinv_cli.cli.progress.Reporter` (progress, warnings). ``histories``
    collects each output's metric history when ``settings.history`` is set.
    """

    def __init__(self, settings: Settings, rep):
        self.s = settings
        self.rep = rep
        self.histories: list[dict] = []
        self._queues: dict[str, list[tuple[_Job, int]]] = {}
        self._taken: dict[str, str] = {}   # output path -> input that writes it
        self._said = None                  # the last inference line shown
        for p in settings.reserved:
            self._taken[os.path.realpath(p)] = str(p)

    # --- entry points ----------------------------------------------------------------------
    def feed(self, path: str, name: str | None = None) -> Iterator[dict]:
        """Process one input (``name``: output name without suffix, may hold subfolders)."""
        interrupt.check()  # a signal whose KeyboardInterrupt a callback from C dropped
        try:
            job = self._load(path, name)
        except Failure as e:
            shown = "<stdin>" if path == "-" else str(path)
            yield from self._input_error(shown, str(e), e.dests)
            return
        if job is None:  # skipped (outputs exist)
            return
        if isinstance(job, list):  # records (skipped)
            yield from job
            return
        if len(job.bad) == job.n_items:  # no item can be written: nothing to invert
            for i in range(job.n_items):
                yield self._item_error(job, i, job.bad[i])
            return
        if self._batchable(job):
            key = self._batch_key(job)
            q = self._queues.setdefault(key, [])
            for i in range(job.n_items):
                if i in job.bad:
                    yield self._item_error(job, i, job.bad[i])
                    continue
                if self.s.ragged_batches:  # a pool of items, batched by close frame counts
                    q.append((job, i))
                    if len(q) >= POOL_BATCHES * self.s.batch_size:
                        yield from self._run_batch(self._take(q))
                    continue
                # a new item that would push the batch past the memory limit runs the queue first
                if q and not self._fits(q + [(job, i)]):
                    yield from self._run_batch(q)
                    q.clear()
                q.append((job, i))
                if len(q) >= self.s.batch_size:
                    yield from self._run_batch(q)
                    q.clear()
            # one-length batches wait per length: hold no more than a batch's worth in all
            while not self.s.ragged_batches and sum(map(len, self._queues.values())) > self.s.batch_size:
                oldest = next(q for q in self._queues.values() if q)
                yield from self._run_batch(oldest)
                oldest.clear()
            return
        if self._is_long(job):
            yield from self._run_long(job)
        else:
            yield from self._run_single(job)

    def flush(self) -> Iterator[dict]:
        """Run what is still queued."""
        for key, q in list(self._queues.items()):
            while q and self.s.ragged_batches:
                yield from self._run_batch(self._take(q))
            if q:
                yield from self._run_batch(q)
                q.clear()

    def _take(self, q: list) -> list:
        """Removes from the pool ``q`` and returns a batch for the ragged operator: up to
        ``batch_size`` items whose frame counts lie closest together (the run of that many in
        sorted order with the least spread: padding to the longest is work for nothing), as many
        of them as fit the memory limit."""
        frames = [job.target.mag.shape[-1] for job, _ in q]
        order = sorted(range(len(q)), key=frames.__getitem__)
        n = min(self.s.batch_size, len(q))
        start = min(range(len(q) - n + 1), key=lambda k: frames[order[k + n - 1]] - frames[order[k]])
        batch: list = []
        for k in order[start:start + n]:
            if batch and not self._fits(batch + [q[k]]):
                break
            batch.append(q[k])
        chosen = set(order[start:start + len(batch)])
        q[:] = [x for k, x in enumerate(q) if k not in chosen]
        return batch

    # --- loading ---------------------------------------------------------------------------
    def _load(self, path: str, name: str | None):
        from ..config import ConfigError
        from ..io.read import load_spectrogram, peek_array
        from ..io.spectrogram import InputError

        s = self.s
        shown = "<stdin>" if path == "-" else str(path)
        cfg = s.cfg
        try:
            head = peek_array(path, s.key)  # .npy/.npz: shape and dtype from the header, data unread
            dims = _header_dims(head[0], head[1], s.input_kind, cfg.layout) if head else None
            if dims is not None:
                items, n_f, n_t = dims
                if s.skip_existing:
                    dests = self._dests(path, name, items)
                    if all(d != "-" and os.path.exists(d) for d in dests):
                        return self._skipped(shown, dests)
                frames = min(n_t, s.block) if s.block and n_t > s.block else n_t
                n_est = items if frames == n_t else s.block_batch
                try:
                    self._check_memory(shown, n_est, frames, cfg.with_bins(n_f, shown),
                                       input_bytes=items * n_f * n_t * (head[1].itemsize + 8) + _out_bytes(items, n_t, cfg))
                except Failure as e:
                    raise Failure(str(e), self._dests(path, name, items) if s.output != "-" else None) from None
            target = load_spectrogram(path, key=s.key, input_kind=s.input_kind, layout=cfg.layout, n_mels=cfg.n_mels,
                                      max_bytes=s.limit[0])  # sizes checked before the data is materialised
            item_cfg, inferred = cfg.infer(target.mag.shape[-2], shown)
            inferred = {**target.inferred, **inferred}
        except (InputError, ConfigError) as e:
            if s.debug:
                raise
            raise Failure(str(e)) from None
        n_items = 1
        for d in target.batch_shape:
            n_items *= d
        dests = self._dests(path, name, n_items)
        if s.skip_existing and all(d != "-" and os.path.exists(d) for d in dests):
            return self._skipped(shown, dests)
        n_t = target.mag.shape[-1]
        in_bytes = target.mag.numel() * target.mag.element_size() * (3 if target.phase is not None else 1)
        long = bool(s.block) and n_t > s.block
        try:
            self._check_memory(shown, s.block_batch if long else n_items, s.block if long else n_t, item_cfg,
                               input_bytes=in_bytes + _out_bytes(n_items, n_t, item_cfg))
        except Failure as e:
            raise Failure(str(e), dests) from None
        from ..errors import OutputError
        from ..io.write import audio_format
        from ..io.write import check_destination

        bad = {}
        for i, d in enumerate(dests):  # each item's output on its own: one bad path fails one item
            if d == "-":
                continue
            try:
                if s.output_dir:
                    Path(d).parent.mkdir(parents=True, exist_ok=True)
                check_destination(d, reads=(*s.reads, path))
                audio_format(d)
            except OutputError as e:
                bad[i] = f"{_label(shown, n_items, i)}: output {e}"
                continue
            except OSError as e:
                bad[i] = f"{_label(shown, n_items, i)}: output {d}: cannot create its folder ({e.strerror or e})"
                continue
            other = self._taken.get(os.path.realpath(d))
            if other is not None and other != shown:
                bad[i] = (f"{_label(shown, n_items, i)}: its output {d} is also the output of {other}; "
                          f"rename one of them or use --recursive names")
        for i, d in enumerate(dests):
            if d != "-" and i not in bad:
                self._taken[os.path.realpath(d)] = shown
        from ..api import default_method

        method = s.inversion.method or default_method(item_cfg)
        if inferred:
            line = ", ".join(f"{_SHORT.get(k, k)} {v}" for k, v in inferred.items())
            if line != self._said:  # once per change, not once per file of a folder
                self.rep.info(f"{shown}: {line}")
                self._said = line
        return _Job(shown, path, target, item_cfg, dests, method, n_items, inferred, bad)

    def _dests(self, path: str, name: str | None, n_items: int) -> list:
        s = self.s
        if s.output == "-":
            if n_items != 1:
                raise Failure(f"{path}: holds {n_items} items; -o - writes a single WAV stream, use -O DIR")
            return ["-"]
        if s.output:
            out = Path(s.output)
            if n_items == 1:
                return [out]
            width = max(3, len(str(n_items - 1)))
            return [out.with_name(f"{out.stem}_{i:0{width}d}{out.suffix or '.wav'}") for i in range(n_items)]
        if name is None:
            name = "example" if s.example else ("stdin" if path == "-" else Path(path).stem)
        if s.output_dir:
            folder = Path(s.output_dir)  # name may hold subfolders (--recursive): mirrored there
        else:  # beside the input (a recursive walk's subfolder is already in its path)
            folder = Path(".") if path == "-" or s.example else Path(path).parent
            name = Path(name).name
        if n_items == 1:
            return [folder / f"{name}.wav"]
        width = max(3, len(str(n_items - 1)))
        return [folder / f"{name}_{i:0{width}d}.wav" for i in range(n_items)]

    def _skipped(self, name, dests):
        return [{"input": name, "item": i if len(dests) > 1 else None, "output": str(d), "status": "skipped"}
                for i, d in enumerate(dests)]

    def _check_memory(self, name, n_items, n_frames, cfg, *, input_bytes):
        from ..api import estimate_memory
        from ..util.limits import fmt_bytes

        cap, origin = self.s.limit
        if cap is None or cap == float("inf"):
            return
        need = estimate_memory(n_items, n_frames, cfg, length=self.s.length, precision=self.s.inversion.precision,
                               input_bytes=input_bytes)
        if need > cap:
            import math

            gib = need / 2 ** 30
            suggest = f"{math.ceil(gib * 1.25)}G" if gib >= 1 else f"{math.ceil(need / 2 ** 20 * 1.25)}M"
            raise Failure(f"{name}: inverting needs about {fmt_bytes(need)}, more than the limit {fmt_bytes(cap)} "
                          f"({origin}); raise it with --max-memory {suggest}")

    # --- batching --------------------------------------------------------------------------
    def _batchable(self, job: _Job) -> bool:
        s = self.s
        m = get_method(job.method)
        from ..api import default_refine

        inv = s.inversion
        refine = default_refine(job.cfg, m.name, inv.n_iter) if inv.refine is None else inv.refine
        return (s.batch_size > 1 and m.ragged and not refine and s.length is None and inv.tol == 0
                and job.dests != ["-"] and not self._is_long(job))

    def _batch_key(self, job: _Job) -> str:
        key = f"{job.cfg!r}|{job.method}|{job.target.phase is not None}|{job.target.mel_features}"
        return key if self.s.ragged_batches else f"{key}|{job.target.mag.shape[-1]}"

    def _is_long(self, job: _Job) -> bool:
        return bool(self.s.block) and job.target.mag.shape[-1] > self.s.block

    def _fits(self, items) -> bool:
        from ..api import estimate_memory

        cap = self.s.limit[0]
        if cap is None or cap == float("inf"):
            return True
        t_max = max(job.target.mag.shape[-1] for job, _ in items)
        cfg = items[0][0].cfg
        return estimate_memory(len(items), t_max, cfg, precision=self.s.inversion.precision) <= cap

    def _item(self, job: _Job, i: int):
        mag = job.target.mag.reshape(-1, *job.target.mag.shape[-2:])[i]
        ph = None
        if job.target.phase is not None:
            ph = job.target.phase.reshape(-1, *job.target.phase.shape[-2:])[i]
        return mag, ph

    def _run_batch(self, items) -> Iterator[dict]:
        import torch

        from ..io.spectrogram import Target

        if len(items) == 1:
            job, i = items[0]
            if job.n_items == 1:
                yield from self._run_single(job)
                return
        pairs = [self._item(job, i) for job, i in items]
        t_max = max(m.shape[-1] for m, _ in pairs)
        mags = torch.zeros((len(pairs), pairs[0][0].shape[-2], t_max), dtype=pairs[0][0].dtype)
        phases = None
        if pairs[0][1] is not None:
            phases = torch.ones((len(pairs), pairs[0][1].shape[-2], t_max), dtype=pairs[0][1].dtype)
        for b, (m, ph) in enumerate(pairs):
            mags[b, :, : m.shape[-1]] = m
            if phases is not None:
                phases[b, :, : ph.shape[-1]] = ph
        target = Target(mags, phases, items[0][0].target.mel_features)
        labels = [Path(str(job.dests[i])).name for job, i in items]
        names = ", ".join(dict.fromkeys(job.name for job, _ in items))
        try:
            res, done = self._invert(target, items[0][0], labels, frames=[m.shape[-1] for m, _ in pairs],
                                     name=names)
        except Failure as e:
            msg = str(e)
            jobs = list({id(job): job for job, _ in items}.values())
            for job in jobs:  # one line per input, a record per item
                mine = [i for j, i in items if j is job]
                yield from self._input_error(job.name, msg if job.name in msg else f"{job.name}: {msg}",
                                             [job.dests[i] for i in mine], mine if job.n_items > 1 else None)
            return
        entries = [(job, i, res.audio[b, : res.lengths[b]].cpu().numpy(),
                    {k: float(v.reshape(-1)[b]) for k, v in res.metrics.items()}) for b, (job, i) in enumerate(items)]
        yield from self._write_items(entries, res, done, batch=len(items))

    # --- single inputs ---------------------------------------------------------------------
    def _run_single(self, job: _Job) -> Iterator[dict]:
        labels = [Path(str(d)).name if d != "-" else "stdout" for d in job.dests]
        try:
            res, done = self._invert(job.target, job, labels)
        except Failure as e:
            for i in job.bad:
                yield self._item_error(job, i, job.bad[i])
            good = [i for i in range(job.n_items) if i not in job.bad]
            yield from self._input_error(job.name, str(e), [job.dests[i] for i in good],
                                         good if job.n_items > 1 else None)
            return
        audio = res.audio.reshape(job.n_items, -1).cpu().numpy()
        flat = {k: v.reshape(-1).tolist() for k, v in res.metrics.items()}
        entries = [(job, i, audio[i], {k: v[i] for k, v in flat.items()}) for i in range(job.n_items)]
        yield from self._write_items(entries, res, done)

    def _write_items(self, entries, res, done, batch: int = 1) -> Iterator[dict]:
        """Writes the items of one inversion's result ``res``: ``entries`` are ``(job, i, audio,
        metrics)`` in the result's row order; one record or item error each, then ``done``."""
        shown = []
        for row, (job, i, audio, metrics) in enumerate(entries):
            try:
                rec = self._write(job, i, audio, metrics, res, res.seconds / len(entries),
                                  _item_history(res.history, row), batch=batch, failure=res.failures[row])
                shown.append(rec)
                yield rec
            except Failure as e:
                shown.append(None)
                yield self._item_error(job, i, str(e))
        done(shown)

    def _run_long(self, job: _Job) -> Iterator[dict]:
        from .blocks import invert_blocks

        s = self.s
        for i in range(job.n_items):
            if i in job.bad:
                yield self._item_error(job, i, job.bad[i])
                continue
            mag, ph = self._item(job, i)
            label = Path(str(job.dests[i])).name if job.dests[i] != "-" else "stdout"
            from .blocks import block_starts

            n_blocks = len(block_starts(mag.shape[-1], s.block, s.overlap))
            callback = self.rep.callback_for([label], n_blocks * 2 if n_blocks > 1 else 1)
            try:
                res = self._call(lambda: invert_blocks(
                    mag, self._options(job), config=job.cfg, block=s.block, overlap=s.overlap, batch=s.block_batch,
                    phase=ph, mel_features=job.target.mel_features, callback=callback), job.name)
            except Failure as e:
                msg = str(e)
                yield self._item_error(job, i, msg if job.n_items == 1 else
                                       f"{job.label(i)}: {msg.removeprefix(job.name + ': ')}")
                continue
            try:
                yield self._write(job, i, res.audio.numpy(), {k: float(v) for k, v in res.metrics.items()}, res,
                                  res.seconds, [], blocks=res.blocks, inplace=True, failure=res.failures[0])
            except Failure as e:
                yield self._item_error(job, i, str(e))

    # --- the library calls -----------------------------------------------------------------
    def _options(self, job: _Job) -> InversionOptions:
        """The run's inversion options with this input's method; failures are reported per item."""
        return self.s.inversion.replace(method=job.method, errors="report")

    def _invert(self, target, job: _Job, labels, frames=None, name=None):
        """``(result, done)``: ``done(records)`` ends the items' progress bars with the metrics
        of what was written (a record per item, ``None`` for an item that was not)."""
        import torch

        from ..algorithms.base import Progress
        from ..api import invert

        s = self.s
        m = get_method(job.method)
        total = s.inversion.n_iter if m.iterative else (s.inversion.refine or 0)
        callback = self.rep.callback_for(labels, max(total, 1))
        res = self._call(lambda: invert(target, self._options(job), config=job.cfg, length=s.length,
                                        callback=callback, source=name or job.name, frames=frames),
                         name or job.name)

        def done(records):
            if callback is not None:
                nan = float("nan")
                values = {k: torch.tensor([nan if r is None or r[k] is None else r[k] for r in records])
                          for k in ("sc", "snr", "ser")}
                callback(Progress(res.iterations, max(total, 1), values, done=True))

        return res, done

    def _call(self, fn, name):
        from ..config import ConfigError
        from ..io.spectrogram import InputError

        try:
            return fn()
        except (InputError, ConfigError, ValueError) as e:  # InversionError too
            if self.s.debug:
                raise
            raise Failure(str(e) if str(e).startswith(name) else f"{name}: {e}") from None
        except RuntimeError as e:  # e.g. out of memory on the device
            if self.s.debug:
                raise
            raise Failure(f"{name}: inversion failed: {str(e).splitlines()[0][:200]}") from None

    # --- output ----------------------------------------------------------------------------
    def _write(self, job: _Job, i: int, audio, metrics: dict, res, seconds: float, hist, *, batch: int = 1,
               blocks: int | None = None, inplace: bool = False, failure: str | None = None) -> dict:
        """Encode, measure what will be written, write, and describe it (the ``--json`` record):
        every metric in the record is of the samples in the file."""
        import numpy as np

        from .blocks import streaming_metrics
        from ..errors import OutputError
        from ..io.encode import encode_audio
        from ..io.write import audio_format

        s = self.s
        dest = job.dests[i]
        label = job.label(i)
        if i in job.bad:
            raise Failure(job.bad[i])
        if failure:
            raise Failure(f"{label}: {failure}")
        try:
            fmt = audio_format(dest)
            enc = encode_audio(audio, s.subtype, s.normalize, inplace=inplace, format=fmt)
        except OutputError as e:
            raise Failure(f"{label}: output {e}") from None
        except ValueError as e:
            raise Failure(f"{label}: {e}") from None
        if enc.peak > 0 and not np.any(enc.samples):
            raise Failure(f"{label}: every sample rounds to zero in {enc.subtype} (peak {enc.peak:.3g}); "
                          f"use `subtype` auto or FLOAT")
        mag, _ = self._item(job, i)
        if enc.format.lossy:  # measured on what a reader decodes: after writing
            enc = self._save(dest, enc, job)
        written = streaming_metrics(enc.samples, mag, job.cfg, domain=res.domain)
        if enc.reason:
            self.rep.warning(f"{label}: {enc.reason}; wrote 32-bit float WAV to keep the level "
                             f"(`normalize` peak for PCM_16)")
        if enc.clipped:
            self.rep.warning(f"{label}: {enc.clipped} sample(s) beyond full scale clipped in {enc.subtype} "
                             f"(peak {enc.peak:.4g}; `subtype` auto or FLOAT keeps them, `normalize` peak scales)")
        if not enc.format.lossy:
            self._save(dest, enc, job)
        rec = {"input": job.name, "item": i if job.n_items > 1 else None, "output": str(dest), "status": "ok",
               "method": res.method, "iterations": res.iterations, "domain": res.domain,
               "sc": _num(written["sc"]), "snr": _num(written["snr"]), "ser": _num(written["ser"]),
               "seconds": round(seconds, 4), "device": res.device, "samples": int(enc.samples.shape[-1]),
               "sample_rate": job.cfg.sample_rate, "subtype": enc.subtype, "peak": _num(enc.peak),
               "gain": round(enc.gain, 6), "clipped": enc.clipped, "batch": batch,
               "n_fft": job.cfg.n_fft, "hop_length": job.cfg.hop_length,
               "inferred": {**job.inferred, **(getattr(res, "inferred", None) or {})}}  # with clamped options
        if enc.gain != 1.0:  # the user asked for a level change: what the inversion reached before it
            rec["sc_before_gain"] = _num(metrics["sc"])
        if blocks is not None:
            rec["blocks"] = blocks
        if s.history:
            hist = list(hist)
            last = {"iteration": res.iterations, **{k: _num(v) for k, v in written.items()}, "written": True}
            if hist and hist[-1]["iteration"] == res.iterations:
                hist[-1] = last  # the curve ends at the file as written
            else:
                hist.append(last)
            self.histories.append({"input": job.name, "item": rec["item"], "output": str(dest),
                                   "method": res.method, "domain": res.domain, "history": hist})
        if not self.rep.live:
            dom = "mel " if res.domain == "mel" else ""
            extra = f", {blocks} blocks" if blocks else (f", batch of {batch}" if batch > 1 else "")
            gain = f", gain {enc.gain:.4g}" if enc.gain != 1.0 else ""
            self.rep.info(f"{label} -> {dest}: {res.method} {res.iterations} it{extra}, {enc.subtype}{gain}, "
                          f"{dom}SC {written['sc']:.2f} dB, SNR {written['snr']:.2f} dB, SER {written['ser']:.2f} dB, "
                          f"{seconds:.2f} s on {res.device}")
        return rec

    def _save(self, dest, enc, job: _Job):
        """Write one output; ``StdoutClosed`` (the reader went away) is not an item's failure:
        it ends the run."""
        from ..errors import OutputError
        from ..io.write import save_audio, wav_bytes
        from ..util.stdio import write_stdout

        try:
            if dest == "-":
                write_stdout(wav_bytes(enc, job.cfg.sample_rate))
                return enc
            return save_audio(dest, enc, job.cfg.sample_rate)
        except OutputError as e:
            raise Failure(str(e)) from None

    def _error(self, name: str, message: str, **where) -> dict:
        message = self.rep.words(message)
        self.rep.error(message)
        return {"input": name, **where, "status": "error", "error": message}

    def _input_error(self, name: str, message: str, dests=(), items=None) -> Iterator[dict]:
        """A failure of a whole input (or of all its items at once): one line on stderr, and
        one record per item when its items are known (``items``: their indices)."""
        dests = list(dests)
        rec = self._error(name, message)
        if len(dests) <= 1 and items is None:
            yield {**rec, "item": None, "output": str(dests[0]) if dests else None} if dests else rec
            return
        for i, d in zip(items if items is not None else range(len(dests)), dests):
            yield {"input": name, "item": i, "output": str(d), "status": "error", "error": rec["error"]}

    def _item_error(self, job: _Job, i: int, message: str) -> dict:
        """The record of an item that was not written (each item of an input ends in one)."""
        return self._error(job.name, message, item=i if job.n_items > 1 else None, output=str(job.dests[i]))


#: Short names of the inferred settings in the info line.
_SHORT = {"hop_length": "hop", "input_kind": "kind"}


def _item_history(history, i):
    """Item ``i``'s metrics at each evaluation of a batch's history."""
    return [{"iteration": h["iteration"], **{k: _pick(v, i) for k, v in h.items() if k != "iteration"}}
            for h in history]


def _pick(v, i):
    if isinstance(v, list):
        v = v[i] if i < len(v) else None
    return _num(v) if isinstance(v, float) else v


def _num(v):
    """A metric for JSON: rounded, ``None`` if not finite (JSON has no NaN)."""
    import math

    return round(float(v), 4) if v is not None and math.isfinite(float(v)) else None


def _out_bytes(n_items: int, n_frames: int, cfg) -> int:
    """The output audio held in memory (float32)."""
    return 4 * int(n_items) * max(int(n_frames), 1) * int(cfg.hop_length)


def _header_dims(shape, dtype, input_kind, layout):
    """(items, bins, frames) that an array of ``shape`` will have once interpreted, or None."""
    shape = tuple(shape)
    if input_kind == "complex" and dtype.kind != "c" and len(shape) >= 3 and shape[-1] == 2:
        shape = shape[:-1]
    if len(shape) < 2 or 0 in shape:
        return None
    n_f, n_t = (shape[-2], shape[-1]) if layout == "ft" else (shape[-1], shape[-2])
    items = 1
    for d in shape[:-2]:
        items *= d
    return items, n_f, n_t
