"""Write a folder of fuzzed spectrogram files made from corpus magnitudes, for
``specinv invert FOLDER/* -O OUT``: every file must be converted or refused with one clean line
(exit code 1 overall when some are good and some bad), never a traceback.

File names say what is expected: ``ok_*`` must be converted, ``bad_*`` must be refused, ``any_*``
may go either way (e.g. a flipped bit in the data may give a NaN or just another number).
Pickles would create ``PWNED_*`` files in the folder if they were ever executed.

    python tests/make_fuzz.py FOLDER [--count 200] [--seed 0] [--n-fft 64]
"""
from __future__ import annotations

import argparse
import io
import os
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def corpus_magnitudes(n_fft: int, count: int, rng) -> list[np.ndarray]:
    """Magnitudes [n_fft/2+1, T] of short excerpts of the corpus (a chirp if it is missing)."""
    import torch

    from conftest import corpus_files, load_clip

    files = corpus_files()
    out = []
    for i in range(count):
        if files:
            f = files[i % len(files)]
            audio = load_clip(f, 0.15, float(rng.uniform(0.2, 1.5)))
        else:
            t = np.arange(3300) / 22050
            audio = (0.5 * np.sin(2 * np.pi * (300 + 900 * i) * t)).astype(np.float32)
        x = torch.from_numpy(np.ascontiguousarray(audio))
        out.append(torch.stft(x, n_fft, n_fft // 4, window=torch.hann_window(n_fft),
                              return_complex=True).abs().numpy())
    return out


class Plant:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def _npy(a) -> bytes:
    b = io.BytesIO()
    np.save(b, a, allow_pickle=a.dtype.hasobject)
    return b.getvalue()


def _npz(compressed=False, **arrays) -> bytes:
    b = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(b, **arrays)
    return b.getvalue()


def _pt(obj) -> bytes:
    import torch

    b = io.BytesIO()
    torch.save(obj, b)
    return b.getvalue()


def _flip(data: bytes, rng, n=4, start=0) -> bytes:
    b = bytearray(data)
    for _ in range(n):
        i = int(rng.integers(start, len(b)))
        b[i] ^= 1 << int(rng.integers(0, 8))
    return bytes(b)


def valid_files(mag, rng):
    """(suffix, bytes) of one magnitude in the accepted forms."""
    import torch

    t = torch.from_numpy(mag)
    return [
        ("npy", _npy(mag)), ("npy", _npy(mag.astype(np.float64))), ("npy", _npy(mag.astype(np.float16))),
        ("npy", _npy((mag * 1000).astype(np.int16))), ("npy", _npy(mag.astype(">f4"))),
        ("npy", _npy(np.stack([mag, mag[:, ::-1]]))),  # batch of 2
        ("npy", _npy(np.ascontiguousarray(mag.T))),  # [T, F]: still fine when T != F... refused otherwise
        ("npy", _npy(np.zeros_like(mag))),  # silence
        ("npz", _npz(spec=mag)), ("npz", _npz(True, spec=mag)),
        ("pt", _pt(t)), ("pt", _pt({"mel": t})), ("pt", _pt(t.to(torch.bfloat16))), ("pt", _pt(t.to(torch.float16))),
        ("pt", _pt((t * 1000).to(torch.int32))),
    ]


def bad_files(mag, rng, folder: Path, tag: str):
    """(suffix, bytes) that must be refused."""
    import torch

    good = _npy(mag)
    marker = str(folder / f"PWNED_{tag}")
    obj = np.empty(1, dtype=object)
    obj[0] = Plant(marker)
    huge_header = b"\x93NUMPY\x02\x00" + (200000).to_bytes(4, "little") + b"{" + b" " * 199998 + b"\n"
    claim = io.BytesIO()
    np.lib.format.write_array_header_1_0(claim, {"descr": "<f4", "fortran_order": False,
                                                 "shape": (mag.shape[0], 10 ** 10)})
    nan, neg = mag.copy(), mag.copy()
    nan[1, 1] = np.nan
    neg[2, 2] = -1
    return [
        ("npy", good[: len(good) // 2]), ("npy", good[:40]), ("npy", b""), ("npy", b"\x93NUMPY garbage"),
        ("npy", _flip(good, rng, 6, 0)[:9] + b"\xff" * 3 + good[12:]),  # broken header length
        ("npy", _npy(obj)), ("npz", _pickle_npz(obj)), ("pt", _pt({"s": torch.ones(3, 3), "p": Plant(marker)})),
        ("pt", pickle.dumps(Plant(marker))), ("pt", b"\x80\x02" + os.urandom(64)),
        ("npy", huge_header), ("npy", claim.getvalue() + b"\0" * 64),
        ("npy", _npy(nan)), ("npy", _npy(np.where(mag > 0, np.inf, 0).astype(np.float32))), ("npy", _npy(neg)),
        ("npy", _npy(mag[:, 0])), ("npy", _npy(mag[:, :0])), ("npy", _npy(mag[:1])),
        ("npy", _npy(np.array(["a", "b"]))), ("npz", _npz(a=mag, b=mag)), ("npz", _npz(spec=mag)[:100]),
        ("pt", _pt(torch.from_numpy(mag).to_sparse())), ("pt", _pt([torch.from_numpy(mag)])),
        ("pt", _pt(torch.from_numpy(mag))[:200]), ("txt", b"1 2 3"),
    ]


def _pickle_npz(obj) -> bytes:
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        z.writestr("spec.npy", _npy(obj))
    return b.getvalue()


def any_files(mag, rng):
    """Random damage whose outcome depends on where it lands."""
    out = []
    for suffix, data in valid_files(mag, rng)[:1] + [("npz", _npz(spec=mag)), ("pt", _pt(__import__("torch").from_numpy(mag)))]:
        out.append((suffix, _flip(data, rng, int(rng.integers(1, 6)))))
        out.append((suffix, data[: int(rng.integers(1, len(data)))]))
        out.append((suffix, data + os.urandom(int(rng.integers(1, 64)))))
    return out


def make(folder: Path, count: int = 200, seed: int = 0, n_fft: int = 64) -> dict:
    """Write about ``count`` files into ``folder``; returns {"ok": n, "bad": n, "any": n}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    mags = corpus_magnitudes(n_fft, max(1, count // 40), rng)
    counts = {"ok": 0, "bad": 0, "any": 0}
    i = 0
    while i < count:
        mag = mags[(i // 40) % len(mags)]
        for kind, files in (("ok", valid_files(mag, rng)), ("bad", bad_files(mag, rng, folder, str(i))),
                            ("any", any_files(mag, rng))):
            for suffix, data in files:
                if i >= count:
                    break
                if kind == "ok" and mag.shape[0] == mag.shape[1]:
                    continue
                (folder / f"{kind}_{i:05d}.{suffix}").write_bytes(data)
                counts[kind] += 1
                i += 1
    return counts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-fft", type=int, default=64)
    a = ap.parse_args(argv)
    counts = make(a.folder, a.count, a.seed, a.n_fft)
    print(f"{sum(counts.values())} files in {a.folder}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
