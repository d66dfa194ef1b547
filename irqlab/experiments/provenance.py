"""Where a sweep came from: git state of the scenario's repository, host, times."""

from __future__ import annotations

import datetime as _dt
import os
import socket
import subprocess


def now_iso() -> str:
    """The current time, ISO 8601 in UTC with a ``Z``."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
