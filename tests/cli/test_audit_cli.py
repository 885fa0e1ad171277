"""``zerodrift audit log|verify|checkpoint`` as a user and a CI job run them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy import update

from tests.support.cli import Cli
from tests.support.keys import make_key
from zerodrift._cli.status import ExitCode
from zerodrift.govern.audit import AuditTrail
from zerodrift.state import Database
from zerodrift.state.schema import audit_checkpoints, audit_records


def grow(project: Path, cli: Cli, count: int) -> None:
    for _ in range(count):
        assert cli("inventory", "--format", "json", cwd=project).code == ExitCode.OK


def open_db(project: Path) -> Database:
    return Database.open(f"sqlite:///{project}/.zerodrift/state.db")


def test_log_formats(project: Path, cli: Cli) -> None:
    grow(project, cli, 1)
    table = cli("audit", "log", cwd=project)
    assert table.code == ExitCode.OK
    assert "project.init" in table.out
    assert "inventory.snapshot" in table.out
    lines = cli("audit", "log", "--format", "jsonl", cwd=project).out.splitlines()
    assert [json.loads(line)["action"] for line in lines] == [
        "project.init",
        "spec.changed",
        "inventory.snapshot",
    ]
    document = json.loads(cli("audit", "log", "--format", "json", cwd=project).out)
    assert (document["schema_version"], document["kind"]) == (1, "audit-log")
    assert len(document["records"]) == 3


def test_log_filters(project: Path, cli: Cli) -> None:
    grow(project, cli, 3)

    def seqs(*argv: str) -> list[int]:
        result = cli("audit", "log", "--format", "jsonl", *argv, cwd=project)
        assert result.code == ExitCode.OK, result.err
        return [json.loads(line)["seq"] for line in result.out.splitlines()]

    assert seqs("--action", "inventory") == [3, 4, 5]
    assert seqs("--limit", "2") == [4, 5]
    assert seqs("--subject", "shop") == [1, 2]
    assert seqs("--since", "2000-01-01") == [1, 2, 3, 4, 5]
    assert seqs("--until", "2000-01-01T00:00Z") == []


@pytest.mark.parametrize("option", ["--since", "--until"])
def test_log_with_a_malformed_time_is_a_config_error(
    project: Path,
    cli: Cli,
    option: str,
) -> None:
    result = cli("audit", "log", option, "last tuesday", cwd=project)
    assert result.code == ExitCode.CONFIG
    assert "error[time-invalid]" in result.err
    assert option in result.err


def test_log_limit_must_be_positive(project: Path, cli: Cli) -> None:
    assert cli("audit", "log", "--limit", "-1", cwd=project).code == ExitCode.USAGE


def test_table_is_not_squeezed_when_piped(
    project: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)  # a pipe, not a terminal
    grow(project, cli, 1)
    result = cli("audit", "log", cwd=project)
    assert "…" not in result.out
    assert "inventory.snapshot" in result.out
    assert max(len(line) for line in result.out.splitlines()) > 80


def test_verify_intact(project: Path, cli: Cli) -> None:
    grow(project, cli, 2)
    result = cli("audit", "verify", cwd=project)
    assert result.code == ExitCode.OK, result.err
    assert "audit trail intact: 4 records" in result.out
    data = json.loads(cli("audit", "verify", "--format", "json", cwd=project).out)
    assert data["schema_version"] == 1
    assert (data["intact"], data["records"], data["head_seq"]) == (True, 4, 4)


def test_verify_modified_record_exit_1_names_it(project: Path, cli: Cli) -> None:
    grow(project, cli, 2)
    db = open_db(project)
    with db.write() as conn:
        conn.execute(
            update(audit_records)
            .where(audit_records.c.seq == 2)
            .values(actor="mallory")
        )
    db.close()
    result = cli("audit", "verify", "--format", "json", cwd=project)
    assert result.code == ExitCode.FINDINGS
    data = json.loads(result.out)
    assert (data["schema_version"], data["intact"], data["first_bad_seq"]) == (
        1,
        False,
        2,
    )
    assert data["error"]["reference"] == "audit-tampered"
    result = cli("audit", "verify", cwd=project)
    assert result.code == ExitCode.FINDINGS
    assert "error[audit-tampered]: record 2" in result.err
    assert "Traceback" not in result.err


def test_verify_forged_checkpoint_exit_1(
    project: Path, cli: Cli, tmp_path: Path
) -> None:
    grow(project, cli, 1)
    intruder, _ = make_key(tmp_path, "intruder")
    db = open_db(project)
    AuditTrail(db).checkpoint(intruder)
    db.close()
    result = cli("audit", "verify", "--format", "json", cwd=project)
    assert result.code == ExitCode.FINDINGS
    data = json.loads(result.out)
    assert (data["intact"], data["first_bad_seq"]) == (False, 3)
    assert data["error"]["reference"] == "audit-checkpoint-untrusted"


def test_verify_truncation_detected_through_the_witness(
    project: Path, cli: Cli
) -> None:
    grow(project, cli, 2)
    assert cli("audit", "checkpoint", cwd=project).code == ExitCode.OK
    db = open_db(project)
    with db.write() as conn:
        conn.execute(audit_records.delete().where(audit_records.c.seq >= 4))
        conn.execute(audit_checkpoints.delete())
    db.close()
    result = cli("audit", "verify", "--format", "json", cwd=project)
    assert result.code == ExitCode.FINDINGS
    assert json.loads(result.out)["first_bad_seq"] == 4


def test_checkpoint(project: Path, cli: Cli) -> None:
    grow(project, cli, 1)
    result = cli("audit", "checkpoint", "--format", "json", cwd=project)
    assert result.code == ExitCode.OK, result.err
    data = json.loads(result.out)
    assert (data["schema_version"], data["kind"], data["seq"]) == (
        1,
        "audit-checkpoint",
        3,
    )
    witness = json.loads((project / ".zerodrift/audit-witness.json").read_text())
    assert (
        witness["payloadType"] == "application/vnd.zerodrift.audit-checkpoint.v1+json"
    )


def test_checkpoint_with_wrong_passphrase(
    project: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZERODRIFT_KEY_PASSPHRASE", "not-the-right-one")
    result = cli("audit", "checkpoint", cwd=project)
    assert result.code == ExitCode.CONFIG
    assert "error[key-passphrase-wrong]" in result.err
    assert "not-the-right-one" not in result.err


def test_checkpoint_without_passphrase_or_terminal(
    project: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ZERODRIFT_KEY_PASSPHRASE")
    monkeypatch.setattr("sys.stdin", io.StringIO())
    result = cli("audit", "checkpoint", cwd=project)
    assert result.code == ExitCode.CONFIG
    assert "error[key-passphrase-missing]" in result.err


def test_periodic_checkpoint_is_signed_when_due(
    project: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("zerodrift._cli.context.CHECKPOINT_INTERVAL", 2)
    grow(project, cli, 1)  # spec.changed + inventory.snapshot: two records
    data = json.loads(cli("audit", "verify", "--format", "json", cwd=project).out)
    assert (data["checkpoints"], data["last_checkpoint_seq"]) == (2, 3)


def test_periodic_checkpoint_failure_does_not_fail_the_action(
    project: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("zerodrift._cli.context.CHECKPOINT_INTERVAL", 1)
    monkeypatch.setenv("ZERODRIFT_KEY_PASSPHRASE", "not-the-right-one")
    result = cli("inventory", "--format", "json", cwd=project)
    assert result.code == ExitCode.OK, result.err
    assert "audit checkpoint due but not signed (key-passphrase-wrong)" in result.err
    assert "not-the-right-one" not in result.err
