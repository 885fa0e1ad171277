"""Access to the state database: SQLite by default, PostgreSQL when configured.

:class:`Database` opens an engine for a URL, applies pending migrations under
a lock, and hands out transactions. Writers that must not interleave (the
audit chain, the reconciler) take a named lock inside their transaction:
SQLite serialises every writer with ``BEGIN IMMEDIATE``; PostgreSQL uses a
transaction-scoped advisory lock keyed by the lock's name.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from zerodrift.errors import ConfigError, IntegrityError, OperationalError
from zerodrift.state import schema
from zerodrift.state.migrations import MIGRATIONS, Migration, latest_version
from zerodrift.state.times import format_time, parse_time, utc_now

__all__ = ["Database", "format_time", "normalise_url", "parse_time", "utc_now"]

_logger = logging.getLogger(__name__)

_SQLITE_BUSY_MS = 30_000


def normalise_url(url: str) -> str:
    """Select the drivers zerodrift ships with for a user-given URL.

    Raises:
        ConfigError: The URL names an engine zerodrift does not support.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # The URL is not echoed: it may hold a password.
        raise ConfigError(
            "the state database URL is not a valid URL",
            hint="use sqlite:///path/to/state.db or postgresql://user:password@host/db",
            reference="database-url-invalid",
        ) from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise ConfigError(
            f"unsupported database engine {backend!r}",
            hint="zerodrift stores state in SQLite or PostgreSQL",
            reference="database-url-invalid",
        )
    return parsed.render_as_string(hide_password=False)


