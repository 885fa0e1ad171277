"""The fleet spec: models, loading with positions, reference checks, schema."""

from zerodrift.spec.loader import (
    MAX_SPEC_BYTES,
    LoadedSpec,
    SpecError,
    SpecLocator,
    load_spec,
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
    "parse_spec",
    "resolve_services",
]
