"""Speed measurements shared by ``specinv bench`` and ``benchmarks/speed.py`` (no click here).

Everything is reported as a ratio measured in the same process, so that a noisy or slow machine
still gives comparable figures:

- :func:`fft_floor`: the FFT floor, a batched ``rfft`` + ``irfft`` of the framed signal (same
  frame count, ``n_fft``, dtype, device and thread count as the inversion);
- :func:`per_iteration`: seconds per iteration of a registered method, from the time between
  successive ``monitor.step`` calls (the minimum and the median over the iterations: the minimum
  is the cost on a quiet machine, the median shows the noise);
- :func:`fgla_breakdown`: where an FGLA iteration goes, step by step, on the fast path;
- :func:`vs_references`: 100 iterations of FGLA against ``librosa.griffinlim`` and
  ``torchaudio.transforms.GriffinLim`` (momentum 0.99, random start, same thread count; librosa
  runs numpy's single-threaded FFT whatever the thread count), and the time the default method
  (``dm`` from ``pghi``, the PGHI start included) and FGLA need to reach the SC those reach;
- :func:`run_bench`: the short version of both on one magnitude, for ``specinv bench``.

Imports of torch, librosa and torchaudio happen inside the functions (the CLI imports this
module only when ``bench`` runs).
"""
from __future__ import annotations

import math
import statistics
import time
from typing import Any, Callable

__all__ = ["fft_floor", "per_iteration", "fgla_breakdown", "vs_references", "run_bench",
           "iterative_methods", "machine_info", "sc_of_audio", "timing_monitor"]


