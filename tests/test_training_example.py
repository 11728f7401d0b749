"""docs/examples/training_loop.py: training through PhaseRetrieval lowers the loss."""
from __future__ import annotations

import runpy
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "training_loop.py"


def test_the_training_loop_example_learns(capsys):
    """The per-bin gain, trained for the example's 20 steps with a loss on the waveform that
    fast Griffin-Lim inverts to, removes a real part of the loss: it starts at the noisy input's
    and would stay there if no gradient reached the gain through the iterations."""
    env = runpy.run_path(str(EXAMPLE), run_name="__main__")
    losses = env["losses"]
    out = capsys.readouterr().out
    assert len(losses) == 20 and f"loss {losses[0]:.4f} -> {losses[-1]:.4f}" in out
    assert losses[-1] < 0.7 * losses[0]
    assert min(losses[-5:]) < min(losses[:5])