def _lock_key(name: str) -> int:
    digest = hashlib.sha256(b"zerodrift:" + name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Database:
    """A migrated state database.

    Use :meth:`open` rather than the constructor; it applies migrations.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"

    @property
    def display_url(self) -> str:
        """The URL with any password hidden, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Database:
        """Connect to ``url`` and bring its schema up to date.

        Raises:
            ConfigError: The URL is invalid or names an unsupported engine.
            OperationalError: The database is unreachable, read-only, or was
                created by a newer zerodrift.
        """
        url = normalise_url(url)
        if url.startswith("sqlite"):
            _prepare_sqlite_folder(url)
        # A server that never answers must not hang the command forever.
        connect_args = {} if url.startswith("sqlite") else {"connect_timeout": 10}
        try:
            engine = create_engine(
                url, future=True, pool_pre_ping=True, connect_args=connect_args
            )
        except (ArgumentError, NoSuchModuleError, ValueError):
            raise ConfigError(
                "cannot use the state database URL",
                hint="check its form: sqlite:///path/to/state.db or "
                "postgresql://user:password@host/db",
                reference="database-url-invalid",
            ) from None
        if engine.dialect.name == "sqlite":
            _configure_sqlite(engine)
        db = cls(engine)
        if migrate:
            db.migrate()
        return db

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """Yield a connection in a read transaction.

        Raises:
            OperationalError: The database failed.
        """
        with self._translate(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def write(self, lock: str | None = None) -> Iterator[Connection]:
        """Yield a connection in a write transaction, committed on success.

        Args:
            lock: Name of a lock to hold until commit. On SQLite every write
                transaction is exclusive already; on PostgreSQL writers that
                share a lock name exclude each other.

        Raises:
            OperationalError: The database failed or is read-only.
        """
        with self._translate(), self.engine.connect() as plain:
            conn = plain.execution_options(zerodrift_write=True)
            with conn.begin():
                if lock is not None and not self.is_sqlite:
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"),
                        {"key": _lock_key(lock)},
                    )
                yield conn

    def insert_new(
        self, conn: Connection, table: Table, values: dict[str, Any]
    ) -> bool:
        """Insert a row unless its primary key exists; return whether it did."""
        # Dialect modules are imported here: PostgreSQL's takes a noticeable
        # share of start-up, and a SQLite project never needs it.
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            statement: Any = sqlite_insert(table)
        else:
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            statement = pg_insert(table)
        result = conn.execute(statement.values(**values).on_conflict_do_nothing())
        return bool(result.rowcount)

    def schema_version(self) -> int:
        """Return the highest migration applied (0 for an empty database)."""
        with self.read() as conn:
            if not self.engine.dialect.has_table(conn, "schema_migrations"):
                return 0
            value = conn.execute(select(func.max(schema.schema_migrations.c.version)))
            return int(value.scalar() or 0)

    def state_id(self) -> str:
        """The random id that names this state database (made by migration 4).

        Nodes carry it, so that projects sharing a runtime never take each
        other's nodes for their own.

        Raises:
            IntegrityError: The id was deleted (it is never changed).
        """
        with self.read() as conn:
            found = conn.execute(select(schema.state_identity.c.id)).scalar()
        if found is None:
            raise IntegrityError(
                f"state database {self.display_url} has lost its id "
                "(table state_identity is empty)",
                hint="restore the database from a backup; the project's nodes "
                "carry the old id in their io.zerodrift.state label",
                reference="state-id-missing",
            )
        return str(found)

    def migrate(self) -> list[int]:
        """Apply pending migrations; return the versions applied.

        Raises:
            OperationalError: The database is newer than this code, or a
                migration failed (the schema is left unchanged).
        """
        # Most opens find nothing to do: check that in a read transaction so
        # readers neither wait for nor block writers.
        if not self._pending(self._applied_versions()):
            return []
        with self.write(lock="migrations") as conn:
            schema.schema_migrations.create(conn, checkfirst=True)
            done = set(
                conn.execute(select(schema.schema_migrations.c.version)).scalars()
            )
            applied = []
            for migration in self._pending(done):
                if migration.version in done:
                    continue
                _logger.debug(
                    "applying migration %d: %s",
                    migration.version,
                    migration.description,
                )
                migration.apply(conn)
                conn.execute(
                    schema.schema_migrations.insert().values(
                        version=migration.version,
                        description=migration.description,
                        applied_at=utc_now(),
                    )
                )
                applied.append(migration.version)
            return applied

    def _applied_versions(self) -> set[int]:
        with self.read() as conn:
            if not self.engine.dialect.has_table(conn, "schema_migrations"):
                return set()
            query = select(schema.schema_migrations.c.version)
            return set(conn.execute(query).scalars())

    def _pending(self, done: set[int]) -> list[Migration]:
        """Return the migrations not in ``done``, refusing a newer database.

        Raises:
            OperationalError: ``done`` holds a version this code does not know.
        """
        known = {m.version for m in MIGRATIONS}
        unknown = sorted(done - known)
        if unknown and max(unknown) > latest_version():
            raise OperationalError(
                f"database {self.display_url} has schema version {max(done)}, "
                f"newer than this zerodrift understands ({latest_version()})",
                hint="upgrade zerodrift before using this database",
                reference="database-too-new",
            )
        return [
            m
            for m in sorted(MIGRATIONS, key=lambda m: m.version)
            if m.version not in done
        ]

    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except DBAPIError as exc:
            raise _operational(self.display_url, exc) from exc
        except SQLAlchemyError as exc:
            raise OperationalError(
                f"database {self.display_url} failed: {exc}",
                reference="database-error",
            ) from exc


def _operational(display_url: str, exc: DBAPIError) -> OperationalError:
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    lowered = detail.lower()
    if "readonly" in lowered or "read-only" in lowered:
        hint = "the state folder or database file is read-only; fix its permissions"
        reference = "database-read-only"
    elif "unable to open" in lowered:
        hint = "check that the state folder exists and is writable"
        reference = "database-unavailable"
    elif exc.connection_invalidated or "connect" in lowered or "connection" in lowered:
        hint = (
            "check that the server is running and the URL, user and password are right"
        )
        reference = "database-unreachable"
    else:
        hint = None
        reference = "database-error"
    return OperationalError(
        f"database {display_url}: {detail}", hint=hint, reference=reference
    )


def _prepare_sqlite_folder(url: str) -> None:
    database = make_url(url).database
    if not database or database == ":memory:":
        return
    folder = Path(database).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OperationalError(
            f"cannot create state folder {folder}: {exc.strerror}",
            hint="check the permissions of the project folder",
            reference="database-unavailable",
        ) from exc
    # SQLite in WAL mode writes a shared-memory file next to the database
    # even to read it, so a read-only folder fails every command: say so.
    if not os.access(folder, os.W_OK):
        raise OperationalError(
            f"state folder {folder} is read-only",
            hint="zerodrift needs to write its state database there; fix the "
            "folder's permissions or mount, or point ZERODRIFT_DATABASE_URL "
            "elsewhere",
            reference="database-read-only",
        )


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling would issue a deferred BEGIN; we
    # take over so that write transactions start with BEGIN IMMEDIATE and
    # two writers can never both read the chain head and then both append.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("zerodrift_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
