"""The writer's hold on its results directory, and what goes wrong with storage.

* :func:`take_writer_lock`: the one-writer lock, opened without following a
  link and without truncating;
* :func:`make_reserve`: :data:`RESERVE_BYTES` of allocated space the writer
  gives up on a full disk, so that the sweep's status can still be recorded;
* :func:`writer_id` / :func:`writer_gone`: who runs a sweep (``host:pid``),
  and whether that process is gone (a SIGKILL);
* :func:`storage_error` / :class:`storage_errors`: an OSError or database
  OperationalError while writing becomes a user error that says what failed;
* :func:`add_missing_columns`: a database from an older irqlab gets the new
  columns of the fixed tables.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from irqlab.errors import ScenarioError

RESERVE_FILE = ".irqlab-reserve"
RESERVE_BYTES = 512 * 1024
LOCK_FILE = ".irqlab-writer.lock"


def storage_error(out_dir: Path, e: BaseException) -> ScenarioError:
    """A user-facing error for a failed write to the results (disk full, I/O error, lost
    file or directory, read-only media)."""
    orig = getattr(e, "orig", None) or e
    if isinstance(orig, OSError) and orig.strerror:
        why = orig.strerror + (f": '{orig.filename}'" if orig.filename else "")
    else:
        text = str(orig).strip()
        why = text.splitlines()[0] if text else type(orig).__name__
    return ScenarioError(
        f"cannot write the results in '{out_dir}': {why}",
        hint="free space (or fix the directory), then run the same command again: it resumes "
             "where the last stored batch ended")


def out_of_space(e: BaseException) -> bool:
    import errno

    orig = getattr(e, "orig", None) or e
    if isinstance(orig, OSError):
        return orig.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS)
    text = str(orig).lower()
    return "disk is full" in text or "disk i/o error" in text


class storage_errors:
    """Context manager: an OSError or a database OperationalError inside becomes
    :func:`storage_error` (ScenarioError and everything else pass through)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: Any, e: BaseException | None, tb: Any) -> bool:
        if e is None or isinstance(e, ScenarioError):
            return False
        from sqlalchemy import exc

        if isinstance(e, (OSError, exc.OperationalError)):
            raise storage_error(self.out_dir, e) from e
        return False


def take_writer_lock(out_dir: Path) -> int:
    """Open ``out_dir/.irqlab-writer.lock`` without following a link and without truncating
    it, and take its exclusive lock; return the descriptor. ScenarioError if another
    process holds it or the path is not a regular file."""
    import fcntl
    import stat

    path = out_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as e:
        import errno

        if e.errno == errno.ELOOP:
            raise ScenarioError(f"'{path}' is a symbolic link; irqlab does not follow it",
                                hint="remove the link (irqlab creates the lock file itself)"
                                ) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ScenarioError(f"'{path}' is not a regular file", hint="remove it")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ScenarioError(f"another irqlab process is writing results in '{out_dir}'",
                            hint="wait for it to finish, or use another output directory"
                            ) from None
    return fd


def make_reserve(out_dir: Path) -> Path:
    """Make sure ``out_dir/.irqlab-reserve`` holds :data:`RESERVE_BYTES` of allocated
    space (OSError, e.g. ENOSPC, if the disk cannot give it)."""
    path = out_dir / RESERVE_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        if os.fstat(fd).st_size < RESERVE_BYTES:
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
            except OSError as e:
                import errno

                if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                os.pwrite(fd, bytes(RESERVE_BYTES), 0)
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    return path


def writer_id() -> str:
    """``<host>:<pid>`` of this process, recorded on a running sweep."""
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def writer_gone(writer: str | None) -> bool:
    """True if ``writer`` (``<host>:<pid>``) names a process of this host that no longer
    exists (a writer on another host cannot be checked: False)."""
    import socket

    if not writer or ":" not in writer:
        return False
    host, _, pid = writer.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def add_missing_columns(conn: Any, md: Any) -> None:
    """Add the columns a newer irqlab gave the fixed tables to a database an older one made
    (nullable, so old rows read as NULL)."""
    from sqlalchemy import inspect

    insp = inspect(conn)
    prep = conn.dialect.identifier_preparer
    for table in md.sorted_tables:
        have = {c["name"] for c in insp.get_columns(table.name)}
        for col in table.columns:
            if col.name not in have:
                coltype = col.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {prep.quote(table.name)} ADD COLUMN "
                                     f"{prep.quote(col.name)} {coltype}")
