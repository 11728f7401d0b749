"""STFT operator over a batch of signals of different lengths, padded to the longest.

Cross-file batching stacks spectrograms ``[F, T_b]`` of different frame counts into one
``[B, F, T_max]`` tensor (zero frames after each item's end). With a plain :class:`STFT` the
padding would leak into every item: its end would be analysed with zeros instead of its own
reflect padding, and the ISTFT's window-sum envelope would count frames the item does not have.
:class:`RaggedSTFT` gives each item exactly the operator it would get alone:

- ``forward``: each item's signal ``x_b[:L_b]`` is padded at its own end (``pad_mode``, through a
  precomputed gather index), framed, transformed, and frames ``t >= T_b`` are set to zero;
- ``inverse``: overlap-add, then each item's own envelope ``1 / sum_{t < T_b} w^2``; samples after
  ``L_b`` are zero.

So ``project`` (and every algorithm written with ``forward``/``inverse``/``project`` and
elementwise steps: the GLA family, ADMM, DM, RAAR) computes, item by item, what it computes on the
unpadded input, up to float rounding. Zero frames stay zero (``mag = 0`` projects to 0).
When every item's framing has the fast path, :meth:`~specinv_cli.dsp.stft.STFT.projector` runs these operators on
the padded signals with the fused kernels instead (each item on its own span of its row); the
operators here are then its reference (``tests/test_batching.py``).

Shapes: signals ``[B, L_max]``, spectrograms ``[B, F, T_max]``; one leading batch dimension.

Example
-------
>>> import torch
>>> from specinv_cli.config import STFTConfig
>>> from specinv_cli.dsp import STFT
>>> cfg = STFTConfig(n_fft=256, hop_length=64)
>>> op = RaggedSTFT(cfg, [40, 25])
>>> x = torch.randn(2, op.default_length(40))
>>> X = op.forward(x)
>>> alone = STFT(cfg).forward(x[1, : 24 * 64])        # the second item on its own
>>> bool(torch.allclose(X[1, :, :25], alone, atol=1e-4)), bool((X[1, :, 25:] == 0).all())
(True, True)
"""
from __future__ import annotations

import torch

from .stft import STFT

__all__ = ["RaggedSTFT"]


class RaggedSTFT(STFT):
    """:class:`~specinv_cli.dsp.stft.STFT` for ``B`` items of ``frames[b]`` valid frames each.

    Parameters
    ----------
    config : framing settings (as :class:`STFT`).
    frames : valid frame count of each item (``T_max = max(frames)``).
    device, dtype : as :class:`STFT`.
    """

    def __init__(self, config, frames, device=None, dtype=torch.float32):
        super().__init__(config, device=device, dtype=dtype)
        self.frames = [int(t) for t in frames]
        if not self.frames or min(self.frames) < 1:
            raise ValueError("every item needs at least one frame")
        self.t_max = max(self.frames)
        self.lengths = [self.default_length(t) for t in self.frames]
        if min(self.lengths) < 1:
            raise ValueError("an item has no samples with these settings")
        self.l_max = self.default_length(self.t_max)
        # The same framing without padding: it runs on signals padded here, item by item.
        self._raw = STFT(config.replace(center=False, pad=0), device=self.device, dtype=dtype)
        self._index = self._gather_index()
        t = torch.arange(self.t_max, device=self.device)
        self._frame_mask = (t[None, :] < torch.tensor(self.frames, device=self.device)[:, None]).to(dtype)
        self._ratio = self._envelope_ratio()

    # --- padding ---------------------------------------------------------------------------
    def _gather_index(self) -> torch.Tensor:
        """``[B, L_max + 2 p]`` indices into ``[x, 0]`` (index ``L_max`` = zero) that pad each
        item at its own ends, as ``F.pad(x_b[:L_b], (p, p), pad_mode)`` does."""
        p, B = self.pad, len(self.frames)
        width = self.l_max + 2 * p
        j = torch.arange(width, device=self.device)[None, :].expand(B, width) - p   # signal position
        L = torch.tensor(self.lengths, device=self.device)[:, None]
        mode = self.pad_mode if p else "constant"
        if mode == "reflect":
            # reflect needs more samples than the pad; STFT.forward falls back to zeros then
            use_reflect = L > p
            r = j.abs()
            r = torch.where(r > L - 1, 2 * (L - 1) - r, r)
            idx = torch.where(use_reflect, r, j)
        elif mode == "replicate":
            idx = j.clamp(min=0).minimum(L - 1)
        elif mode == "circular":
            idx = torch.remainder(j, L)
        else:  # constant (zeros)
            idx = j
        inside = (j >= -p) & (j < L + p)
        valid = inside & (idx >= 0) & (idx < L)
        return torch.where(valid, idx, torch.full_like(idx, self.l_max))

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, <= L_max]`` padded item by item at its own ends (:meth:`_gather_index`):
        ``[B, L_max + 2 p]``, as the plain STFT's ``_pad`` is for one length."""
        x = x.reshape(len(self.frames), -1)
        if x.shape[-1] < self.l_max:
            x = torch.nn.functional.pad(x, (0, self.l_max - x.shape[-1]))
        ext = torch.cat([x[:, : self.l_max], x.new_zeros(x.shape[0], 1)], dim=1)
        return torch.gather(ext, 1, self._index)

    def _envelope_ratio(self) -> torch.Tensor:
        """``[B, L_max + 2 p]``: each item's inverse envelope over the full one (0 past its end)."""
        full = self._raw._inverse_envelope(self.t_max).to(torch.float64)
        out = torch.zeros(len(self.frames), full.shape[-1], dtype=torch.float64, device=self.device)
        for b, t in enumerate(self.frames):  # once per batch, not per iteration
            own = self._raw._inverse_envelope(t).to(torch.float64)
            stop = self.pad + self.lengths[b]
            safe = torch.where(full[:stop] > 0, full[:stop], torch.ones_like(full[:stop]))
            out[b, :stop] = torch.where(full[:stop] > 0, own[:stop] / safe, torch.zeros_like(safe))
        return out.to(self.dtype)

    # --- the fast path ---------------------------------------------------------------------
    def item_frames(self) -> list[int]:
        return list(self.frames)

    def _fast_ok(self, n_frames: int, length: int) -> bool:
        """The :class:`~specinv_cli.dsp.stft.Projector` runs each item on its own span of the
        padded signal (own envelope and padding, frames past its end zeroed) when every item's
        framing is one the plain fast path reproduces exactly."""
        return (n_frames == self.t_max and length == self.l_max
                and all(self._fast_framing(t, n) for t, n in zip(self.frames, self.lengths)))

    # --- operators -------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, F, T_max]``: each item analysed alone, zero frames after its end."""
        spec = self._raw.forward(self._pad(x))
        return spec * self._frame_mask[:, None, :]

    def inverse(self, spec: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """``[B, length]`` (default ``L_max``): each item synthesised alone, zeros after ``L_b``."""
        y = self._raw.inverse(spec, self._raw.default_length(spec.shape[-1]))
        y = y * self._ratio
        length = self.l_max if length is None else length
        y = y[:, self.pad:self.pad + length]
        if y.shape[-1] < length:
            y = torch.nn.functional.pad(y, (0, length - y.shape[-1]))
        return y

    def project(self, spec: torch.Tensor, length: int | None = None) -> torch.Tensor:
        return self.forward(self.inverse(spec))

    def __repr__(self) -> str:
        return f"RaggedSTFT(frames={self.frames}, {super().__repr__()})"
