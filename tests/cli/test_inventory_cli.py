"""``zerodrift inventory`` in every format, and the snapshots it records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from tests.support.cli import Cli
from zerodrift._cli.status import ExitCode
from zerodrift.state import Database
from zerodrift.state.schema import inventory_snapshots


def test_table_shows_every_section_unsqueezed(
    project: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)  # a pipe, not a terminal
    result = cli("inventory", "--env", "prod", cwd=project)
    assert result.code == ExitCode.OK, result.err
    for heading in ("Images", "Services", "Data flows", "environment", "response"):
        assert heading in result.out
    assert "…" not in result.out.split("\n", 1)[1]  # the header line shows a digest
    assert "db-password" in result.out
    assert "approve" in result.out


def test_json_per_environment(project: Path, cli: Cli) -> None:
    result = cli("inventory", "--env", "dev", "--format", "json", cwd=project)
    data = json.loads(result.out)
    assert (data["schema_version"], data["kind"]) == (1, "inventory")
    assert data["environments"] == ["dev"]
    assert {s["name"]: s["replicas"] for s in data["services"]} == {
        "web": 1,
        "api": 1,
        "db": 1,
    }
    assert data["taken_at"].endswith("Z")


def test_cyclonedx(project: Path, cli: Cli) -> None:
    result = cli("inventory", "--format", "cyclonedx", cwd=project)
    assert result.code == ExitCode.OK, result.err
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(result.out) is None
    bom = json.loads(result.out)
    assert len(bom["services"]) == 9  # three services in three environments


def test_graphs(project: Path, cli: Cli) -> None:
    mermaid = cli("inventory", "--format", "mermaid", cwd=project).out
    assert mermaid.startswith("flowchart LR\n")
    assert "web -->|http 8081/tcp| api" in mermaid
    dot = cli("inventory", "--format", "dot", cwd=project).out
    assert dot.startswith('digraph "shop" {')
    assert dot.endswith("}\n")


def test_unknown_environment(project: Path, cli: Cli) -> None:
    result = cli("inventory", "--env", "qa", cwd=project)
    assert result.code == ExitCode.CONFIG
    assert "error[unknown-environment]" in result.err
    assert "declared: dev, prod, staging" in result.err


def test_each_run_records_a_snapshot_and_an_audit_record(
    project: Path, cli: Cli
) -> None:
    cli("inventory", "--env", "prod", "--format", "json", cwd=project)
    cli("inventory", "--format", "json", cwd=project)
    cli("inventory", "--no-record", "--format", "json", cwd=project)
    db = Database.open(f"sqlite:///{project}/.zerodrift/state.db")
    with db.read() as conn:
        rows = conn.execute(
            inventory_snapshots.select().order_by(inventory_snapshots.c.id)
        ).all()
    db.close()
    assert [row.environment for row in rows] == ["prod", None]
    log = json.loads(cli("audit", "log", "--format", "json", cwd=project).out)
    snapshots = [r for r in log["records"] if r["action"] == "inventory.snapshot"]
    assert [(r["subject"], r["details"]["snapshot"]) for r in snapshots] == [
        ("prod", rows[0].id),
        ("*", rows[1].id),
    ]
    changes = [r for r in log["records"] if r["action"] == "spec.changed"]
    assert len(changes) == 1  # the same spec is noted once


def test_spec_change_is_noted_once_per_content(project: Path, cli: Cli) -> None:
    cli("inventory", "--format", "json", cwd=project)
    spec = project / "fleet.yaml"
    spec.write_text(spec.read_text().replace("replicas: 3", "replicas: 4"))
    cli("inventory", "--format", "json", cwd=project)
    cli("inventory", "--format", "json", cwd=project)
    log = json.loads(
        cli("audit", "log", "--format", "json", "--action", "spec", cwd=project).out
    )
    digests = [r["details"]["spec_digest"] for r in log["records"]]
    assert len(digests) == 2
    assert digests[0] != digests[1]
