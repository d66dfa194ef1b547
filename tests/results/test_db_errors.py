"""A database that cannot be opened is a user error (exit 2, no traceback), whatever the cause."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from irqlab.cli.main import main

SWEEP = str(Path(__file__).resolve().parents[2] / "examples" / "sweep_founding.scn")


def _err(capsys, *argv: str) -> tuple[int, str]:
    rc = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    return rc, err


def test_an_unknown_dialect_is_a_user_error(capsys):
    """query nosuch://x: the URL is not one SQLAlchemy can use."""
    rc, err = _err(capsys, "query", "nosuch://x", "SELECT 1")
    assert rc == 2 and "'nosuch://x' is not a database URL SQLAlchemy can use" in err


@pytest.mark.skipif(importlib.util.find_spec("cx_Oracle") is not None, reason="cx_Oracle is installed")
def test_a_missing_driver_is_a_user_error(capsys):
    """query oracle+cx_oracle://...: the driver module is named, with a hint."""
    rc, err = _err(capsys, "query", "oracle+cx_oracle://u@127.0.0.1:1/x", "SELECT 1")
    assert rc == 2 and "its driver is not installed (no module named 'cx_Oracle')" in err


def test_a_database_that_cannot_be_opened_is_a_user_error(capsys, tmp_path):
    """sweep --db sqlite:///<a directory that does not exist>/x.db: cannot connect, exit 2."""
    url = f"sqlite:///{tmp_path}/missing/dir/x.db"
    rc, err = _err(capsys, "sweep", SWEEP, "--db", url, "--out", str(tmp_path / "out"),
                   "--no-progress")
    assert rc == 2 and f"cannot connect to the database {url}: unable to open database file" in err


def test_the_password_is_never_printed(capsys, tmp_path):
    """Whatever goes wrong with a URL that carries a password, the error hides it."""
    rc, err = _err(capsys, "sweep", SWEEP, "--db", "postgresql://u:s3cret@127.0.0.1:1/x",
                   "--out", str(tmp_path / "out"), "--no-progress")
    assert rc == 2 and "s3cret" not in err and "u:***@127.0.0.1:1" in err
