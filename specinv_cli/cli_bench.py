"""``specinv bench``: the short speed benchmark on the user's machine (click only)."""
from __future__ import annotations


def register(cli) -> None:
    """Add ``bench`` to the ``specinv`` group."""
