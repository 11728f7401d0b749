"""Shell completion (click's _SPECINV_COMPLETE) and the command list in `specinv --help`."""
import re

import pytest

from clihelp import run, run_process

COMMANDS = ("invert", "methods", "configs", "stft", "eval", "plot", "report")


def test_bash_completion_script():
    r = run_process(env={"_SPECINV_COMPLETE": "bash_source"})
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode()
    assert "_specinv_completion()" in out and "complete -o nosort -F _specinv_completion specinv" in out


@pytest.mark.parametrize("words, cword, expected", [
    ("specinv ev", 1, "plain,eval"),
    ("specinv stft --con", 2, "plain,--config"),
    ("specinv eval out.wav --scale", 3, "plain,--scale-invariant"),
])
def test_bash_completes_commands_and_options(words, cword, expected):
    r = run_process(env={"_SPECINV_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)})
    assert r.returncode == 0
    assert expected in r.stdout.decode().splitlines()


def test_help_lists_every_command_with_a_description(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    listed = dict(re.findall(r"^  (\w+)\s+(\S.*)$", out.split("Commands:")[1], flags=re.M))
    for name in COMMANDS:
        assert listed.get(name), f"{name} missing from --help"
    for name in ("stft", "eval", "plot", "report"):   # whole sentences, not cut with '...'
        assert not listed[name].endswith("..."), listed[name]


def test_companion_help_imports_no_heavy_module():
    code = ("import sys; from specinv_cli.cli import main\n"
            "for args in (['--help'], ['stft', '--help'], ['eval', '--help'], ['plot', '--help'], ['report', '--help']):\n"
            "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
            "heavy = [m for m in ('torch', 'librosa', 'numpy', 'matplotlib', 'soundfile') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()[-500:]


def test_zsh_and_fish_scripts_as_documented():
    for shell, marker in (("zsh", "#compdef specinv"), ("fish", "complete --no-files --command specinv")):
        r = run_process(env={"_SPECINV_COMPLETE": f"{shell}_source"})
        assert r.returncode == 0 and marker in r.stdout.decode(), (shell, r.stdout.decode()[:200])
