"""invert --history FILE.json: the metrics at each evaluation, per output."""
from __future__ import annotations

import json

import numpy as np

from clihelp import run
from conftest import load_clip, reference_magnitude


def test_history_file_per_output(tmp_path, capsys, corpus):
    for i, name in enumerate(("a", "b")):
        np.save(tmp_path / f"{name}.npy", reference_magnitude(load_clip(corpus[i * 4], 1.0 + i, 0.3)).numpy())
    np.save(tmp_path / "pair.npy", np.stack([np.load(tmp_path / "a.npy")] * 2))
    rc, _, err = run(capsys, "invert", tmp_path / "a.npy", tmp_path / "b.npy", tmp_path / "pair.npy",
                     "-O", tmp_path / "out", "-m", "gla", "--init", "random", "-n", "20", "--eval-every", "5",
                     "--history", tmp_path / "h.json")
    assert rc == 0, err
    items = json.loads((tmp_path / "h.json").read_text())["items"]
    assert sorted((it["output"].rsplit("/", 1)[-1], it["item"]) for it in items) == [
        ("a.wav", None), ("b.wav", None), ("pair_000.wav", 0), ("pair_001.wav", 1)]
    for it in items:
        assert it["method"] == "gla" and it["domain"] == "linear"
        assert [h["iteration"] for h in it["history"]] == [5, 10, 15, 20]
        sc = [h["sc"] for h in it["history"]]
        assert all(np.isfinite(sc)) and sc[-1] < sc[0] - 1  # GLA: the inconsistency only goes down
        assert all(b <= a + 1e-3 for a, b in zip(sc, sc[1:]))
    first = {it["output"].rsplit("/", 1)[-1]: it["history"] for it in items}
    for a, b in zip(first["pair_000.wav"], first["a.wav"]):  # same input, same curve
        assert abs(a["sc"] - b["sc"]) < 0.01
