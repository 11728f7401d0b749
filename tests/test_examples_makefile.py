"""examples/Makefile: pattern rules with -j2, and a rerun that does nothing."""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from clihelp import ROOT, files_in, read_wav


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_j2_then_nothing_to_do(tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        np.save(specs / f"s{i}.npy", rng.random((129, 12 + i)).astype(np.float32))
    specinv = f"{sys.executable} -m specinv_cli"
    args = ["make", "-C", str(ROOT / "examples"), f"SPECS={specs}", f"WAVS={tmp_path / 'wavs'}",
            f"SPECINV={specinv}", "FLAGS=-n 2 -m gla"]
    first = subprocess.run([*args, "-j2"], capture_output=True, text=True, cwd=str(ROOT), timeout=300)
    assert first.returncode == 0, first.stderr
    assert files_in(tmp_path / "wavs") == ["s0.wav", "s1.wav", "s2.wav"]
    for i in range(3):
        audio, sr = read_wav(tmp_path / "wavs" / f"s{i}.wav")
        assert sr == 22050 and len(audio) == (11 + i) * 64  # 129 bins: n_fft 256, hop n_fft/4
    again = subprocess.run([*args, "-j2"], capture_output=True, text=True, cwd=str(ROOT), timeout=60)
    assert again.returncode == 0 and "invert" not in again.stdout and "Nothing to be done" in again.stdout
    q = subprocess.run([*args, "-q"], capture_output=True, text=True, cwd=str(ROOT), timeout=60)
    assert q.returncode == 0  # make -q: everything up to date
