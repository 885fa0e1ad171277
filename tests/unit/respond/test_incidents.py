"""Incident records on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from zerodrift.errors import ConfigError
from zerodrift.respond.incidents import (
    find_open,
    get_incident,
    list_incidents,
    open_incident,
    quarantined_nodes,
    seconds_between,
    update_incident,
)
from zerodrift.state import Database

FINDING = {"id": "f1", "found_at": "2026-12-03T18:00:00.250000Z", "summary": "x"}


def test_one_open_incident_per_node_then_resume_and_resolve(database_url: str) -> None:
    db = Database.open(database_url)
    db.migrate()
    first = open_incident(
        db,
        environment="prod",
        service="api",
        node="n1",
        policy="approve",
        findings=[FINDING],
        status="awaiting-approval",
    )
    again = open_incident(
        db,
        environment="prod",
        service="api",
        node="n1",
        policy="approve",
        findings=[],
    )
    assert again.id == first.id
    assert again.findings == [FINDING]
    assert first.detected_at == FINDING["found_at"]
    update_incident(db, first, status="responding", step="quarantined")
    assert quarantined_nodes(db, "prod") == {"n1"}
    loaded = get_incident(db, first.id[:5])
    assert (loaded.status, loaded.step) == ("responding", "quarantined")
    assert loaded.done("replaced")
    assert not loaded.done("evidence")
    update_incident(
        db, loaded, status="resolved", step="verified", detail={"k": [1, 2]}
    )
    assert find_open(db, "n1") is None
    assert quarantined_nodes(db, "prod") == set()
    assert [i.detail for i in list_incidents(db, "prod")] == [{"k": [1, 2]}]
    assert list(list_incidents(db, "dev")) == []
    with pytest.raises(ConfigError, match="no incident"):
        get_incident(db, "zz")


def test_seconds_between() -> None:
    assert (
        seconds_between("2026-12-03T18:00:00.250000Z", "2026-12-03T18:00:02.000000Z")
        == 1.75
    )
