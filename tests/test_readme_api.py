"""The Python examples of README.md and of the guide's "Python API" page run as written, and what
their comments say holds (a training loop on a batch tensor; the README's shapes)."""
import re

import numpy as np

from clihelp import ROOT


def _python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_guide_training_loop_example_runs(tmp_path, monkeypatch, capsys):
    text = (ROOT / "docs" / "guide" / "python.md").read_text(encoding="utf-8")
    code = _python_blocks(text)[0]
    (tmp_path / "specs").mkdir()
    np.save(tmp_path / "specs" / "clip.npy", np.ones((513, 20), dtype=np.float32))
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(code, "docs/guide/python.md: Python API", "exec"), scope)
    out = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in out] == ["1", "3"]                    # the steps that listened
    assert tuple(scope["wav"].shape) == (8, 22016)
    assert scope["sc_pred"].shape == scope["sc_true"].shape == (8,)
    assert float(scope["sc_pred"].max()) < -5     # the audio matches the (consistent-ish) prediction
    assert tuple(scope["mag"].shape) == (513, 20)


def test_readme_python_example_runs_with_the_shapes_it_states():
    import torch

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = _python_blocks(text)
    assert len(blocks) == 1, "README.md keeps one short Python example"
    code = blocks[0]
    scope = {}
    exec(compile(code, "README.md: Python", "exec"), scope)
    res = scope["res"]
    assert "[8, 199 * 256] float32" in code and "[8] spectral convergence in dB" in code
    assert tuple(res.audio.shape) == (8, 199 * 256) and res.audio.dtype == torch.float32
    assert tuple(res.metrics["sc"].shape) == (8,)
    # random magnitudes are not a consistent spectrogram, yet the audio gets closer than 0 dB
    assert bool(torch.isfinite(res.metrics["sc"]).all()) and float(res.metrics["sc"].max()) < 0


def test_readme_stays_the_quick_path_and_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) < 12 * 1024
    assert "make demo" in text and "make test" in text
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"
