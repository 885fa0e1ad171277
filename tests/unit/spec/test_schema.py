"""The JSON Schema printed by ``zerodrift spec schema`` is usable by editors."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from tests.unit.spec.test_loader import example_text
from zerodrift.spec import json_schema


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def example() -> dict[str, Any]:
    data = YAML(typ="safe").load(example_text())
    assert isinstance(data, dict)
    return data


def test_schema_is_draft_2020_12(validator: jsonschema.protocols.Validator) -> None:
    assert validator.schema["$schema"].endswith("/2020-12/schema")


def test_schema_accepts_the_example(validator: jsonschema.protocols.Validator) -> None:
    errors = list(validator.iter_errors(example()))
    assert errors == []


@pytest.mark.parametrize(
    "path",
    [(), ("services", "web"), ("images", "api"), ("trust",)],
)
def test_schema_rejects_unknown_keys(
    validator: jsonschema.protocols.Validator, path: tuple[str, ...]
) -> None:
    data = copy.deepcopy(example())
    node = data
    for key in path:
        node = node[key]
    node["surprise"] = 1
    errors = list(validator.iter_errors(data))
    assert errors, "an unknown key must not validate"
    assert any("surprise" in error.message for error in errors)


def test_schema_rejects_wrong_types(validator: jsonschema.protocols.Validator) -> None:
    data = example()
    data["services"]["web"]["replicas"] = "many"
    assert not validator.is_valid(data)
    data = example()
    data["services"]["web"]["max_age"] = "7 days"
    assert not validator.is_valid(data)
