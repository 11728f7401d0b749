"""The rows of README's "Failure cases" table that tests/test_bad_inputs.py does not cover:
absurd sizes (refused before loading, overridable), unreadable input, output folder not
writable, bins matching neither n_fft/2+1 nor n_mels with a mel preset, a header that claims
more data than the file holds, exotic dtypes and tensor layouts."""
import os
import zipfile

import numpy as np
import pytest
import torch
from numpy.lib import format as npf

from clihelp import files_in, run
from test_bad_inputs import assert_refused

F, T = 33, 12


@pytest.fixture
def small(tmp_path):
    mag = np.abs(np.random.default_rng(0).standard_normal((F, T))).astype(np.float32)
    np.save(tmp_path / "small.npy", mag)
    return tmp_path / "small.npy"


def _sparse_npy(path, shape, dtype="<f4"):
    """A .npy whose data region is a hole: its full size on paper, (almost) nothing on disk."""
    with open(path, "wb") as f:
        npf.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
        f.truncate(f.tell() + int(np.prod(shape)) * np.dtype(dtype).itemsize)


def test_absurd_size_is_refused_before_loading(tmp_path, capsys):
    _sparse_npy(tmp_path / "huge.npy", (513, 50_000_000))  # 95.6 GiB of float32 on paper
    # in blocks the input and output themselves are too large (about 335 GiB with the float copy)
    line = assert_refused(capsys, tmp_path, [tmp_path / "huge.npy"], "huge.npy", "inverting needs about",
                          "GiB", "more than the limit", "(available memory)", "--max-memory")
    line = assert_refused(capsys, tmp_path, [tmp_path / "huge.npy", "--block-frames", "0"], "huge.npy",
                          "TiB", "more than the limit")  # in one piece: terabytes
    assert "raise it with --max-memory" in line


def test_absurd_size_against_an_explicit_limit(tmp_path, capsys):
    _sparse_npy(tmp_path / "big.npy", (2, 513, 20_000))  # 78 MiB on paper, 3.7 GiB to invert at once
    assert_refused(capsys, tmp_path, [tmp_path / "big.npy", "--max-memory", "2G", "--block-frames", "0"], "big.npy",
                   "GiB, more than the limit 2.0 GiB (--max-memory); raise it with --max-memory")
    # in blocks of 2048 frames (the default) it needs well under 1 GiB: only a tighter limit refuses
    assert_refused(capsys, tmp_path, [tmp_path / "big.npy", "--max-memory", "300M"], "big.npy",
                   "MiB, more than the limit 300.0 MiB")


def test_max_memory_overrides(tmp_path, capsys, small):
    assert_refused(capsys, tmp_path, [small, "--max-memory", "10K"], "small.npy", "KiB, more than the limit 10.0 KiB")
    rc, _, err = run(capsys, "invert", small, "-n", "2", "--max-memory", "1G", "-o", tmp_path / "a.wav")
    assert rc == 0, err
    rc, _, err = run(capsys, "invert", small, "-n", "2", "--max-memory", "none", "-o", tmp_path / "b.wav")
    assert rc == 0, err
    assert_refused(capsys, tmp_path, [small, "--max-memory", "lots"], "--max-memory", "not a size")


def test_memory_check_after_loading_pt(tmp_path, capsys):
    torch.save(torch.ones(4, 513, 200), tmp_path / "b.pt")  # .pt: checked once loaded
    assert_refused(capsys, tmp_path, [tmp_path / "b.pt", "--max-memory", "20M"], "b.pt", "more than the limit 20.0 MiB")


def test_length_counts_in_the_estimate(tmp_path, capsys, small):
    assert_refused(capsys, tmp_path, [small, "--length", str(10 ** 11)], "small.npy", "inverting needs about")


def test_npy_header_claiming_more_data_than_the_file(tmp_path, capsys):
    with open(tmp_path / "lie.npy", "wb") as f:
        npf.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (513, 100)})
        f.write(b"\0" * 1000)
    assert_refused(capsys, tmp_path, [tmp_path / "lie.npy"], "lie.npy", "truncated .npy file", "(513, 100)",
                   "200.4 KiB", "1000 bytes")


