"""Fixtures shared by every test: isolation, databases, projects, the CLI."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.postgres import create_database, running_postgres

PASSPHRASE = "test-passphrase-not-secret"
_db_counter = itertools.count()


@pytest.fixture(autouse=True)
def _isolate(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Give every test its own HOME and a known environment."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for name in list(os.environ):
        if name.startswith("ZERODRIFT_") or name in {
            "CI",
            "GITHUB_ACTIONS",
            "GITLAB_CI",
        }:
            monkeypatch.delenv(name)
    monkeypatch.setenv("ZERODRIFT_KEY_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "test")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.invalid")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.invalid")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server for this test session (one per xdist worker)."""
    with running_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL: once on SQLite, once on real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'state.db'}"
    server: str = request.getfixturevalue("postgres_server")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return create_database(server, f"zd_{worker}_{next(_db_counter)}")


@dataclass
class CliResult:
    """What an in-process run of the CLI produced."""

    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run ``zerodrift`` in-process: ``cli("spec", "validate", cwd=path)``."""
    from zerodrift._cli.main import main

    def run(*argv: str, cwd: Path | None = None) -> CliResult:
        capsys.readouterr()
        previous = Path.cwd()
        if cwd is not None:
            os.chdir(cwd)
        try:
            code = main(list(argv))
        finally:
            os.chdir(previous)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def project(tmp_path: Path, cli) -> Path:  # type: ignore[no-untyped-def]
    """A freshly initialised example project (SQLite state)."""
    root = tmp_path / "shop"
    result = cli("init", str(root))
    assert result.code == 0, result.err
    return root
