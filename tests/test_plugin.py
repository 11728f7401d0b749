"""User algorithms: register_method from Python, and plugins installed as packages with an
entry point in the ``specinv.methods`` group (tests/plugin, installed here with pip offline)."""
from __future__ import annotations

import dataclasses
import inspect
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from clihelp import ROOT, read_wav, run, run_process
from conftest import load_clip, reference_magnitude
from specinv_cli.algorithms import registry
from specinv_cli.algorithms.gla import gla
from specinv_cli.algorithms.registry import Option, get_method, method_names, register_method, unregister_method


@pytest.fixture(scope="module")
def clip(corpus):
    return load_clip("music_01_classical_guitar", seconds=1.0)


@pytest.fixture(scope="module")
def mag(clip):
    return reference_magnitude(clip).numpy()  # [513, 87]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """tests/plugin really installed (pip, offline, into a folder put on PYTHONPATH), and a
    distribution whose entry points are broken in four ways (its metadata written by hand:
    that folder is all importlib.metadata reads)."""
    work = tmp_path_factory.mktemp("plugins")
    src = work / "src"  # a copy: building writes build/ and *.egg-info next to the sources
    shutil.copytree(ROOT / "tests" / "plugin", src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = work / "site"
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                        "--quiet", "--target", str(target), str(src)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    broken = work / "broken"
    info = broken / "broken_specinv-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-specinv\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[specinv.methods]\n"
        "missing = specinv_no_such_module:METHOD\n"
        "clash = broken_spec:CLASH\n"
        "partial = broken_spec:partial\n"
        "number = broken_spec:NUMBER\n")
    (broken / "broken_spec.py").write_text(
        "from specinv_cli.algorithms.registry import Method, register_method\n"
        "CLASH = Method('gla', 'broken_spec', 'nothing', 'takes a built-in name', '')\n"
        "NUMBER = 42\n"
        "def partial():\n"
        "    register_method('half-done', 'broken_spec:nothing')\n"
        "    raise RuntimeError('boom after registering one')\n")
    return target, broken


def env_with(*paths, **extra):
    parts = [str(p) for p in paths] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {"PYTHONPATH": os.pathsep.join(parts), "COLUMNS": "400", **extra}


def warning_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if "plugin entry point" in ln]


def test_methods_lists_plugins_and_survives_broken_entry_points(installed):
    site, broken = installed
    p = run_process("methods", env=env_with(site, broken))
    out, err = p.stdout.decode(), p.stderr.decode()
    assert p.returncode == 0, err
    rows = {ln.split("│")[1].strip(): ln for ln in out.splitlines() if ln.count("│") > 3}
    for name in ("halfgla", "quartergla"):  # a Method entry point and a registering callable
        assert "[plugin: specinv-halfgla]" in rows[name], rows.get(name)
    assert "plugin" not in rows["gla"] and "--fraction 0.5" in rows["halfgla"]
    assert set(method_names()) <= set(rows)  # every built-in still there
    assert "half-done" not in rows  # a hook that failed leaves nothing half-registered
    lines = warning_lines(err)
    assert len(lines) == 4, err
    for entry, error in (("missing = specinv_no_such_module:METHOD", "ModuleNotFoundError"),
                         ("clash = broken_spec:CLASH", "built-in method"),
                         ("partial = broken_spec:partial", "RuntimeError: boom"),
                         ("number = broken_spec:NUMBER", "TypeError")):
        [line] = [ln for ln in lines if entry in ln]
        assert error in line and "broken-specinv" in line, line


def test_invert_runs_a_plugin_with_its_option(installed, tmp_path, capsys, mag):
    """halfgla runs GLA for round(fraction * n_iter) iterations: with --fraction 0.5 and -n 20
    it must write what gla writes with -n 10 (the same computation), and not what gla writes
    with -n 20. Sample for sample up to the last bit of PCM_16: the two runs may take the numba
    and the torch twin of the same kernels (the choice depends on the work planned and on what
    the process has loaded), which agree to float32 rounding, not bit for bit."""
    site, broken = installed
    np.save(tmp_path / "x.npy", mag)
    p = run_process("invert", tmp_path / "x.npy", "-m", "halfgla", "--fraction", "0.5", "-n", "20",
                    "-o", tmp_path / "half.wav", "--json", env=env_with(site, broken))
    assert p.returncode == 0, p.stderr.decode()
    assert len(warning_lines(p.stderr.decode())) == 4  # the broken entry points do not stop it
    rec = json.loads(p.stdout.decode().splitlines()[0])
    assert rec["method"] == "halfgla" and rec["iterations"] == 10 and rec["status"] == "ok"
    for n, name in ((10, "g10.wav"), (20, "g20.wav")):  # built-in gla in this process
        code, out, err = run(capsys, "invert", tmp_path / "x.npy", "-m", "gla", "-n", n, "-o", tmp_path / name, "--json")
        assert code == 0, err
        if n == 10:
            ref = json.loads(out.splitlines()[0])
    assert abs(rec["sc"] - ref["sc"]) < 1e-3 and abs(rec["snr"] - ref["snr"]) < 1e-3
    half, g10, g20 = (read_wav(tmp_path / n)[0] for n in ("half.wav", "g10.wav", "g20.wav"))
    lsb = 1 / 2 ** 15
    assert np.abs(half - g10).max() <= lsb and np.abs(half - g20).max() > 100 * lsb


@pytest.mark.parametrize("args, message", [
    (("--bogus", "1"), "No such option '--bogus'"),
    (("--alpha", "0.5"), "--alpha does not apply to method 'halfgla' (its options: --fraction)"),
    (("--fraction", "1.5"), "--fraction for halfgla must be <= 1.0"),
])
def test_invert_refuses_options_a_plugin_does_not_take(installed, tmp_path, args, message):
    site, _ = installed
    p = run_process("invert", tmp_path / "none.npy", "-m", "halfgla", *args, "-o", tmp_path / "o.wav",
                    env=env_with(site))
    assert p.returncode == 2 and message in p.stderr.decode(), p.stderr.decode()
    assert not (tmp_path / "o.wav").exists()


def test_no_plugins_variable_hides_them(installed, tmp_path):
    site, broken = installed
    env = env_with(site, broken, SPECINV_NO_PLUGINS="1")
    p = run_process("methods", env=env)
    assert p.returncode == 0 and "gla" in p.stdout.decode()
    assert "halfgla" not in p.stdout.decode() and not warning_lines(p.stderr.decode())
    p = run_process("invert", tmp_path / "none.npy", "-m", "halfgla", "-o", tmp_path / "o.wav", env=env)
    assert p.returncode == 2 and "unknown method 'halfgla'" in p.stderr.decode()


def test_help_with_a_plugin_stays_torch_free(installed):
    """The registry module reads no entry point when imported; --help loads the plugin's spec
    (for its flags) but neither its implementation nor torch."""
    site, _ = installed
    code = ("import sys\n"
            "import specinv_cli.algorithms.registry as r\n"
            "assert r._PLUGINS[0] == 'new', 'entry points read at import'\n"
            "from specinv_cli.cli import main\n"
            "try:\n    main(['invert', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'specinv_halfgla.spec' in sys.modules and 'specinv_halfgla.impl' not in sys.modules\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env_with(site)},
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert "--fraction FLOAT" in p.stdout and "halfgla (plugin)" in p.stdout


# --- register_method from Python ------------------------------------------------------------------

def test_registered_function_runs_through_invert(mag):
    """``scaled`` is gla times ``gain``: invert() must return exactly half of gla's audio for
    gain 0.5 (a power of two: the scaling is exact in float)."""
    import specinv_cli
    from specinv_cli.api import invert

    def scaled(mag, stft, *, n_iter, init, length, monitor, gain=1.0):
        return gain * gla(mag, stft, n_iter=n_iter, init=init, length=length, monitor=monitor)

    m = specinv_cli.register_method("scaled", scaled, {"gain": 1.0}, summary="GLA times a gain", ragged=True)
    try:
        assert m.origin == "python" and get_method("scaled") is m and "scaled" in registry.REGISTRY
        assert specinv_cli.Option is Option
        res = invert(mag, method="scaled", n_iter=5, gain=0.5)
        ref = invert(mag, method="gla", n_iter=5)
        assert res.method == "scaled" and res.options == {"gain": 0.5}
        assert torch.equal(res.audio, 0.5 * ref.audio)
        with pytest.raises(ValueError, match="`gain` for scaled must be float"):
            invert(mag, method="scaled", n_iter=5, gain="loud")
    finally:
        unregister_method("scaled")
    assert "scaled" not in method_names()


def test_a_tensor_option_reaches_the_algorithm_unchanged(mag):
    seen = []

    def capture(mag, stft, *, n_iter, init, length, monitor, alpha=0.5):
        seen.append(alpha)
        return gla(mag, stft, n_iter=n_iter, init=init, length=length, monitor=monitor)

    register_method("capture", capture, [Option("alpha", float, 0.5, "momentum", min=0.0, max=1.0, max_open=True)])
    try:
        from specinv_cli.api import invert

        alpha = torch.tensor(0.9, requires_grad=True)
        assert get_method("capture").resolve_options({"alpha": alpha})["alpha"] is alpha
        invert(mag, method="capture", n_iter=2, alpha=alpha)
        assert seen[-1] is alpha and seen[-1].requires_grad
        for bad, message in ((torch.tensor(1.0), "must be < 1.0"), (torch.tensor(-0.1), "must be >= 0.0"),
                             (torch.tensor([0.5]), "0-dim tensor, got a tensor of shape"),
                             (torch.tensor(float("nan")), "finite")):
            with pytest.raises(ValueError, match=message):
                get_method("capture").resolve_options({"alpha": bad})
    finally:
        unregister_method("capture")
    # the built-in options take tensors the same way
    t = torch.tensor(0.5, dtype=torch.float64)
    assert get_method("fgla").resolve_options({"alpha": t})["alpha"] is t


def _noop(mag, stft, *, n_iter, init, length, monitor):
    return stft.inverse(init, length)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(name="Bad Name"), ValueError, "lowercase letter"),
    (dict(name="9lives"), ValueError, "lowercase letter"),
    (dict(name="gla"), ValueError, "built-in method; pass replace=True"),
    (dict(fn=42), TypeError, "`fn` must be callable"),
    (dict(fn="no_colon"), ValueError, "'package.module:function'"),
    (dict(options={"n_iter": 3}), ValueError, "option `n_iter` clashes with a keyword of invert()"),
    (dict(options={"device": "cpu"}), ValueError, "option `device` clashes"),
    (dict(options={"length": 1}), ValueError, "option `length` clashes"),
    (dict(options={"quiet": True}), ValueError, "option `quiet` clashes"),
    (dict(options={"x": None}), ValueError, "option `x` needs a default of type bool, int, float or str"),
    (dict(options={"Bad": 1.0}), ValueError, "must be a lowercase identifier"),
    (dict(options={"beta": 1}), ValueError, "`beta` is int here but float for agla, dm, raar"),
    (dict(options=[Option("f", float, 2.0, "", max=1.0)]), ValueError, "default of option `f` is invalid"),
    (dict(options=[Option("f", float, 0.0, ""), Option("f", float, 1.0, "")]), ValueError, "given twice"),
    (dict(options=[Option("f", list, [], "")]), ValueError, "options are bool, int, float or str"),
    (dict(options="alpha"), ValueError, "sequence of Option or a dict"),
])
def test_register_method_refuses(kwargs, error, message):
    args = {"name": "tryout", "fn": _noop, **kwargs}
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        register_method(args.pop("name"), args.pop("fn"), **args)
    assert "tryout" not in method_names()


def test_register_replace_and_unregister():
    register_method("tryout", _noop, summary="first")
    try:
        with pytest.raises(ValueError, match="already registered .from python.; pass replace=True"):
            register_method("tryout", _noop)
        assert register_method("tryout", "os.path:join", summary="second", replace=True).summary == "second"
        assert get_method("tryout").load() is os.path.join  # a 'module:function' is imported on use
    finally:
        unregister_method("tryout")
    with pytest.raises(ValueError, match="built in and cannot be removed"):
        unregister_method("gla")
    original = get_method("gla")
    register_method("gla", _noop, replace=True)
    try:
        assert get_method("gla").load() is _noop
    finally:
        unregister_method("gla")  # gives the built-in back
    assert get_method("gla") == original and get_method("gla").load() is gla


def test_reserved_names_cover_invert_and_the_cli():
    """Every keyword of invert(), field of InversionOptions and flag of 'specinv invert' (other
    than method options) is reserved, and the built-in methods obey the rules plugins do."""
    from specinv_cli.api import invert
    from specinv_cli.cli.invert import invert as command
    from specinv_cli.options import InversionOptions

    reserved = registry.RESERVED_OPTION_NAMES
    assert set(inspect.signature(invert).parameters) - {"kwargs"} <= reserved
    assert {f.name for f in dataclasses.fields(InversionOptions)} <= reserved
    assert {"mag", "stft", "n_iter", "init", "length", "monitor"} <= reserved
    method_options = set(registry.all_options())
    for param in command.params:
        if param.name not in method_options:
            words = {param.name} | {o[2:].replace("-", "_") for o in param.opts + param.secondary_opts
                                     if o.startswith("--")}  # an option's flag is --name, never -x
            assert words <= reserved, (param.name, words - reserved)
    for m in registry._BUILTIN.values():
        registry._validate(m, replace=True)
