"""Findings keep one row per occurrence of a deviation, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, MetaData, String, Table, Text, create_engine, select

from zerodrift.detect.findings import (
    Finding,
    Severity,
    fingerprint_of,
    get_finding,
    list_findings,
    record_findings,
    resolve_findings,
    resolve_unseen,
)
from zerodrift.errors import ConfigError
from zerodrift.state import Database
from zerodrift.state.schema import findings, schema_migrations


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database.open(database_url)
    try:
        yield database
    finally:
        database.close()


def drift(at: str, *, subject: str = "web-1", detail: str = "a") -> Finding:
    return Finding(
        source="node",
        kind="file-changed",
        severity=Severity.HIGH,
        subject=subject,
        summary=f"{detail} changed",
        found_at=at,
        details={"path": f"/srv/{detail}"},
        environment="prod",
    )


T1, T2, T3, T4 = (f"2026-12-01T10:0{n}:00.000000Z" for n in range(1, 5))


def test_a_persisting_deviation_is_one_finding_updated_on_each_sighting(
    db: Database,
) -> None:
    first = record_findings(db, [drift(T1)])
    again = record_findings(db, [drift(T2, detail="b")])
    assert first.new == [drift(T1).id]
    assert again.new == []
    # Seen again, the finding keeps the id and start of its occurrence.
    assert [f.id for f in again.findings] == first.new
    assert again.findings[0].found_at == T1
    [row] = list(list_findings(db))
    assert (row["found_at"], row["last_seen_at"], row["times_seen"]) == (T1, T2, 2)
    assert row["details"] == {"path": "/srv/b"}, "the latest evidence is kept"
    assert row["fingerprint"] == fingerprint_of("node", "file-changed", "web-1", "prod")


def test_other_subjects_kinds_and_environments_are_other_findings(
    db: Database,
) -> None:
    base = drift(T1)
    others = [
        drift(T1, subject="web-2"),
        Finding(**{**base.__dict__, "kind": "config-drift"}),
        Finding(**{**base.__dict__, "environment": "dev"}),
    ]
    recorded = record_findings(db, [base, *others, drift(T1, detail="c")])
    assert len(recorded.new) == 4
    assert len({f.id for f in recorded.findings}) == 4


def test_a_deviation_seen_after_it_was_resolved_is_a_new_occurrence(
    db: Database,
) -> None:
    [first] = record_findings(db, [drift(T1)]).new
    assert resolve_findings(db, [first], resolution="replaced", at=T2) == [first]
    assert resolve_findings(db, [first], resolution="twice", at=T3) == []
    [second] = record_findings(db, [drift(T3)]).new
    assert second != first
    rows = {r["id"]: r for r in list_findings(db, status=None)}
    assert rows[first]["status"] == "resolved"
    assert (rows[first]["resolved_at"], rows[first]["resolution"]) == (T2, "replaced")
    assert rows[second]["status"] == "open"
    # A late report of the first sighting counts for the open occurrence.
    assert record_findings(db, [drift(T1)]).new == []
    rows = {r["id"]: r for r in list_findings(db)}
    assert len(rows) == 2
    assert (rows[second]["times_seen"], rows[second]["last_seen_at"]) == (2, T3)


def test_a_detector_resolves_what_it_covered_and_no_longer_sees(
    db: Database,
) -> None:
    gone, kept, elsewhere = (
        drift(T1, subject="web-1"),
        drift(T1, subject="web-2"),
        drift(T1, subject="api-1"),
    )
    record_findings(db, [gone, kept, elsewhere])
    resolved = resolve_unseen(
        db,
        source="node",
        environment="prod",
        covers=lambda _kind, subject: subject.startswith("web-"),
        seen=[kept.fingerprint],
        resolution="gone",
        at=T4,
    )
    assert resolved == [gone.id]
    still_open = {r["subject"] for r in list_findings(db, status="open")}
    assert still_open == {"web-2", "api-1"}
    assert (
        resolve_unseen(
            db,
            source="fim",
            environment="prod",
            covers=lambda *_: True,
            seen=[],
            resolution="x",
        )
        == []
    ), "other detectors' findings are not touched"


def test_findings_are_found_by_unique_id_prefix(db: Database) -> None:
    recorded = record_findings(db, [drift(T1), drift(T1, subject="web-2")])
    one = recorded.new[0]
    assert get_finding(db, one[:8])["id"] == one
    with pytest.raises(ConfigError, match="no finding"):
        get_finding(db, "ffff_%")
    with pytest.raises(ConfigError) as short:
        get_finding(db, one[:2])
    assert "4 characters" in str(short.value.hint)


def test_migration_fills_in_the_lifecycle_of_findings_stored_before_it(
    tmp_path: pytest.TempPathFactory,
) -> None:
    # The findings table as the first release created it.
    url = f"sqlite:///{tmp_path}/old.db"
    engine = create_engine(url)
    meta = MetaData()
    old = Table(
        "findings",
        meta,
        *(Column(n, String(64)) for n in ("id", "found_at", "source", "kind")),
        *(Column(n, String(100)) for n in ("severity", "environment", "status")),
        *(Column(n, Text) for n in ("subject", "summary", "details", "csf")),
        *(Column(n, String(64)) for n in ("resolved_at", "incident_id")),
    )
    meta.create_all(engine)
    versions = schema_migrations
    versions.create(engine)
    with engine.begin() as conn:
        conn.execute(
            old.insert().values(
                id="old1",
                found_at=T1,
                source="gate",
                kind="spec-committed",
                severity="high",
                environment=None,
                status="open",
                subject="fleet.yaml",
                summary="s",
                details="{}",
                csf="[]",
            )
        )
        for version in (1, 2):
            conn.execute(
                versions.insert().values(version=version, description="", applied_at=T1)
            )
    engine.dispose()
    database = Database.open(url)
    try:
        with database.read() as conn:
            row = conn.execute(select(findings)).one()
    finally:
        database.close()
    assert row.fingerprint == fingerprint_of(
        "gate", "spec-committed", "fleet.yaml", None
    )
    assert (row.last_seen_at, row.times_seen, row.resolution) == (T1, 1, None)


def test_tens_of_thousands_of_findings_are_recorded_and_resolved_at_once(
    db: Database,
) -> None:
    # More than SQLite's default cap of 32,766 bound values in one statement.
    many = [drift(T1, subject=f"host:/usr/lib/f{n}") for n in range(33_000)]
    assert len(record_findings(db, many).new) == 33_000
    again = record_findings(db, many)
    assert again.new == []
    assert len(again.findings) == 33_000
    resolved = resolve_findings(db, [f.id for f in many], resolution="rebuilt")
    assert len(resolved) == 33_000
    assert list(list_findings(db, status="open")) == []
