"""Fixtures for control tests: a real database, the example spec, evidence."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from zerodrift.comply.evidence import Evidence
from zerodrift.identify import build_inventory
from zerodrift.identify.snapshots import record_snapshot
from zerodrift.project import Project
from zerodrift.protect.keys import load_public_key
from zerodrift.spec import LoadedSpec
from zerodrift.state import Database, format_time
from zerodrift.state.schema import spec_revisions

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def at(**delta: float) -> str:
    """A database time relative to NOW (``at(hours=-2)``)."""
    return format_time(NOW + timedelta(**delta))


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database.open(database_url)
    yield database
    database.close()


@pytest.fixture
def spec(project: Path) -> LoadedSpec:
    return Project(project).load_spec()


MakeEvidence = Callable[..., Evidence]


@pytest.fixture
def make_evidence(db: Database, spec: LoadedSpec, project: Path) -> MakeEvidence:
    def make(**overrides: Any) -> Evidence:
        values: dict[str, Any] = {
            "db": db,
            "as_of": at(),
            "spec": spec,
            "policy": spec.fleet.compliance,
            "keys": lambda: [
                load_public_key("project", project / "keys" / "project.pub")
            ],
        }
        values.update(overrides)
        return Evidence(**values)

    return make


def add_revision(
    db: Database, digest: str, when: str, commit: str | None, dirty: bool
) -> None:
    with db.write() as conn:
        conn.execute(
            spec_revisions.insert().values(
                spec_digest=digest,
                first_seen_at=when,
                git_commit=commit,
                git_dirty=dirty,
            )
        )


def add_snapshot(
    db: Database, spec: LoadedSpec, when: str, environment: str | None = None
) -> int:
    inventory = build_inventory(spec.fleet, spec.digest, environment)
    return record_snapshot(db, inventory, taken_at=when, git_commit="c" * 40)
