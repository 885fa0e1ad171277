"""``zerodrift init`` and ``zerodrift keygen``: files, keys, and all-or-nothing."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest

from tests.conftest import PASSPHRASE
from tests.support.cli import Cli
from zerodrift._cli.status import ExitCode

DOCUMENTED = {
    "fleet.yaml",
    ".gitignore",
    "keys/project.pub",
    ".zerodrift/state.db",
    ".zerodrift/keys/project.key",
    ".zerodrift/audit-witness.json",
}


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def no_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZERODRIFT_KEY_PASSPHRASE")
    monkeypatch.setattr("sys.stdin", io.StringIO())


def test_init_creates_the_documented_files(tmp_path: Path, cli: Cli) -> None:
    root = tmp_path / "shop"
    result = cli("init", str(root), "--format", "json")
    assert result.code == ExitCode.OK, result.err
    data = json.loads(result.out)
    assert (data["schema_version"], data["kind"], data["fleet"]) == (1, "init", "shop")
    files = tree(root)
    assert files >= DOCUMENTED
    assert any(f.startswith("app/") for f in files)
    assert not any(".zerodrift-init-" in f for f in tree(tmp_path))
    key = root / ".zerodrift/keys/project.key"
    assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert PASSPHRASE.encode() not in key.read_bytes()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((root / ".zerodrift").stat().st_mode) == 0o700
    assert stat.S_IMODE(root.stat().st_mode) & 0o055, "project folder follows umask"
    assert ".zerodrift/" in (root / ".gitignore").read_text()


def test_init_records_and_signs_the_first_audit_record(project: Path, cli: Cli) -> None:
    result = cli("audit", "log", "--format", "json", cwd=project)
    (record,) = json.loads(result.out)["records"]
    assert (record["seq"], record["action"], record["subject"]) == (
        1,
        "project.init",
        "shop",
    )
    assert "keys" in record["details"]["files"]
    result = cli("audit", "verify", "--format", "json", cwd=project)
    assert json.loads(result.out)["last_checkpoint_seq"] == 1


def test_init_refuses_an_existing_project(project: Path, cli: Cli) -> None:
    before = (project / "fleet.yaml").read_bytes()
    result = cli("init", str(project))
    assert result.code == ExitCode.CONFIG
    assert "error[project-exists]" in result.err
    assert (project / "fleet.yaml").read_bytes() == before


def test_init_into_an_empty_existing_folder(tmp_path: Path, cli: Cli) -> None:
    result = cli("init", "--format", "json", cwd=tmp_path)
    assert result.code == ExitCode.OK, result.err
    assert tree(tmp_path) >= DOCUMENTED
    assert json.loads(result.out)["fleet"] == tmp_path.name.lower().replace("_", "-")
    assert cli("spec", "validate", cwd=tmp_path).code == ExitCode.OK


def test_init_refuses_a_folder_with_clashing_files(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "app").mkdir()
    result = cli("init", str(tmp_path))
    assert result.code == ExitCode.CONFIG
    assert "already has app" in result.err
    assert tree(tmp_path) == set()
    assert [p.name for p in tmp_path.iterdir()] == ["app"]


def test_init_without_passphrase_or_terminal_writes_nothing(
    tmp_path: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_passphrase(monkeypatch)
    result = cli("init", str(tmp_path / "a" / "shop"))
    assert result.code == ExitCode.CONFIG
    assert "error[key-passphrase-missing]" in result.err
    assert "ZERODRIFT_KEY_PASSPHRASE" in result.err
    assert list(tmp_path.iterdir()) == []


def test_init_with_weak_passphrase_writes_nothing(
    tmp_path: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZERODRIFT_KEY_PASSPHRASE", "short")
    result = cli("init", str(tmp_path / "a" / "shop"))
    assert result.code == ExitCode.CONFIG
    assert "error[key-passphrase-weak]" in result.err
    assert list(tmp_path.iterdir()) == []


def test_init_with_unreachable_database_writes_nothing(
    tmp_path: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "ZERODRIFT_DATABASE_URL", "postgresql://zd:pw-secret@127.0.0.1:9/x"
    )
    (tmp_path / "existing").mkdir()
    for target in (tmp_path / "new" / "shop", tmp_path / "existing"):
        result = cli("init", str(target))
        assert result.code == ExitCode.OPERATIONAL
        assert "error[database-unreachable]" in result.err
        assert "pw-secret" not in result.err
    assert [p.name for p in tmp_path.iterdir()] == ["existing"]
    assert list((tmp_path / "existing").iterdir()) == []


def test_init_with_invalid_name(tmp_path: Path, cli: Cli) -> None:
    result = cli("init", str(tmp_path / "shop"), "--name", "Bad Name")
    assert result.code == ExitCode.CONFIG
    assert "error[fleet-name-invalid]" in result.err
    assert list(tmp_path.iterdir()) == []


def test_init_with_ed25519(tmp_path: Path, cli: Cli) -> None:
    root = tmp_path / "shop"
    assert cli("init", str(root), "--algorithm", "ed25519").code == ExitCode.OK
    result = cli("audit", "verify", "--format", "json", cwd=root)
    assert result.code == ExitCode.OK, result.err
    assert json.loads(result.out)["last_checkpoint_seq"] == 1


# --- keygen -----------------------------------------------------------------


def test_keygen_creates_a_key_and_records_it(project: Path, cli: Cli) -> None:
    result = cli(
        "keygen",
        "--name",
        "release",
        "--algorithm",
        "ed25519",
        "--format",
        "json",
        cwd=project,
    )
    assert result.code == ExitCode.OK, result.err
    data = json.loads(result.out)
    assert (data["schema_version"], data["kind"], data["name"]) == (1, "key", "release")
    private = project / ".zerodrift/keys/release.key"
    assert private.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert (project / "keys/release.pub").is_file()
    log = json.loads(cli("audit", "log", "--format", "json", cwd=project).out)
    assert log["records"][-1]["action"] == "key.generated"
    assert log["records"][-1]["details"]["keyid"] == data["keyid"]


def test_keygen_refuses_to_overwrite(project: Path, cli: Cli) -> None:
    before = (project / ".zerodrift/keys/project.key").read_bytes()
    result = cli("keygen", cwd=project)
    assert result.code == ExitCode.CONFIG
    assert "error[key-exists]" in result.err
    assert (project / ".zerodrift/keys/project.key").read_bytes() == before


def test_keygen_without_passphrase_writes_nothing(
    project: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = tree(project)
    no_passphrase(monkeypatch)
    result = cli("keygen", "--name", "ci", cwd=project)
    assert result.code == ExitCode.CONFIG
    assert "error[key-passphrase-missing]" in result.err
    assert tree(project) == before


def test_keygen_refuses_a_path_as_name(project: Path, cli: Cli) -> None:
    result = cli("keygen", "--name", "../../escape", cwd=project)
    assert result.code == ExitCode.USAGE
    assert "not a valid key name" in result.err
