"""``zerodrift spec validate|schema`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from ruamel.yaml import YAML

from tests.support.cli import Cli
from zerodrift._cli.status import ExitCode

BROKEN = (
    "version: 1\nname: shop\nimages:\n  app: {}\n"
    "services:\n  web:\n    image: app\n    replicas: many\n"
)


def test_validate_the_example(project: Path, cli: Cli) -> None:
    result = cli("spec", "validate", cwd=project)
    assert result.code == ExitCode.OK, result.err
    assert "valid" in result.out
    assert "3 services" in result.out

    result = cli("spec", "validate", "--format", "json", cwd=project)
    data = json.loads(result.out)
    assert data["schema_version"] == 1
    assert data["kind"] == "spec-validation"
    assert (data["valid"], data["services"], data["images"]) == (True, 3, 3)
    assert data["environments"] == ["dev", "prod", "staging"]


def test_invalid_spec_exit_3_with_location_and_hint_no_traceback(
    project: Path,
    cli: Cli,
) -> None:
    (project / "fleet.yaml").write_text(BROKEN)
    result = cli("spec", "validate", cwd=project)
    assert result.code == ExitCode.CONFIG
    assert result.out == ""
    assert f"--> {project}/fleet.yaml:8:5 (services.web.replicas)" in result.err
    assert "hint: 'zerodrift spec schema'" in result.err
    assert "Traceback" not in result.err
    assert "rerun with -v" in result.err


def test_verbose_shows_the_traceback(project: Path, cli: Cli) -> None:
    (project / "fleet.yaml").write_text(BROKEN)
    result = cli("spec", "validate", "-v", cwd=project)
    assert result.code == ExitCode.CONFIG
    assert "Traceback (most recent call last)" in result.err
    assert "fleet.yaml:8:5" in result.err


def test_invalid_spec_as_json(project: Path, cli: Cli) -> None:
    (project / "fleet.yaml").write_text(BROKEN)
    result = cli("spec", "validate", "--format", "json", cwd=project)
    assert result.code == ExitCode.CONFIG
    data = json.loads(result.out)
    assert (data["schema_version"], data["valid"]) == (1, False)
    (problem,) = data["error"]["problems"]
    assert (problem["line"], problem["column"], problem["field"]) == (
        8,
        5,
        "services.web.replicas",
    )


def test_non_utf8_spec(project: Path, cli: Cli) -> None:
    (project / "fleet.yaml").write_bytes(b"version: 1\nname: \xff\n")
    result = cli("spec", "validate", cwd=project)
    assert result.code == ExitCode.CONFIG
    assert "error[spec-not-utf8]" in result.err
    assert "fleet.yaml:2:7" in result.err


def test_outside_a_project(tmp_path: Path, cli: Cli) -> None:
    result = cli("spec", "validate", "-C", str(tmp_path))
    assert result.code == ExitCode.CONFIG
    assert "error[project-missing]" in result.err
    assert "zerodrift init" in result.err


def test_schema_validates_the_example_and_rejects_unknown_keys(
    project: Path,
    cli: Cli,
) -> None:
    result = cli("spec", "schema")
    assert result.code == ExitCode.OK
    schema = json.loads(result.out)
    spec = YAML(typ="safe").load((project / "fleet.yaml").read_text())
    jsonschema.validate(spec, schema)
    spec["services"]["web"]["replicaz"] = 2
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(spec))
    assert any("replicaz" in error.message for error in errors)
