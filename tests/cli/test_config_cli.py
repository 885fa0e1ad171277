"""Choosing the state database: zerodrift.toml and ZERODRIFT_DATABASE_URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import Cli
from zerodrift._cli.status import ExitCode
from zerodrift.state import Database
from zerodrift.state.schema import inventory_snapshots


def snapshot_count(url: str) -> int:
    db = Database.open(url)
    with db.read() as conn:
        count = len(conn.execute(inventory_snapshots.select()).all())
    db.close()
    return count


def test_environment_variable_selects_the_database(
    project: Path,
    cli: Cli,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZERODRIFT_DATABASE_URL", database_url)
    result = cli("inventory", "--format", "json", cwd=project)
    assert result.code == ExitCode.OK, result.err
    assert snapshot_count(database_url) == 1
    log = json.loads(cli("audit", "log", "--format", "json", cwd=project).out)
    assert [r["action"] for r in log["records"]] == [
        "spec.changed",
        "inventory.snapshot",
    ]


def test_toml_selects_the_database(
    project: Path,
    cli: Cli,
    database_url: str,
) -> None:
    (project / "zerodrift.toml").write_text(f'[state]\nurl = "{database_url}"\n')
    assert cli("inventory", "--format", "json", cwd=project).code == ExitCode.OK
    assert snapshot_count(database_url) == 1


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[state\n", "zerodrift.toml:1:"),
        ('[state]\npath = "x"\n', "(state.path)"),
        ('[logging]\nlevel = "debug"\n', "(logging)"),
    ],
    ids=["syntax", "unknown-key", "unknown-section"],
)
def test_invalid_config_exits_3(
    project: Path, cli: Cli, toml: str, expected: str
) -> None:
    (project / "zerodrift.toml").write_text(toml)
    result = cli("audit", "log", cwd=project)
    assert result.code == ExitCode.CONFIG
    assert "error[config-invalid]" in result.err
    assert expected in result.err
    assert "Traceback" not in result.err


def test_unreachable_postgres_exit_4_without_password(
    project: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "ZERODRIFT_DATABASE_URL", "postgresql://zd:s3cret-pw@127.0.0.1:9/zerodrift"
    )
    result = cli("audit", "log", cwd=project)
    assert result.code == ExitCode.OPERATIONAL
    assert "error[database-unreachable]" in result.err
    assert "hint: check that the server is running" in result.err
    assert "s3cret-pw" not in result.err


def test_unsupported_database_is_a_config_error(
    project: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZERODRIFT_DATABASE_URL", "mysql://zd:s3cret-pw@db/zd")
    result = cli("audit", "log", cwd=project)
    assert result.code == ExitCode.CONFIG
    assert "s3cret-pw" not in result.err


def test_every_json_output_carries_schema_version(project: Path, cli: Cli) -> None:
    commands = [
        ["spec", "validate"],
        ["keygen", "--name", "extra"],
        ["inventory"],
        ["audit", "log"],
        ["audit", "verify"],
        ["audit", "checkpoint"],
    ]
    for argv in commands:
        result = cli(*argv, "--format", "json", cwd=project)
        assert result.code == ExitCode.OK, (argv, result.err)
        document = json.loads(result.out)
        assert document["schema_version"] == 1, argv
        assert isinstance(document["kind"], str), argv
