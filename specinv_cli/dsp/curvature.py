"""L-BFGS's passes over its curvature history, fused on the CPU.

:func:`~specinv_cli.algorithms.lbfgs.minimize_lbfgs` keeps its curvature pairs as the rows of one
matrix ``W [2 m, n]`` (``s_j``, ``y_j``) and reads it twice per iteration: once for the search
direction ``d = -(W^T coef + cg g)``, and once for the products ``W g_new`` after the line
search, beside the new pair's inner products. In torch that is an ``addmv``, an ``mv`` and a
dozen vector passes (each a dispatch and a pass through memory, with the signal's length ``n``);
the numba kernels :func:`~specinv_cli.dsp.kernels.history_direction` and
:func:`~specinv_cli.dsp.kernels.history_pair` do each in one pass over chunks that stay in cache.
The torch code here is their twin (CUDA, autograd-free double checks, ``SPECINV_JIT=0``).

Shapes: ``W [2 m, n]`` (its first ``k`` rows in use), vectors ``[n]``, contiguous, one dtype.
"""
from __future__ import annotations

import numpy as np
import torch

from .stft import jit_ready, jit_kernels

__all__ = ["direction", "pair"]


def _fused(*ts: torch.Tensor) -> bool:
    t = ts[0]
    return (t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)
            and all(u.is_contiguous() and u.dtype == t.dtype for u in ts) and jit_ready(t.dtype))


def direction(W: torch.Tensor, k: int, coef: np.ndarray, cg: float, g: torch.Tensor,
              d: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """``(d, g . d)`` with ``d = -(W[:k]^T coef[:k] + cg g)`` (``coef`` float64 ``[>= k]``),
    written into ``d`` when given."""
    if d is None:
        d = torch.empty_like(g)
    if _fused(W, g, d):
        J, nchunk = jit_kernels()
        acc = np.zeros((nchunk, 1))
        c = np.empty(k + 1, dtype=g.numpy().dtype)
        c[:k], c[k] = coef[:k], cg
        J.history_direction(W.numpy(), int(k), c, g.numpy(), d.numpy(), acc, nchunk)
        return d, float(acc.sum())
    c = torch.from_numpy(-np.asarray(coef[:k], dtype=np.float64)).to(device=g.device, dtype=g.dtype)
    if k:
        torch.addmv(g, W[:k].transpose(0, 1), c, beta=-cg, out=d)
    else:
        torch.mul(g, -cg, out=d)
    return d, float(torch.dot(g, d))


def pair(W: torch.Tensor, k: int, d: torch.Tensor, t: float, g: torch.Tensor, gn: torch.Tensor,
         P: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The candidate pair ``P[0] = t d``, ``P[1] = gn - g`` (``P [2, n]``), and
    ``(dots, wg)``: ``dots`` float64 ``[s.s, s.y, y.y, s.gn, y.gn, gn.gn, max |gn|]`` and ``wg``
    float64 ``W[:k] gn``."""
    if _fused(W, d, g, gn, P):
        J, nchunk = jit_kernels()
        acc = np.zeros((nchunk, 7 + int(k)))
        J.history_pair(W.numpy(), int(k), d.numpy(), np.full(1, t, dtype=g.numpy().dtype), g.numpy(), gn.numpy(),
                       P.numpy(), acc, nchunk)
        dots = acc[:, :7].sum(axis=0)
        dots[6] = acc[:, 6].max()
        return dots, acc[:, 7:].sum(axis=0)
    torch.mul(d, t, out=P[0])
    torch.sub(gn, g, out=P[1])
    dots = np.array([float(torch.dot(u, v)) for u, v in
                     ((P[0], P[0]), (P[0], P[1]), (P[1], P[1]), (P[0], gn), (P[1], gn), (gn, gn))]
                    + [float(gn.abs().max())])
    wg = torch.mv(W[:k], gn).double().cpu().numpy() if k else np.zeros(0)
    return dots, wg
