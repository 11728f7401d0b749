"""SIGINT, SIGTERM and SIGHUP during a long run: exit code 130, no temporary files left, the outputs
finished before the signal intact and valid, the one in progress not written."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from clihelp import ROOT, files_in, read_wav

HOP = 256


def _inputs(folder):
    rng = np.random.default_rng(0)
    names = []
    # a quick first input, then long ones: the signal lands while the second is being inverted
    for i, frames in enumerate([8, 3000, 3000]):
        name = f"in{i}.npy"
        np.save(folder / name, np.abs(rng.standard_normal((513, frames))).astype(np.float32))
        names.append(name)
    return names


def _foreground():
    # A job started with '&' by a non-interactive shell (CI scripts) inherits SIGINT ignored, and
    # Python then never turns it into KeyboardInterrupt: give the child Ctrl-C's usual disposition.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_leaves_no_partial_outputs(tmp_path, sig):
    names = _inputs(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "specinv_cli", "invert", *[tmp_path / n for n in names],
                             "-m", "fgla", "-n", "2000", "--init", "random", "-q", "--batch-size", "1", "-O", out],
                            cwd=str(ROOT), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=_foreground, env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    try:
        # readiness marker: the first output exists, so the handlers are installed and the second
        # input is being loaded or inverted (2000 iterations of 3000 frames: long on any machine);
        # wherever the signal lands from here the outcome is the same. The deadline is only a net.
        deadline = time.monotonic() + 300
        while not (out / "in0.wav").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the first output never appeared"
            time.sleep(0.05)
        proc.send_signal(sig)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            # still running: SIGABRT makes faulthandler (PYTHONFAULTHANDLER) print where it is
            proc.send_signal(signal.SIGABRT)
            _, err = proc.communicate(timeout=60)
            pytest.fail(f"{sig.name} did not end the run within 60 s; where it was:\n{err.decode()[-6000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err.decode()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err, err
    left = files_in(out)
    assert not [f for f in left if f.startswith(".specinv-tmp-")], left
    assert left == ["in0.wav"], left  # finished output kept, nothing of the interrupted ones
    audio, sr = read_wav(out / "in0.wav")
    assert sr == 22050 and len(audio) == 7 * HOP and np.all(np.isfinite(audio)) and np.abs(audio).max() > 0


def test_a_signal_dropped_inside_a_callback_from_c_still_ends_the_run():
    """numba compiling a kernel calls back into Python through ctypes; a KeyboardInterrupt raised
    by the signal handler there is printed and dropped by ctypes, and the run would go on. The
    handler also records the signal, and the next iteration (Monitor.step) or input raises."""
    import ctypes

    from specinv_cli.algorithms.base import Monitor
    from specinv_cli.cli.common import install_signal_handlers
    from specinv_cli.util import interrupt

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    hook = sys.unraisablehook
    reported = []
    try:
        sys.unraisablehook = reported.append  # what would print "Exception ignored ... Traceback"
        install_signal_handlers()

        def body():
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, inside the callback
            for _ in range(1000):
                pass

        ctypes.CFUNCTYPE(None)(body)()  # returns normally: ctypes dropped the KeyboardInterrupt
        assert interrupt.pending()
        assert reported == []  # and no traceback of it reached stderr
        with pytest.raises(KeyboardInterrupt):
            Monitor().step(1, None)
    finally:
        interrupt.clear()
        sys.unraisablehook = hook
        for s, h in saved.items():
            signal.signal(s, h)
    assert Monitor().step(1, None) is False  # nothing pending: iterations go on
