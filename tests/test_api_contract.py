"""invert()'s contract: one options object, the input's device and dtype kept, one result type
for every path (batched, ragged, long), and every decision made in one place."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import load_clip, reference_magnitude
from specinv_cli.api import InversionResult, default_method, invert
from specinv_cli.batch.blocks import invert_blocks
from specinv_cli.config import STFTConfig, load_preset
from specinv_cli.options import InversionOptions


@pytest.fixture(scope="module")
def mag(corpus):
    return reference_magnitude(load_clip(corpus[1], 1.5))  # [513, T] float32


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_input_dtype_and_device_are_kept_on_every_path(mag, dtype):
    cfg = STFTConfig().with_bins(mag.shape[-2], "t")
    m = mag.to(dtype)
    whole = invert(m[None], config=cfg, method="fgla", n_iter=4)
    ragged = invert(torch.stack([m, torch.cat([m[:, :40], torch.zeros_like(m[:, 40:])], -1)]), config=cfg,
                    method="fgla", n_iter=4, frames=[m.shape[-1], 40])
    long = invert_blocks(m, config=cfg, block=48, overlap=8, method="fgla", n_iter=4)
    for res, shape in ((whole, (1, whole.audio.shape[-1])), (ragged, (2, ragged.audio.shape[-1])),
                       (long, (long.audio.shape[-1],))):
        assert isinstance(res, InversionResult)
        assert res.audio.device == m.device and res.device == "cpu"
        assert tuple(res.audio.shape) == shape
        assert set(res.metrics) == {"sc", "snr", "ser"} and all(v.device.type == "cpu" for v in res.metrics.values())
        assert bool(torch.isfinite(res.audio).all())
    assert whole.audio.dtype == ragged.audio.dtype == dtype
    assert long.audio.dtype == torch.float32  # blocks are stitched in a float32 output buffer
    assert long.blocks > 2 and whole.blocks == 1 and ragged.lengths[1] < ragged.lengths[0]


def test_numpy_input_runs_on_the_cpu_whatever_is_available(mag):
    res = invert(mag.numpy(), method="gla", n_iter=2)
    assert res.audio.device.type == "cpu" and res.audio.dtype == torch.float32


def test_an_options_object_is_the_same_as_keywords(mag):
    cfg = STFTConfig().with_bins(mag.shape[-2], "t")
    opts = InversionOptions(method="fgla", n_iter=6, init="random", seed=3, method_options={"alpha": 0.5})
    a = invert(mag, opts, config=cfg)
    b = invert(mag, config=cfg, method="fgla", n_iter=6, init="random", seed=3, alpha=0.5)
    c = invert(mag, opts.replace(alpha=0.9), config=cfg)  # keywords override the object's fields
    assert torch.equal(a.audio, b.audio) and a.options == b.options == {"alpha": 0.5}
    assert c.options == {"alpha": 0.9} and not torch.equal(a.audio, c.audio)
    d = invert(mag, opts, config=cfg, n_iter=2)
    assert d.iterations == 2 and opts.n_iter == 6  # the object is not changed


@pytest.mark.parametrize("bad, needle", [
    (dict(n_iter=-1), "`n_iter` must be an integer >= 0"),
    (dict(eval_every=0), "`eval_every` must be an integer >= 1"),
    (dict(init="pink"), "unknown `init` 'pink'"),
    (dict(precision="half"), "unknown `precision` 'half'"),
    (dict(tol=float("nan")), "`tol` must be a finite number"),
    (dict(seed=2 ** 70), "`seed` must be an integer that fits in 64 bits"),
    (dict(errors="ignore"), "`errors` must be raise or report"),
    (dict(method="fgla", method_options={"alpha": 1.0}), "`alpha` for fgla must be < 1.0"),
    (dict(method_options={"no_such": 1}), "option `no_such` does not apply"),
])
def test_validation_lives_in_the_options(mag, bad, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace("[", r"\[")):
        InversionOptions(**bad).validate()
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace("[", r"\[")):
        invert(mag, InversionOptions(**bad))


def test_the_default_method_is_decided_once(mag):
    lin, mel = STFTConfig(), load_preset("hifigan-22k")
    assert default_method(lin) == "dm" and default_method(mel) == "lbfgs"
    assert invert(mag, n_iter=2).method == default_method(lin)
    # options that fit only the mel default are accepted without a method, and refused on linear input
    InversionOptions(method_options={"history_size": 3}).validate()
    with pytest.raises(ValueError, match="history_size"):
        invert(mag, n_iter=2, history_size=3)


def test_cli_and_library_give_the_same_audio(tmp_path, capsys, mag):
    """The CLI builds one InversionOptions and hands it down: same samples as the library."""
    from clihelp import read_wav, run

    np.save(tmp_path / "m.npy", mag.numpy())
    rc, _, err = run(capsys, "invert", tmp_path / "m.npy", "-o", tmp_path / "m.wav", "-m", "agla", "-n", "5",
                     "--beta", "1.05", "--subtype", "FLOAT", "--device", "cpu")
    assert rc == 0, err
    audio, _ = read_wav(tmp_path / "m.wav")
    ref = invert(mag, InversionOptions(method="agla", n_iter=5, method_options={"beta": 1.05}))
    np.testing.assert_array_equal(audio, ref.audio.numpy())


def test_the_cli_maps_library_errors_to_exit_codes_in_one_place(monkeypatch, capsys):
    """A library error no command handled: one line on stderr and the code of the one table."""
    from clihelp import run

    from specinv_cli import errors
    from specinv_cli.cli.common import exit_code

    assert [exit_code(e) for e in (errors.InputError("x", "bad"), errors.ConfigError("c"), errors.DeviceError("d"),
                                   errors.OutputError("o", "full"), errors.InversionError("diverged"),
                                   errors.StdoutClosed("gone"), ValueError("bug"))] == [2, 2, 2, 2, 1, 141, 3]

    def broken(*a, **k):
        raise errors.ConfigError("preset.toml: `n_fft` must be >= 2, got 1")

    monkeypatch.setattr("specinv_cli.config.list_presets", broken)
    rc, out, err = run(capsys, "configs")
    assert rc == 2 and out == "" and err.strip() == "error: preset.toml: --n-fft must be >= 2, got 1"


def test_invert_works_under_inference_mode(mag):
    """L-BFGS (the mel default and ``refine``) needs autograd; invert() steps out of inference mode."""
    cfg = STFTConfig().with_bins(mag.shape[-2], "t")
    outside = invert(mag, config=cfg, method="fgla", n_iter=4, refine=2)  # 2 FGLA, then 2 L-BFGS steps
    with torch.inference_mode():
        res = invert(mag.clone(), config=cfg, method="fgla", n_iter=4, refine=2)
        direct = invert(mag.clone(), config=cfg, method="lbfgs", n_iter=3)
    assert res.iterations == 4 and not res.audio.is_inference()
    assert torch.equal(res.audio, outside.audio)  # the same computation, only outside inference mode
    assert float(direct.metrics["sc"]) < float(invert(mag, config=cfg, method="lbfgs", n_iter=0).metrics["sc"])


@pytest.mark.parametrize("init", ["random", "pghi"])
def test_a_batch_of_one_length_gives_each_item_as_alone(mag, init):
    """frames all at the full length: the plain (fused) batch, each item from its own start."""
    cfg = STFTConfig().with_bins(mag.shape[-2], "t")
    other = mag.flip(-1).contiguous()
    both = invert(torch.stack([mag, other]).double(), config=cfg, method="fgla", n_iter=6, init=init,
                  frames=[mag.shape[-1]] * 2)
    assert both.lengths == [both.audio.shape[-1]] * 2
    for b, m in enumerate((mag, other)):
        alone = invert(m.double(), config=cfg, method="fgla", n_iter=6, init=init)
        torch.testing.assert_close(both.audio[b], alone.audio, rtol=0, atol=1e-9 * float(alone.audio.abs().max()))
