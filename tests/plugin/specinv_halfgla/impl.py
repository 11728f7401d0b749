"""halfgla: Griffin-Lim (Griffin & Lim, IEEE TASSP 1984) run for ``round(fraction * n_iter)``
iterations. ``mag [..., F, T]`` -> waveform ``[..., length]``."""
from specinv_cli.algorithms.gla import gla


def halfgla(mag, stft, *, n_iter, init, length, monitor, fraction=0.5):
    return gla(mag, stft, n_iter=round(fraction * n_iter), init=init, length=length, monitor=monitor)
