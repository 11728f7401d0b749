"""Progress and log output on stderr (rich), plugged into algorithms as a callback.

On a terminal each item gets a live bar with its iteration count and the chosen metric; when
stderr is not a terminal (logs, CI) one plain line per finished item is printed instead.
``quiet`` silences both; ``NO_COLOR`` is honoured by rich. Every message is shown through
:func:`~specinv_cli.util.text.printable` (a file name's control characters escaped) and as text, never
as markup.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager

from ..util.text import printable

__all__ = ["Reporter"]

_UNITS = {"sc": "dB", "snr": "dB", "ser": "dB"}


class Reporter:
    """``words`` rewrites library messages for the audience (the CLI: parameters as flags)."""

    def __init__(self, quiet: bool = False, metric: str = "sc", stream=None, words=None):
        from rich.console import Console

        self.words = words or (lambda message: message)
        self.quiet = quiet
        self.metric = metric
        self.console = Console(file=stream or sys.stderr, stderr=stream is None, highlight=False,
                               soft_wrap=True)
        self.live = self.console.is_terminal and not quiet
        self._progress = None

    # --- plain messages ---------------------------------------------------------------------
    def error(self, message: str) -> None:
        self._say("error: ", "bold red", self.words(message))

    def warning(self, message: str) -> None:
        self._say("warning: ", "yellow", self.words(message))

    def info(self, message: str) -> None:
        if not self.quiet:
            self._say("", None, self.words(message))

    def _say(self, prefix: str, style, message: str) -> None:
        from rich.text import Text

        text = Text(prefix, style=style if self.console.is_terminal else None)
        text.append(printable(message))
        self.console.print(text, highlight=False)

    # --- progress bars ----------------------------------------------------------------------
    @contextmanager
    def session(self):
        if not self.live:
            yield self
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[metric]}"), TimeElapsedColumn(),
            console=self.console, transient=False)
        with self._progress:
            try:
                yield self
            finally:
                self._progress = None

    @contextmanager
    def counter(self, total: int, what: str):
        """A bar over ``total`` items on a terminal (nothing otherwise): yields ``step(i, name)``,
        called before item ``i``."""
        if not self.live or total < 2:
            yield lambda i, name: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        with Progress(TextColumn(printable(what).replace("[", "\\[")), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[name]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=self.console, transient=True) as bar:
            task = bar.add_task(what, total=total, name="")

            def step(i, name):
                bar.update(task, completed=i, name=printable(str(name)).replace("[", "\\["))

            yield step

    def callback_for(self, labels: list[str], total: int):
        """A :class:`~specinv_cli.algorithms.base.Progress` callback driving one bar per item."""
        if self._progress is None:
            return None
        tasks = [self._progress.add_task(printable(label).replace("[", "\\["), total=max(total, 1), metric="")
                 for label in labels]

        def update(p):
            values = p.metrics.get(self.metric)
            flat = values.reshape(-1).tolist() if values is not None else [None] * len(tasks)
            for task, v in zip(tasks, flat):
                text = "" if v is None else f"{self.metric.upper()} {v:7.2f} {_UNITS.get(self.metric, '')}"
                completed = max(total, 1) if p.done else p.iteration
                self._progress.update(task, completed=completed, metric=text)

        return update
