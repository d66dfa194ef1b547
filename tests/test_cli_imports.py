"""Each command module of irqlab/cli imports on its own, first, in a fresh interpreter."""

import subprocess
import sys

import pytest

MODULES = ["main", "sim", "lang", "sweep", "store", "plugins", "expectations", "traces", "report",
           "cmdline"]


@pytest.mark.parametrize("name", MODULES)
def test_a_command_module_imports_first(name):
    """Importing irqlab.cli.<name> before anything else works (no import cycle)."""
    done = subprocess.run([sys.executable, "-c", f"import irqlab.cli.{name}"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
