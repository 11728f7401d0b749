"""``specinv bench``: runs with tiny settings and reports positive finite figures (no timing
assertions: speed lives in benchmarks/)."""
import json
import math

from clihelp import run


def _positive_numbers(obj, path=""):
    """Every number in the report (booleans aside) is finite, and times are positive."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _positive_numbers(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _positive_numbers(v, f"{path}[{i}]")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield path, obj


def test_bench_json_has_every_row(capsys):
    code, out, err = run(capsys, "bench", "--quick", "--json", "-n", "3", "-m", "gla,fgla,dm", "--threads", "1")
    assert code == 0, err
    rep = json.loads(out)
    pi = rep["per_iteration"]
    assert set(pi["methods"]) == {"gla", "fgla", "dm"}
    assert pi["fft_floor_ms"] > 0 and pi["fft_floor_strided_ms"] > 0 and pi["stft_istft_ms"] > 0
    for name, r in pi["methods"].items():
        assert r["ms"] > 0 and r["x_floor"] > 0 and math.isfinite(r["x_floor"]), name
        assert math.isclose(r["x_strided_floor"] * pi["fft_floor_strided_ms"], r["ms"], rel_tol=1e-9), name
    bd = rep["fgla_breakdown_ms"]
    assert bd["fast_path"] is True
    from specinv_cli.dsp.stft import jit_enabled

    assert bd["fused_kernels"] is jit_enabled()
    steps = (("rfft of the frames, read in place from the signal",
              "window (taps along frequency) + magnitude projection, one kernel", "irfft",
              "overlap-add + envelope + padding + momentum, one kernel") if jit_enabled() else
             ("magnitude projection P_A", "irfft", "overlap-add with window", "rfft"))
    for step in steps + ("total", "iteration"):
        assert bd[step] > 0, step
    vr = rep["vs_references"]
    assert vr["n_iter"] == 3 and vr["specinv_fgla"]["seconds"] > 0
    assert vr["librosa"]["seconds"] > 0 and math.isfinite(vr["librosa"]["sc"])
    assert vr["fgla_over_librosa"] > 0
    assert rep["machine"]["threads"] == 1
    for path, v in _positive_numbers(rep):
        assert math.isfinite(v), path


def test_bench_table(capsys):
    code, out, err = run(capsys, "bench", "--quick", "--no-references", "-m", "fgla")
    assert code == 0, err
    for row in ("FFT floor", "STFT + ISTFT pair", "fgla", "Where an FGLA iteration goes", "magnitude projection"):
        assert row in out, row
    assert "librosa" not in out


def test_bench_rejects_unknown_method(capsys):
    code, out, err = run(capsys, "bench", "-m", "spsi")
    assert code == 2
    assert "not an iterative method: spsi" in err
