"""How errors render for people and for machines."""

from __future__ import annotations

from zerodrift.errors import ConfigError, Location, OperationalError


def test_location_forms() -> None:
    assert str(Location("fleet.yaml", 12, 5, "services.web.image")) == (
        "fleet.yaml:12:5 (services.web.image)"
    )
    assert str(Location("fleet.yaml", 3)) == "fleet.yaml:3"
    assert str(Location(field="state.url")) == "<input> (state.url)"


def test_diagnostics_block() -> None:
    error = ConfigError(
        "unknown image 'nginx'",
        hint="declared: app",
        location=Location("fleet.yaml", 7, 5, "services.web.image"),
        reference="spec-invalid",
    )
    assert error.diagnostics() == (
        "error[spec-invalid]: unknown image 'nginx'\n"
        "  --> fleet.yaml:7:5 (services.web.image)\n"
        "  hint: declared: app"
    )
    assert error.to_dict() == {
        "reference": "spec-invalid",
        "message": "unknown image 'nginx'",
        "hint": "declared: app",
        "location": {
            "path": "fleet.yaml",
            "line": 7,
            "column": 5,
            "field": "services.web.image",
        },
    }


def test_family_default_references() -> None:
    assert ConfigError("x").reference == "config-error"
    assert OperationalError("x").diagnostics() == "error[operational-error]: x"
