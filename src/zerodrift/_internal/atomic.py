"""Crash-safe file writes: temporary file, fsync, rename, fsync the folder."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from zerodrift.errors import OperationalError


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries to disk so a rename inside it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: Path, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """Yield a binary file that replaces ``path`` only when the block succeeds.

    Readers see either the old content or the complete new content, never a
    part. On any exception the temporary file is removed and ``path`` is left
    as it was.

    Raises:
        OperationalError: The folder is not writable or the disk is full.
    """
    path = Path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise OperationalError(
            f"cannot write {path}: {exc.strerror}",
            hint="check that the folder exists and is writable",
            reference="write-failed",
        ) from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OperationalError(
            f"cannot write {path}: {exc.strerror}",
            hint="check free disk space and permissions",
            reference="write-failed",
        ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    Raises:
        OperationalError: The write failed; ``path`` is unchanged.
    """
    with atomic_writer(path, mode) as handle:
        handle.write(data)
