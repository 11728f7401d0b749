"""Companion commands (``stft``, ``eval``, ``plot``, ``report``): click only, no DSP here."""
from __future__ import annotations


def register(cli) -> None:
    """Add the companion commands to the ``specinv`` group."""
