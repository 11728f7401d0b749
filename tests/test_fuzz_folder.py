"""One run of the CLI over a folder of fuzzed files (tests/make_fuzz.py): exit code 1, one clean
line per refused file, never a traceback, every good file converted, no pickle executed."""
import json

import numpy as np
import soundfile as sf

import pytest

from clihelp import files_in, read_wav, run
from make_fuzz import make


def _run_folder(capsys, tmp_path, count, seed):
    folder, out = tmp_path / "fuzz", tmp_path / "out"
    counts = make(folder, count=count, seed=seed)
    inputs = sorted(folder.iterdir())
    rc, stdout, err = run(capsys, "invert", *inputs, "-O", out, "-n", "2", "-m", "fgla", "-q", "--json")
    assert rc == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    recs = [json.loads(ln) for ln in stdout.splitlines()]
    summary = recs.pop()["summary"]
    status = {}
    for r in recs:
        status.setdefault(r["input"].rsplit("/", 1)[-1], set()).add(r["status"])
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == summary["failed_inputs"]
    for p in inputs:
        st = status[p.name]
        if p.name.startswith("ok_"):
            assert st == {"ok"}, (p.name, [e for e in errors if p.name in e])
        elif p.name.startswith("bad_"):
            assert st == {"error"}, p.name
    assert not [f for f in files_in(folder) if f.startswith("PWNED")], "a pickle was executed"
    written = files_in(out)
    assert not [f for f in written if f.startswith(".specinv-tmp-")]
    for f in written:
        audio, _ = read_wav(out / f)
        assert audio.size and np.isfinite(audio).all()
        if sf.info(str(out / f)).subtype == "PCM_16":  # auto: PCM_16 only when it fits full scale
            assert (abs(audio) <= 1).all()
    return counts, summary


def test_fuzz_folder(tmp_path, capsys):
    counts, summary = _run_folder(capsys, tmp_path, 120, 0)
    assert counts["ok"] and counts["bad"] and counts["any"]
    assert summary["inputs"] == 120


@pytest.mark.slow
def test_fuzz_folder_big(tmp_path, capsys):
    counts, summary = _run_folder(capsys, tmp_path, 2000, 1)
    print(counts, summary)
