"""The command line: one module per command, :mod:`.common` shared by them, :mod:`.app` the group
and entry point. The top layer: it imports the library, nothing imports it."""
from .app import cli, main

__all__ = ["cli", "main"]
