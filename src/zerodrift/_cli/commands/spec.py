"""``zerodrift spec validate|schema``: check the fleet spec, print its schema."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_format
from zerodrift._cli.output import console, emit_json
from zerodrift._cli.status import ExitCode

__all__ = ["register"]


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``spec`` and its sub-commands."""
    parser = add_command(
        subparsers,
        common,
        "spec",
        None,
        help="validate the fleet spec or print its JSON Schema",
    )
    sub = parser.add_subparsers(title="spec commands", metavar="ACTION", required=True)
    validate = add_command(
        sub,
        common,
        "validate",
        run_validate,
        help="validate fleet.yaml: types, unknown keys, references",
        epilog="exit code 0 when valid, 3 when not; every problem is listed with "
        "file:line:column.",
    )
    add_format(validate)
    add_command(
        sub,
        common,
        "schema",
        run_schema,
        help="print the JSON Schema of fleet.yaml (for editors)",
        epilog="example: zerodrift spec schema > fleet.schema.json",
    )


def run_validate(ctx: Context) -> int:
    """Validate the spec and summarise it."""
    from zerodrift.spec import SpecError

    try:
        spec = ctx.spec
    except SpecError as exc:
        if ctx.args.format == "json":
            emit_json("spec-validation", {"valid": False, "error": exc.to_dict()})
            return ExitCode.CONFIG
        raise
    fleet = spec.fleet
    summary = {
        "valid": True,
        "path": str(spec.path),
        "fleet": fleet.name,
        "digest": spec.digest,
        "images": len(fleet.images),
        "services": len(fleet.services),
        "environments": sorted(fleet.environments),
    }
    if ctx.args.format == "json":
        emit_json("spec-validation", summary)
    else:
        console().print(
            f"{spec.path}: valid — fleet {fleet.name!r}, {len(fleet.images)} images, "
            f"{len(fleet.services)} services, environments "
            f"{', '.join(sorted(fleet.environments)) or 'none'}\n"
            f"digest {spec.digest}"
        )
    return ExitCode.OK


def run_schema(ctx: Context) -> int:
    """Print the JSON Schema."""
    from zerodrift.spec import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")
    return ExitCode.OK
