"""Per-environment overrides."""

from __future__ import annotations

import pytest

from tests.unit.spec.test_loader import example_text
from zerodrift.errors import ConfigError
from zerodrift.spec import parse_spec, resolve_services


def test_overrides_apply_per_environment() -> None:
    fleet = parse_spec(example_text().encode(), "fleet.yaml").fleet
    replicas = {
        env: {n: r.service.replicas for n, r in resolve_services(fleet, env).items()}
        for env in ("dev", "staging", "prod")
    }
    assert replicas == {
        "dev": {"api": 1, "db": 1, "web": 1},
        "staging": {"api": 2, "db": 1, "web": 2},
        "prod": {"api": 2, "db": 1, "web": 3},
    }


def test_response_policy_service_beats_environment() -> None:
    fleet = parse_spec(example_text().encode(), "fleet.yaml").fleet
    prod = resolve_services(fleet, "prod")
    assert prod["web"].response == "auto"
    assert prod["db"].response == "approve"


def test_override_env_merges_with_service_env() -> None:
    text = example_text().replace(
        "      web: {replicas: 3}", "      api: {env: {LOG: debug}}"
    )
    fleet = parse_spec(text.encode(), "fleet.yaml").fleet
    api = resolve_services(fleet, "prod")["api"].service
    assert api.env == {"DB_URL": "http://db:5432/", "LOG": "debug"}


def test_unknown_environment() -> None:
    fleet = parse_spec(example_text().encode(), "fleet.yaml").fleet
    with pytest.raises(ConfigError) as caught:
        resolve_services(fleet, "qa")
    assert caught.value.hint == "declared: dev, prod, staging"
