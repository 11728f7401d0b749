"""Which inputs a call processes: files, folders, manifests, and this worker's shard of them.

No torch here: this runs before anything heavy is imported.

- :func:`expand` turns command-line arguments (files, folders, ``-`` for stdin) and an optional
  manifest (one path per line; ``-`` reads it from stdin) into an ordered list of
  :class:`Entry`, each with the relative output name it should get.
- :func:`shard_spec` reads ``--shard I/N``, else the launcher's environment (torchrun's
  ``RANK``/``WORLD_SIZE``, SLURM's ``SLURM_ARRAY_TASK_ID``/``SLURM_ARRAY_TASK_COUNT`` and
  ``SLURM_PROCID``/``SLURM_NTASKS``); :func:`select` keeps entries ``I, I + N, I + 2N, ...`` of
  the list, so the N workers together cover every input exactly once, given the same list.

Example
-------
>>> select([Entry(str(i), str(i)) for i in range(5)], 1, 2)
[Entry(path='1', name='1'), Entry(path='3', name='3')]
>>> shard_spec(None, {"SLURM_PROCID": "3", "SLURM_NTASKS": "4"})
(3, 4, 'SLURM_PROCID/SLURM_NTASKS')
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ..util.sniff import SUFFIXES

__all__ = ["Entry", "InputsError", "expand", "read_manifest", "shard_spec", "select", "cuda_index"]



class InputsError(ValueError):
    """A usage problem with the list of inputs (exit code 2 before any work)."""


@dataclass(frozen=True)
class Entry:
    """One input: ``path`` as given (or found), ``name`` the output name without suffix,
    relative to the output folder (``stem``, or ``sub/dir/stem`` for recursive walks)."""

    path: str
    name: str


def read_manifest(source: str, stdin=None) -> list[str]:
    """Paths listed one per line in ``source`` (``-``: standard input); blank lines and lines
    starting with ``#`` are skipped. Relative paths are relative to the current folder."""
    if source == "-":
        stream = stdin or sys.stdin
        if stream is None or getattr(stream, "closed", False):  # None: fd 0 closed at start-up
            raise InputsError("--from-list -: standard input is closed; pipe the list of paths into it")
        try:
            text = stream.read()
        except (OSError, UnicodeDecodeError) as e:
            raise InputsError(f"--from-list -: cannot read standard input ({getattr(e, 'strerror', None) or e})") from None
    else:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputsError(f"{source}: manifest not found") from None
        except IsADirectoryError:
            raise InputsError(f"{source}: is a folder, expected a manifest with one path per line") from None
        except (OSError, UnicodeDecodeError) as e:
            raise InputsError(f"{source}: cannot read manifest ({getattr(e, 'strerror', None) or e})") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def _walk(folder: Path, recursive: bool) -> list[Path]:
    if recursive:
        found = [p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()]
    else:
        found = [p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file()]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def expand(args, *, recursive: bool = False, manifest: str | None = None, stdin=None) -> list[Entry]:
    """Inputs in order: each argument (a folder gives its spectrogram files, sorted; with
    ``recursive`` also those of its subfolders, named ``sub/stem``), then the manifest's lines.
    Missing files are kept (they fail later, with the others still processed); a folder with no
    spectrogram files is a usage error."""
    paths: list[tuple[str, str]] = []
    for arg in args:
        p = Path(arg)
        if arg != "-" and os.path.isdir(arg):  # (Path.is_dir raises on a name too long)
            found = _walk(p, recursive)
            if not found:
                hint = "" if recursive else " (--recursive to search subfolders)"
                raise InputsError(f"{arg}: folder holds no {'/'.join(SUFFIXES)} files{hint}")
            for f in found:
                rel = f.relative_to(p)
                paths.append((str(f), rel.with_suffix("").as_posix()))
        else:
            paths.append((arg, "stdin" if arg == "-" else p.stem))
    if manifest is not None:
        for line in read_manifest(manifest, stdin):
            paths.append((line, Path(line).stem))
    seen, out = set(), []
    for path, name in paths:  # the same file twice is processed once
        key = path if path == "-" else os.path.normpath(os.path.abspath(path))
        if key in seen:
            continue
        seen.add(key)
        out.append(Entry(path, name))
    return out


_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


def _pair(i: str, n: str, origin: str) -> tuple[int, int, str]:
    try:
        ii, nn = int(str(i).strip()), int(str(n).strip())
    except ValueError:
        raise InputsError(f"{origin}: expected integers, got {i!r}/{n!r}") from None
    if nn < 1 or not 0 <= ii < nn:
        raise InputsError(f"{origin}: shard {ii}/{nn} is out of range (need 0 <= I < N)")
    return ii, nn, origin


def _env_int(env, name: str, default: str | None = None) -> int:
    v = env.get(name, default)
    try:
        return int(str(v).strip())
    except ValueError:
        raise InputsError(f"{name}: expected an integer, got {v!r}") from None


def shard_spec(shard: str | None, environ=None) -> tuple[int, int, str]:
    """``(I, N, origin)``: this worker's shard. ``--shard I/N`` wins; else torchrun's
    ``RANK``/``WORLD_SIZE``; else SLURM (array tasks x tasks of each: ``SLURM_ARRAY_TASK_ID``
    minus ``SLURM_ARRAY_TASK_MIN`` of ``SLURM_ARRAY_TASK_COUNT``, combined with ``SLURM_PROCID``
    of ``SLURM_NTASKS``); else ``(0, 1, 'none')``."""
    env = os.environ if environ is None else environ
    if shard is not None:
        m = _SHARD.fullmatch(str(shard))
        if not m:
            raise InputsError(f"--shard {shard!r}: expected I/N, e.g. 0/4")
        return _pair(m[1], m[2], "--shard")
    if "WORLD_SIZE" in env:
        return _pair(env.get("RANK", "0"), env["WORLD_SIZE"], "RANK/WORLD_SIZE")
    array = "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env
    procs = "SLURM_PROCID" in env and "SLURM_NTASKS" in env
    if array or procs:
        i, n, origin = 0, 1, []
        if array:
            first = _env_int(env, "SLURM_ARRAY_TASK_MIN", "0")
            a, na, _ = _pair(str(_env_int(env, "SLURM_ARRAY_TASK_ID") - first),
                             env["SLURM_ARRAY_TASK_COUNT"], "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT")
            i, n = a, na
            origin.append("SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT")
        if procs:
            p, np_, _ = _pair(env["SLURM_PROCID"], env["SLURM_NTASKS"], "SLURM_PROCID/SLURM_NTASKS")
            i, n = i * np_ + p, n * np_
            origin.append("SLURM_PROCID/SLURM_NTASKS")
        return i, n, " x ".join(origin)
    return 0, 1, "none"


def select(entries: list, index: int, count: int) -> list:
    """Entries ``index, index + count, ...``: round-robin, so shards differ by at most one item."""
    return list(entries[index::count])


def cuda_index(environ=None) -> int | None:
    """The CUDA device a launcher assigned to this process (``LOCAL_RANK``), if any."""
    env = os.environ if environ is None else environ
    v = env.get("LOCAL_RANK")
    if v is None:
        return None
    try:
        return max(0, int(v))
    except ValueError:
        return None
