"""Many inputs per call: folders, manifests, --skip-existing, sharding."""
from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest

from clihelp import files_in, run
from specinv_cli.batch.inputs import Entry, InputsError, cuda_index, expand, read_manifest, select, shard_spec

F, T = 129, 20


def _spec(seed=0, frames=T):
    return np.random.default_rng(seed).random((F, frames)).astype(np.float32)


@pytest.fixture
def folder(tmp_path):
    """in/a.npy, in/b.npy, in/sub/c.npy, in/sub/deep/d.npy, in/notes.txt"""
    root = tmp_path / "in"
    (root / "sub" / "deep").mkdir(parents=True)
    for i, rel in enumerate(["a.npy", "b.npy", "sub/c.npy", "sub/deep/d.npy"]):
        np.save(root / rel, _spec(i))
    (root / "notes.txt").write_text("not an input")
    return root


def test_expand_folders_flat_and_recursive(folder):
    assert [e.name for e in expand([str(folder)])] == ["a", "b"]
    assert [e.name for e in expand([str(folder)], recursive=True)] == ["a", "b", "sub/c", "sub/deep/d"]
    (folder / "empty").mkdir()
    with pytest.raises(InputsError, match="holds no"):
        expand([str(folder / "empty")])


def test_manifest_skips_comments_blank_lines_and_duplicates(folder, tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text(f"# test set\n{folder / 'a.npy'}\n\n  {folder / 'sub/c.npy'}  \n{folder / 'a.npy'}\n")
    assert read_manifest(str(lst)) == [str(folder / "a.npy"), str(folder / "sub/c.npy"), str(folder / "a.npy")]
    got = expand([str(folder / "b.npy")], manifest=str(lst))
    assert got == [Entry(str(folder / "b.npy"), "b"), Entry(str(folder / "a.npy"), "a"),
                   Entry(str(folder / "sub/c.npy"), "c")]
    assert read_manifest("-", io.StringIO("x.npy\n#y\n")) == ["x.npy"]
    with pytest.raises(InputsError, match="manifest not found"):
        read_manifest(str(tmp_path / "missing.txt"))


def test_shard_spec_sources():
    assert shard_spec("1/3", {}) == (1, 3, "--shard")
    assert shard_spec(" 0 / 1 ", {}) == (0, 1, "--shard")
    for bad in ("3/3", "1", "a/b", "-1/2", "0/0"):
        with pytest.raises(InputsError):
            shard_spec(bad, {})
    assert shard_spec(None, {"RANK": "2", "WORLD_SIZE": "4", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) == \
        (2, 4, "RANK/WORLD_SIZE")
    assert shard_spec(None, {"SLURM_PROCID": "1", "SLURM_NTASKS": "2"})[:2] == (1, 2)
    # an array job of 3 tasks (ids 5..7) with 2 processes each: 6 shards
    env = {"SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "3",
           "SLURM_PROCID": "1", "SLURM_NTASKS": "2"}
    assert shard_spec(None, env)[:2] == (3, 6)
    assert shard_spec("0/2", env)[:2] == (0, 2)  # the flag wins
    assert shard_spec(None, {}) == (0, 1, "none")
    assert cuda_index({"LOCAL_RANK": "3"}) == 3 and cuda_index({}) is None


def test_shards_cover_every_input_exactly_once():
    entries = [Entry(str(i), str(i)) for i in range(23)]
    for n in (1, 2, 3, 7, 30):
        got = [e.path for i in range(n) for e in select(entries, i, n)]
        assert sorted(got, key=int) == [e.path for e in entries]
        sizes = [len(select(entries, i, n)) for i in range(n)]
        assert max(sizes) - min(sizes) <= 1


def test_cli_shards_0_and_1_of_2_cover_the_inputs_exactly_once(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(7):
        np.save(src / f"x{i}.npy", _spec(i))
    outs = []
    for shard in ("0/2", "1/2"):
        rc, out, _ = run(capsys, "invert", src, "-O", tmp_path / shard.replace("/", "of"), "-n", "2",
                         "-m", "fgla", "--shard", shard, "--json")
        assert rc == 0
        summary = json.loads(out.splitlines()[-1])["summary"]
        assert summary["shard"] == shard and summary["inputs_all_shards"] == 7
        outs.append(set(files_in(tmp_path / shard.replace("/", "of"))))
    assert outs[0].isdisjoint(outs[1])
    assert outs[0] | outs[1] == {f"x{i}.wav" for i in range(7)}
    assert {len(outs[0]), len(outs[1])} == {3, 4}


def test_cli_shard_from_torchrun_environment(tmp_path, capsys, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        np.save(src / f"x{i}.npy", _spec(i))
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    rc, out, _ = run(capsys, "invert", src, "-O", tmp_path / "o", "-n", "1", "-m", "gla", "--json")
    assert rc == 0 and files_in(tmp_path / "o") == ["x1.wav", "x3.wav"]
    assert json.loads(out.splitlines()[-1])["summary"]["shard_from"] == "RANK/WORLD_SIZE"
    rc, _, err = run(capsys, "invert", src, "-O", tmp_path / "o", "--shard", "2/2")
    assert rc == 2 and "out of range" in err


def test_cli_recursive_mirrors_subfolders(tmp_path, capsys, folder):
    rc, _, _ = run(capsys, "invert", folder, "-r", "-O", tmp_path / "out", "-n", "1", "-m", "gla")
    assert rc == 0
    got = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.wav"))
    assert got == ["a.wav", "b.wav", "sub/c.wav", "sub/deep/d.wav"]
    rc, _, err = run(capsys, "invert", folder / "sub" / "deep" / "..", "-O", tmp_path / "o2")
    assert rc == 0  # sub/ holds c.npy at top level
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _, err = run(capsys, "invert", empty, "-O", tmp_path / "o3")
    assert rc == 2 and "empty" in err and "holds no" in err


def test_cli_from_list_on_stdin(tmp_path, capsys, monkeypatch, folder):
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{folder / 'a.npy'}\n# skip\n{folder / 'sub' / 'c.npy'}\n"))
    rc, out, _ = run(capsys, "invert", "--from-list", "-", "-O", tmp_path / "o", "-n", "1", "--json")
    assert rc == 0 and files_in(tmp_path / "o") == ["a.wav", "c.wav"]
    rc, _, err = run(capsys, "invert", "--from-list", tmp_path / "nope.txt", "-O", tmp_path / "o")
    assert rc == 2 and "nope.txt" in err and "manifest not found" in err


def test_cli_skip_existing_resumes(tmp_path, capsys, folder):
    out_dir = tmp_path / "o"
    rc, _, _ = run(capsys, "invert", folder / "a.npy", "-O", out_dir, "-n", "1")
    assert rc == 0
    before = os.stat(out_dir / "a.wav").st_mtime_ns
    rc, out, _ = run(capsys, "invert", folder, "-O", out_dir, "-n", "1", "--skip-existing", "--json")
    recs = [json.loads(ln) for ln in out.splitlines()]
    assert rc == 0
    assert {(r["output"].rsplit("/", 1)[-1], r["status"]) for r in recs[:-1]} == {("a.wav", "skipped"), ("b.wav", "ok")}
    assert recs[-1]["summary"]["skipped"] == 1 and recs[-1]["summary"]["outputs"] == 1
    assert os.stat(out_dir / "a.wav").st_mtime_ns == before
    rc, out, _ = run(capsys, "invert", folder, "-O", out_dir, "--skip-existing", "--json")
    assert rc == 0 and json.loads(out.splitlines()[-1])["summary"]["skipped"] == 2


def test_cli_same_stem_in_two_folders_is_refused_not_overwritten(tmp_path, capsys):
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        np.save(tmp_path / d / "same.npy", _spec())
    rc, _, err = run(capsys, "invert", tmp_path / "x" / "same.npy", tmp_path / "y" / "same.npy",
                     "-O", tmp_path / "o", "-n", "1")
    assert rc == 1 and "also the output of" in err and files_in(tmp_path / "o") == ["same.wav"]
