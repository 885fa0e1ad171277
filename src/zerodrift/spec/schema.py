"""The JSON Schema of the fleet spec, for editors and other tools."""

from __future__ import annotations

from typing import Any

from zerodrift.spec.models import Fleet

__all__ = ["SCHEMA_ID", "json_schema"]

SCHEMA_ID = "https://zerodrift.dev/schemas/fleet-v1.json"


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) that ``fleet.yaml`` must satisfy."""
    schema = Fleet.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "zerodrift fleet spec",
        **schema,
    }
