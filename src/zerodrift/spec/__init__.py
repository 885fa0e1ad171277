"""The fleet spec: models, loading with positions, reference checks, schema.

Names are imported on first use: the models (pydantic) take a noticeable
share of a command's start-up, and not every command needs them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zerodrift.spec.loader import (
        MAX_SPEC_BYTES,
        LoadedSpec,
        SpecError,
        SpecLocator,
        load_spec,
        load_trust_keys,
        parse_spec,
    )
    from zerodrift.spec.models import SPEC_VERSION, Fleet
    from zerodrift.spec.references import Problem, check_references
    from zerodrift.spec.resolve import ResolvedService, resolve_services
    from zerodrift.spec.schema import json_schema

__all__ = [
    "MAX_SPEC_BYTES",
    "SPEC_VERSION",
    "Fleet",
    "LoadedSpec",
    "Problem",
    "ResolvedService",
    "SpecError",
    "SpecLocator",
    "check_references",
    "json_schema",
    "load_spec",
    "load_trust_keys",
    "parse_spec",
    "resolve_services",
]

_HOME = {
    "MAX_SPEC_BYTES": "loader",
    "LoadedSpec": "loader",
    "SpecError": "loader",
    "SpecLocator": "loader",
    "load_spec": "loader",
    "load_trust_keys": "loader",
    "parse_spec": "loader",
    "SPEC_VERSION": "models",
    "Fleet": "models",
    "Problem": "references",
    "check_references": "references",
    "ResolvedService": "resolve",
    "resolve_services": "resolve",
    "json_schema": "schema",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"zerodrift.spec.{module}"), name)
