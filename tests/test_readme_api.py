"""The README's "Python API" example runs as written (a training loop on a batch tensor)."""
import re

import numpy as np

from clihelp import ROOT


def test_readme_training_loop_example_runs(tmp_path, monkeypatch, capsys):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    (tmp_path / "specs").mkdir()
    np.save(tmp_path / "specs" / "clip.npy", np.ones((513, 20), dtype=np.float32))
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(code, "README.md: Python API", "exec"), scope)
    out = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in out] == ["1", "3"]                    # the steps that listened
    assert tuple(scope["wav"].shape) == (8, 22016)
    assert scope["sc_pred"].shape == scope["sc_true"].shape == (8,)
    assert float(scope["sc_pred"].max()) < -5     # the audio matches the (consistent-ish) prediction
    assert tuple(scope["mag"].shape) == (513, 20)
