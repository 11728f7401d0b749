"""End-to-end CLI behaviour on real clips: formats, kinds, layouts, batches, outputs."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from clihelp import files_in, read_wav, run, run_process, stft_mag
from conftest import load_clip, reference_magnitude
from specinv_cli.dsp.metrics import sc

SR = 22050


@pytest.fixture(scope="module")
def clip(corpus):
    return load_clip("speech_female_hts2a", seconds=2.0)


@pytest.fixture(scope="module")
def mag(clip):
    return reference_magnitude(clip).numpy()  # [513, 173]


def sc_of(path, target):
    audio, _ = read_wav(path)
    est = stft_mag(audio)
    t = torch.as_tensor(target)
    n = min(est.shape[-1], t.shape[-1])
    return float(sc(est[..., :n], t[..., :n]))


def test_npy_fgla_roundtrip(tmp_path, capsys, mag, clip):
    np.save(tmp_path / "mag.npy", mag)
    code, out, err = run(capsys, "invert", tmp_path / "mag.npy", "-m", "fgla", "-o", tmp_path / "out.wav")
    assert code == 0, err
    audio, sr = read_wav(tmp_path / "out.wav")
    assert sr == SR and audio.shape == ((mag.shape[1] - 1) * 256,)
    assert sc_of(tmp_path / "out.wav", mag) < -20
    assert out == ""  # stdout stays clean without --json
    assert files_in(tmp_path) == ["mag.npy", "out.wav"]  # no temporary left


def test_pt_gla_iters_sr_and_length(tmp_path, capsys, mag, clip):
    torch.save(torch.from_numpy(mag), tmp_path / "mag.pt")
    code, _, err = run(capsys, "invert", tmp_path / "mag.pt", "-m", "gla", "--iters", "20", "--sr", "16000",
                       "--length", len(clip), "-o", tmp_path / "out.wav", "--json")
    assert code == 0, err
    audio, sr = read_wav(tmp_path / "out.wav")
    assert sr == 16000 and audio.shape == (len(clip),)


def test_npz_and_pt_dict_keys(tmp_path, capsys, mag):
    np.savez(tmp_path / "one.npz", spec=mag)
    np.savez(tmp_path / "two.npz", a=mag, b=mag)
    torch.save({"mag": torch.from_numpy(mag), "step": 3}, tmp_path / "d.pt")
    assert run(capsys, "invert", tmp_path / "one.npz", "-n", "5", "-o", tmp_path / "a.wav")[0] == 0
    code, _, err = run(capsys, "invert", tmp_path / "two.npz", "-n", "5", "-o", tmp_path / "b.wav")
    assert code == 2 and "two.npz" in err and "--key" in err and not (tmp_path / "b.wav").exists()
    assert run(capsys, "invert", tmp_path / "two.npz", "--key", "b", "-n", "5", "-o", tmp_path / "b.wav")[0] == 0
    assert run(capsys, "invert", tmp_path / "d.pt", "-n", "5", "-o", tmp_path / "c.wav")[0] == 0
    assert run(capsys, "invert", tmp_path / "d.pt", "--key", "mag", "-n", "5", "-o", tmp_path / "e.wav")[0] == 0


@pytest.mark.parametrize("kind", ["magnitude", "power", "db", "log"])
@pytest.mark.parametrize("layout", ["ft", "tf"])
def test_input_kinds_and_layouts_give_the_same_audio(tmp_path, capsys, mag, kind, layout):
    x = {"magnitude": mag, "power": mag ** 2, "db": 20 * np.log10(np.maximum(mag, 1e-9)),
         "log": np.log(np.maximum(mag, 1e-9))}[kind]
    if layout == "tf":
        x = x.T
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    code, out, err = run(capsys, "invert", tmp_path / "x.npy", "--input-kind", kind, "--layout", layout,
                         "-n", "30", "-o", tmp_path / "out.wav", "--json")
    assert code == 0, err
    rec = json.loads(out.splitlines()[0])
    assert rec["sc"] < -15
    assert sc_of(tmp_path / "out.wav", mag) < -15  # judged against the true magnitude


def test_complex_input_supplies_the_phase(tmp_path, capsys, clip):
    X = torch.stft(torch.from_numpy(clip), 1024, 256, window=torch.hann_window(1024), return_complex=True)
    np.save(tmp_path / "c.npy", X.numpy())
    np.save(tmp_path / "ri.npy", torch.view_as_real(X).numpy())  # [F, T, 2]
    for name, extra in (("c.npy", []), ("ri.npy", ["--input-kind", "complex"])):
        code, out, err = run(capsys, "invert", tmp_path / name, *extra, "-n", "0", "--subtype", "FLOAT",
                             "--length", len(clip), "-o", tmp_path / f"{name}.wav", "--json")
        assert code == 0, err
        assert json.loads(out.splitlines()[0])["sc"] < -60  # the true phase: exact reconstruction
        audio, _ = read_wav(tmp_path / f"{name}.wav")
        assert np.abs(audio - clip).max() < 1e-4


def test_batched_input_writes_one_file_per_item(tmp_path, capsys, mag):
    batch = np.stack([mag, mag[:, ::-1] * 0.5, mag * 0.1])  # [3, F, T]
    np.save(tmp_path / "b.npy", batch.astype(np.float32))
    code, out, err = run(capsys, "invert", tmp_path / "b.npy", "-n", "10", "-o", tmp_path / "out.wav", "--json")
    assert code == 0, err
    assert files_in(tmp_path) == ["b.npy", "out_000.wav", "out_001.wav", "out_002.wav"]
    lines = [json.loads(l) for l in out.splitlines()]
    assert [l.get("item") for l in lines[:3]] == [0, 1, 2] and "summary" in lines[-1]
    d = tmp_path / "wavs"
    code, _, err = run(capsys, "invert", tmp_path / "b.npy", "-n", "10", "-O", d)
    assert code == 0, err
    assert files_in(d) == ["b_000.wav", "b_001.wav", "b_002.wav"]
    # 4-D batch [2, 2, F, T] flattens to 4 items
    np.save(tmp_path / "b4.npy", np.stack([batch[:2], batch[1:]]).astype(np.float32))
    assert run(capsys, "invert", tmp_path / "b4.npy", "-n", "2", "-O", d)[0] == 0
    assert [f for f in files_in(d) if f.startswith("b4")] == [f"b4_00{i}.wav" for i in range(4)]


def test_json_fields(tmp_path, capsys, mag):
    np.save(tmp_path / "m.npy", mag)
    code, out, _ = run(capsys, "invert", tmp_path / "m.npy", "-n", "10", "-O", tmp_path, "--json")
    rec = json.loads(out.splitlines()[0])
    for k in ("input", "output", "method", "iterations", "sc", "snr", "ser", "seconds", "device"):
        assert k in rec
    assert rec["iterations"] == 10 and rec["method"] == "dm" and rec["device"] == "cpu"
    assert json.loads(out.splitlines()[-1])["summary"]["outputs"] == 1


def test_quiet_and_non_tty_progress(tmp_path, capsys, mag):
    np.save(tmp_path / "m.npy", mag)
    code, out, err = run(capsys, "invert", tmp_path / "m.npy", "-n", "5", "-o", tmp_path / "a.wav")
    assert code == 0 and "SC" in err and out == ""
    code, out, err = run(capsys, "invert", tmp_path / "m.npy", "-n", "5", "-o", tmp_path / "b.wav", "--quiet",
                         "--subtype", "FLOAT", "--normalize", "none")
    assert code == 0 and err == "" and out == ""


def test_peak_normalisation_policy(tmp_path, capsys, mag):
    np.save(tmp_path / "loud.npy", mag * 20)  # peak well above full scale
    # default: the level is kept, in a 32-bit float WAV, said on stderr
    code, _, err = run(capsys, "invert", tmp_path / "loud.npy", "-n", "5", "-o", tmp_path / "a.wav")
    assert code == 0 and "exceeds full scale" in err and "32-bit float" in err
    audio, _ = read_wav(tmp_path / "a.wav")
    assert np.abs(audio).max() > 2
    code, _, err = run(capsys, "invert", tmp_path / "loud.npy", "-n", "5", "--normalize", "peak", "-o", tmp_path / "p.wav")
    audio, _ = read_wav(tmp_path / "p.wav")
    assert code == 0 and 0.98 < np.abs(audio).max() <= 0.99 + 1e-4
    code, _, err = run(capsys, "invert", tmp_path / "loud.npy", "-n", "5", "--normalize", "none",
                       "--subtype", "FLOAT", "-o", tmp_path / "b.wav")
    audio, _ = read_wav(tmp_path / "b.wav")
    assert code == 0 and np.abs(audio).max() > 2 and "clipped" not in err
    code, _, err = run(capsys, "invert", tmp_path / "loud.npy", "-n", "5", "--normalize", "none", "--subtype", "PCM_16",
                       "-o", tmp_path / "c.wav")
    assert code == 0 and "clipped" in err  # never clipped silently


def test_subtypes(tmp_path, capsys, mag):
    import soundfile as sf

    np.save(tmp_path / "m.npy", mag)
    for st in ("PCM_16", "PCM_24", "FLOAT"):
        assert run(capsys, "invert", tmp_path / "m.npy", "-n", "2", "--subtype", st, "-o", tmp_path / f"{st}.wav")[0] == 0
        assert sf.info(str(tmp_path / f"{st}.wav")).subtype == st


def test_example_and_version(tmp_path, capsys):
    code, _, err = run(capsys, "invert", "--example", "-n", "20", "-o", tmp_path / "ex.wav")
    assert code == 0, err
    audio, sr = read_wav(tmp_path / "ex.wav")
    assert sr == SR and audio.shape == (258 * 256,) and np.abs(audio).max() > 0.1
    code, out, _ = run(capsys, "--version")
    assert code == 0 and "specinv" in out


def test_stdout_wav_stream_and_module_entry(tmp_path, mag):
    np.save(tmp_path / "m.npy", mag)
    p = run_process("invert", tmp_path / "m.npy", "-n", "5", "-o", "-", "-q")
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout[:4] == b"RIFF" and p.stdout[8:12] == b"WAVE"
    import io

    import soundfile as sf

    audio, sr = sf.read(io.BytesIO(p.stdout))
    assert sr == SR and len(audio) == (mag.shape[1] - 1) * 256


def test_help_is_fast_and_does_not_import_torch():
    code = ("import sys; from specinv_cli.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "try:\n    main(['invert', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules and 'librosa' not in sys.modules, 'heavy import'\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "--iters" in p.stdout and "--method" in p.stdout


def test_tol_early_stop_reported(tmp_path, capsys, mag):
    np.save(tmp_path / "m.npy", mag)
    code, out, _ = run(capsys, "invert", tmp_path / "m.npy", "-m", "gla", "-n", "400", "--tol", "0.01",
                       "--eval-every", "5", "-o", tmp_path / "a.wav", "--json")
    rec = json.loads(out.splitlines()[0])
    assert code == 0 and rec["iterations"] < 400


def test_outputs_get_the_usual_file_mode(tmp_path, capsys, mag):
    import os
    import stat

    np.save(tmp_path / "m.npy", mag)
    assert run(capsys, "invert", tmp_path / "m.npy", "-n", "2", "-o", tmp_path / "a.wav")[0] == 0
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(tmp_path / "a.wav").st_mode) == 0o666 & ~mask


def test_loading_torch_leaves_the_collector_on(monkeypatch):
    """The commands import torch with the cyclic collector off (its import triggers several full
    collections that free nothing) and park what exists then in the permanent generation; the
    collector is back on afterwards, also when the import fails."""
    import builtins
    import gc

    from specinv_cli.cli.common import load_torch

    monkeypatch.setattr("specinv_cli.util.threads.configure", lambda threads: None)  # keep this process's env
    gc.unfreeze()
    load_torch(lambda m: (_ for _ in ()).throw(AssertionError(m)))
    assert gc.isenabled() and gc.get_freeze_count() > 0
    gc.unfreeze()
    real_import = builtins.__import__

    def no_torch(name, *a, **k):
        if name == "torch":
            raise ImportError("no torch here")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    said = []
    load_torch(said.append)
    assert said and "cannot load torch" in said[0] and gc.isenabled()
    gc.unfreeze()
