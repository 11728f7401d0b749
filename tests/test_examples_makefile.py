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


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_batch_rule_inverts_only_the_stale_inputs_in_one_call(tmp_path):
    specs, wavs = tmp_path / "specs", tmp_path / "wavs"
    specs.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        np.save(specs / f"s{i}.npy", rng.random((129, 12 + i)).astype(np.float32))
    # a specinv that logs its arguments, so the test sees which inputs each call got
    log = tmp_path / "calls.txt"
    wrapper = tmp_path / "specinv.sh"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {sys.executable} -m specinv_cli "$@"\n')
    wrapper.chmod(0o755)
    args = ["make", "-C", str(ROOT / "examples"), f"SPECS={specs}", f"WAVS={wavs}", f"SPECINV={wrapper}",
            "FLAGS=-n 2 -m gla", "batch"]
    first = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert files_in(wavs) == [".specinv-batch", "s0.wav", "s1.wav", "s2.wav"]
    calls = log.read_text().splitlines()
    assert len(calls) == 1 and all(f"s{i}.npy" in calls[0] for i in range(3))  # one process for all
    again = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and len(log.read_text().splitlines()) == 1  # nothing stale: no call
    import os
    import time

    later = time.time() + 5
    np.save(specs / "s1.npy", rng.random((129, 20)).astype(np.float32))
    os.utime(specs / "s1.npy", (later, later))  # newer than the stamp whatever the clock's resolution
    third = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    calls = log.read_text().splitlines()
    assert len(calls) == 2 and "s1.npy" in calls[1] and "s0.npy" not in calls[1] and "s2.npy" not in calls[1]
    assert len(read_wav(wavs / "s1.wav")[0]) == 19 * 64
