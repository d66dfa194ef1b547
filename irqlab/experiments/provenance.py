"""Where a sweep came from: git state of the scenario's repository, host, times."""

from __future__ import annotations

import datetime as _dt
import os
import socket
import subprocess


def iso_utc(when: _dt.datetime | None = None) -> str:
    """``when`` (default: now), ISO 8601 in UTC to the millisecond with a ``Z``: the one
    form of every time irqlab stores (sweep start and end, shard creation)."""
    when = _dt.datetime.now(_dt.timezone.utc) if when is None else when.astimezone(_dt.timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    """The current time as :func:`iso_utc` writes it."""
    return iso_utc()


def git_state(path: str | None) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git repository holding ``path``; ``(None, None)``
    when it is not in one (or git is missing). Dirty: any uncommitted change in
    the repository, tracked or untracked."""
    if not path:
        return None, None
    d = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))

    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "-C", d, *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = git("status", "--porcelain")
    return commit.strip(), bool(status and status.strip())


def host() -> str:
    return socket.gethostname()
