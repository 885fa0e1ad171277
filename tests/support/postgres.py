"""A real PostgreSQL server for tests, started on a private Unix socket.

``initdb`` refuses to run as root, so the server runs as the ``postgres`` user
(created by Debian's package) from a folder every parent of which that user
can enter. The server listens on no TCP port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

_BIN_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def postgres_bin() -> Path | None:
    """Return the folder with PostgreSQL's server programs, if installed."""
    for folder in _BIN_CANDIDATES:
        if (folder / "initdb").exists():
            return folder
    return None


def _as_postgres(args: list[str]) -> list[str]:
    if os.getuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@contextlib.contextmanager
def running_postgres() -> Iterator[str]:
    """Start a throwaway server; yield a URL to its ``postgres`` database."""
    binaries = postgres_bin()
    if binaries is None:
        raise RuntimeError("PostgreSQL server is not installed (scripts/bootstrap)")
    base = Path(tempfile.mkdtemp(prefix="zd-pg-", dir="/tmp"))
    base.chmod(0o755)
    data, sockets = base / "data", base / "run"
    sockets.mkdir()
    if os.getuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        shutil.chown(sockets, "postgres", "postgres")
    try:
        subprocess.run(
            _as_postgres(
                [
                    str(binaries / "initdb"),
                    "-D",
                    str(data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            _as_postgres(
                [
                    str(binaries / "pg_ctl"),
                    "-D",
                    str(data),
                    "-w",
                    "-s",
                    "-l",
                    str(base / "log"),
                    "-o",
                    f"-k {sockets} -c listen_addresses='' -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off "
                    "-c max_connections=200",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        yield f"postgresql://postgres@/postgres?host={sockets}"
    finally:
        subprocess.run(
            _as_postgres(
                [
                    str(binaries / "pg_ctl"),
                    "-D",
                    str(data),
                    "-m",
                    "immediate",
                    "-s",
                    "stop",
                ]
            ),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    """Create a fresh database on the server; return its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.replace("/postgres?", f"/{name}?", 1)
