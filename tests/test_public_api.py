"""The package's public names: each one in ``__all__`` resolves, importing the package stays
torch-free, and every error a layer raises derives from ``SpecinvError``."""
import subprocess
import sys

import specinv_cli


def test_every_public_name_resolves_and_errors_share_one_root():
    for name in specinv_cli.__all__:
        assert getattr(specinv_cli, name) is not None, name
        assert name in dir(specinv_cli)
    root = specinv_cli.SpecinvError
    for name in ("InputError", "ConfigError", "InversionError", "DeviceError", "OutputError", "StdoutClosed"):
        assert issubclass(getattr(specinv_cli, name), root), name


def test_importing_the_package_does_not_import_torch():
    code = "import sys, specinv_cli; assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_the_package_is_marked_typed():
    from pathlib import Path

    assert (Path(specinv_cli.__file__).parent / "py.typed").is_file()
