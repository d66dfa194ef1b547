"""Every file irqlab reads is a regular file under a size limit; anything else is a located error."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from irqlab.dsl import load_all
from irqlab.errors import ScenarioError
from tests.dsl.conftest import GOOD

# the command runs with its memory capped, so an unbounded read fails instead of eating the machine
_RUN = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)); "
        "from irqlab.cli.main import main; sys.exit(main(sys.argv[1:]))")


def irqlab(*args: str, cwd=None) -> tuple[int, str]:
    """Run ``irqlab ARGS`` in a subprocess (a hang or a runaway read fails the test)."""
    p = subprocess.run([sys.executable, "-c", _RUN, *args], capture_output=True, text=True,
                       timeout=60, cwd=cwd)
    return p.returncode, p.stderr


def _include(tmp_path, target: str):
    p = tmp_path / "t.scn"
    p.write_text(f'include "{target}"\n' + GOOD)
    return p


def test_include_of_dev_zero_is_refused_at_the_include(tmp_path):
    """include "/dev/zero" is an error at the include's file name, exit 2."""
    rc, err = irqlab("check", str(_include(tmp_path, "/dev/zero")))
    assert rc == 2 and "t.scn:1:9: error:" in err and "character device" in err, err


def test_include_of_a_fifo_does_not_block(tmp_path):
    """include of a FIFO with no writer is refused at once, not waited on."""
    fifo = tmp_path / "pipe.scn"
    os.mkfifo(fifo)
    rc, err = irqlab("check", str(_include(tmp_path, str(fifo))))
    assert rc == 2 and "t.scn:1:9: error:" in err and "FIFO" in err, err


def test_import_of_a_directory_is_refused_at_the_import(tmp_path):
    """import of a directory is an error at the import's file name."""
    (tmp_path / "d.scn").mkdir()
    p = tmp_path / "t.scn"
    p.write_text('import "d.scn"\n' + GOOD)
    rc, err = irqlab("check", str(p))
    assert rc == 2 and "t.scn:1:8: error:" in err and "directory" in err, err


@pytest.mark.parametrize("command", [["check"], ["sweep", "--dry-run"], ["run"]])
def test_commands_refuse_dev_urandom(command):
    """check, sweep and run of /dev/urandom refuse it, exit 2, no traceback."""
    rc, err = irqlab(*command, "/dev/urandom")
    assert rc == 2 and "not a regular file" in err and "Traceback" not in err, err


def test_arrival_trace_of_dev_zero_is_refused_at_its_file_argument(tmp_path):
    """arrival trace file "/dev/zero" is an error at the file argument."""
    p = tmp_path / "t.scn"
    p.write_text(GOOD.replace("arrival once at 0", 'arrival trace file "/dev/zero"'))
    rc, err = irqlab("check", str(p))
    assert rc == 2 and "t.scn:12:28: error:" in err and "character device" in err, err


def test_size_limit_is_adjustable(tmp_path, monkeypatch):
    """A scenario file larger than IRQLAB_MAX_FILE_BYTES is refused; raising the limit admits it."""
    p = tmp_path / "t.scn"
    p.write_text(GOOD)
    monkeypatch.setenv("IRQLAB_MAX_FILE_BYTES", str(len(GOOD) - 1))
    with pytest.raises(ScenarioError, match="more than the limit") as e:
        load_all(str(p))
    assert e.value.diagnostics[0].hint and "IRQLAB_MAX_FILE_BYTES" in e.value.diagnostics[0].hint
    monkeypatch.setenv("IRQLAB_MAX_FILE_BYTES", str(len(GOOD)))
    assert list(load_all(str(p))) == ["s"]
