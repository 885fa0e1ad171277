"""Project discovery and configuration (zerodrift.toml, ZERODRIFT_* variables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zerodrift.errors import ConfigError
from zerodrift.project import Project


def make(tmp_path: Path, toml: str | None = None, **environ: str) -> Project:
    (tmp_path / "fleet.yaml").write_text("version: 1\nname: shop\n")
    if toml is not None:
        (tmp_path / "zerodrift.toml").write_text(toml)
    return Project(tmp_path, environ=dict(environ))


def test_defaults(tmp_path: Path) -> None:
    project = make(tmp_path)
    assert project.database_url == f"sqlite:///{tmp_path}/.zerodrift/state.db"
    assert project.key_name == "project"
    assert project.private_key_path == tmp_path / ".zerodrift/keys/project.key"
    assert project.public_key_path() == tmp_path / "keys/project.pub"


def test_toml_selects_database_and_key(tmp_path: Path) -> None:
    project = make(
        tmp_path,
        '[state]\nurl = "postgresql://zd@db/zd"\n[keys]\nname = "release"\n',
    )
    assert project.database_url == "postgresql://zd@db/zd"
    assert project.key_name == "release"


def test_environment_beats_toml(tmp_path: Path) -> None:
    project = make(
        tmp_path,
        '[state]\nurl = "postgresql://zd@db/zd"\n',
        ZERODRIFT_DATABASE_URL="sqlite:////srv/zd.db",
        ZERODRIFT_KEY="ci",
    )
    assert project.database_url == "sqlite:////srv/zd.db"
    assert project.key_name == "ci"


def test_relative_sqlite_path_is_relative_to_the_project(tmp_path: Path) -> None:
    project = make(tmp_path, '[state]\nurl = "sqlite:///var/state.db"\n')
    assert project.database_url == f"sqlite:///{tmp_path}/var/state.db"


@pytest.mark.parametrize(
    ("toml", "field", "line"),
    [
        ('[state]\nurl = "sqlite://"\n[colour]\nname = "x"\n', "colour", None),
        ('[state]\nuri = "sqlite://"\n', "state.uri", None),
        ("[state]\nurl = 5\n", "state.url", None),
        ('[state]\nurl = "x"\nurl = "y"\n', None, 3),
        ("[state\n", None, 1),
    ],
    ids=["unknown-section", "unknown-key", "wrong-type", "duplicate", "syntax"],
)
def test_invalid_toml_is_a_located_config_error(
    tmp_path: Path, toml: str, field: str | None, line: int | None
) -> None:
    project = make(tmp_path, toml)
    with pytest.raises(ConfigError) as caught:
        _ = project.database_url
    error = caught.value
    assert error.reference == "config-invalid"
    assert error.location is not None
    assert error.location.path == str(tmp_path / "zerodrift.toml")
    assert error.location.field == field
    assert error.location.line == line


def test_key_name_cannot_escape_the_keys_folder(tmp_path: Path) -> None:
    project = make(tmp_path, ZERODRIFT_KEY="../../etc/passwd")
    with pytest.raises(ConfigError) as caught:
        _ = project.private_key_path
    assert caught.value.reference == "key-name-invalid"


def test_discover_searches_parent_folders(tmp_path: Path) -> None:
    make(tmp_path)
    nested = tmp_path / "app" / "web"
    nested.mkdir(parents=True)
    assert Project.discover(nested).root == tmp_path.resolve()


def test_discover_without_a_spec(tmp_path: Path) -> None:
    if any((folder / "fleet.yaml").is_file() for folder in tmp_path.parents):
        pytest.skip("a parent of the temporary folder holds a fleet.yaml")
    with pytest.raises(ConfigError) as caught:
        Project.discover(tmp_path)
    assert caught.value.reference == "project-missing"
