"""Run the CLI in-process (fast) or as a subprocess (for stdout bytes, signals, start-up)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from specinv_cli.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *args):
    """``specinv ARGS`` in this process: returns (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def run_process(*args, input=None, env=None, timeout=120):
    """``python -m specinv_cli ARGS`` as a subprocess (bytes stdout)."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "specinv_cli", *map(str, args)], input=input,
                          capture_output=True, env=e, timeout=timeout, cwd=str(ROOT))


def read_wav(path):
    data, sr = sf.read(str(path), dtype="float32", always_2d=False)
    return data, sr


def files_in(folder) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir())


def stft_mag(audio, n_fft=1024, hop=256):
    import torch

    return torch.stft(torch.from_numpy(np.asarray(audio, dtype=np.float32)), n_fft, hop,
                      window=torch.hann_window(n_fft), return_complex=True).abs()