def _best(fn: Callable[[], Any], repeat: int, sync: Callable[[], None] = lambda: None) -> float:
    ts = []
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def _sync_for(device) -> Callable[[], None]:
    import torch

    if torch.device(device).type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``'s model name), else what ``platform`` says."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(threads: int | None = None) -> dict[str, Any]:
    """Date, CPU model (``/proc/cpuinfo``), cores, threads, torch (and CUDA device) versions."""
    import os
    import platform
    from datetime import date

    import torch

    info = {"date": str(date.today()), "cpu": cpu_name(), "arch": platform.machine(), "cores": os.cpu_count(),
            "threads": threads if threads is not None else torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


def iterative_methods() -> list[str]:
    """Registered iterative methods (RTISI-LA included: its frame recursion is its iteration)."""
    from ..algorithms.registry import REGISTRY

    return [name for name, m in REGISTRY.items() if m.iterative]


def fft_floor(n_frames: int, n_fft: int = 1024, *, batch: int = 1, dtype=None, device="cpu",
              repeat: int = 50, hop: int | None = None) -> float:
    """Seconds for ``irfft(rfft(frames))`` of ``[batch, n_frames, n_fft]`` frames (minimum).
    With ``hop``, the ``rfft`` reads the frames in place from a signal (overlapping strides, as
    the fused CPU path does) instead of from a contiguous frame tensor."""
    import torch

    dtype = dtype or torch.float32
    if hop:
        sig = torch.randn(batch, n_fft + hop * (n_frames - 1), dtype=dtype, device=device)
        frames = sig.unfold(-1, n_fft, hop)
    else:
        frames = torch.randn(batch, n_frames, n_fft, dtype=dtype, device=device)
    fn = lambda: torch.fft.irfft(torch.fft.rfft(frames, dim=-1), n=n_fft, dim=-1)  # noqa: E731
    fn()
    return _best(fn, repeat, _sync_for(device))


def timing_monitor(sync: Callable[[], None] = lambda: None):
    """A :class:`~specinv_cli.algorithms.base.Monitor` that only records (in ``times``) when each
    iteration ends."""
    from ..algorithms.base import Monitor

    class TimingMonitor(Monitor):
        def __init__(self):
            super().__init__()
            self.times = [time.perf_counter()]

        def step(self, i, est_mag):
            self.iterations = i
            sync()
            self.times.append(time.perf_counter())
            return False

    return TimingMonitor()


def per_iteration(method: str, mag, stft, init=None, *, n_iter: int = 30, length: int | None = None,
                  repeat: int = 1) -> dict[str, float]:
    """Seconds per iteration of ``method`` (its registry defaults) on ``mag``: ``min`` and
    ``median`` of the gaps between successive iterations (the first one, with the set-up, left
    out), over ``repeat`` runs of ``n_iter`` iterations."""
    from ..algorithms.registry import REGISTRY

    m = REGISTRY[method]
    fn, opts = m.load(), m.defaults()
    sync = _sync_for(stft.device)
    fn(mag, stft, n_iter=2, init=init, length=length, **opts)  # warm-up: caches, plans, kernels
    gaps: list[float] = []
    for _ in range(repeat):
        mon = timing_monitor(sync)
        fn(mag, stft, n_iter=n_iter, init=init, length=length, monitor=mon, **opts)
        t = mon.times
        gaps += [b - a for a, b in zip(t[2:-1], t[3:])] or [b - a for a, b in zip(t, t[1:])]
    if not gaps:  # the method never called the monitor: time whole runs
        whole = _best(lambda: fn(mag, stft, n_iter=n_iter, init=init, length=length, **opts), 3, sync)
        return {"min": whole / max(n_iter, 1), "median": whole / max(n_iter, 1)}
    return {"min": min(gaps), "median": statistics.median(gaps)}


def fgla_breakdown(mag, stft, *, length: int | None = None, repeat: int = 30) -> dict[str, float]:
    """Seconds per step of one FGLA iteration on the fast path (each step timed alone, minimum
    of ``repeat``), with ``total`` (their sum), ``iteration`` (a measured FGLA iteration) and
    ``fft_floor`` for the same sizes. On the fused CPU path (numba): ``rfft`` of the frames read
    in place, window and magnitude projection in one kernel, ``irfft``, and one kernel for the
    overlap-add, envelope, padding and momentum. On the torch path: magnitude projection
    (``P_A``), ``irfft``, windowed overlap-add, inverse-envelope multiply, padding rewrite,
    momentum on the signal (``lerp``), framing and window (``unfold`` + multiply), ``rfft``.
    Then the rest (Python, thread hand-offs, bookkeeping: the measured iteration minus the sum
    of the steps)."""
    import torch

    from ..dsp.stft import MagnitudeProjection

    sync = _sync_for(stft.device)
    proj = stft.projector(mag.shape, length)
    eps = torch.finfo(mag.dtype).tiny ** 0.5
    p_a = MagnitudeProjection(mag, eps)
    phase = torch.rand(mag.shape, generator=torch.Generator().manual_seed(0)).to(mag.device) * (2 * math.pi)
    x = proj.analyze(proj.synth(torch.polar(mag, phase)))
    s1, s2 = proj.new_signal(), proj.new_signal()
    s1 = proj.synth(x, out=s1)
    s2.copy_(s1)
    steps: dict[str, Callable[[], Any]] = {}
    if proj._use_jit():  # the fused CPU path: four calls per iteration (see Projector.gla_step)
        from ..dsp.stft import as_rows, jit_kernels

        J, nchunk = jit_kernels()
        N = stft.n_fft
        X = proj._spectrum(s1)
        frames = torch.fft.irfft(X, n=N, dim=-1)
        y = s1.view(proj.batch, proj.width)
        if proj._taps is not None:
            steps["rfft of the frames, read in place from the signal"] = lambda: proj._spectrum(s1)
            label = "window (taps along frequency) + magnitude projection, one kernel"
        else:
            steps["framing and window + rfft"] = lambda: proj._spectrum(s1)
            label = "magnitude projection, one kernel"
        steps[label] = lambda: J.window_conv_project(as_rows(X), p_a._m_np, proj._ktaps, N, p_a._eps2, nchunk)
        steps["irfft"] = lambda: torch.fft.irfft(X, n=N, dim=-1)
        steps["overlap-add + envelope + padding + momentum, one kernel"] = (
            lambda: proj._overlap_add(frames, y, s2, 0.99))
    else:
        steps["magnitude projection P_A"] = lambda: p_a(x, out=x)
    if proj.fast and not proj._use_jit():
        B, T, N, hop = proj.batch, proj.n_frames, stft.n_fft, stft.hop
        r = N // hop
        spec_tf = x.reshape(B, stft.n_freqs, T).transpose(1, 2)
        frames = torch.fft.irfft(spec_tf, n=N, dim=-1)
        y = s1.view(B, proj.width)
        acc = y.view(B, T + r - 1, hop)
        blocks = frames.view(B, T, r, hop)
        w = proj._wsyn.view(r, hop)
        fbuf = proj._frame_buffer()

        def ola():
            torch.mul(blocks[:, :, 0], w[0], out=acc[:, :T])
            acc[:, T:].zero_()
            for k in range(1, r):
                acc[:, k:k + T].addcmul_(blocks[:, :, k], w[k])

        steps.update({
            "irfft": lambda: torch.fft.irfft(spec_tf, n=N, dim=-1),
            "overlap-add with window": ola,
            "inverse envelope": lambda: y.mul_(proj._env),
            "padding rewrite": lambda: proj._repad(y),
            "momentum on the signal (lerp)": lambda: s2.lerp_(s1, 1.99),
            "framing and window": lambda: torch.mul(y.unfold(-1, N, hop), proj._wana, out=fbuf),
            "rfft": lambda: torch.fft.rfft(fbuf, dim=-1),
        })
    elif not proj.fast:
        steps.update({"synth (ISTFT)": lambda: proj.synth(x, out=s1),
                      "momentum on the signal (lerp)": lambda: s2.lerp_(s1, 1.99),
                      "analyze (STFT)": lambda: proj.analyze(s1)})
    for f in steps.values():
        f()
    best = {k: math.inf for k in steps}
    for _ in range(repeat):  # interleaved, so that a noisy spell hits every step alike
        for k, f in steps.items():
            best[k] = min(best[k], _best(f, 1, sync))
    out = dict(best)
    out["total"] = sum(best.values())
    it = per_iteration("fgla", mag, stft, None, n_iter=max(30, repeat), length=length)["min"]
    out["iteration"] = it
    out["rest (Python, views, allocation)"] = max(it - out["total"], 0.0)
    out["fft_floor"] = fft_floor(mag.shape[-1], stft.n_fft, batch=proj.batch, dtype=stft.dtype,
                                 device=stft.device, repeat=repeat)
    out["fast_path"] = bool(proj.fast)
    out["fused_kernels"] = bool(proj._use_jit())
    return out


def sc_of_audio(audio, mag, stft) -> float:
    """SC (dB) of the magnitude of ``audio`` against ``mag`` (frame counts fitted)."""
    import numpy as np
    import torch

    from ..dsp.stft import fit_frames
    from ..dsp.metrics import sc

    a = torch.as_tensor(np.asarray(audio, dtype=np.float32)).to(device=stft.device, dtype=stft.dtype)
    est = fit_frames(stft.forward(a).abs(), mag.shape[-1])
    return float(sc(est, mag))


def _librosa_run(mag_np, length: int, n_iter: int, n_fft: int, hop: int):
    import librosa

    return librosa.griffinlim(mag_np, n_iter=n_iter, hop_length=hop, win_length=n_fft, n_fft=n_fft,
                              window="hann", center=True, momentum=0.99, length=length, random_state=0)


def _torchaudio_inprocess():
    """A runner ``(mag, length, n_iter, threads) -> (audio, seconds, version)`` when torchaudio
    imports here, else None."""
    try:
        import torchaudio
    except Exception:
        return None

    def run(mag, length, n_iter, threads, n_fft=1024, hop=256):
        import torch

        gl = torchaudio.transforms.GriffinLim(n_fft=n_fft, hop_length=hop, win_length=n_fft, power=1.0,
                                              n_iter=n_iter, momentum=0.99, length=length)
        torch.manual_seed(0)
        t0 = time.perf_counter()
        y = gl(mag.cpu().float())
        return y.numpy(), time.perf_counter() - t0, torchaudio.__version__

    return run


def _time_to_goal(mag, length, goal: float, *, method: str | None, init: str, n_max: int, device,
                  repeat: int) -> dict[str, Any] | None:
    """Iterations ``method`` from ``init`` needs for its output to reach SC ``goal`` (dB), and
    the wall time of an :func:`~specinv_cli.api.invert` call with that many (init included)."""
    from ..api import invert

    hist = invert(mag, method=method, init=init, n_iter=n_max, length=length, device=device,
                  eval_every=1, callback=lambda p: None).history
    need = next((h["iteration"] for h in hist if float(h["sc"] if not isinstance(h["sc"], list)
                                                     else max(h["sc"])) <= goal), None)
    if need is None:
        return None
    run = lambda: invert(mag, method=method, init=init, n_iter=need, length=length, device=device)  # noqa: E731
    res = run()
    secs = _best(run, repeat)
    return {"iterations": need, "seconds": secs, "sc": float(res.metrics["sc"])}


def vs_references(mag, length: int, *, n_iter: int = 100, threads: int = 2, device="cpu",
                  torchaudio_runner=None, librosa: bool = True, repeat: int = 3,
                  n_fft: int = 1024, hop: int = 256) -> dict[str, Any]:
    """``n_iter`` iterations of specinv FGLA (random start) vs librosa / torchaudio GriffinLim on
    one magnitude ``[F, T]`` (reference STFT: Hann, centred, reflect), seconds and output SC,
    and the time the default method and FGLA need to reach the best reference SC.
    ``torchaudio_runner``: ``(mag, length, n_iter, threads) -> (audio, seconds, version)``
    (default: torchaudio in this interpreter when it imports, else skipped)."""
    import torch

    from ..algorithms.registry import DEFAULT_INIT, DEFAULT_METHOD
    from ..api import invert
    from ..config import STFTConfig
    from ..dsp.stft import STFT

    mag = mag.to(torch.float32)
    op = STFT(STFTConfig(n_fft=n_fft, hop_length=hop))
    cpu_mag = mag.cpu()
    rec: dict[str, Any] = {"frames": int(mag.shape[-1]), "seconds_of_audio": length / 22050, "n_iter": n_iter}
    run = lambda: invert(mag, method="fgla", init="random", n_iter=n_iter, length=length, device=device)  # noqa: E731
    out = run()
    rec["specinv_fgla"] = {"seconds": _best(run, repeat), "sc": float(out.metrics["sc"])}
    refs = {}
    if librosa:
        try:
            m_np = cpu_mag.numpy()
            y = _librosa_run(m_np, length, n_iter, n_fft, hop)
            secs = _best(lambda: _librosa_run(m_np, length, n_iter, n_fft, hop), max(1, repeat - 1))
            refs["librosa"] = {"seconds": secs, "sc": sc_of_audio(y, cpu_mag, op)}
        except ImportError:
            pass
    ta = torchaudio_runner if torchaudio_runner is not None else _torchaudio_inprocess()
    if ta is not None:
        ts, y, version = [], None, None
        for _ in range(max(1, repeat - 1)):
            y, secs, version = ta(cpu_mag, length, n_iter, threads)
            ts.append(secs)
        refs["torchaudio"] = {"seconds": min(ts), "sc": sc_of_audio(y, cpu_mag, op), "version": version}
    rec.update(refs)
    for name, r in refs.items():
        rec[f"fgla_over_{name}"] = rec["specinv_fgla"]["seconds"] / r["seconds"]
    if refs:
        goal_name = "torchaudio" if "torchaudio" in refs else "librosa"
        goal = refs[goal_name]["sc"]
        rec["goal"] = {"reference": goal_name, "sc": goal}
        for key, method, init in (("default", DEFAULT_METHOD, DEFAULT_INIT), ("fgla", "fgla", "random")):
            got = _time_to_goal(mag, length, goal, method=method, init=init, n_max=n_iter, device=device,
                                repeat=repeat)
            if got is not None:
                got["method"], got["init"] = method, init
                got[f"over_{goal_name}"] = got["seconds"] / refs[goal_name]["seconds"]
            rec[f"{key}_to_goal"] = got
    return rec


def run_bench(mag=None, *, iters: int = 100, threads: int | None = 2, device: str = "cpu",
              methods: list[str] | None = None, quick: bool = False, references: bool = True,
              precision: str = "single", torchaudio_runner=None) -> dict[str, Any]:
    """The short benchmark: (1) per-iteration time of each iterative method vs the FFT floor,
    with the FGLA breakdown, and (2) ``iters`` iterations vs librosa / torchaudio, on ``mag``
    ``[F, T]`` (default: the bundled example). ``quick``: fewer repeats and iterations."""
    import torch

    saved = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        return _run_bench(mag, iters=iters, device=device, methods=methods, quick=quick,
                          references=references, precision=precision, torchaudio_runner=torchaudio_runner)
    finally:
        torch.set_num_threads(saved)


def _run_bench(mag, *, iters, device, methods, quick, references, precision, torchaudio_runner):
    import numpy as np
    import torch

    from ..api import resolve_device
    from ..config import STFTConfig
    from ..dsp.stft import STFT

    dev = resolve_device(device)
    dtype = torch.float64 if precision == "double" else torch.float32
    if mag is None:
        from ..io.read import example_path

        with np.load(example_path(), allow_pickle=False) as d:
            mag = torch.from_numpy(d["magnitude"].astype(np.float32))
    mag = torch.as_tensor(mag)
    op = STFT(STFTConfig(), device=dev, dtype=dtype)
    m = mag.to(device=dev, dtype=dtype)
    length = op.default_length(m.shape[-1])
    gen = torch.Generator().manual_seed(0)
    init = torch.polar(m, (torch.rand(m.shape, generator=gen, dtype=dtype) * (2 * math.pi)).to(dev))
    n_it = 15 if quick else 40
    report: dict[str, Any] = {"machine": machine_info(torch.get_num_threads()), "device": str(dev),
                              "precision": precision, "frames": int(m.shape[-1]), "n_fft": op.n_fft,
                              "hop": op.hop}
    sync = _sync_for(dev)
    floor_at = lambda: fft_floor(m.shape[-1], op.n_fft, dtype=dtype, device=dev, repeat=10 if quick else 20)  # noqa: E731
    floor = floor_at()
    pair = _best(lambda: op.forward(op.inverse(init, length)), 10 if quick else 30, sync)
    times = {}
    for name in methods or iterative_methods():
        # the floor is re-measured between methods and its minimum kept: a noisy spell during
        # one measurement of it would otherwise inflate every ratio
        floor = min(floor, floor_at())
        times[name] = per_iteration(name, m, op, init, n_iter=n_it, length=length)
    floor = min(floor, floor_at())
    # the same FFTs with the rfft reading overlapping frames in place, as the fused path does:
    # faster than the floor on MKL, so ratios against it show what the kernels alone add
    strided = min(fft_floor(m.shape[-1], op.n_fft, dtype=dtype, device=dev, repeat=10 if quick else 20,
                            hop=op.hop) for _ in range(3))
    rows = {name: {"ms": t["min"] * 1e3, "median_ms": t["median"] * 1e3, "x_floor": t["min"] / floor,
                   "x_strided_floor": t["min"] / strided}
            for name, t in times.items()}
    report["per_iteration"] = {"fft_floor_ms": floor * 1e3, "fft_floor_strided_ms": strided * 1e3,
                               "stft_istft_ms": pair * 1e3, "stft_istft_x_floor": pair / floor, "methods": rows}
    bd = fgla_breakdown(m, op, length=length, repeat=10 if quick else 30)
    report["fgla_breakdown_ms"] = {k: (v * 1e3 if isinstance(v, float) else v) for k, v in bd.items()}
    if references:
        report["vs_references"] = vs_references(m, length, n_iter=iters, threads=torch.get_num_threads(),
                                                device=dev, torchaudio_runner=torchaudio_runner,
                                                repeat=2 if quick else 3)
    return report