def test_npz_member_claiming_more_data(tmp_path, capsys):
    import io

    buf = io.BytesIO()
    npf.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (513, 10 ** 9)})
    with zipfile.ZipFile(tmp_path / "lie.npz", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("spec.npy", buf.getvalue() + b"\0" * 100)
    assert_refused(capsys, tmp_path, [tmp_path / "lie.npz"], "lie.npz", "truncated")


def test_huge_npy_header(tmp_path, capsys, small):
    data = small.read_bytes()
    hlen = int.from_bytes(data[8:10], "little")
    header = data[10:10 + hlen].rstrip(b"\n") + b" " * 70000 + b"\n"
    blob = b"\x93NUMPY\x02\x00" + len(header).to_bytes(4, "little") + header + data[10 + hlen:]
    (tmp_path / "hh.npy").write_bytes(blob)
    assert_refused(capsys, tmp_path, [tmp_path / "hh.npy"], "hh.npy", "not a valid .npy file")


def _deny(monkeypatch, target, mode_bit):
    real = os.access

    def access(path, mode, *a, **k):
        if os.fspath(path) == os.fspath(target) and mode & mode_bit:
            return False
        return real(path, mode, *a, **k)

    monkeypatch.setattr(os, "access", access)


def test_unreadable_file(tmp_path, capsys, small):
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod 000 does not block reads (see the simulated test below)")
    os.chmod(small, 0)
    try:
        assert_refused(capsys, tmp_path, [small], "small.npy", "permission denied")
    finally:
        os.chmod(small, 0o644)


def test_unreadable_file_simulated(tmp_path, capsys, small, monkeypatch):
    _deny(monkeypatch, small, os.R_OK)
    assert_refused(capsys, tmp_path, [small], "small.npy", "permission denied")


def test_output_folder_not_writable(tmp_path, capsys, small):
    if os.geteuid() == 0:
        pytest.skip("running as root: a read-only folder is still writable (see the simulated test below)")
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        rc, _, err = run(capsys, "invert", small, "-n", "2", "-o", ro / "out.wav")
        assert rc == 2 and "not writable" in err and files_in(ro) == []
    finally:
        os.chmod(ro, 0o755)


def test_output_folder_not_writable_simulated(tmp_path, capsys, small, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    _deny(monkeypatch, ro, os.W_OK)
    rc, _, err = run(capsys, "invert", small, "-n", "2", "-o", ro / "out.wav")
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "output folder" in lines[0] and "not writable" in lines[0], err
    assert files_in(ro) == []
    rc, _, err = run(capsys, "invert", small, "-n", "2", "-O", ro)
    assert rc == 2 and "not writable" in err and files_in(ro) == []


def test_bins_match_neither_n_fft_nor_n_mels(tmp_path, capsys):
    np.save(tmp_path / "m.npy", np.ones((100, 20), np.float32))
    assert_refused(capsys, tmp_path, [tmp_path / "m.npy", "--config", "tacotron2"], "m.npy", "100 bins",
                   "n_mels 80", "513")


@pytest.mark.parametrize("dtype", [">f4", ">i2", "float128" if hasattr(np, "float128") else "float64",
                                   "complex256" if hasattr(np, "complex256") else "complex128", "uint64", "bool"])
def test_exotic_numpy_dtypes_are_converted(tmp_path, capsys, small, dtype):
    x = (np.load(small) * 4).astype(dtype)
    np.save(tmp_path / "d.npy", x)
    rc, _, err = run(capsys, "invert", tmp_path / "d.npy", "-n", "2", "-o", tmp_path / "d.wav")
    assert rc == 0, err


@pytest.mark.parametrize("make", ["sparse", "grad", "float8", "complex32", "uint16"])
def test_tensor_layouts_and_dtypes(tmp_path, capsys, small, make):
    t = torch.from_numpy(np.load(small))
    obj = {"sparse": lambda: t.to_sparse(), "grad": lambda: t.clone().requires_grad_(True),
           "float8": lambda: t.to(torch.float8_e4m3fn), "complex32": lambda: t.to(torch.complex32),
           "uint16": lambda: (t * 100).to(torch.uint16)}[make]()
    torch.save(obj, tmp_path / "t.pt")
    if make == "sparse":
        assert_refused(capsys, tmp_path, [tmp_path / "t.pt"], "t.pt", "sparse_coo tensor", "to_dense")
    else:
        rc, _, err = run(capsys, "invert", tmp_path / "t.pt", "-n", "2", "-o", tmp_path / "t.wav")
        assert rc == 0, err


def test_npz_pickle_is_refused_without_executing(tmp_path, capsys):
    from test_bad_inputs import PlantsAFile

    marker = tmp_path / "PWNED"
    arr = np.empty(1, dtype=object)
    arr[0] = PlantsAFile(marker)
    np.savez(tmp_path / "evil.npz", spec=arr)
    assert_refused(capsys, tmp_path, [tmp_path / "evil.npz"], "evil.npz", "pickle", "refused")
    assert not marker.exists()


def test_pt_containers(tmp_path, capsys, small):
    t = torch.from_numpy(np.load(small))
    torch.save([t], tmp_path / "l.pt")
    assert_refused(capsys, tmp_path, [tmp_path / "l.pt"], "l.pt", "holds a list, expected a tensor or a dict of tensors")
    torch.save({"a": t, "b": t}, tmp_path / "d.pt")
    assert_refused(capsys, tmp_path, [tmp_path / "d.pt"], "d.pt", "holds 2 tensors ('a', 'b'); choose one with --key")
    rc, _, err = run(capsys, "invert", tmp_path / "d.pt", "--key", "b", "-n", "2", "-o", tmp_path / "d.wav")
    assert rc == 0, err
