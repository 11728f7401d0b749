"""``specinv methods`` and ``specinv configs``: what the library offers."""
from __future__ import annotations

import sys

import click

from .common import CONTEXT, EXIT_USAGE
from ..algorithms.registry import REGISTRY


@click.command(context_settings=CONTEXT, short_help="List the algorithms, their papers and options.")
def methods():
    """List the algorithms: name, description, paper, options with defaults. Methods from
    installed plugins (entry-point group specinv.methods) are marked with their distribution;
    SPECINV_NO_PLUGINS=1 leaves them out."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    t = Table(title="specinv methods", show_lines=False)
    for col in ("name", "description", "paper", "options (defaults)"):
        t.add_column(col, overflow="fold")
    for m in REGISTRY.values():
        opts = ", ".join(f"{o.flag} {o.default}" for o in m.options) or "-"
        kind = "" if m.iterative or "non-iterative" in m.summary else " [non-iterative]"
        if not m.builtin:
            kind += " [registered in Python]" if m.origin == "python" else f" [plugin: {m.origin}]"
        t.add_row(*map(escape, (m.name, m.summary + kind, m.paper, opts)))  # "[...]" is text, not markup
    Console().print(t)


@click.group(context_settings=CONTEXT, invoke_without_command=True, short_help="List the STFT/mel presets; 'configs show NAME' prints one.")
@click.pass_context
def configs(ctx):
    """List the STFT presets in configs/ ('configs show NAME' prints one)."""
    if ctx.invoked_subcommand is None:
        from ..config import list_presets, read_preset_text

        for name in list_presets():
            first = next((ln[1:].strip() for ln in read_preset_text(name).splitlines() if ln.startswith("#")), "")
            click.echo(f"{name:<20} {first}")


@configs.command("show", context_settings=CONTEXT)
@click.argument("name")
def configs_show(name):
    """Print preset NAME (or a .toml file) as TOML."""
    from ..config import ConfigError, load_preset, read_preset_text

    try:
        load_preset(name)
        click.echo(read_preset_text(name), nl=False)
    except ConfigError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_USAGE)
