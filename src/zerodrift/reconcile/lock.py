"""One reconciler per environment at a time.

On SQLite the lock is an exclusive ``flock`` on a file in the state folder;
on PostgreSQL it is a session advisory lock held on a dedicated connection,
so reconcilers on different machines sharing one database exclude each
other too. Both are released by the operating system or the server when the
process dies, so a killed apply never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import text

from zerodrift.errors import OperationalError
from zerodrift.state import Database

__all__ = ["environment_lock"]


def _busy(environment: str) -> OperationalError:
    return OperationalError(
        f"another apply or recover is running on environment {environment!r}",
        hint="wait for it to finish; a killed run releases its lock at once",
        reference="environment-locked",
    )


@contextlib.contextmanager
def environment_lock(db: Database, state_dir: Path, environment: str) -> Iterator[None]:
    """Hold the reconcile lock of ``environment`` for the block.

    Raises:
        OperationalError: Another process holds the lock.
    """
    if db.is_sqlite:
        folder = state_dir / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"reconcile-{environment}.lock", os.O_RDWR | os.O_CREAT)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise _busy(environment) from exc
            yield
        finally:
            os.close(fd)
        return
    digest = hashlib.sha256(f"zerodrift:reconcile:{environment}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    with db.engine.connect() as conn:
        taken = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})
        if not taken.scalar():
            raise _busy(environment)
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
